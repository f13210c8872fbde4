"""Rendering a deployable repository from the source one, with parameter overrides."""

from __future__ import annotations

import pytest

from deploy.repository import engine_max_inflight, read_config, render_repository, source_parameters
from repo_paths import SOURCE_REPOSITORY


def test_render_overrides_parameters_and_links_versions(tmp_path):
    out = render_repository(tmp_path / "repo", {"ltr_scheduler": {"policy": "fcfs", "max_inflight": "3"}})
    config = read_config(out / "ltr_scheduler" / "config.pbtxt")
    assert config.parameters["policy"].string_value == "fcfs"
    assert config.parameters["max_inflight"].string_value == "3"
    assert (out / "ltr_scheduler" / "1").is_symlink()
    assert read_config(out / "ensemble" / "config.pbtxt") == read_config(SOURCE_REPOSITORY / "ensemble" / "config.pbtxt")
    with pytest.raises(KeyError, match="no parameter"):
        render_repository(tmp_path / "bad", {"ltr_scheduler": {"polcy": "fcfs"}})
    with pytest.raises(KeyError, match="unknown models"):
        render_repository(tmp_path / "bad2", {"no_such_model": {"x": "1"}})



def test_auto_max_inflight_is_the_engines_capacity(tmp_path):
    engine = source_parameters("tensorrt_llm")
    assert engine_max_inflight(engine) == 64, "A100-80GB: the 64 batch slots bind (418k KV tokens / 4096 = 102)"
    assert engine_max_inflight({**engine, "max_batch_slots": "16"}) == 16
    # a KV cache of 20,000 tokens holds 4 requests at the 4096-token output limit
    assert engine_max_inflight({**engine, "max_tokens_in_paged_kv_cache": "20000"}) == 4
    assert engine_max_inflight({**engine, "max_tokens_in_paged_kv_cache": "20000",
                                "batch_scheduler_policy": "max_utilization"}) == 64
    out = render_repository(tmp_path / "repo", {"tensorrt_llm": {"max_batch_slots": "12"}})
    assert read_config(out / "ltr_scheduler" / "config.pbtxt").parameters["max_inflight"].string_value == "12"
