"""int8 weight-only quantization keeps the ranking: on the real backbone (all-MiniLM-L6-v2, the
shipped predictor's) with a seeded head, int8 and fp32 ONNX rank held-out prompts alike.

The shipped folder holds only the int8 file, so the pair is rebuilt here from the backbone's real
weights: what quantization does to them is what it did to the shipped model's."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from predictor.evaluate import kendall_tau
from predictor.export import export_onnx
from predictor.model import LengthPredictor
from predictor.paths import MODEL_DIR, default_backbone
from predictor.quantize import MIN_ELEMENTS, quantize_weights_int8
from runtime.length_predictor import TOKENIZER_FILE, OnnxPredictor, PredictorTokenizer, read_meta, resolve_version_dir

PROMPTS = 64
MAX_LENGTH = 64  # tokens per prompt: half the served 128, to keep the test to seconds


@pytest.fixture(scope="module")
def fp32_and_int8(tmp_path_factory):
    torch.manual_seed(0)
    model = LengthPredictor(default_backbone()).eval()
    folder = tmp_path_factory.mktemp("minilm")
    export_onnx(model, folder / "fp32.onnx")
    stats = quantize_weights_int8(folder / "fp32.onnx", folder / "int8.onnx", min_elements=MIN_ELEMENTS)
    assert stats["n_weights"] >= 6 * 6  # the attention and FFN matrices of all 6 layers
    return folder / "fp32.onnx", folder / "int8.onnx"


def scores(onnx_path, texts: list[str]) -> np.ndarray:
    version_dir = resolve_version_dir(MODEL_DIR)
    tokenizer = PredictorTokenizer(version_dir / TOKENIZER_FILE, MAX_LENGTH, read_meta(version_dir)["pad_id"])
    predictor = OnnxPredictor(onnx_path, intra_op_threads=2)
    return np.concatenate([predictor.score(*tokenizer.encode(texts[i : i + 32])) for i in range(0, len(texts), 32)])


def test_int8_ranks_held_out_prompts_as_fp32_does(fp32_and_int8, arena_sample):
    texts = [r.prompt for r in arena_sample[:PROMPTS]]
    fp32, int8 = (scores(path, texts) for path in fp32_and_int8)
    assert fp32.std() > 0  # the scores do spread: the ranking is not a tie
    tau = kendall_tau(fp32, int8)
    assert tau > 0.95, f"tau(int8, fp32) = {tau:.3f} on {PROMPTS} prompts"
