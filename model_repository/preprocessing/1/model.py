"""Triton model `preprocessing`: parse tensors, call runtime.preprocess, answer each request."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import triton_python_backend_utils as pb_utils

from predictor.runtime import PredictorTokenizer, latest_version_dir, pad_batch
from runtime.llama3_tokenizer import load_tokenizer
from runtime.preprocess import (
    BadRequest,
    Limits,
    check_max_tokens,
    check_prompt_ids,
    decode_text,
    encode_prompt,
    word_list,
)
from runtime.triton_tensors import model_parameters, scalar


class TritonPythonModel:
    def initialize(self, args: dict) -> None:
        params = model_parameters(json.loads(args["model_config"]))
        self.tokenizer = load_tokenizer(params["tokenizer_path"] or None)
        self.add_bos = params["add_bos"].lower() == "true"
        self.limits = Limits(int(params["max_input_len"]), int(params["max_output_len"]))
        predictor_dir = Path(args["model_repository"]).parent / params["predictor_model"]
        self.predictor_tokenizer = PredictorTokenizer.from_dir(latest_version_dir(predictor_dir))
        self.pad_multiple = int(params["predictor_pad_multiple"])

    def execute(self, requests: list) -> list:
        responses = []
        for request in requests:
            try:
                responses.append(pb_utils.InferenceResponse(output_tensors=self._prepare(request)))
            except BadRequest as exc:
                responses.append(pb_utils.InferenceResponse(error=pb_utils.TritonError(str(exc))))
            except Exception as exc:  # a bug meets one request: fail it alone, keep the batch
                pb_utils.Logger.log_error(f"preprocessing failed: {exc!r}")
                responses.append(pb_utils.InferenceResponse(error=pb_utils.TritonError(f"preprocessing failed: {exc}")))
        return responses

    def _prepare(self, request) -> list:
        queries = pb_utils.get_input_tensor_by_name(request, "QUERY").as_numpy().reshape(-1)
        if queries.size != 1:
            raise BadRequest(f"send one prompt per request (got a batch of {queries.size})")
        text = decode_text(queries[0])
        max_tokens = check_max_tokens(int(scalar(request, "REQUEST_OUTPUT_LEN")), self.limits)
        prompt_ids = pb_utils.get_input_tensor_by_name(request, "PROMPT_TOKEN_IDS")
        if prompt_ids is None:
            input_ids = encode_prompt(self.tokenizer, text, self.limits, self.add_bos)
        else:
            input_ids = check_prompt_ids(prompt_ids.as_numpy(), self.tokenizer.vocab_size, self.limits)
        end_id = scalar(request, "END_ID", self.tokenizer.eot_id)
        pad_id = scalar(request, "PAD_ID", self.tokenizer.pad_id)
        bad = self._words(request, "BAD_WORDS_DICT")
        stop = self._words(request, "STOP_WORDS_DICT")
        # Padded (mask 0) to a multiple of `pad_multiple`: Triton's dynamic batcher batches only
        # equal shapes, so similar-length prompts can share one predictor run.
        pred_ids, pred_mask = pad_batch(
            self.predictor_tokenizer.encode_ids([text]), self.predictor_tokenizer.pad_id, self.pad_multiple
        )
        tensor = pb_utils.Tensor
        return [
            tensor("INPUT_ID", input_ids[None, :]),
            tensor("REQUEST_INPUT_LEN", np.array([[input_ids.size]], dtype=np.int32)),
            tensor("REQUEST_OUTPUT_LEN", np.array([[max_tokens]], dtype=np.int32)),
            tensor("BAD_WORDS_IDS", bad[None]),
            tensor("STOP_WORDS_IDS", stop[None]),
            tensor("OUT_END_ID", np.array([[end_id]], dtype=np.int32)),
            tensor("OUT_PAD_ID", np.array([[pad_id]], dtype=np.int32)),
            tensor("PREDICTOR_INPUT_IDS", pred_ids),
            tensor("PREDICTOR_ATTENTION_MASK", pred_mask),
        ]

    def _words(self, request, name: str) -> np.ndarray:
        tensor = pb_utils.get_input_tensor_by_name(request, name)
        words = [] if tensor is None else [w for w in tensor.as_numpy().reshape(-1) if len(w)]
        return word_list(self.tokenizer, words)
