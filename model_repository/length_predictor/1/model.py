"""Triton python model for the length predictor: batch the requests, score them, answer each.

Thin on purpose: all model logic lives in runtime.length_predictor (shared with evaluation).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import triton_python_backend_utils as pb_utils

from runtime.contracts import Predictor
from runtime.length_predictor import OnnxPredictor, chance_scores, concat_padded
from runtime import internal_key
from runtime.triton_tensors import model_parameters


class TritonPythonModel:
    def initialize(self, args: dict) -> None:
        config = json.loads(args["model_config"])
        params = model_parameters(config)
        self.internal_key = internal_key.load_key()  # None: no deploy key, no check
        version_dir = Path(args["model_repository"]) / args["model_version"]
        self.predictor = OnnxPredictor.from_dir(version_dir, intra_op_threads=int(params.get("intra_op_threads", "1") or 1))
        meta = json.loads((version_dir / "predictor.json").read_text())
        self.pad_id = int(meta.get("pad_id", 0))
        # experiments only: "random" answers chance scores (runtime.length_predictor.chance_scores: a
        # predictor that ranks at chance, which the ranking guard must notice); "model" (default) runs it
        mode = params.get("score_mode", "model") or "model"
        if mode not in ("model", "random"):
            raise ValueError(f"length_predictor: score_mode must be model or random, got {mode!r}")
        self.at_chance = mode == "random"

    def execute(self, requests: list) -> list:
        allowed = [internal_key.carries_key(r.parameters(), self.internal_key) for r in requests]
        if not all(allowed):  # the refused ones alone fail; the others are scored
            refused = pb_utils.InferenceResponse(output_tensors=[], error=pb_utils.TritonError(
                internal_key.refusal("length_predictor")))
            served = iter(self.execute([r for r, ok in zip(requests, allowed) if ok]) if any(allowed) else [])
            return [next(served) if ok else refused for ok in allowed]
        ids, masks, rows = [], [], []
        for request in requests:
            i = pb_utils.get_input_tensor_by_name(request, Predictor.INPUT_IDS).as_numpy()
            m = pb_utils.get_input_tensor_by_name(request, Predictor.ATTENTION_MASK).as_numpy()
            ids.append(i.reshape(-1, i.shape[-1]))
            masks.append(m.reshape(-1, m.shape[-1]))
            rows.append(ids[-1].shape[0])
        try:
            batch, mask = concat_padded(ids, self.pad_id), concat_padded(masks, 0)
            scores = chance_scores(batch, mask) if self.at_chance else self.predictor.score(batch, mask)
        except Exception as exc:  # one bad batch answers every request with the error
            err = pb_utils.TritonError(f"length_predictor: {exc}")
            return [pb_utils.InferenceResponse(output_tensors=[], error=err) for _ in requests]
        responses, start = [], 0
        for n in rows:
            out = scores[start : start + n].reshape(n, 1).astype(np.float32)
            responses.append(pb_utils.InferenceResponse([pb_utils.Tensor(Predictor.SCORE, out)]))
            start += n
        return responses
