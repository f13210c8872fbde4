"""`hf` mode: a small `transformers` Llama with random weights really generating on the CPU.

What it stands in for: the real Llama-3-8B behind TensorRT-LLM. It shares Llama-3's vocabulary size
(128,256 ids, so any Llama-3 prompt ids are valid input and the output decodes with the Llama-3
tokenizer) and architecture family, but it is tiny (by default 2 layers, hidden 256) and its weights
are random (seeded), so its text is gibberish and its speed says nothing about a GPU. It exercises the
real data path: per-request KV caches, a context phase, then one decode step per engine iteration,
greedy or sampled (temperature / top-k / top-p), with TensorRT-LLM's other sampling inputs applied to
the logits (`process_logits`: embedding bias, repetition / presence / frequency penalties, min_tokens)
and each token's log-prob recorded when the request asks (`return_log_probs`). Unlike TensorRT-LLM it runs requests of a batch one
after another rather than in one fused kernel, and special ids above 128,000 are masked except `end_id`.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any, Sequence

from engine.request import EngineRequest

LLAMA3_VOCAB_SIZE = 128256
FIRST_SPECIAL_ID = 128000


@dataclass(frozen=True)
class HfLlamaConfig:
    """Sizes of the stand-in model (config.pbtxt `hf_*` parameters)."""

    hidden_size: int = 256
    num_layers: int = 2
    num_heads: int = 4
    num_kv_heads: int = 2
    intermediate_size: int = 512
    seed: int = 0
    threads: int = 1


def process_logits(torch: Any, logits: Any, req: EngineRequest) -> Any:
    """The logits a request's next token is drawn from, as TensorRT-LLM's sampling inputs change
    them: special ids masked but those that end an answer, `embedding_bias` added, the repetition
    penalty over prompt and answer tokens (a positive logit divided by it, a negative multiplied),
    presence and frequency penalties over the answer's tokens (OpenAI's definitions), and no
    `end_id` before `min_tokens` tokens."""
    logits = logits.float().clone()
    # Special ids stay out of answers, but those that end one: end_id and one-token stop words
    # (the scheduler sends Llama-3's other end token that way, runtime/engine_inputs.py).
    ends = {req.end_id, *(w[0] for w in req.stop_words if len(w) == 1)} - {None}
    keep = sorted(i for i in ends if FIRST_SPECIAL_ID <= i < logits.numel())
    kept = logits[keep].clone()
    logits[FIRST_SPECIAL_ID:] = float("-inf")
    logits[keep] = kept
    if req.embedding_bias is not None and len(req.embedding_bias) == logits.numel():
        logits += torch.as_tensor(req.embedding_bias, dtype=logits.dtype)
    answer = list(req.output_ids[: req.generated])
    if req.repetition_penalty != 1.0:
        seen = torch.tensor(sorted({*(req.prompt_ids or ()), *answer}), dtype=torch.long)
        if seen.numel():
            values = logits[seen]
            logits[seen] = torch.where(values > 0, values / req.repetition_penalty, values * req.repetition_penalty)
    if answer and (req.presence_penalty or req.frequency_penalty):
        ids, counts = torch.unique(torch.tensor(answer, dtype=torch.long), return_counts=True)
        logits[ids] -= req.presence_penalty + req.frequency_penalty * counts.to(logits.dtype)
    if req.end_id is not None and req.generated < req.min_tokens and 0 <= req.end_id < logits.numel():
        logits[req.end_id] = float("-inf")
    return logits


class HfLlamaTokenSource:
    """Token source backed by `transformers.LlamaForCausalLM` with one KV cache per request."""

    def __init__(self, cfg: HfLlamaConfig = HfLlamaConfig()) -> None:
        import torch
        from transformers import LlamaConfig, LlamaForCausalLM

        self._torch = torch
        torch.set_num_threads(max(1, cfg.threads))
        torch.manual_seed(cfg.seed)
        config = LlamaConfig(
            vocab_size=LLAMA3_VOCAB_SIZE,
            hidden_size=cfg.hidden_size,
            intermediate_size=cfg.intermediate_size,
            num_hidden_layers=cfg.num_layers,
            num_attention_heads=cfg.num_heads,
            num_key_value_heads=cfg.num_kv_heads,
            max_position_embeddings=8192,
            rope_theta=500000.0,
            tie_word_embeddings=True,
            bos_token_id=128000,
            eos_token_id=128009,
        )
        self.model = LlamaForCausalLM(config).eval()
        # transformers 5.x renamed `past_key_values` to `cache`; accept both.
        params = inspect.signature(self.model.forward).parameters
        self._cache_arg = "cache" if "cache" in params else "past_key_values"
        self._state: dict[int, tuple[Any, int, Any]] = {}  # id(req) -> (past, last token, generator)

    def _sample(self, logits: Any, req: EngineRequest, gen: Any) -> tuple[int, float]:
        """The next token and its log-prob under the distribution it was drawn from (after the
        penalties, bias and temperature; before top-k/top-p, which only cut that distribution)."""
        torch = self._torch
        logits = process_logits(torch, logits, req)
        if req.temperature <= 0.0 or req.top_k == 1:
            token = int(torch.argmax(logits))
            return token, float(torch.log_softmax(logits, dim=-1)[token])
        logits = logits / req.temperature
        log_prob = torch.log_softmax(logits, dim=-1)
        if req.top_k > 0:
            kth = torch.topk(logits, min(req.top_k, logits.numel())).values[-1]
            logits[logits < kth] = float("-inf")
        probs = torch.softmax(logits, dim=-1)
        if 0.0 < req.top_p < 1.0:
            sorted_p, order = torch.sort(probs, descending=True)
            cut = torch.cumsum(sorted_p, 0) - sorted_p > req.top_p
            sorted_p[cut] = 0.0
            probs = torch.zeros_like(probs).scatter(0, order, sorted_p)
        token = int(torch.multinomial(probs / probs.sum(), 1, generator=gen))
        return token, float(log_prob[token])

    def next_tokens(self, requests: Sequence[EngineRequest]) -> list[int]:
        torch = self._torch
        out: list[int] = []
        with torch.inference_mode():
            for req in requests:
                state = self._state.get(id(req))
                if state is None:  # context phase (also after a preemption: recompute)
                    ids = list(req.prompt_ids or [FIRST_SPECIAL_ID] * req.prompt_len)
                    ids += req.output_ids[: req.generated]
                    gen = torch.Generator().manual_seed(int(req.seed))
                    res = self.model(
                        torch.tensor([ids], dtype=torch.long), use_cache=True, logits_to_keep=1
                    )
                else:
                    past, last, gen = state
                    res = self.model(
                        torch.tensor([[last]], dtype=torch.long),
                        use_cache=True,
                        **{self._cache_arg: past},
                    )
                tok, log_prob = self._sample(res.logits[0, -1], req, gen)
                if req.return_log_probs:
                    req.log_probs.append(log_prob)
                self._state[id(req)] = (getattr(res, self._cache_arg), tok, gen)
                out.append(tok)
        return out

    def release(self, request: EngineRequest) -> None:
        self._state.pop(id(request), None)
