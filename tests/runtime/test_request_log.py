"""The request log: a row for each way a request ends, batching off the caller, rotation under a
disk cap, and an unwritable path that costs rows (counted), never a request."""

from __future__ import annotations

import asyncio
import json
import logging

import numpy as np

from runtime.relay import LLMJob, Relay
from runtime.request_log import (
    CENSORED,
    LogSettings,
    RequestLog,
    RequestRecord,
    read_rows,
    rotated_files,
)
from scheduler import AdmissionGate, RequestQueue, make_policy
from tests.runtime.test_relay import FakeLLM, FakeSink


def record(i: int = 0, reason: str = "stop", tokens: int = 5) -> RequestRecord:
    return RequestRecord(f"r{i}", reason, tokens, 64, score=1.5, predictor_version="1", prompt_ids=[7, 8, 9],
                         arrival_time=100.0, admission_time=101.0, first_token_time=101.5, end_time=103.0)


def fake_decode(ids) -> str:
    return " ".join(f"t{i}" for i in ids)


def test_rows_are_interchange_rows_with_the_operator_fields(tmp_path):
    rlog = RequestLog(LogSettings(str(tmp_path)), decode=fake_decode)
    rlog.append(record(1))
    rlog.close()
    (row,) = read_rows(tmp_path)
    assert row["prompt"] == "t7 t8 t9" and row["output_tokens"] == 5 and row["finish_reason"] == "stop"
    assert row["score"] == 1.5 and row["predictor_version"] == "1" and row["max_tokens"] == 64
    assert row["prompt_tokens"] == 3 and "prompt_ids" not in row
    assert (row["arrival_time"], row["admission_time"], row["first_token_time"], row["end_time"]) == (100, 101, 101.5, 103)
    assert rlog.stats.written == 1 and rlog.stats.write_failures == 0


def test_prompt_logging_off_writes_neither_text_nor_ids(tmp_path):
    rlog = RequestLog(LogSettings(str(tmp_path), prompts=False), decode=fake_decode)
    rlog.append(record(1))
    rlog.close()
    (row,) = read_rows(tmp_path)
    assert "prompt" not in row and "prompt_ids" not in row and "t7" not in json.dumps(row)


def test_settings_from_parameters():
    s = LogSettings.from_parameters({"request_log": " /x/y ", "request_log_prompts": "false",
                                     "request_log_max_file_mb": "2", "request_log_max_total_mb": "10"})
    assert s.path == "/x/y" and not s.prompts and s.max_file_bytes == 2 << 20 and s.max_total_bytes == 10 << 20
    assert LogSettings.from_parameters({}).path == ""


def test_settings_defaults_and_the_truthy_words_for_prompts():
    default = LogSettings()
    empty = LogSettings.from_parameters({})
    assert (empty.prompts, empty.max_file_bytes, empty.max_total_bytes) == (
        True, default.max_file_bytes, default.max_total_bytes)  # absent: the defaults, prompts logged
    blank = LogSettings.from_parameters({"request_log_max_file_mb": " ", "request_log_max_total_mb": ""})
    assert (blank.max_file_bytes, blank.max_total_bytes) == (default.max_file_bytes, default.max_total_bytes)
    for word in ("true", "1", "yes", "on", " ON "):
        assert LogSettings.from_parameters({"request_log_prompts": word}).prompts, word
    for word in ("false", "0", "no", "off", "", "y"):
        assert not LogSettings.from_parameters({"request_log_prompts": word}).prompts, word
    half = LogSettings.from_parameters({"request_log_max_file_mb": "0.5", "request_log_max_total_mb": " 1.5 "})
    assert (half.max_file_bytes, half.max_total_bytes) == (2**19, 3 * 2**19)


def test_rotation_keeps_the_log_under_its_disk_cap(tmp_path):
    rlog = RequestLog(LogSettings(str(tmp_path), max_file_bytes=2000, max_total_bytes=7000), decode=fake_decode)
    for i in range(200):
        rlog.append(record(i))
        if i % 10 == 9:
            rlog.flush()
    rlog.close()
    files = rotated_files(tmp_path / "requests.jsonl")
    assert len(files) >= 2 and all(f.name != "requests.jsonl.1" or f.stat().st_size >= 2000 for f in files)
    assert sum(f.stat().st_size for f in files) <= 7000 + 2000  # the cap, plus the file being written
    rows = read_rows(tmp_path)
    assert 10 < len(rows) < 200
    ids = [int(r["request_id"][1:]) for r in rows]
    assert ids == sorted(ids) and ids[-1] == 199 and ids[0] > 0  # oldest rows went, order kept


def test_unwritable_path_counts_lost_rows_and_says_so_once(tmp_path, caplog):
    blocker = tmp_path / "a-file"  # a file where the log's folder should be: unwritable, even for root
    blocker.write_text("")
    failures = []
    rlog = RequestLog(LogSettings(str(blocker / "log"), retry_s=0.0), decode=fake_decode,
                      on_failure=lambda: failures.append(1))
    with caplog.at_level(logging.ERROR, logger="runtime.request_log"):
        for i in range(5):
            rlog.append(record(i))
            rlog.flush()
        rlog.close()
    assert rlog.stats.write_failures == 5 and rlog.stats.written == 0 and len(failures) == 5
    assert len([r for r in caplog.records if "cannot write" in r.getMessage()]) == 1


def test_the_log_resumes_when_the_path_becomes_writable(tmp_path):
    blocker = tmp_path / "log"
    blocker.write_text("")
    rlog = RequestLog(LogSettings(str(blocker / "sub"), retry_s=0.0), decode=fake_decode)
    rlog.append(record(0))
    rlog.flush()
    blocker.unlink()
    rlog.append(record(1))
    rlog.close()
    assert rlog.stats.write_failures == 1 and [r["request_id"] for r in read_rows(blocker / "sub")] == ["r1"]


def test_full_queue_drops_and_counts_without_blocking(tmp_path):
    rlog = RequestLog(LogSettings(str(tmp_path), queue_rows=1), decode=lambda ids: __import__("time").sleep(0.2) or "")
    for i in range(20):
        rlog.append(record(i))
    rlog.close()
    assert rlog.stats.dropped > 0 and rlog.stats.written + rlog.stats.dropped == 20


def test_censored_reasons():
    assert CENSORED == {"length", "cancelled"}


# ---- the relay writes one row for each way a request ends ---------------------------------------
def served_rows(pairs, llm, max_inflight=1, max_size=None) -> dict[str, dict]:
    rows: list[RequestRecord] = []
    ticks = iter(range(1000))

    async def scenario():
        gate = AdmissionGate(RequestQueue(make_policy("ltr"), max_size=max_size), max_inflight)
        relay = Relay(gate, llm, cancel_poll_s=0.001, request_log=rows.append, wall_clock=lambda: float(next(ticks)))
        await asyncio.gather(*(relay.serve(job, sink) for job, sink in pairs))

    asyncio.run(scenario())
    return {r.request_id: r for r in rows}


def job(rid: str, max_tokens: int, score: float = 1.0) -> LLMJob:
    return LLMJob(rid, np.array([1, 2, 3], np.int32), max_tokens, score=score, streaming=True, client_id=rid,
               predictor_version="3")


def test_relay_logs_stop_and_length_with_times_in_order():
    rows = served_rows([(job("short", 10), FakeSink()), (job("capped", 4), FakeSink())], FakeLLM(answer_len=6))
    stop, capped = rows["short"], rows["capped"]
    assert (stop.finish_reason, stop.output_tokens, stop.max_tokens) == ("stop", 6, 10)
    assert (capped.finish_reason, capped.output_tokens) == ("length", 4)
    for r in rows.values():
        assert r.arrival_time < r.admission_time < r.first_token_time < r.end_time
        assert r.predictor_version == "3" and list(r.prompt_ids) == [1, 2, 3]


def test_relay_logs_cancelled_while_generating_and_while_waiting():
    rows = served_rows(
        [(job("gen", 50, score=0.0), FakeSink(cancel_after=3)), (job("wait", 50, score=9.0), FakeSink(cancel_after=0))],
        FakeLLM(),
    )
    assert rows["gen"].finish_reason == "cancelled" and rows["gen"].output_tokens >= 3
    assert rows["wait"].finish_reason == "cancelled" and rows["wait"].output_tokens == 0
    assert rows["wait"].admission_time is None and rows["wait"].first_token_time is None


def test_relay_logs_failed_and_rejected_requests():
    rows = served_rows([(job("boom", 10), FakeSink())], FakeLLM(fail=True))
    assert rows["boom"].finish_reason == "error" and rows["boom"].output_tokens == 2
    rows = served_rows([(job(f"q{i}", 5), FakeSink()) for i in range(4)], FakeLLM(), max_inflight=1, max_size=1)
    assert "rejected" in {r.finish_reason for r in rows.values()}


def test_a_failing_log_never_fails_the_request():
    def broken(_record):
        raise RuntimeError("disk on fire")

    sink = FakeSink()

    async def scenario():
        relay = Relay(AdmissionGate(RequestQueue(make_policy("ltr")), 1), FakeLLM(answer_len=3), request_log=broken)
        await relay.serve(job("x", 10), sink)

    asyncio.run(scenario())
    assert sink.finish == "stop" and not sink.errors


def test_relay_logs_the_callers_id_else_its_own_and_the_score_it_queued_by():
    named = LLMJob("internal-1", np.array([1, 2], np.int32), 5, score=2.5, streaming=True, client_id="caller-a")
    anonymous = LLMJob("internal-2", np.array([1], np.int32), 5, score=-0.75, streaming=False)
    rows = served_rows([(named, FakeSink()), (anonymous, FakeSink())], FakeLLM(answer_len=2), max_inflight=2)
    assert set(rows) == {"caller-a", "internal-2"}  # the id the caller knows; its own when it gave none
    assert rows["caller-a"].score == 2.5 and rows["internal-2"].score == -0.75
    assert rows["caller-a"].prompt_ids == [1, 2] and rows["internal-2"].predictor_version is None
    assert rows["caller-a"].row(None)["prompt_tokens"] == 2


def test_rotation_numbers_files_from_one_and_keeps_exactly_the_cap(tmp_path):
    """Every row its own write and rotation (max_file_bytes 1); the cap is exactly three rows'
    bytes, so three rotated files stay: a cap reached is a cap kept."""
    row_bytes = len((json.dumps(record(0).row(None), ensure_ascii=False) + "\n").encode())
    rlog = RequestLog(LogSettings(str(tmp_path), prompts=False, max_file_bytes=row_bytes,  # one row reaches it
                                  max_total_bytes=3 * row_bytes))
    for i in range(5):
        rlog.append(record(i))
        rlog.flush()
    rlog.close()
    assert rlog.stats.written == 5
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["requests.jsonl.1", "requests.jsonl.2", "requests.jsonl.3"]
    assert [row["request_id"] for row in read_rows(tmp_path)] == ["r2", "r3", "r4"]  # oldest first


def test_rotated_files_sort_by_number_not_by_name(tmp_path):
    current = tmp_path / "requests.jsonl"
    for suffix in ("1", "2", "10", "old"):
        (tmp_path / f"requests.jsonl.{suffix}").write_text("")
    current.write_text("")
    assert [p.name for p in rotated_files(current)] == [
        "requests.jsonl.10", "requests.jsonl.2", "requests.jsonl.1", "requests.jsonl"]


def test_a_garbled_line_is_skipped_and_the_rows_after_it_are_read(tmp_path):
    (tmp_path / "requests.jsonl").write_text('{"a": 1}\n{"torn\n{"a": 2}\n', encoding="utf-8")
    assert read_rows(tmp_path) == [{"a": 1}, {"a": 2}]


def test_a_jsonl_path_is_the_file_itself_written_as_utf8_by_a_named_daemon_thread(tmp_path):
    path = tmp_path / "mine.jsonl"
    rlog = RequestLog(LogSettings(str(path)), decode=lambda ids: "caf\u00e9")
    assert rlog._thread.name == "request-log" and rlog._thread.daemon  # never holds up a server's exit
    rlog.append(record(0))
    rlog.close()
    assert rlog.path == path and [p.name for p in tmp_path.iterdir()] == ["mine.jsonl"]
    assert '"prompt": "caf\u00e9"' in path.read_text(encoding="utf-8")  # the text itself, not \\u00e9
    assert rlog._file.closed  # close() closed the file


def test_after_a_failure_the_file_is_tried_again_only_after_retry_s(tmp_path):
    now = [0.0]
    blocker = tmp_path / "log"
    blocker.write_text("")  # a file where the log's folder should be
    rlog = RequestLog(LogSettings(str(blocker / "sub"), retry_s=30.0), clock=lambda: now[0])
    rlog.append(record(0))
    rlog.flush()  # failed at 0: the next try at 30
    blocker.unlink()  # writable again, but the retry waits
    now[0] = 29.0
    rlog.append(record(1))
    rlog.flush()  # not tried; a row lost while waiting moves the next try to 29 + 30
    assert (rlog.stats.written, rlog.stats.write_failures) == (0, 2)
    now[0] = 59.0  # reached: tried again
    rlog.append(record(2))
    rlog.close()
    assert (rlog.stats.written, rlog.stats.write_failures) == (1, 2)


def test_a_log_starting_at_clock_zero_writes_at_once(tmp_path):
    rlog = RequestLog(LogSettings(str(tmp_path)), clock=lambda: 0.0)
    rlog.append(record(0))
    rlog.close()
    assert rlog.stats.written == 1
