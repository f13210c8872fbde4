"""A new predictor version goes live on a running server while requests stream: none fails, the
request log and the metrics name the version that scored each request, and a rollback returns to
the old version. The repository API that loads versions answers only callers with the key."""

from __future__ import annotations

import shutil
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from deploy.repository import render_repository
from deploy.swap import ready_versions, swap
from deploy.triton import RepositoryAccess, TritonServer
from predictor.retrain import rollback
from runtime.request_log import read_rows
from tests.server.helpers import (
    TEST_OVERRIDES,
    http_generate_stream,
    metric_value,
    wait_for,
)

pytestmark = pytest.mark.server


def scratch_source(tmp: Path) -> Path:
    """A source repository of links to the checkout's, with a version 2 of the predictor (same
    weights, its own folder), so the test never touches model_repository/."""
    source = render_repository(tmp / "source")
    v1 = (source / "length_predictor" / "1").resolve()
    v2 = tmp / "v2"
    v2.mkdir()
    for f in v1.iterdir():
        if f.is_file():
            (v2 / f.name).symlink_to(f) if f.name == "model.onnx" else shutil.copy2(f, v2 / f.name)
    return source, v2


@pytest.fixture(scope="module")
def deployment(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("swap")
    source, v2 = scratch_source(tmp)
    overrides = {m: dict(p) for m, p in TEST_OVERRIDES.items()}
    overrides["ltr_scheduler"] = {"request_log": str(tmp / "log")}
    repo = render_repository(tmp / "served", overrides, source=source)
    access = RepositoryAccess.generate()
    server = TritonServer(repo, tmp, repository_access=access).start()
    yield server, access, source, v2, tmp / "log"
    server.stop()


def request(server, i: int) -> tuple[int, list[dict]]:
    return http_generate_stream(server, {"text_input": f"Question {i}: tell me about the number {i}.",
                                         "max_tokens": 8, "stream": True})


def test_repository_api_needs_the_key(deployment):
    server, access, *_ = deployment
    url = f"http://{server.http_url}/v2/repository/index"
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(urllib.request.Request(url, data=b"{}"), timeout=10)
    assert err.value.code == 403
    with urllib.request.urlopen(urllib.request.Request(url, data=b"{}", headers=access.headers()), timeout=10) as r:
        assert r.status == 200
    assert access.key not in server.log_path.read_text() and access.key not in repr(access)


def test_hot_swap_while_requests_stream_then_rollback(deployment):
    server, access, source, v2, log_dir = deployment
    time.sleep(1.5)  # the version watch's first look
    assert request(server, 0)[0] == 200  # the gauge is published with each request
    assert wait_for(lambda: metric_value(server, "ltr_scheduler_predictor_version") == 1.0, 10)
    results: list[tuple[int, list[dict]]] = []
    stop = threading.Event()

    def client(k: int) -> None:
        i = 0
        while not stop.is_set():
            results.append(request(server, 1000 * k + i))
            i += 1

    threads = [threading.Thread(target=client, args=(k,)) for k in range(3)]
    for t in threads:
        t.start()
    try:
        time.sleep(2)
        (source / "length_predictor" / "2").symlink_to(v2)
        t0 = time.time()
        outcome = swap(server.model_repository, server.http_url, access, source_repo=source)
        swapped_at = time.time()
        time.sleep(3)
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert outcome["before"] == ["1"] and outcome["after"] == ["2"] and not outcome["preprocessing_reloaded"]
    failed = [r for r in results if r[0] != 200 or not r[1] or r[1][-1].get("finish_reason") != "length"]
    assert len(results) > 20 and not failed, failed[:3]
    assert metric_value(server, "ltr_scheduler_predictor_version") == 2.0

    # the log names the version: 1 before the swap, 2 for requests that arrived a watch interval after it
    assert wait_for(lambda: len(read_rows(log_dir)) >= len(results), 10)
    rows = read_rows(log_dir)
    before = [r for r in rows if r["end_time"] < t0]
    after = [r for r in rows if r["arrival_time"] > swapped_at + 1.5]
    assert before and after
    assert {r["predictor_version"] for r in before} <= {"1", None} and {r["predictor_version"] for r in after} == {"2"}
    assert all(r["finish_reason"] == "length" and r["output_tokens"] == 8 and r["prompt"].startswith("Question")
               for r in rows)

    # rollback: version 2 retired in the source, the server goes back to 1
    assert rollback(source / "length_predictor", 1) == ["2"]
    outcome = swap(server.model_repository, server.http_url, access, source_repo=source)
    assert outcome["after"] == ["1"] and ready_versions(server.http_url, "length_predictor") == ["1"]
    assert request(server, 99)[0] == 200


def test_an_unwritable_request_log_fails_no_request_and_is_counted(tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    overrides = {m: dict(p) for m, p in TEST_OVERRIDES.items()}
    overrides["ltr_scheduler"] = {"request_log": str(blocker / "log")}
    server = TritonServer(render_repository(tmp_path / "repo", overrides), tmp_path).start()
    try:
        assert all(request(server, i)[0] == 200 for i in range(3))
        assert wait_for(lambda: metric_value(server, "ltr_scheduler_request_log_failures_total") >= 2, 10)
        assert server.log_tail(400).count("request log: cannot write") == 1
    finally:
        server.stop()
