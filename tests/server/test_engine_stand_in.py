"""The `tensorrt_llm` stand-in alone on a real tritonserver: TensorRT-LLM's tensor interface,
streaming and non-streaming, per-request errors, pacing by the cost model, cancellation."""

from __future__ import annotations

import queue
import time
from pathlib import Path

import numpy as np
import pytest

from deploy.repository import render_repository
from deploy.triton import TritonServer
from repo_paths import SOURCE_REPOSITORY

grpcclient = pytest.importorskip("tritonclient.grpc")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    work = tmp_path_factory.mktemp("trtllm")
    src = work / "src"
    src.mkdir()
    (src / "tensorrt_llm").symlink_to(SOURCE_REPOSITORY / "tensorrt_llm")
    repo = render_repository(work / "repo", {"tensorrt_llm": {"mode": "timing", "max_input_len": "64",
                                                               "max_batch_slots": "2"}}, source=src)
    srv = TritonServer(repo, work, env={"LTR_LLM_MODE": "timing"}).start()
    yield srv
    srv.stop()


def inputs(ids: list[int], n: int, stream: bool = True) -> list:
    def t(name: str, arr: np.ndarray, dt: str):  # noqa: ANN202
        x = grpcclient.InferInput(name, list(arr.shape), dt)
        x.set_data_from_numpy(arr)
        return x

    return [
        t("input_ids", np.array([ids], np.int32), "INT32"),
        t("input_lengths", np.array([[len(ids)]], np.int32), "INT32"),
        t("request_output_len", np.array([[n]], np.int32), "INT32"),
        t("streaming", np.array([[stream]], bool), "BOOL"),
        t("end_id", np.array([[128009]], np.int32), "INT32"),
    ]


def run(server: TritonServer, jobs: dict[str, tuple[list[int], int, bool]], cancel_after: float | None = None):  # noqa: ANN201
    got: queue.Queue = queue.Queue()
    client = grpcclient.InferenceServerClient(server.grpc_url)
    client.start_stream(callback=lambda result, error: got.put((time.monotonic(), result, error)))
    t0 = time.monotonic()
    for rid, (ids, n, stream) in jobs.items():
        client.async_stream_infer("tensorrt_llm", inputs(ids, n, stream), request_id=rid,
                                  enable_empty_final_response=True)
    out: dict[str, list] = {rid: [] for rid in jobs}
    errors: list[str] = []
    finals = 0
    deadline = t0 + (cancel_after or 60)
    while finals + len(errors) < len(jobs) and time.monotonic() < deadline:
        try:
            at, result, error = got.get(timeout=0.2)
        except queue.Empty:
            continue
        if error is not None:
            errors.append(str(error))
            continue
        resp = result.get_response()
        ids = result.as_numpy("output_ids")
        if ids is not None:
            out[resp.id].append((at - t0, ids.shape, ids.reshape(-1).tolist(),
                                 result.as_numpy("sequence_length").reshape(-1).tolist()))
        finals += resp.parameters["triton_final_response"].bool_param
    client.stop_stream(cancel_requests=True)
    client.close()
    return out, errors


def test_streaming_and_non_streaming(server: TritonServer) -> None:
    out, errors = run(server, {"s": ([128000, 9906], 12, True), "n": ([128000, 9906, 1917], 5, False)})
    assert not errors
    assert len(out["s"]) == 12 and all(shape == (1, 1, 1) and sl == [1] for _, shape, _, sl in out["s"])
    assert len(out["n"]) == 1 and out["n"][0][1] == (1, 1, 5) and out["n"][0][3] == [5]
    assert 128009 not in [tok for _, _, ids, _ in out["s"] for tok in ids]
    # Paced by the cost model (about 12 ms per token for a small batch on the modelled A100), not
    # emitted at once. Wide bounds: client-side arrival times jitter on a loaded 2-core machine.
    elapsed = out["s"][-1][0] - out["s"][0][0]
    assert 11 * 0.006 < elapsed < 11 * 0.060


def test_bad_request_fails_alone(server: TritonServer) -> None:
    out, errors = run(server, {"bad": ([128000], 0, True), "long": (list(range(65)), 3, True),
                               "ok": ([128000], 3, True)})
    assert len(errors) == 2
    assert any("request_output_len" in e for e in errors) and any("max_input_len" in e for e in errors)
    assert len(out["ok"]) == 3


def test_cancellation_frees_slot(server: TritonServer) -> None:
    # Two slots: fill both with long requests, cancel them by closing the stream, then a new request
    # must get a slot at once.
    run(server, {"a": ([1], 4000, True), "b": ([1], 4000, True)}, cancel_after=0.5)
    time.sleep(1.0)
    t0 = time.monotonic()
    out, errors = run(server, {"c": ([1], 3, True)})
    assert not errors and len(out["c"]) == 3
    assert time.monotonic() - t0 < 5.0


def test_hf_mode_from_environment(tmp_path: Path) -> None:
    """LTR_LLM_MODE=hf wins over the config's `timing`: a real (tiny, random) Llama generates."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "tensorrt_llm").symlink_to(SOURCE_REPOSITORY / "tensorrt_llm")
    repo = render_repository(tmp_path / "repo", {"tensorrt_llm": {"mode": "timing"}}, source=src)
    srv = TritonServer(repo, tmp_path, env={"LTR_LLM_MODE": "hf"}).start()
    try:
        out, errors = run(srv, {"h": ([128000, 9906, 1917], 6, True)})
        log = srv.log_path.read_text(errors="replace")
    finally:
        srv.stop()
    assert not errors
    ids = [tok for _, _, chunk, _ in out["h"] for tok in chunk]
    assert 1 <= len(ids) <= 6 and all(0 <= t < 128256 for t in ids)
    assert "mode=hf" in log
