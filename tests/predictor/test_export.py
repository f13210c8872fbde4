"""Export parity on tiny random BERT and MPNet backbones: ONNX (fp32 and int8 weight-only) against PyTorch,
the cached training path against the full forward, and padding invariance of the model."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from predictor.export import export_onnx, parity, random_inputs
from predictor.model import LengthPredictor
from predictor.quantize import dequantize_weights, quantize_weights_int8
from runtime.length_predictor import OnnxPredictor


@pytest.fixture(scope="module", params=["bert", "mpnet"])
def tiny_model(request, tmp_path_factory):
    from transformers import BertConfig, BertModel, MPNetConfig, MPNetModel

    torch.manual_seed(0)
    dims = dict(vocab_size=120, hidden_size=32, num_hidden_layers=3, num_attention_heads=2, intermediate_size=64,
                pad_token_id=0)
    if request.param == "bert":
        backbone = BertModel(BertConfig(max_position_embeddings=64, **dims))
    else:  # MPNet: relative position bias, positions counted from pad_token_id + 1
        backbone = MPNetModel(MPNetConfig(max_position_embeddings=66, **dims))
    path = tmp_path_factory.mktemp(f"tiny_{request.param}")
    backbone.save_pretrained(path)
    model = LengthPredictor(path).eval()
    with torch.no_grad():
        model.head.weight.normal_()
    return model


@pytest.fixture(scope="module")
def onnx_files(tiny_model, tmp_path_factory):
    d = tmp_path_factory.mktemp("onnx")
    export_onnx(tiny_model, d / "fp32.onnx")
    stats = quantize_weights_int8(d / "fp32.onnx", d / "int8.onnx", min_elements=256)
    assert stats["n_weights"] >= 3 * 4  # at least the attention/FFN matrices of every layer
    return d


def probes(seed: int = 7):
    rng = np.random.RandomState(seed)
    return [random_inputs(120, 0, rng, b, s) for b, s in [(1, 5), (4, 33), (7, 64)]]


def test_onnx_matches_torch_on_fresh_shapes(tiny_model, onnx_files):
    # exported with shape [2, 16]: other batch and sequence sizes must work (dynamic axes)
    assert parity(tiny_model, onnx_files / "fp32.onnx", probes()) < 1e-5


def test_int8_weights_stay_close_and_roundtrip(tiny_model, onnx_files):
    ref = [tiny_model(torch.from_numpy(i), torch.from_numpy(m))[:, 0].detach().numpy() for i, m in probes()]
    scale = max(float(np.abs(r).max()) for r in ref)
    assert parity(tiny_model, onnx_files / "int8.onnx", probes()) < 0.05 * scale
    assert dequantize_weights(onnx_files / "int8.onnx", onnx_files / "back.onnx") > 0
    a = OnnxPredictor(onnx_files / "int8.onnx")
    b = OnnxPredictor(onnx_files / "back.onnx")
    for ids, mask in probes(3):
        np.testing.assert_allclose(a.score(ids, mask), b.score(ids, mask), atol=1e-5)


def test_export_keeps_model_in_eval_mode(tiny_model, onnx_files):
    assert not tiny_model.training and not any(m.training for m in tiny_model.modules())


def test_cached_lower_layers_equal_full_forward(tiny_model):
    ids, mask = (torch.from_numpy(x) for x in probes()[1])
    with torch.no_grad():
        full = tiny_model(ids, mask)
        for n_lower in (0, 1, 3):
            h = tiny_model.embed_lower(ids, mask, n_lower)
            torch.testing.assert_close(tiny_model.forward_upper(h, mask, n_lower), full, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name", ["fp32.onnx", "int8.onnx"])
def test_padding_and_batch_do_not_change_scores(onnx_files, name):
    sess = OnnxPredictor(onnx_files / name)
    ids, mask = probes()[1]
    batch = sess.score(ids, mask)
    for r in range(ids.shape[0]):
        n = int(mask[r].sum())
        alone = sess.score(ids[r : r + 1, :n], mask[r : r + 1, :n])
        padded_ids = np.zeros((1, 64), np.int64)
        padded_ids[0, :n] = ids[r, :n]
        padded_mask = (np.arange(64) < n).astype(np.int64)[None]
        assert abs(alone[0] - batch[r]) < 1e-5
        assert abs(sess.score(padded_ids, padded_mask)[0] - alone[0]) < 1e-5
