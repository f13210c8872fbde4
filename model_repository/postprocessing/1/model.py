"""Triton model `postprocessing`: token ids (+ context) → text via runtime.detokenize; the engine's
other outputs (log-probs, logits, indices) pass through unchanged."""

from __future__ import annotations

import json

import numpy as np
import triton_python_backend_utils as pb_utils

from runtime.contracts import Postprocessing as P
from runtime.detokenize import response_text, special_token_filter
from runtime.llama3_tokenizer import load_tokenizer
from runtime.triton_tensors import model_parameters, scalar


class TritonPythonModel:
    def initialize(self, args: dict) -> None:
        params = model_parameters(json.loads(args["model_config"]))
        self.tokenizer = load_tokenizer(params["tokenizer_path"] or None)
        self.keep = special_token_filter(self.tokenizer.bos_id, params["skip_special_tokens"].lower() == "true")

    def execute(self, requests: list) -> list:
        responses = []
        for request in requests:
            tokens = pb_utils.get_input_tensor_by_name(request, P.TOKENS_BATCH).as_numpy()
            context = pb_utils.get_input_tensor_by_name(request, P.CONTEXT_IDS).as_numpy().reshape(-1)
            final = bool(scalar(request, P.IS_FINAL))
            finish = pb_utils.get_input_tensor_by_name(request, P.FINISH_REASON).as_numpy().reshape(-1)[:1]
            new_ids = tokens.reshape(-1)[: int(scalar(request, P.SEQUENCE_LENGTH))]
            text = response_text(self.tokenizer.decode_bytes, self.keep, context, new_ids, final)
            responses.append(
                pb_utils.InferenceResponse(
                    output_tensors=[
                        pb_utils.Tensor(P.OUTPUT, np.array([[text.encode("utf-8")]], dtype=np.object_)),
                        pb_utils.Tensor(P.OUTPUT_TOKEN_COUNT, np.array([[new_ids.size]], dtype=np.int32)),
                        pb_utils.Tensor(P.FINISH_REASON_OUT, finish.astype(np.object_).reshape(1, 1)),
                        *(pb_utils.Tensor(out, pb_utils.get_input_tensor_by_name(request, into).as_numpy())
                          for into, out in P.PASSED.items()),  # the engine's other outputs, unchanged
                    ]
                )
            )
        return responses
