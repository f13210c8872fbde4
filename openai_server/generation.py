"""One request's answer as it streams from the ensemble: text pieces with the stop strings
applied, the finish reason, the token counts for `usage`, and the rule that a request left before
its end is ended in the scheduler, whatever the reason (client gone, stop string, error)."""

from __future__ import annotations

from dataclasses import dataclass

from openai_server.ensemble_client import Backend, EnsembleChunk, EnsembleError, EnsembleRequest
from openai_server.stop_strings import StopStringMatcher
from runtime.finish import finish_reason

# The ensemble's finish reasons in OpenAI's words; "cancelled" (someone stopped the request by its
# id) is vLLM's "abort".
FINISH_REASONS = {"stop": "stop", "length": "length", "cancelled": "abort"}

# The scheduler's expected answer length for the request (its predictor score through the version's
# calibration), sent as a response header and not in the body: every client ignores a header it does
# not know, while a field in `usage` (billing counts of what WAS generated) or beside it can break
# clients that validate the body strictly, and in a stream the header is there before the first token.
EXPECTED_TOKENS_HEADER = "x-ltr-expected-output-tokens"


def openai_finish_reason(reported: str | None, completion_tokens: int, max_tokens: int) -> str:
    """The ensemble's reason when it reports one; otherwise inferred: an answer shorter than its
    `max_tokens` ended by itself (end token or stop word), one that used them all was cut."""
    if reported:
        return FINISH_REASONS.get(reported, reported)
    return finish_reason(completion_tokens, max_tokens)  # the relay's rule (runtime.finish)


@dataclass(frozen=True)
class Piece:
    text: str
    finish_reason: str | None = None  # set on the last piece
    # (token text, log-prob) of the tokens that came with this piece, when the request asked for them
    log_probs: tuple[tuple[str, float], ...] = ()


def token_log_probs(chunk: EnsembleChunk) -> tuple[tuple[str, float], ...]:
    """One (text, log-prob) per token of an ensemble response. The ensemble returns text per response,
    not per token: a response of one token (the usual case) gives its text exactly; when several
    arrived together (the host fell behind), the first entry carries their text and the others ""."""
    texts = [chunk.text] + [""] * (len(chunk.log_probs) - 1)
    return tuple(zip(texts, chunk.log_probs))


class Generation:
    def __init__(self, backend: Backend, request: EnsembleRequest, prompt_tokens: int) -> None:
        self.backend = backend
        self.request = request
        self.prompt_tokens = prompt_tokens
        self.completion_tokens = 0
        self.finish_reason: str | None = None
        self.expected_output_tokens: int | None = None  # the scheduler's, from its first response that has one
        self._matcher = StopStringMatcher(request.stop_words)
        self._stream = backend.open(request)
        self._stream_done = False  # the ensemble request has ended by itself (final response or error)
        self._closed = False
        self._log_probs: tuple[tuple[str, float], ...] = ()  # of tokens whose text is held back

    async def next_piece(self) -> Piece | None:
        """The next text to send (the last one carries the finish reason); None after it.
        Raises EnsembleError for an error from the ensemble."""
        while self.finish_reason is None:
            try:
                chunk = await self._stream.__anext__()
            except StopAsyncIteration:  # the stream ended without a final response
                self._stream_done = True
                return self._finish("", None)
            except EnsembleError:
                self._stream_done = True
                raise
            self.completion_tokens += chunk.tokens
            if self.expected_output_tokens is None:
                self.expected_output_tokens = chunk.expected_tokens
            log_probs = self._log_probs + token_log_probs(chunk)
            self._log_probs = ()
            text = self._matcher.feed(chunk.text)
            if self._matcher.stopped:
                self._stream_done = chunk.final
                self.finish_reason = "stop"
                self.close()  # the engine may still be generating: end it
                return Piece(text, "stop", log_probs)
            if chunk.final:
                self._stream_done = True
                return self._finish(text + self._matcher.flush(), chunk.finish_reason, log_probs)
            if text:
                return Piece(text, log_probs=log_probs)
            self._log_probs = log_probs  # held back with the text (a stop string may be starting)
        return None

    def _finish(self, text: str, reported: str | None, log_probs: tuple[tuple[str, float], ...] = ()) -> Piece:
        self.finish_reason = openai_finish_reason(reported, self.completion_tokens, self.request.max_tokens)
        return Piece(text, self.finish_reason, log_probs)

    def close(self) -> None:
        """Call when done with the answer, however that came about: a request whose stream has
        not ended is ended in the scheduler (in the background). Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        if not self._stream_done:
            self.backend.end(self.request.request_id, self._stream)

    def headers(self) -> dict[str, str]:
        """The response's headers from the ensemble: the expected answer length when it is known."""
        known = self.expected_output_tokens is not None
        return {EXPECTED_TOKENS_HEADER: str(self.expected_output_tokens)} if known else {}

    @property
    def ended_early(self) -> bool:
        return self._closed and not self._stream_done
