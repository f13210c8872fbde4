"""Triton model `preprocessing`: read tensors, call runtime.preprocess, score the batch, answer each
request. The checks and their order live in runtime.preprocess.Preprocessor (Triton-free)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import triton_python_backend_utils as pb_utils

from runtime.contracts import Predictor, Preprocessing
from runtime.length_predictor import PredictorTokenizer, latest_version_dir, pad_batch
from runtime.llama3_tokenizer import load_tokenizer
from runtime.predictor_fallback import FallbackScorer
from runtime.preprocess import BadRequest, Limits, Prepared, Preprocessor
from runtime import internal_key
from runtime.triton_tensors import model_parameters


class TritonPythonModel:
    def initialize(self, args: dict) -> None:
        params = model_parameters(json.loads(args["model_config"]))
        self.internal_key = internal_key.load_key()  # sent with its BLS calls to length_predictor
        limits = Limits(
            int(params["max_input_len"]), int(params["max_output_len"]), max_prompt_bytes=int(params["max_prompt_bytes"]),
            max_words=int(params["max_words"]), max_word_bytes=int(params["max_word_bytes"]),
        )
        predictor_dir = Path(args["model_repository"]).parent / params["predictor_model"]
        self.predictor_tokenizer = PredictorTokenizer.from_dir(latest_version_dir(predictor_dir))
        self.preprocessor = Preprocessor(
            load_tokenizer(params["tokenizer_path"] or None), limits, params["add_bos"].lower() == "true",
            predictor_ids=lambda text: self.predictor_tokenizer.encode_ids([text])[0],
        )
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
        prepared: list[Prepared | pb_utils.TritonError] = []
        for request in requests:
            try:
                prepared.append(self.preprocessor.prepare(self._inputs(request)))
            except BadRequest as exc:
                prepared.append(pb_utils.TritonError(str(exc), pb_utils.TritonError.INVALID_ARG))  # HTTP 400
            except Exception as exc:  # a bug meets one request: fail it alone, keep the batch
                pb_utils.Logger.log_error(f"preprocessing failed: {exc!r}")
                prepared.append(pb_utils.TritonError(f"preprocessing failed: {exc}"))
        good = [item for item in prepared if isinstance(item, Prepared)]
        scores = iter(self._scores([item.predictor_ids for item in good]) if good else [])
        responses = []
        for item in prepared:
            if isinstance(item, Prepared):
                tensors = {**item.tensors, Preprocessing.SCORE: np.array([[next(scores)]], dtype=np.float32)}
                responses.append(pb_utils.InferenceResponse(
                    output_tensors=[pb_utils.Tensor(name, value) for name, value in tensors.items()]))
            else:
                responses.append(pb_utils.InferenceResponse(error=item))
        return responses

    @staticmethod
    def _inputs(request) -> dict[str, np.ndarray]:
        """The request's tensors by name; the ones the client left out are absent."""
        tensors = {name: pb_utils.get_input_tensor_by_name(request, name) for name in Preprocessing.INPUTS}
        return {name: tensor.as_numpy() for name, tensor in tensors.items() if tensor is not None}

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
            inputs=[pb_utils.Tensor(Predictor.INPUT_IDS, ids), pb_utils.Tensor(Predictor.ATTENTION_MASK, mask)],
            requested_output_names=[Predictor.SCORE],
            parameters=internal_key.bls_parameters(self.internal_key),
        )
        response = request.exec()
        if response.has_error():
            raise RuntimeError(response.error().message())
        return pb_utils.get_output_tensor_by_name(response, Predictor.SCORE).as_numpy()
