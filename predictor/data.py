"""Loaders for the public data sets, labelled with real Llama-3 token counts.

- AlpacaEval model outputs (`alpaca_eval/<generator>.json`): 805 instructions answered by 25
  Llama-3-family generators. Rows are joined by instruction text, not by position: one file
  (Llama3-PBM-Nova-70B) lists the same instructions in another order.
- Arena-Hard v0.1 (`arena_hard_v0.1/`): 500 different, harder prompts answered by
  llama-3-8b-instruct; the check on prompts unlike the training data. A second, independent
  llama-3-8b-instruct run (`llama-3-8b-instruct_sample2`) gives the one-sample noise ceiling and a
  denoised label (mean of the two runs).
- CASTILLO (`castillo/`): 4,112 other prompts with 10 sampled Llama-3.1-8B-Instruct lengths each
  (token counts given in the file); auxiliary training data only (`load_castillo`, opt-in).

`python -m predictor.data` writes them once in the interchange format (predictor.interchange).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from tqdm import tqdm

from predictor.interchange import Example, write_jsonl
from predictor.paths import PREDICTOR_BUILD_DIR, TARGET_GENERATOR
from repo_paths import default_data_dir

ARENA_TARGET = "llama-3-8b-instruct"
Counter = Callable[[str], int]


def llama3_counter(tokenizer_path: str | None = None) -> Counter:
    """Token counter of the real Llama-3 tokenizer (runtime.llama3_tokenizer), no special tokens."""
    from runtime.llama3_tokenizer import load_tokenizer

    tok = load_tokenizer(tokenizer_path)
    return lambda text: len(tok.encode(text or ""))


def alpaca_generators(data_dir: Path) -> list[str]:
    return sorted(p.stem for p in (data_dir / "alpaca_eval").glob("*.json"))


def load_alpaca_eval(
    data_dir: Path, count: Counter, generators: list[str] | None = None
) -> list[Example]:
    """Rows of the chosen generators (all by default), in the target file's instruction order."""
    folder = data_dir / "alpaca_eval"
    target_rows = json.loads((folder / f"{TARGET_GENERATOR}.json").read_text(encoding="utf-8"))
    order = [r["instruction"] for r in target_rows]
    out: list[Example] = []
    for gen in tqdm(generators or alpaca_generators(data_dir), desc="alpaca_eval", unit="gen"):
        rows = json.loads((folder / f"{gen}.json").read_text(encoding="utf-8"))
        by_instr = {r["instruction"]: r for r in rows}
        missing = [i for i in order if i not in by_instr]
        if missing:
            raise ValueError(f"{gen}: {len(missing)} of the target's instructions are missing")
        for instr in order:
            out.append(Example(instr, count(by_instr[instr]["output"]), gen, "alpaca_eval"))
    return out


def load_arena_hard(data_dir: Path, count: Counter, model: str = ARENA_TARGET) -> list[Example]:
    """Arena-Hard v0.1 questions joined by uid to one model's answers (messages[-1].content.answer)."""
    folder = data_dir / "arena_hard_v0.1"
    questions = [json.loads(l) for l in (folder / "v0.1_question.jsonl").open(encoding="utf-8") if l.strip()]
    answers: dict[str, str] = {}
    for line in (folder / f"v0.1_{model}.jsonl").open(encoding="utf-8"):
        if line.strip():
            row = json.loads(line)
            answers[row["uid"]] = row["messages"][-1]["content"]["answer"]
    return [
        Example(q["prompt"], count(answers[q["uid"]]), model, "arena_hard_v0.1")
        for q in tqdm(questions, desc="arena_hard", unit="prompt")
        if q["uid"] in answers
    ]


CASTILLO_FILE = Path("castillo") / "llama-3.1-8b-instruct_length_samples.jsonl"
CASTILLO_CHAT = ("Alpaca", "DollyDataset")  # chat-like; the other four sets are code
# name -> CASTILLO datasets (None: all six); the opt-in `--extra-lists` / pre-training choices
CASTILLO_SETS: dict[str, tuple[str, ...] | None] = {"castillo": None, "castillo-chat": CASTILLO_CHAT}


def load_castillo(data_dir: Path, datasets: Sequence[str] | None = None) -> list[Example]:
    """One row per recorded sample (10 per prompt), `source` = "castillo/<dataset>" so lists can be
    drawn within one data set; the token counts are the file's own (Llama-3.1 tokenizer)."""
    out: list[Example] = []
    for line in (data_dir / CASTILLO_FILE).open(encoding="utf-8"):
        if not line.strip():
            continue
        row = json.loads(line)
        if datasets is not None and row["dataset"] not in datasets:
            continue
        out += [Example(row["prompt"], int(n), row.get("generator"), f"castillo/{row['dataset']}")
                for n in row["output_tokens_samples"]]
    return out


def median_by_source(rows: Sequence[Example]) -> tuple[list[str], np.ndarray, list[str]]:
    """One (prompt, median length, source) per distinct (source, prompt): the median, not the
    mean, because a few CASTILLO samples ran to the 15,000-token cap."""
    groups: dict[tuple[str, str], list[int]] = {}
    for e in rows:
        groups.setdefault((e.source or "", e.prompt), []).append(e.output_tokens)
    keys = list(groups)
    return [p for _, p in keys], np.array([float(np.median(groups[k])) for k in keys]), [s for s, _ in keys]


def prepare(data_dir: Path, out_dir: Path, tokenizer_path: str | None = None) -> dict[str, Path]:
    """Write the three interchange files the other commands use; returns their paths."""
    count = llama3_counter(tokenizer_path)
    family = load_alpaca_eval(data_dir, count)
    paths = {
        "alpaca_family": out_dir / "alpaca_eval_family.jsonl",
        "alpaca_target": out_dir / "alpaca_eval_target.jsonl",
        "arena_target": out_dir / "arena_hard_target.jsonl",
    }
    write_jsonl(paths["alpaca_family"], family)
    write_jsonl(paths["alpaca_target"], [e for e in family if e.generator == TARGET_GENERATOR])
    write_jsonl(paths["arena_target"], load_arena_hard(data_dir, count))
    return paths


def ensure_prepared(data_dir: Path | None = None, out_dir: Path | None = None) -> dict[str, Path]:
    """The interchange files, written first if absent (labelling takes ~10 s)."""
    out_dir = out_dir or PREDICTOR_BUILD_DIR / "data"
    paths = {
        "alpaca_family": out_dir / "alpaca_eval_family.jsonl",
        "alpaca_target": out_dir / "alpaca_eval_target.jsonl",
        "arena_target": out_dir / "arena_hard_target.jsonl",
    }
    if all(p.exists() for p in paths.values()):
        return paths
    return prepare(data_dir or default_data_dir(), out_dir)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", type=Path, default=default_data_dir())
    ap.add_argument("--out", type=Path, default=PREDICTOR_BUILD_DIR / "data")
    ap.add_argument("--tokenizer", default=None, help="Llama-3 tokenizer file or HF dir (default: build/tokenizer)")
    args = ap.parse_args()
    for name, path in prepare(args.data_dir, args.out, args.tokenizer).items():
        print(f"{name}: {path}")


if __name__ == "__main__":
    main()
