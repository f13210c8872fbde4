"""The replicas benchmark reads locust's final stats right."""

from __future__ import annotations

import json

from benchmarks.replicas_local import e2e_counts, percentile


def test_percentile_of_a_rounded_histogram():
    histogram = [(100.0, 5), (200.0, 4), (900.0, 1)]
    assert percentile(histogram, 0.5) == 100.0
    assert percentile(histogram, 0.9) == 200.0
    assert percentile(histogram, 1.0) == 900.0


def test_e2e_counts_take_the_e2e_entry(tmp_path):
    stats = [
        {"method": "POST", "name": "generate_stream (headers)", "num_requests": 10, "num_failures": 0,
         "response_times": {"50": 10}},
        {"method": "HTTP-SSE", "name": "e2e", "num_requests": 10, "num_failures": 2,
         "response_times": {"1000": 6, "3000": 3, "9000": 1}},
    ]
    (tmp_path / "locust.json").write_text(json.dumps(stats))
    counts = e2e_counts(tmp_path / "locust")
    assert counts == {"finished": 10, "completed": 8, "failed": 2, "e2e_p50_s": 1.0, "e2e_p90_s": 3.0}
