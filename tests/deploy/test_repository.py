"""Rendering a deployable repository from the source one, with parameter overrides."""

from __future__ import annotations

import pytest

from deploy.repository import read_config, render_repository
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

