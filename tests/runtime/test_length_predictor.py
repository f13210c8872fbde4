"""The committed serving artifact under the runtime the server uses: light import, tokenizer
contract, and scores that do not depend on padding or batch company."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from repo_paths import REPO_ROOT, SOURCE_REPOSITORY
from runtime.length_predictor import (
    OnnxPredictor,
    PredictorTokenizer,
    concat_padded,
    latest_version_dir,
    pad_batch,
    resolve_version_dir,
)

MODEL_DIR = SOURCE_REPOSITORY / "length_predictor"  # the committed serving artifact

PROMPTS = [
    "Hi",
    "Write a 2000-word essay on the history of the printing press, with sections and a bibliography.",
    "What is 2 + 2? Answer with one number.",
    "Translate 'good morning' into French, German and Spanish.",
    "word " * 400,  # longer than max_length: truncated
]


@pytest.fixture(scope="module")
def version_dir():
    d = latest_version_dir(MODEL_DIR)
    if not (d / "model.onnx").is_file():
        pytest.fail(f"no committed artifact in {d}: run make train")
    return d


def test_runtime_imports_without_torch_or_transformers():
    code = "import sys, runtime.length_predictor; bad = [m for m in ('torch', 'transformers') if m in sys.modules]; print(bad)"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_latest_version_dir(tmp_path):
    for name in ("1", "2", "10", "notes", "3x"):
        (tmp_path / name).mkdir()
    assert latest_version_dir(tmp_path).name == "10"
    (tmp_path / "10" / "model.onnx").write_bytes(b"")
    assert resolve_version_dir(tmp_path / "10" / "model.onnx") == tmp_path / "10"
    with pytest.raises(FileNotFoundError):
        latest_version_dir(tmp_path / "notes")


def test_artifact_meta_and_tokenizer_contract(version_dir):
    meta = json.loads((version_dir / "predictor.json").read_text())
    assert isinstance(meta["max_length"], int) and isinstance(meta["backbone"], str)
    tok = PredictorTokenizer.from_dir(version_dir)
    ids, mask = tok.encode(PROMPTS)
    assert ids.dtype == np.int64 and mask.dtype == np.int64 and ids.shape == mask.shape
    assert ids.shape == (len(PROMPTS), meta["max_length"])  # longest is truncated to max_length
    lengths = mask.sum(1)
    assert lengths[-1] == meta["max_length"] and lengths[0] < 10
    assert (ids[mask == 0] == tok.pad_id).all()
    assert [len(x) for x in tok.encode_ids(PROMPTS)] == lengths.tolist()


def test_artifact_scores_ignore_padding_and_batch(version_dir):
    tok = PredictorTokenizer.from_dir(version_dir)
    model = OnnxPredictor.from_dir(version_dir)
    seqs = tok.encode_ids(PROMPTS)
    alone = np.array([model.score(*pad_batch([s], tok.pad_id))[0] for s in seqs])
    batched = model.score(*tok.encode(PROMPTS))
    to_32 = np.array([model.score(*pad_batch([s], tok.pad_id, multiple_of=32))[0] for s in seqs])
    to_512_ids, to_512_mask = pad_batch(seqs, tok.pad_id, multiple_of=512)
    np.testing.assert_allclose(batched, alone, atol=1e-4)
    np.testing.assert_allclose(to_32, alone, atol=1e-4)
    np.testing.assert_allclose(model.score(to_512_ids, to_512_mask), alone, atol=1e-4)
    assert np.ptp(alone) > 1e-3  # different prompts get different scores


def test_concat_padded_merges_requests_of_different_widths():
    a = np.array([[5, 6, 0, 0]], np.int64)
    b = np.array([[7, 8, 9, 1, 2, 3], [4, 0, 0, 0, 0, 0]], np.int64)
    out = concat_padded([a, b], fill=0)
    assert out.shape == (3, 6) and out.dtype == np.int64
    assert out[0].tolist() == [5, 6, 0, 0, 0, 0] and out[1].tolist() == [7, 8, 9, 1, 2, 3]


def test_chance_scores_are_a_function_of_the_prompt_alone():
    from runtime.length_predictor import chance_scores

    ids = np.array([[5, 6, 7, 0], [9, 9, 0, 0]], np.int64)
    mask = np.array([[1, 1, 1, 0], [1, 1, 0, 0]], np.int64)
    scores = chance_scores(ids, mask)
    assert scores.shape == (2,) and scores.dtype == np.float32 and scores[0] != scores[1]
    # the same prompt padded otherwise, alone or in another batch, keeps its score
    again = chance_scores(np.array([[9, 9, 0, 0, 0, 0]]), np.array([[1, 1, 0, 0, 0, 0]]))
    assert again[0] == scores[1]
    many = chance_scores(np.arange(2000).reshape(1000, 2), np.ones((1000, 2)))
    assert abs(float(many.mean())) < 0.15 and 0.8 < float(many.std()) < 1.2  # standard normal
