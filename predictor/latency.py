"""CPU latency of the shipped predictor, per prompt, at batch 1 and batch 16.

Measures what the Triton model does per batch: tokenization (runtime.length_predictor) + onnxruntime
scoring, for short prompts (<= 128 predictor tokens, drawn from AlpacaEval) and long prompts
(512 tokens requested; the predictor truncates to its max_length, so they cost what max_length
costs). Reports p50/p99 of batch latency divided by batch size.

    python -m predictor.latency --model model_repository/length_predictor
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from predictor.paths import MODEL_DIR
from repo_paths import RESULTS_DIR
from runtime.length_predictor import LengthRanker


def long_prompt(ranker: LengthRanker, base: str, n_tokens: int) -> str:
    """A text of at least n_tokens predictor tokens (counted without truncation)."""
    from tokenizers import Tokenizer

    raw = Tokenizer.from_file(str(ranker.version_dir / "tokenizer.json"))
    raw.no_truncation()
    raw.no_padding()
    text = base
    while len(raw.encode(text).ids) < n_tokens:
        text += " " + base
    return text


def measure(ranker: LengthRanker, texts: list[str], batch: int, iters: int, rng: np.random.RandomState) -> dict:
    lat, seqs = [], []
    for _ in range(3):  # warm-up
        ranker.model.score(*ranker.tokenizer.encode(texts[:batch]))
    for _ in range(iters):
        chosen = [texts[i] for i in rng.randint(0, len(texts), batch)]
        t0 = time.perf_counter()
        ids, mask = ranker.tokenizer.encode(chosen)
        ranker.model.score(ids, mask)
        lat.append((time.perf_counter() - t0) / batch)
        seqs.append(ids.shape[1])
    lat_ms = np.array(lat) * 1000
    return {"batch": batch, "p50_ms_per_prompt": float(np.percentile(lat_ms, 50)),
            "p99_ms_per_prompt": float(np.percentile(lat_ms, 99)), "iters": iters, "mean_padded_seq": float(np.mean(seqs))}


def main() -> None:
    from predictor.data import ensure_prepared
    from predictor.interchange import read_jsonl

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, default=MODEL_DIR)
    ap.add_argument("--threads", type=int, default=1, help="onnxruntime intra-op threads (Triton default: 1)")
    ap.add_argument("--iters", type=int, default=200)
    ap.add_argument("--out", type=Path, default=RESULTS_DIR / "predictor_latency.json")
    args = ap.parse_args()
    ranker = LengthRanker(args.model, intra_op_threads=args.threads)
    prompts = [e.prompt for e in read_jsonl(ensure_prepared()["alpaca_target"])]
    short = [p for p, ids in zip(prompts, ranker.tokenizer.encode_ids(prompts)) if len(ids) < ranker.tokenizer.max_length and len(ids) <= 128]
    long = [long_prompt(ranker, p, 512) for p in prompts[:64]]
    rng = np.random.RandomState(0)
    results = {"model": str(args.model), "threads": args.threads, "max_length": ranker.tokenizer.max_length, "rows": []}
    for name, texts in [("<=128 tokens", short), ("512 tokens", long)]:
        for batch in (1, 16):
            iters = args.iters if batch == 1 else max(20, args.iters // 4)
            r = {"prompts": name, **measure(ranker, texts, batch, iters, rng)}
            results["rows"].append(r)
            print(f"{name:>13} batch {batch:2d} (mean padded seq {r['mean_padded_seq']:5.1f}): p50 {r['p50_ms_per_prompt']:.2f} ms/prompt, "
                  f"p99 {r['p99_ms_per_prompt']:.2f} ms/prompt", flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
