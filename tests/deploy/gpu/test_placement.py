"""The predictor's GPU and what its budget leaves the LLM's KV cache (docs/gpu.md arithmetic)."""

from __future__ import annotations

from pathlib import Path

import pytest

from deploy.capacity import EngineLimits
from deploy.gpu.bundle import bundle_problems, render_gpu_bundle
from deploy.gpu.placement import (
    GIB,
    Placement,
    choose_predictor_gpu,
    engine_weights_gib_per_gpu,
)
from deploy.repository import read_config, write_config
from tests.deploy.gpu.test_bundle import local_settings, params


def test_predictor_gpu_is_the_engines_last():
    assert choose_predictor_gpu(1) == 0 and choose_predictor_gpu(8) == 7


def test_kv_fraction_arithmetic_of_the_docs():
    # 8B on an 80 GiB GPU: 0.9 - 2 / (80 - 14.96) = 0.9 - 0.0308 = 0.869 -> 0.86
    eight_b = Placement(0, 0.9, 80.0, engine_weights_gib_per_gpu(Path("/no/engine"), 1))
    assert round(eight_b.weights_gib_per_gpu, 2) == 14.96 and eight_b.kv_fraction == 0.86
    # 70B, TP 8, 80 GiB each: 0.9 - 2 / (80 - 16.44) = 0.9 - 0.0315 -> 0.86
    seventy_b = Placement(7, 0.9, 80.0, engine_weights_gib_per_gpu(Path("/no/engine"), 8))
    assert round(seventy_b.weights_gib_per_gpu, 2) == 16.44 and seventy_b.kv_fraction == 0.86
    assert Placement(0, 0.9, 141.0, 14.96).kv_fraction == 0.88  # H200
    assert "= 0.86" in eight_b.explain() and "GPU 0" in eight_b.explain()
    with pytest.raises(ValueError, match="no room"):
        _ = Placement(0, 0.9, 16.0, 15.0).kv_fraction
    with pytest.raises(ValueError, match="less than"):
        _ = Placement(0, 0.02, 80.0, 15.0).kv_fraction


def test_a_built_engine_is_measured(tmp_path):
    (tmp_path / "rank0.engine").write_bytes(b"\0" * (GIB // 1024))
    assert engine_weights_gib_per_gpu(tmp_path, 8) == pytest.approx(1 / 1024)


def test_render_pins_the_predictor_and_lowers_the_kv_fraction(tmp_path):
    settings = local_settings(tmp_path, limits=EngineLimits(world_size=8), kv_cache_free_gpu_mem_fraction=0.9)
    bundle = render_gpu_bundle(tmp_path / "b", settings)
    repo = bundle / "model_repository"
    (group,) = read_config(repo / "length_predictor" / "config.pbtxt").instance_group
    assert list(group.gpus) == [7] and group.count == 1
    assert params(repo, "tensorrt_llm")["kv_cache_free_gpu_mem_fraction"] == f"{settings.placement.kv_fraction:.2f}" == "0.86"
    with pytest.raises(ValueError, match="not one of"):
        render_gpu_bundle(tmp_path / "c", local_settings(tmp_path, predictor_gpu=1))


def test_an_unpinned_gpu_instance_fails_the_bundle_check(tmp_path):
    bundle = render_gpu_bundle(tmp_path / "b", local_settings(tmp_path))
    path = bundle / "model_repository" / "length_predictor" / "config.pbtxt"
    config = read_config(path)
    del config.instance_group[0].gpus[:]
    write_config(config, path)
    assert any("without `gpus`" in p for p in bundle_problems(bundle))
