"""`make lengths`: the length tables the stand-in engine ends answers by (engine/lengths.py),
prepared once from the recorded answers in the data folder.

* `llama-3-8b-instruct` (the serving target): AlpacaEval's 805 prompts (one answer each) and
  Arena-Hard v0.1's 500 (two independent samples each), from the same pools the workloads use, so
  a served request and its simulated twin end after the same number of tokens;
* `llama-3.1-8b-instruct`: CASTILLO's 4,112 prompts, ten sampled lengths each (another model:
  a workload of new prompts and a model upgrade at once).

Keys are the prompts' Llama-3 token ids as preprocessing sends them, twice: raw (`text_input`
tokenized) and as one user turn of the Llama-3 instruct chat template (`prompt_token_ids`, how the
load tests send them and how the recorded answers were asked for), the second an alias of the first;
the files hold no text.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Callable, Iterable, Sequence

from engine.lengths import LengthTable, prompt_key
from predictor.data import CASTILLO_FILE
from repo_paths import BUILD_DIR, data_dir
from workloads.traces import PromptPool, load_alpaca, load_arena

LENGTHS_DIR = BUILD_DIR / "lengths"
TARGET_TABLE = "llama-3-8b-instruct"
CASTILLO_TABLE = "llama-3.1-8b-instruct"


Encode = Callable[[str], Sequence[int]]


def _encoders() -> tuple[Encode, Encode]:
    """Raw ids and single-turn chat-template ids of a prompt, with the Llama-3 tokenizer."""
    from runtime.chat_template import single_turn_ids
    from runtime.llama3_tokenizer import load_tokenizer

    tokenizer = load_tokenizer()
    return tokenizer.encode, lambda prompt: single_turn_ids(tokenizer, prompt)


def chat_aliases(prompts: Iterable[str], encode: Encode, template: Encode) -> dict[str, str]:
    """Each prompt's chat-templated key -> its raw key, so that either form finds its lengths."""
    return {prompt_key(template(p)): prompt_key(encode(p)) for p in prompts}


def pool_samples(pools: list[PromptPool], encode) -> dict[str, list[int]]:
    """Every pool's prompts by key with their recorded lengths (a prompt in two pools: both)."""
    samples: dict[str, list[int]] = {}
    for pool in pools:
        for i, prompt in enumerate(pool.prompts):
            samples.setdefault(prompt_key(encode(prompt)), []).extend(pool.samples(i))
    return samples


def castillo_samples(path: Path, encode) -> dict[str, list[int]]:
    samples: dict[str, list[int]] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            row = json.loads(line)
            samples.setdefault(prompt_key(encode(row["prompt"])), []).extend(int(n) for n in row["output_tokens_samples"])
    return samples


def castillo_prompts(path: Path) -> list[str]:
    return [json.loads(line)["prompt"] for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def build_tables(root: Path, out_dir: Path = LENGTHS_DIR) -> list[Path]:
    encode, template = _encoders()
    pools = [load_alpaca(root), load_arena(root)]
    tables = [LengthTable.from_samples(TARGET_TABLE, pool_samples(pools, encode),
                                       aliases=chat_aliases((p for pool in pools for p in pool.prompts), encode, template))]
    if (root / CASTILLO_FILE).is_file():
        path = root / CASTILLO_FILE
        tables.append(LengthTable.from_samples(CASTILLO_TABLE, castillo_samples(path, encode),
                                               aliases=chat_aliases(castillo_prompts(path), encode, template)))
    paths = []
    for table in tables:
        path = out_dir / f"{table.name}.json"
        table.save(path)
        paths.append(path)
        print(f"{path}: {table.describe()}")
    return paths


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", default=None, help="data folder (default: $LTR_DATA_DIR or ../shared/data)")
    ap.add_argument("--out", type=Path, default=LENGTHS_DIR)
    args = ap.parse_args(argv)
    build_tables(data_dir(args.data_dir), args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
