"""Turn the `tensorrt_llm` model's config parameters and input tensors into engine objects.

Kept out of `model.py` so that it is tested without Triton. `LTR_LLM_MODE` (timing | hf) in the
environment wins over the `mode` parameter, so a launcher can switch modes at deploy time.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Literal, Mapping

import numpy as np

from engine.batching import BatchingEngine, KvPolicy
from engine.cost_model import CostModel
from engine.hf_llama import HfLlamaConfig
from engine.lengths import UNKNOWN_CHOICES, LengthTable
from engine.request import EngineRequest
from engine.tokens import CyclicTokenSource, TokenSource, WordTokenSource
from repo_paths import REPO_ROOT
from runtime.triton_tensors import first_value
from runtime.word_lists import unpack_words

Mode = Literal["timing", "hf"]
TIMING_TOKENS = ("words", "multilingual")  # what `timing` mode emits (engine/README.md)
MODE_ENV = "LTR_LLM_MODE"


@dataclass(frozen=True)
class EngineSettings:
    """Engine-wide settings from config.pbtxt `parameters`."""

    mode: Mode = "timing"
    max_batch_slots: int = 64
    max_input_len: int = 4096
    max_output_len: int = 4096
    kv_budget_tokens: int = 0  # 0: from the cost model
    kv_policy: KvPolicy = "guaranteed_no_evict"
    exclude_input_in_output: bool = True
    cancellation_check_period_ms: float = 100.0
    cost_model: CostModel = CostModel()
    hf: HfLlamaConfig = HfLlamaConfig()  # `hf_<field>` parameters
    length_table: str = ""  # answer lengths by prompt (engine.lengths); "" = answers run to max_tokens
    unknown_prompt_lengths: str = "sample"  # sample | cap: prompts the table does not hold
    timing_tokens: str = "words"  # words | multilingual (multi-byte characters split across tokens)

    @classmethod
    def from_parameters(
        cls, params: Mapping[str, str], environ: Mapping[str, str] | None = None
    ) -> "EngineSettings":
        env = os.environ if environ is None else environ
        p = {k: str(v).strip() for k, v in params.items()}

        def num(key: str, default: float, kind: type = int) -> float:
            value = p.get(key, "")
            return kind(value) if value != "" else default

        mode = (env.get(MODE_ENV) or p.get("mode") or "timing").strip().lower()
        if mode not in ("timing", "hf"):
            raise ValueError(f"mode must be 'timing' or 'hf', got {mode!r}")
        policy = p.get("batch_scheduler_policy") or "guaranteed_no_evict"
        if policy not in ("guaranteed_no_evict", "max_utilization"):
            raise ValueError(f"unknown batch_scheduler_policy {policy!r}")
        overrides: dict[str, object] = {}
        if p.get("gpu"):
            overrides["gpu"] = p["gpu"]
        for key, field_name in (
            ("cost_bandwidth_efficiency", "bandwidth_efficiency"),
            ("cost_mfu", "mfu"),
            ("cost_step_overhead_s", "step_overhead_s"),
            ("kv_cache_free_gpu_mem_fraction", "kv_cache_mem_fraction"),
        ):
            if p.get(key):
                overrides[field_name] = float(p[key])
        return cls(
            mode=mode,  # type: ignore[arg-type]
            max_batch_slots=int(num("max_batch_slots", 64)),
            max_input_len=int(num("max_input_len", 4096)),
            max_output_len=int(num("max_output_len", 4096)),
            kv_budget_tokens=int(num("max_tokens_in_paged_kv_cache", 0)),
            kv_policy=policy,  # type: ignore[arg-type]
            exclude_input_in_output=p.get("exclude_input_in_output", "true").lower() in ("1", "true", "yes"),
            cancellation_check_period_ms=float(num("cancellation_check_period_ms", 100.0, float)),
            cost_model=CostModel().with_overrides(**overrides),
            hf=HfLlamaConfig(**{f.name: int(num(f"hf_{f.name}", f.default)) for f in fields(HfLlamaConfig)}),
            length_table=p.get("length_table", ""),
            unknown_prompt_lengths=_choice(p, "unknown_prompt_lengths", "sample", UNKNOWN_CHOICES),
            timing_tokens=_choice(p, "timing_tokens", "words", TIMING_TOKENS),
        )

    def load_lengths(self) -> tuple[LengthTable | None, str]:
        """The length table and a line saying where answers end (for the model's log and the banner).

        A configured table that does not exist is not an error: the stand-in then behaves as before
        natural lengths (every answer runs to its max_tokens), and the line says so and how to fix it.
        """
        if not self.length_table:
            return None, "answer lengths: none configured, every answer runs to its max_tokens"
        path = Path(self.length_table)
        path = path if path.is_absolute() else REPO_ROOT / path
        if not path.is_file():
            return None, (f"answer lengths: {path} is missing (`make lengths` prepares it from the data), "
                          "so every answer runs to its max_tokens")
        table = LengthTable.load(path, self.unknown_prompt_lengths)  # type: ignore[arg-type]
        return table, f"answer lengths: {table.describe()} ({path})"

    def token_source(self) -> TokenSource:
        if self.mode == "timing":
            return CyclicTokenSource() if self.timing_tokens == "multilingual" else WordTokenSource()
        from engine.hf_llama import HfLlamaTokenSource

        return HfLlamaTokenSource(self.hf)

    def build_engine(self) -> BatchingEngine:
        return BatchingEngine(
            cost_model=self.cost_model,
            max_batch_size=self.max_batch_slots,
            kv_budget_tokens=self.kv_budget_tokens or None,
            kv_policy=self.kv_policy,
            token_source=self.token_source(),
        )


def _choice(params: Mapping[str, str], key: str, default: str, choices: tuple[str, ...]) -> str:
    value = (params.get(key) or default).lower()
    if value not in choices:
        raise ValueError(f"{key} must be one of {', '.join(choices)}, got {value!r}")
    return value


def parse_word_list(arr: np.ndarray | None) -> tuple[tuple[int, ...], ...]:
    """The words of TensorRT-LLM's word-list format (runtime.word_lists), empty ones dropped: they
    never match."""
    return tuple(word for word in unpack_words(arr) if word)


def parse_request(
    request_id: str, tensors: Mapping[str, np.ndarray], settings: EngineSettings, default_seed: int = 0
) -> tuple[EngineRequest, bool, bool]:
    """Input tensors of one Triton request → (EngineRequest, streaming, exclude_input_in_output).

    Raises ValueError with a message for the client when the tensors are bad or break a limit of
    `settings`. What the request itself must satisfy (a prompt, at least one new token, room in the
    KV cache) is checked once, by `BatchingEngine.validate` when it is submitted.
    """
    ids = tensors.get("input_ids")
    if ids is None:
        raise ValueError("input_ids is required")
    ids = np.asarray(ids)
    if ids.ndim >= 2 and ids.shape[0] != 1:
        raise ValueError(f"the stand-in takes one sequence per request, got batch {ids.shape[0]}")
    ids = ids.reshape(-1)
    length = first_value(tensors.get("input_lengths"), float(ids.size))
    length = int(length) if length is not None else int(ids.size)
    if length > ids.size:
        raise ValueError(f"input_lengths {length} exceeds the {ids.size} ids given")
    if length > settings.max_input_len:
        raise ValueError(f"prompt of {length} tokens exceeds max_input_len {settings.max_input_len}")
    out_len = first_value(tensors.get("request_output_len"))
    if out_len is None:
        raise ValueError("request_output_len is required")
    out_len = int(out_len)
    if out_len > settings.max_output_len:
        raise ValueError(f"request_output_len {out_len} exceeds max_output_len {settings.max_output_len}")
    beam = first_value(tensors.get("beam_width"), 1)
    if beam is not None and int(beam) != 1:
        raise ValueError("the stand-in supports beam_width 1 only")
    end_id = first_value(tensors.get("end_id"))
    seed = first_value(tensors.get("seed"))
    if seed is None:
        seed = first_value(tensors.get("random_seed"), default_seed)
    # TensorRT-LLM's defaults and rule: top_k 0 and top_p 0.0 (neither sent) decode greedily (top-k 1),
    # whatever the temperature (runtime/engine_inputs.py fills top_p 1.0 when a client asks to sample).
    top_k = first_value(tensors.get("runtime_top_k"), 0) or 0
    top_p = first_value(tensors.get("runtime_top_p"), 0.0) or 0.0
    if top_k == 0 and top_p == 0.0:
        top_k = 1
    temperature = first_value(tensors.get("temperature"), 1.0)
    streaming = bool(first_value(tensors.get("streaming"), False))
    bias = tensors.get("embedding_bias")
    bias = np.asarray(bias, np.float32).reshape(-1) if bias is not None and np.asarray(bias).size else None
    req = EngineRequest(
        request_id=request_id,
        prompt_len=length,
        max_tokens=out_len,
        prompt_ids=[int(t) for t in ids[:length]],
        end_id=int(end_id) if end_id is not None else None,
        stop_words=parse_word_list(tensors.get("stop_words_list")),
        seed=int(seed) if seed is not None else default_seed,
        temperature=float(temperature) if temperature is not None else 1.0,
        top_k=int(top_k),
        top_p=float(top_p),
        # len_penalty is read by nothing: it shapes beam search only, and the stand-in serves beam 1
        min_tokens=int(first_value(tensors.get("min_tokens"), 0)),
        repetition_penalty=float(first_value(tensors.get("repetition_penalty"), 1.0)),
        presence_penalty=float(first_value(tensors.get("presence_penalty"), 0.0)),
        frequency_penalty=float(first_value(tensors.get("frequency_penalty"), 0.0)),
        embedding_bias=bias,
        return_log_probs=bool(first_value(tensors.get("return_log_probs"), False)),
    )
    excl = first_value(tensors.get("exclude_input_in_output"))
    return req, streaming, settings.exclude_input_in_output if excl is None else bool(excl)
