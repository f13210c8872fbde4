"""One streamed request through the ensemble (gRPC) and, when it answers, one through the OpenAI
front end; prints time to first token and tokens per second and writes them to a JSON file. The
request half of tools/gpu_smoke.sh; figures from one request on an idle server, a smoke test and not
a benchmark (make loadtest / bench-serve measure under load).

    python tools/gpu_smoke_requests.py --grpc-url 127.0.0.1:8001 --openai-url http://127.0.0.1:9000 \\
        --out results/gpu_smoke.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Callable, Iterable, Iterator

PROMPT = "Explain in three sentences what a KV cache is."


def summarize(sent: float, token_times: list[float], tokens: int) -> dict:
    """TTFT, end-to-end tokens/s (from sending), and decode tokens/s (after the first token)."""
    if not token_times or tokens <= 0:
        return {"tokens": 0, "ttft_s": None, "tokens_per_s": None, "decode_tokens_per_s": None}
    first, last = token_times[0], token_times[-1]
    decode = (tokens - 1) / (last - first) if tokens > 1 and last > first else None
    return {"tokens": tokens, "ttft_s": first - sent, "tokens_per_s": tokens / (last - sent) if last > sent else None,
            "decode_tokens_per_s": decode}


def ensemble_request(grpc_url: str, prompt: str, max_tokens: int) -> dict:
    import tritonclient.grpc as grpcclient

    from loadtest.grpc_stream import generate

    gen = generate(grpcclient.InferenceServerClient(grpc_url), prompt, max_tokens)
    if gen.error:
        return {"status": "error", "error": gen.error}
    times = [c.at for c in gen.chunks if c.tokens]
    return {"status": "ok", "text": gen.text, **summarize(gen.sent_at, times, gen.tokens)}


def sse_events(lines: Iterable[bytes]) -> Iterator[dict]:
    """The JSON payloads of an OpenAI stream's `data:` lines, up to `data: [DONE]`."""
    for raw in lines:
        line = raw.decode("utf-8").strip()
        if not line.startswith("data:"):
            continue
        payload = line[len("data:"):].strip()
        if payload == "[DONE]":
            return
        yield json.loads(payload)


def openai_models(base_url: str, timeout_s: float = 5.0) -> list[str] | None:
    """Model ids the front end serves, or None when nothing answers there."""
    try:
        with urllib.request.urlopen(f"{base_url}/v1/models", timeout=timeout_s) as response:
            return [m["id"] for m in json.load(response).get("data", [])]
    except (urllib.error.URLError, ConnectionError, TimeoutError, ValueError):
        return None


def openai_request(base_url: str, model: str, prompt: str, max_tokens: int, timeout_s: float = 600.0,
                   clock: Callable[[], float] = time.perf_counter) -> dict:
    """A streamed chat completion; tokens from the final usage chunk when the server sends one,
    else one per content chunk."""
    body = json.dumps({"model": model, "messages": [{"role": "user", "content": prompt}], "max_tokens": max_tokens,
                       "stream": True, "stream_options": {"include_usage": True}}).encode()
    request = urllib.request.Request(f"{base_url}/v1/chat/completions", data=body,
                                     headers={"Content-Type": "application/json"})
    sent, times, text, usage = clock(), [], [], None
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            for event in sse_events(response):
                for choice in event.get("choices") or []:
                    content = (choice.get("delta") or {}).get("content")
                    if content:
                        times.append(clock())
                        text.append(content)
                usage = event.get("usage") or usage
    except urllib.error.HTTPError as exc:
        return {"status": "error", "error": f"HTTP {exc.code}: {exc.read().decode(errors='replace')[:500]}"}
    tokens = int(usage["completion_tokens"]) if usage and usage.get("completion_tokens") else len(times)
    return {"status": "ok", "model": model, "text": "".join(text), **summarize(sent, times, tokens)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--grpc-url", default="127.0.0.1:8001")
    ap.add_argument("--openai-url", default="http://127.0.0.1:9000")
    ap.add_argument("--prompt", default=PROMPT)
    ap.add_argument("--max-tokens", type=int, default=128)
    ap.add_argument("--skip-ensemble", action="store_true", help="only the OpenAI front end (for tests)")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args(argv)
    report: dict = {"prompt": args.prompt, "max_tokens": args.max_tokens}
    if not args.skip_ensemble:
        report["ensemble"] = ensemble_request(args.grpc_url, args.prompt, args.max_tokens)
    models = openai_models(args.openai_url)
    report["openai"] = ({"status": "skipped", "reason": f"nothing answers at {args.openai_url}/v1/models"}
                        if not models else openai_request(args.openai_url, models[0], args.prompt, args.max_tokens))
    for name in ("ensemble", "openai"):
        result = report.get(name)
        if result is None:
            continue
        if result["status"] == "ok":
            print(f"{name:9s} TTFT {result['ttft_s']:.3f} s, {result['tokens']} tokens, "
                  f"{result['tokens_per_s'] or 0:.1f} tokens/s end to end, {result['decode_tokens_per_s'] or 0:.1f} after the first")
        else:
            print(f"{name:9s} {result['status']}: {result.get('error') or result.get('reason')}")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2) + "\n")
    failed = [n for n in ("ensemble", "openai") if report.get(n, {}).get("status") == "error"]
    return 1 if failed or report.get("ensemble", {}).get("tokens") == 0 else 0


if __name__ == "__main__":
    sys.exit(main())
