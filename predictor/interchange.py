"""The one plain data format every predictor command reads: JSONL, one request per line.

Required keys: `prompt` (str) and `output_tokens` (int, Llama-3 tokens of the response).
Optional: `generator` (which model wrote the response) and `source`. Logged production traffic
can be written the same way; repeated prompts are simply repeated rows.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterable


@dataclass(frozen=True)
class Example:
    prompt: str
    output_tokens: int
    generator: str | None = None
    source: str | None = None

    def to_json(self) -> str:
        row = {k: v for k, v in asdict(self).items() if v is not None}
        return json.dumps(row, ensure_ascii=False)


def write_jsonl(path: str | Path, examples: Iterable[Example]) -> int:
    """Write examples; returns the number of rows."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    n = 0
    with path.open("w", encoding="utf-8") as f:
        for ex in examples:
            f.write(ex.to_json() + "\n")
            n += 1
    return n


def read_jsonl(path: str | Path) -> list[Example]:
    """Read and validate rows; a bad row is an error naming its line, not a silent skip."""
    out: list[Example] = []
    with Path(path).open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            row = json.loads(line)
            prompt, tokens = row.get("prompt"), row.get("output_tokens")
            if not isinstance(prompt, str) or isinstance(tokens, bool) or not isinstance(tokens, int):
                raise ValueError(f"{path}:{lineno}: need prompt (str) and output_tokens (int)")
            if tokens < 0:
                raise ValueError(f"{path}:{lineno}: output_tokens must be >= 0")
            out.append(Example(prompt, tokens, row.get("generator"), row.get("source")))
    return out
