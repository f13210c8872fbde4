"""Clock-agnostic core of an iteration-level (continuous / in-flight) batching engine.

One `step()` is one engine iteration: admit waiting requests into free batch slots (FCFS, like
TensorRT-LLM's own queue), run the context phase of newly admitted requests (which yields their first
token) and one decode token for every other running request, and return the emitted tokens with the
iteration's duration from the `CostModel`. The caller owns the clock: the Triton stand-in sleeps the
duration (`engine.realtime`), the simulator adds it to virtual time.

A request's answer ends with its `end_id` after `answer_len` tokens (the model's natural length,
`engine.lengths`) or at its `max_tokens` cap, whichever comes first.

KV-cache accounting, in tokens, follows TensorRT-LLM's two `batch_scheduler_policy` values:
* `guaranteed_no_evict`: admission reserves prompt + max_tokens, so nothing is ever evicted;
* `max_utilization`: admission needs only the current context; the cache grows one token per step and
  when it runs out, running requests are preempted (KV dropped, recomputed on resume), the victim chosen
  by `victim_key` (largest key first; default: the most recently admitted, as vLLM does).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any, Callable, Literal

from engine.cost_model import CostModel
from engine.request import EngineFinish, EngineRequest
from engine.tokens import ConstantTokenSource, EndAtAnswerLength, TokenSource

KvPolicy = Literal["guaranteed_no_evict", "max_utilization"]


@dataclass
class StepResult:
    """What one iteration did; `duration_s` is its modelled length."""

    duration_s: float
    emitted: list[tuple[EngineRequest, int]]
    finished: list[EngineRequest]
    admitted: list[EngineRequest]
    preempted: list[EngineRequest]
    prefill_tokens: int
    batch_size: int


class BatchingEngine:
    """Fixed batch slots, an FCFS waiting queue and a KV budget; advanced one iteration per `step()`."""

    def __init__(
        self,
        cost_model: CostModel | None = None,
        max_batch_size: int = 64,
        kv_budget_tokens: int | None = None,
        kv_policy: KvPolicy = "guaranteed_no_evict",
        token_source: TokenSource | None = None,
        victim_key: Callable[[EngineRequest], Any] | None = None,
        requeue_preempted: bool = True,
    ) -> None:
        if max_batch_size < 1:
            raise ValueError("max_batch_size must be >= 1")
        self.cost_model = cost_model or CostModel()
        self.max_batch_size = max_batch_size
        self.kv_budget = kv_budget_tokens if kv_budget_tokens else self.cost_model.kv_budget_tokens()
        self.kv_policy: KvPolicy = kv_policy
        self.tokens: TokenSource = EndAtAnswerLength(token_source or ConstantTokenSource())
        self.victim_key = victim_key or (lambda r: float(r.admit_seq))
        self.requeue_preempted = requeue_preempted
        self.waiting: deque[EngineRequest] = deque()
        self.running: list[EngineRequest] = []
        self.kv_used = 0
        self.peak_kv_used = 0  # the most KV tokens held or reserved at once (benchmarks report it)
        self._admit_counter = 0
        self._by_id: dict[str, EngineRequest] = {}
        self._pending_swap_tokens = 0  # swap-outs charged to the next iteration

    # ----------------------------------------------------------------- submission / cancellation
    def admission_need(self, req: EngineRequest) -> int:
        """KV tokens a request needs to be admitted under the engine's policy."""
        if self.kv_policy == "guaranteed_no_evict":
            return req.prompt_len + req.max_tokens
        return req.prompt_len + req.generated + 1

    def validate(self, req: EngineRequest) -> None:
        """Raise ValueError for a request this engine can never run, whatever else it holds.

        The one validation of a request: `submit` calls it, and `RealtimeEngine.submit` calls it on
        the caller's thread so that the client gets the error with its response.
        """
        if req.prompt_len <= 0:
            raise ValueError("empty prompt: input_ids/input_lengths must hold at least one token")
        if req.max_tokens <= 0:
            raise ValueError(f"request_output_len must be >= 1, got {req.max_tokens}")
        need = self.admission_need(req)
        if need > self.kv_budget:
            raise ValueError(f"request needs {need} KV tokens, more than the cache holds ({self.kv_budget})")

    def submit(self, req: EngineRequest) -> None:
        """Queue a request (FCFS). Raises ValueError for requests the engine can never run."""
        self.validate(req)
        if req.request_id in self._by_id:
            raise ValueError(f"duplicate request id {req.request_id!r}")
        req.finish_reason = None
        self.waiting.append(req)
        self._by_id[req.request_id] = req

    def cancel(self, request_id: str) -> EngineRequest | None:
        """Drop a waiting or running request and free its slot and KV; None if unknown."""
        req = self._detach(request_id)
        if req is not None:
            req.finish_reason = "cancelled"
        return req

    def preempt(self, request_id: str, swap: bool = False) -> EngineRequest | None:
        """Take a request out of the engine unfinished (`generated` kept) so that a scheduler in
        front can queue it again; None if unknown. Its KV is dropped (recomputed on resume) or, with
        `swap`, copied to host memory over PCIe (FastServe) and copied back on resume."""
        req = self._by_id.get(request_id)
        if swap and req is not None and req in self.running:
            req.swapped = True
            self._pending_swap_tokens += req.prompt_len + req.generated
        return self._detach(request_id)

    def _detach(self, request_id: str) -> EngineRequest | None:
        """Take a request out of the batch or the queue, free its KV and token-source state and
        forget its id; None if unknown."""
        req = self._by_id.pop(request_id, None)
        if req is None:
            return None
        if req in self.running:
            self.running.remove(req)
            self._free(req)
        else:
            self.waiting.remove(req)
        self.tokens.release(req)
        return req

    # ------------------------------------------------------------------------------ the iteration
    @property
    def idle(self) -> bool:
        return not self.running and not self.waiting

    def _free(self, req: EngineRequest) -> None:
        self.kv_used -= req.kv_tokens
        req.kv_tokens = 0

    def _admit(self) -> list[EngineRequest]:
        admitted: list[EngineRequest] = []
        while self.waiting and len(self.running) < self.max_batch_size:
            req = self.waiting[0]
            need = self.admission_need(req)
            if self.kv_used + need > self.kv_budget:
                break  # FCFS: the head of the queue blocks the rest, as in TensorRT-LLM
            self.waiting.popleft()
            req.kv_tokens = need if self.kv_policy == "guaranteed_no_evict" else need - 1
            self.kv_used += req.kv_tokens
            req.admit_seq = self._admit_counter
            self._admit_counter += 1
            self.running.append(req)
            admitted.append(req)
        return admitted

    def _preempt_for_growth(self) -> list[EngineRequest]:
        """max_utilization: make room for one more token per running request."""
        victims: list[EngineRequest] = []
        while self.running and self.kv_used + len(self.running) > self.kv_budget:
            victim = max(self.running, key=self.victim_key)
            self.running.remove(victim)
            self._free(victim)
            self.tokens.release(victim)
            victims.append(victim)
            if self.requeue_preempted:
                self.waiting.appendleft(victim)
            else:
                del self._by_id[victim.request_id]
        return victims

    def step(self) -> StepResult:
        """Run one iteration; an idle engine returns an empty result of zero duration."""
        admitted = self._admit()
        admitted_set = set(map(id, admitted))
        preempted = self._preempt_for_growth() if self.kv_policy == "max_utilization" else []
        running = self.running
        grow = self.kv_policy == "max_utilization"
        self.peak_kv_used = max(self.peak_kv_used, self.kv_used + (len(running) if grow else 0))
        if not running:
            return StepResult(0.0, [], [], admitted, preempted, 0, 0)

        prompts: list[int] = []
        context = 0
        decode = 0
        swap_tokens, self._pending_swap_tokens = self._pending_swap_tokens, 0
        for req in running:
            if id(req) in admitted_set and not req.swapped:
                prompts.append(req.prompt_len + req.generated)  # recompute after a preemption
            else:
                if req.swapped:
                    swap_tokens += req.prompt_len + req.generated
                    req.swapped = False
                decode += 1
                context += req.prompt_len + req.generated
        duration = self.cost_model.step_s(prompts, decode, context) + self.cost_model.swap_s(swap_tokens)

        new_tokens = self.tokens.next_tokens(running)
        emitted: list[tuple[EngineRequest, int]] = []
        finished: list[EngineRequest] = []
        still: list[EngineRequest] = []
        for req, tok in zip(running, new_tokens):
            req.generated += 1
            if grow:
                req.kv_tokens += 1
                self.kv_used += 1
            if req.keep_output_ids or req.stop_words:
                req.output_ids.append(tok)
            emitted.append((req, tok))
            reason = self._finish_reason(req, tok)
            if reason is None:
                still.append(req)
            else:
                req.finish_reason = reason
                self._free(req)
                self.tokens.release(req)
                del self._by_id[req.request_id]
                finished.append(req)
        self.running = still
        return StepResult(duration, emitted, finished, admitted, preempted, sum(prompts), len(running))

    @staticmethod
    def _finish_reason(req: EngineRequest, tok: int) -> EngineFinish | None:
        if req.end_id is not None and tok == req.end_id:
            return "end_id"
        for words in req.stop_words:
            n = len(words)
            if n and req.output_ids[-n:] == list(words):
                return "stop_words"
        if req.generated >= req.max_tokens:
            return "length"
        return None
