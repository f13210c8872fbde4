"""The GPU `tensorrt_llm` (TensorRT-LLM's backend) exposes the tensors the scheduler sends and reads,
with the same types and dims as the CPU stand-in the integration tests exercise. No server."""

from __future__ import annotations

import pytest

from deploy.config_checks import SCHEDULER_LLM_CALLS, inputs, llm_interface_problems
from deploy.gpu.bundle import TENSORRT_LLM_CONFIG
from deploy.gpu.trtllm_parameters import load_template_parameters
from deploy.repository import read_config
from repo_paths import SOURCE_REPOSITORY
from runtime.contracts import LLM


def cpu_and_gpu_llm():
    return read_config(SOURCE_REPOSITORY / "tensorrt_llm" / "config.pbtxt"), read_config(TENSORRT_LLM_CONFIG)


def test_the_check_covers_the_whole_contract():
    """Every name the scheduler sends or reads (runtime.contracts.LLM) is checked, each as often as it is sent."""
    assert SCHEDULER_LLM_CALLS.always == {"input_ids", "input_lengths", "request_output_len"}
    assert SCHEDULER_LLM_CALLS.sometimes == {*LLM.PASSED_THROUGH, "streaming", "stop"}
    assert SCHEDULER_LLM_CALLS.reads == {"output_ids", "sequence_length", "output_log_probs"}


def test_gpu_tensorrt_llm_serves_the_scheduler_as_the_cpu_stand_in_does():
    assert llm_interface_problems(*cpu_and_gpu_llm()) == []


def test_the_scheduler_accepts_every_input_it_passes_through():
    """A pass-through name the scheduler's own config lacks would never reach the LLM."""
    scheduler = inputs(read_config(SOURCE_REPOSITORY / "ltr_scheduler" / "config.pbtxt"))
    assert set(LLM.PASSED_THROUGH) | {"stop", "streaming"} <= set(scheduler)


def test_gpu_tensorrt_llm_is_the_inflight_batching_backend():
    gpu = read_config(TENSORRT_LLM_CONFIG)
    assert gpu.backend == "tensorrtllm"
    assert gpu.model_transaction_policy.decoupled
    params = {k: v.string_value for k, v in gpu.parameters.items()}
    assert load_template_parameters().problems(params) == []  # the source file too, not only the render
    assert params["gpt_model_type"] == "inflight_fused_batching"
    assert params["batch_scheduler_policy"] in {"guaranteed_no_evict", "max_utilization"}
    assert params["exclude_input_in_output"] == "true"  # the scheduler relays generated tokens only
    assert 0 < float(params["kv_cache_free_gpu_mem_fraction"]) <= 1


@pytest.mark.parametrize("tensor", ["input_lengths", "stop", "streaming", "seed"])
def test_missing_tensor_is_caught(tensor):
    cpu, gpu = cpu_and_gpu_llm()
    kept = [t for t in gpu.input if t.name != tensor]
    del gpu.input[:]
    gpu.input.extend(kept)
    assert any(f"lacks input {tensor!r}" in p for p in llm_interface_problems(cpu, gpu))


def test_missing_output_is_caught():
    cpu, gpu = cpu_and_gpu_llm()
    kept = [t for t in gpu.output if t.name != "output_ids"]
    del gpu.output[:]
    gpu.output.extend(kept)
    assert any("lacks output 'output_ids'" in p for p in llm_interface_problems(cpu, gpu))


def test_wrong_type_required_input_and_non_decoupled_are_caught():
    cpu, gpu = cpu_and_gpu_llm()
    by_name = {t.name: t for t in gpu.input}
    by_name["seed"].data_type = read_config(SOURCE_REPOSITORY / "length_predictor" / "config.pbtxt").input[0].data_type
    by_name["temperature"].optional = False
    gpu.model_transaction_policy.decoupled = False
    problems = llm_interface_problems(cpu, gpu)
    assert any("seed" in p and "TYPE_INT64" in p for p in problems), problems
    assert any("requires 'temperature'" in p for p in problems), problems
    assert any("decoupled" in p for p in problems), problems
    assert "input_ids" in inputs(gpu)
