"""What a newcomer reads first is true: the headline under README's title (and its copy in
docs/benchmarks.md) is the one `benchmarks.headline` renders from results/headline.json, and every
figure in it is one that file holds."""

from __future__ import annotations

import json
import re

import pytest

from benchmarks.headline import block, render
from repo_paths import REPO_ROOT, RESULTS_DIR

HEADLINE = json.loads((RESULTS_DIR / "headline.json").read_text())


@pytest.mark.parametrize("doc", ["README.md", "docs/benchmarks.md"])
def test_the_headline_is_the_rendered_one(doc: str) -> None:
    text = (REPO_ROOT / doc).read_text()
    assert block(text) == render(HEADLINE), f"{doc}: rerun `make headline`"


def test_the_headline_comes_right_under_the_title() -> None:
    lines = (REPO_ROOT / "README.md").read_text().splitlines()
    assert lines[0].startswith("# ") and lines[2].startswith("<!-- headline")


def _numbers(value: object) -> list[float]:
    if isinstance(value, bool) or value is None:
        return []
    if isinstance(value, (int, float)):
        return [float(value)]
    if isinstance(value, dict):
        return [x for v in value.values() for x in _numbers(v)]
    if isinstance(value, list):
        return [x for v in value for x in _numbers(v)]
    return []


def test_every_figure_in_the_headline_is_in_the_results() -> None:
    text = block((REPO_ROOT / "README.md").read_text())
    assert text is not None
    prose = re.sub(r"<!--.*?-->", "", text)
    held = _numbers(HEADLINE)
    found = [m.group(0) for m in re.finditer(r"(?<![A-Za-z])\d[\d,]*(?:\.\d+)?", prose)]
    assert len(found) > 30
    for figure in found:
        value = float(figure.replace(",", ""))
        decimals = len(figure.split(".")[1]) if "." in figure else 0
        ok = any(abs(value - x) <= 0.5 * 10 ** -decimals + 1e-9 for x in held)
        # 95 (%), 3 (seeds), 99 (p99), 8 (Llama-3-8B) and the like are conditions, not results
        assert ok or figure in {"95", "3", "99", "8"}, f"{figure} is in README's headline but not in results/headline.json"
