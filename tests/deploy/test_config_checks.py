"""Every config.pbtxt of both targets parses as a Triton ModelConfig, and every ensemble step's
input_map/output_map names, data types and dims match the models it calls. Fast, no server."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from deploy.config_checks import entry_interface_problems, ensemble_problems, inputs, load_repository, outputs, repository_problems
from deploy.gpu.bundle import GPU_SOURCES, PREDICTOR_CONFIGS, GpuSettings, render_gpu_bundle
from deploy.repository import read_config
from repo_paths import REPO_ROOT, SOURCE_REPOSITORY

GPU_CONFIG_SOURCES = sorted(GPU_SOURCES.rglob("*.pbtxt"))  # the predictor variants live there too


@pytest.fixture(scope="module")
def gpu_repos(tmp_path_factory) -> dict[str, Path]:
    """The rendered GPU repository for each predictor variant."""
    root = tmp_path_factory.mktemp("gpu")
    return {
        variant: render_gpu_bundle(root / variant, GpuSettings(root / "engine", root / "hf", predictor_variant=variant,
                                                          predictor_artifacts=root / "no_artifacts"))
        / "model_repository"
        for variant in PREDICTOR_CONFIGS
    }


def test_cpu_repository_parses_and_its_ensemble_is_wired():
    configs, problems = load_repository(SOURCE_REPOSITORY)
    assert problems == []
    assert {"ensemble", "preprocessing", "length_predictor", "ltr_scheduler", "postprocessing", "tensorrt_llm"} <= set(configs)
    assert repository_problems(SOURCE_REPOSITORY) == []


@pytest.mark.parametrize("path", GPU_CONFIG_SOURCES, ids=lambda p: str(p.relative_to(REPO_ROOT)))
def test_gpu_config_sources_parse(path):
    config = read_config(path)  # raises on any field that is not in ModelConfig
    assert config.name and (config.backend or config.platform)


@pytest.mark.parametrize("variant", sorted(PREDICTOR_CONFIGS))
def test_gpu_repository_parses_and_its_ensemble_is_wired(gpu_repos, variant):
    configs, problems = load_repository(gpu_repos[variant])
    assert problems == []
    assert configs["tensorrt_llm"].backend == "tensorrtllm"
    assert configs["length_predictor"].platform == {"onnx": "onnxruntime_onnx", "plan": "tensorrt_plan"}[variant]
    assert repository_problems(gpu_repos[variant]) == []


def test_predictor_has_one_interface_on_every_target():
    """The ensemble feeds the same tensors to whichever length_predictor a target serves."""
    cpu = read_config(SOURCE_REPOSITORY / "length_predictor" / "config.pbtxt")
    for path in PREDICTOR_CONFIGS.values():
        gpu = read_config(path)
        assert list(gpu.input) == list(cpu.input) and list(gpu.output) == list(cpu.output), path
        assert gpu.max_batch_size == cpu.max_batch_size


# The checks must be able to fail: deliberately broken copies of the CPU repository.

def _broken_copy(tmp_path: Path, model: str, old: str, new: str) -> Path:
    repo = tmp_path / "repo"
    shutil.copytree(SOURCE_REPOSITORY, repo, symlinks=True, ignore=shutil.ignore_patterns("*.onnx", "__pycache__"))
    path = repo / model / "config.pbtxt"
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}: update this test"
    path.write_text(text.replace(old, new, 1))
    return repo


@pytest.mark.parametrize(
    "model, old, new, expected",
    [
        # a data type that no longer matches what the step feeds it
        ("ltr_scheduler", '{ name: "score" data_type: TYPE_FP32', '{ name: "score" data_type: TYPE_FP16',
         "wants TYPE_FP16"),
        # a tensor renamed on one side only
        ("postprocessing", '{ name: "IS_FINAL"', '{ name: "IS_LAST"', "'IS_FINAL' is not an input"),
        # a step reading an ensemble tensor nobody produces
        ("ensemble", 'value: "_SCORE" }\n    },', 'value: "_SCORES" }\n    },', "'_SCORE' is neither"),
        # dims that disagree
        ("ltr_scheduler", '{ name: "score" data_type: TYPE_FP32 dims: [ 1 ] }', '{ name: "score" data_type: TYPE_FP32 dims: [ 2 ] }',
         "dims"),
        # a step after the decoupled scheduler taking a tensor from before it
        ("ensemble", 'input_map { key: "CONTEXT_IDS" value: "_CONTEXT_IDS" }', 'input_map { key: "CONTEXT_IDS" value: "_INPUT_ID" }',
         "decoupled"),
    ],
)
def test_broken_ensemble_wiring_is_caught(tmp_path, model, old, new, expected):
    problems = repository_problems(_broken_copy(tmp_path, model, old, new))
    assert any(expected in p for p in problems), problems


def test_config_that_is_not_a_model_config_is_caught(tmp_path):
    repo = _broken_copy(tmp_path, "preprocessing", "max_batch_size: 64", "max_batch_sise: 64")
    _, problems = load_repository(repo)
    assert any("preprocessing" in p and "not a Triton ModelConfig" in p for p in problems), problems


def test_unmapped_required_input_is_caught():
    configs, _ = load_repository(SOURCE_REPOSITORY)
    step = configs["ensemble"].ensemble_scheduling.step[0]
    del step.input_map["QUERY"]
    assert any("required input 'QUERY'" in p for p in ensemble_problems("ensemble", configs))


def test_the_bls_entry_has_exactly_the_ensembles_interface():
    """ltr_bls replaces the ensemble for clients: the same inputs and outputs (names, types, dims,
    optional flags) and batch size, so no client can tell which one it calls."""
    configs, _ = load_repository(SOURCE_REPOSITORY)
    ensemble, bls = configs["ensemble"], configs["ltr_bls"]
    assert inputs(bls) == inputs(ensemble) and outputs(bls) == outputs(ensemble)
    assert bls.max_batch_size == ensemble.max_batch_size
    assert bls.model_transaction_policy.decoupled  # it streams, and many requests share one instance
    assert entry_interface_problems(ensemble, bls) == []


@pytest.mark.parametrize(
    "model, old, new, expected",
    [
        ("ltr_bls", '{ name: "top_k" data_type: TYPE_INT32 dims: [ 1 ] optional: true }',
         '{ name: "top_k" data_type: TYPE_INT32 dims: [ 1 ] }', "differs from ensemble's"),
        ("ensemble", '{ name: "seed" data_type: TYPE_UINT64 dims: [ 1 ] optional: true },', "",
         "has input 'seed', which ensemble has not"),
        ("ltr_bls", '{ name: "output_token_count" data_type: TYPE_INT32 dims: [ 1 ] },', "", "lacks ensemble's output"),
        ("ltr_bls", 'key: "skip_special_tokens" value { string_value: "true" }',
         'key: "skip_special_tokens" value { string_value: "false" }', "their text would differ"),
    ],
)
def test_an_entry_model_that_drifts_from_the_ensemble_is_caught(tmp_path, model, old, new, expected):
    problems = repository_problems(_broken_copy(tmp_path, model, old, new))
    assert any(expected in p for p in problems), problems


@pytest.mark.parametrize(
    "model, old, new, expected",
    [
        # a tensor the contract does not name, on a model the ensemble does not check (the predictor)
        ("length_predictor", '{ name: "score"', '{ name: "scores"', "length_predictor outputs"),
        # the ensemble wiring two contract tensors other than the contract does
        ("ensemble", 'input_map { key: "END_ID" value: "end_id" }\n      input_map { key: "PAD_ID" value: "pad_id" }',
         'input_map { key: "END_ID" value: "pad_id" }\n      input_map { key: "PAD_ID" value: "end_id" }',
         "only the ensemble wires ('ensemble', 'pad_id') -> ('preprocessing', 'END_ID')"),
    ],
)
def test_a_model_that_drifts_from_its_contract_is_caught(tmp_path, model, old, new, expected):
    problems = repository_problems(_broken_copy(tmp_path, model, old, new))
    assert any(expected in p for p in problems), problems
