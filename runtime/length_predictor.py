"""Serving-side length predictor: tokenizer + ONNX model, with no torch or transformers import.

Used by the Triton python models (`preprocessing` for the predictor tokenizer, `length_predictor`
for the ONNX session) and by `predictor.evaluate`, so evaluation runs exactly the preprocessing the
server runs. Here in runtime/, not with the training code in predictor/, because everything that
ships into Triton lives under runtime/ (+ scheduler/). A version folder holds `model.onnx`, `tokenizer.json` and
`predictor.json` (max_length, pad id, training facts).
"""

from __future__ import annotations

import json
import zlib
from pathlib import Path

import numpy as np

ONNX_FILE = "model.onnx"
TOKENIZER_FILE = "tokenizer.json"
META_FILE = "predictor.json"


def latest_version_dir(model_dir: str | Path) -> Path:
    """The highest numeric version folder of a Triton model folder."""
    model_dir = Path(model_dir)
    versions = [p for p in model_dir.iterdir() if p.is_dir() and p.name.isdigit()]
    if not versions:
        raise FileNotFoundError(f"no numeric version folder in {model_dir}")
    return max(versions, key=lambda p: int(p.name))


def resolve_version_dir(path: str | Path) -> Path:
    """Accept a model.onnx file, a version folder, or a model folder (takes its latest version)."""
    path = Path(path)
    if path.is_file():
        return path.parent
    if (path / ONNX_FILE).is_file():
        return path
    return latest_version_dir(path)


def read_meta(version_dir: str | Path) -> dict:
    return json.loads((Path(version_dir) / META_FILE).read_text(encoding="utf-8"))


class PredictorTokenizer:
    """The backbone's tokenizer.json, truncating to max_length, padding to the longest in a list."""

    def __init__(self, tokenizer_json: str | Path, max_length: int, pad_id: int) -> None:
        from tokenizers import Tokenizer

        self.max_length = int(max_length)
        self.pad_id = int(pad_id)
        self._tok = Tokenizer.from_file(str(tokenizer_json))
        self._tok.no_padding()
        self._tok.enable_truncation(max_length=self.max_length)

    @classmethod
    def from_dir(cls, version_dir: str | Path) -> "PredictorTokenizer":
        version_dir = Path(version_dir)
        meta = read_meta(version_dir)
        return cls(version_dir / TOKENIZER_FILE, meta["max_length"], meta.get("pad_id", 0))

    def encode_ids(self, texts: list[str]) -> list[list[int]]:
        """Unpadded, truncated token ids (special tokens included) of each text."""
        return [e.ids for e in self._tok.encode_batch(list(texts))]

    def encode(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """int64 input_ids and attention_mask [len(texts), longest]."""
        return pad_batch(self.encode_ids(texts), self.pad_id)


def pad_batch(seqs: list[list[int]], pad_id: int, multiple_of: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Right-pad id lists to the longest (rounded up to `multiple_of`); mask 1 on real tokens."""
    longest = max((len(s) for s in seqs), default=1)
    longest = max(1, -(-longest // multiple_of) * multiple_of)
    ids = np.full((len(seqs), longest), pad_id, dtype=np.int64)
    mask = np.zeros((len(seqs), longest), dtype=np.int64)
    for i, s in enumerate(seqs):
        ids[i, : len(s)] = s
        mask[i, : len(s)] = 1
    return ids, mask


def concat_padded(arrays: list[np.ndarray], fill: int = 0) -> np.ndarray:
    """Stack [n_i, s_i] int arrays into [sum n_i, max s_i], right-padding with `fill` (the Triton
    model's way of merging requests padded to different widths)."""
    width = max(a.shape[1] for a in arrays)
    out = np.full((sum(a.shape[0] for a in arrays), width), fill, dtype=np.int64)
    row = 0
    for a in arrays:
        out[row : row + a.shape[0], : a.shape[1]] = a
        row += a.shape[0]
    return out


def session_options(intra_op_threads: int = 1):
    """ORT options the predictor needs: folding the int8 weights' DequantizeLinear into fp32
    constants at load time (weights ship as int8, compute stays fp32, so scores do not depend on
    padding or on the other prompts in a batch)."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = int(intra_op_threads)
    so.inter_op_num_threads = 1
    so.add_session_config_entry("session.disable_quant_qdq", "1")
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return so


class OnnxPredictor:
    """model.onnx under onnxruntime: (input_ids, attention_mask) -> score per row."""

    def __init__(self, onnx_path: str | Path, providers: list | None = None, intra_op_threads: int = 1) -> None:
        import onnxruntime as ort

        self.session = ort.InferenceSession(
            str(onnx_path),
            sess_options=session_options(intra_op_threads),
            providers=providers or ["CPUExecutionProvider"],
        )

    @classmethod
    def from_dir(cls, version_dir: str | Path, providers: list | None = None, intra_op_threads: int = 1) -> "OnnxPredictor":
        return cls(resolve_version_dir(version_dir) / ONNX_FILE, providers, intra_op_threads)

    def score(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        (out,) = self.session.run(
            ["score"],
            {
                "input_ids": np.ascontiguousarray(input_ids, dtype=np.int64),
                "attention_mask": np.ascontiguousarray(attention_mask, dtype=np.int64),
            },
        )
        return out.reshape(-1).astype(np.float32)


class LengthRanker:
    """Text in, scores out: what evaluation and benchmarks call (batching is the caller's)."""

    def __init__(self, version_dir: str | Path, providers: list | None = None, intra_op_threads: int = 1) -> None:
        self.version_dir = resolve_version_dir(version_dir)
        self.tokenizer = PredictorTokenizer.from_dir(self.version_dir)
        self.model = OnnxPredictor.from_dir(self.version_dir, providers, intra_op_threads)
        self.meta = read_meta(self.version_dir)

    def score_texts(self, texts: list[str], batch_size: int = 16) -> np.ndarray:
        out = []
        for i in range(0, len(texts), batch_size):
            out.append(self.model.score(*self.tokenizer.encode(texts[i : i + batch_size])))
        return np.concatenate(out) if out else np.zeros(0, np.float32)


def chance_scores(ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Experiments only (`score_mode: random`): a standard-normal score per row, drawn from a
    generator seeded by the row's own token ids, so that a predictor ranking at chance gives each
    prompt the same score every time, whatever the batching and the order of arrival."""
    rows = np.asarray(ids).reshape(len(ids), -1)
    keep = np.asarray(mask).reshape(rows.shape).astype(bool)
    return np.array([np.random.default_rng(zlib.crc32(row[k].astype(np.int64).tobytes())).standard_normal()
                     for row, k in zip(rows, keep)], dtype=np.float32)
