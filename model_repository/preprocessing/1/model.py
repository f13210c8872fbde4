"""Triton model `preprocessing`: parse tensors, call runtime.preprocess, answer each request."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import triton_python_backend_utils as pb_utils

from runtime.length_predictor import PredictorTokenizer, latest_version_dir, pad_batch
from runtime.predictor_fallback import FallbackScorer
from runtime.llama3_tokenizer import load_tokenizer
from runtime.preprocess import (
    BadRequest,
    Limits,
    check_max_tokens,
    check_prompt_bytes,
    check_prompt_ids,
    check_token_id,
    check_words,
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
        self.limits = Limits(
            int(params["max_input_len"]), int(params["max_output_len"]), max_prompt_bytes=int(params["max_prompt_bytes"]),
            max_words=int(params["max_words"]), max_word_bytes=int(params["max_word_bytes"]),
        )
        predictor_dir = Path(args["model_repository"]).parent / params["predictor_model"]
        self.predictor_tokenizer = PredictorTokenizer.from_dir(latest_version_dir(predictor_dir))
        self.pad_multiple = int(params["predictor_pad_multiple"])
        self.predictor_model = params["predictor_model"]
        # BLS, not an ensemble step: a failed predictor must cost ranking, not requests
        self.scorer = FallbackScorer(
            self._predict, float(params["predictor_timeout_ms"]) / 1000, report=pb_utils.Logger.log_warn
        )
        self.fallback_family = pb_utils.MetricFamily(
            name="ltr_predictor_fallback_total",
            description="Requests queued without a predicted score (length predictor failed or timed out)",
            kind=pb_utils.MetricFamily.COUNTER,
        )
        self.fallback_metric = self.fallback_family.Metric(labels={"model": self.predictor_model})

    def finalize(self) -> None:
        """Metrics go while the stub can still tell Triton: left to interpreter teardown, their
        destructors message a parent that is gone, and the stub segfaults on its way out."""
        self.fallback_metric = self.fallback_family = None

    def execute(self, requests: list) -> list:
        prepared: list = []  # per request: (tensors, predictor ids) or an error
        for request in requests:
            try:
                prepared.append(self._prepare(request))
            except BadRequest as exc:
                prepared.append(pb_utils.TritonError(str(exc), pb_utils.TritonError.INVALID_ARG))  # HTTP 400
            except Exception as exc:  # a bug meets one request: fail it alone, keep the batch
                pb_utils.Logger.log_error(f"preprocessing failed: {exc!r}")
                prepared.append(pb_utils.TritonError(f"preprocessing failed: {exc}"))
        good = [item for item in prepared if isinstance(item, tuple)]
        scores = iter(self._scores([ids for _, ids in good]) if good else [])
        responses = []
        for item in prepared:
            if isinstance(item, tuple):
                score = np.array([[next(scores)]], dtype=np.float32)
                responses.append(pb_utils.InferenceResponse(output_tensors=item[0] + [pb_utils.Tensor("SCORE", score)]))
            else:
                responses.append(pb_utils.InferenceResponse(error=item))
        return responses

    def _scores(self, predictor_ids: list[list[int]]) -> np.ndarray:
        """One predictor call for the batch; NaN scores (the scheduler's fallback) if it fails."""
        before = self.scorer.fallbacks
        ids, mask = pad_batch(predictor_ids, self.predictor_tokenizer.pad_id, self.pad_multiple)
        scores = self.scorer.score(ids, mask)
        if self.scorer.fallbacks > before:
            self.fallback_metric.increment(self.scorer.fallbacks - before)
        return scores

    def _predict(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        request = pb_utils.InferenceRequest(
            model_name=self.predictor_model,
            inputs=[pb_utils.Tensor("input_ids", ids), pb_utils.Tensor("attention_mask", mask)],
            requested_output_names=["score"],
        )
        response = request.exec()
        if response.has_error():
            raise RuntimeError(response.error().message())
        return pb_utils.get_output_tensor_by_name(response, "score").as_numpy()

    def _prepare(self, request) -> tuple[list, list[int]]:
        """The request's tensors for the scheduler, and its predictor token ids (scored per batch)."""
        queries = pb_utils.get_input_tensor_by_name(request, "QUERY").as_numpy().reshape(-1)
        if queries.size != 1:
            raise BadRequest(f"send one prompt per request (got a batch of {queries.size})")
        check_prompt_bytes(queries[0], self.limits)  # before any work is spent on it
        text = decode_text(queries[0])
        max_tokens = check_max_tokens(int(scalar(request, "REQUEST_OUTPUT_LEN")), self.limits)
        prompt_ids = pb_utils.get_input_tensor_by_name(request, "PROMPT_TOKEN_IDS")
        if prompt_ids is None:
            input_ids = encode_prompt(self.tokenizer, text, self.limits, self.add_bos)
        else:
            input_ids = check_prompt_ids(prompt_ids.as_numpy(), self.tokenizer.vocab_size, self.limits)
        end_id = check_token_id(scalar(request, "END_ID", self.tokenizer.eot_id), self.tokenizer.vocab_size, "end_id")
        pad_id = check_token_id(scalar(request, "PAD_ID", self.tokenizer.pad_id), self.tokenizer.vocab_size, "pad_id")
        bad = self._words(request, "BAD_WORDS_DICT")
        stop = self._words(request, "STOP_WORDS_DICT")
        tensor = pb_utils.Tensor
        return [
            tensor("INPUT_ID", input_ids[None, :]),
            tensor("REQUEST_INPUT_LEN", np.array([[input_ids.size]], dtype=np.int32)),
            tensor("REQUEST_OUTPUT_LEN", np.array([[max_tokens]], dtype=np.int32)),
            tensor("BAD_WORDS_IDS", bad[None]),
            tensor("STOP_WORDS_IDS", stop[None]),
            tensor("OUT_END_ID", np.array([[end_id]], dtype=np.int32)),
            tensor("OUT_PAD_ID", np.array([[pad_id]], dtype=np.int32)),
        ], self.predictor_tokenizer.encode_ids([text])[0]

    def _words(self, request, name: str) -> np.ndarray:
        tensor = pb_utils.get_input_tensor_by_name(request, name)
        words = [] if tensor is None else [w for w in tensor.as_numpy().reshape(-1) if len(w)]
        check_words(words, self.limits, name.removesuffix("_DICT").lower())
        return word_list(self.tokenizer, words)
