"""The OpenAI request and response objects this server speaks (chat completions, completions).

Requests are checked here, before anything reaches Triton. OpenAI fields whose meaning this server
cannot deliver (`tools`, `response_format` other than text, `n` > 1, `top_logprobs`, ...:
`NOT_IMPLEMENTED`) are refused with a 400 that names them, rather than answered as if they had been
honoured. Unknown fields are ignored, as vLLM does with fields it does not know: the request is
served and the ignored names are logged.
"""

from __future__ import annotations

import time
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from openai_server.chat_template import Message

MAX_STOP_STRINGS = 4  # OpenAI's limit


class InvalidRequest(ValueError):
    """A request this server will not serve; the message is returned to the client (400)."""


class StreamOptions(BaseModel):
    include_usage: bool = False


def _off(value: Any) -> bool:
    """A field sent with its do-nothing value (null, false, empty, "none") asks for nothing."""
    return value in (None, False, "none", "auto", 0) or value == [] or value == {} or value == ""


def _text_format(value: Any) -> bool:
    return value is None or (isinstance(value, dict) and value.get("type") == "text")


# Known OpenAI fields this server cannot honour -> (is it asking for nothing?, why it is refused).
NOT_IMPLEMENTED: dict[str, tuple[Any, str]] = {
    "tools": (_off, "tool calling is not implemented"),
    "tool_choice": (_off, "tool calling is not implemented"),
    "functions": (_off, "function calling is not implemented"),
    "function_call": (_off, "function calling is not implemented"),
    "response_format": (_text_format, "only text responses are implemented (no JSON mode or schemas)"),
    "logit_bias": (_off, "logit_bias is not implemented (the ensemble's embedding bias takes words, not ids)"),
    "top_logprobs": (_off, "only the chosen token's log-prob is available (TensorRT-LLM returns no alternatives)"),
    "best_of": (lambda v: v in (None, 1), "best_of > 1 is not implemented (one sequence per request)"),
    "echo": (_off, "echo is not implemented"),
    "suffix": (_off, "suffix (insertion) is not implemented"),
    "audio": (_off, "audio output is not implemented"),
    "modalities": (lambda v: v in (None, ["text"]), "only the text modality is implemented"),
    "prediction": (_off, "predicted outputs are not implemented"),
    "web_search_options": (_off, "web search is not implemented"),
}


class _Sampling(BaseModel):
    """Fields both endpoints share."""

    model_config = ConfigDict(extra="allow")

    model: str
    max_tokens: int | None = Field(None, ge=1, lt=2**31)  # an int32 on the wire: no silent wrap-around
    temperature: float | None = Field(None, ge=0.0, le=2.0)
    top_p: float | None = Field(None, gt=0.0, le=1.0)
    seed: int | None = Field(None, ge=0, lt=2**64)
    stop: str | list[str] | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    n: int | None = 1
    user: str | None = None
    frequency_penalty: float | None = Field(None, ge=-2.0, le=2.0)
    presence_penalty: float | None = Field(None, ge=-2.0, le=2.0)
    repetition_penalty: float | None = Field(None, gt=0.0)  # vLLM's extension, as TensorRT-LLM's input
    min_tokens: int | None = Field(None, ge=0, lt=2**31)  # vLLM's extension

    @field_validator("n")
    @classmethod
    def _one_choice(cls, n: int | None) -> int:
        if n not in (None, 1):
            raise ValueError(f"only n=1 is supported, got n={n}")
        return 1

    @field_validator("stop")
    @classmethod
    def _stop_list(cls, stop: str | list[str] | None) -> list[str]:
        words = [] if stop is None else [stop] if isinstance(stop, str) else list(stop)
        if len(words) > MAX_STOP_STRINGS:
            raise ValueError(f"at most {MAX_STOP_STRINGS} stop strings, got {len(words)}")
        return [w for w in words if w]

    @model_validator(mode="after")
    def _nothing_unimplemented(self) -> "_Sampling":
        refused = [f"{name}: {why}" for name, (off, why) in NOT_IMPLEMENTED.items()
                   if name in (self.model_extra or {}) and not off(self.model_extra[name])]
        if refused:
            raise ValueError("not supported by this server: " + "; ".join(refused))
        return self

    @model_validator(mode="after")
    def _stream_options_need_stream(self) -> "_Sampling":
        if self.stream_options is not None and not self.stream:
            raise ValueError("stream_options can only be set when stream is true")
        return self

    @property
    def stop_strings(self) -> list[str]:
        return list(self.stop or [])

    @property
    def include_usage_chunk(self) -> bool:
        return bool(self.stream and self.stream_options and self.stream_options.include_usage)

    @property
    def ignored_fields(self) -> list[str]:
        return sorted(set(self.model_extra or {}) - set(NOT_IMPLEMENTED))

    @property
    def wants_log_probs(self) -> bool:
        return False


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")  # `name` and the like are ignored

    role: str
    content: str | list[dict[str, Any]] | None = None

    def to_message(self) -> Message:
        role = "system" if self.role == "developer" else self.role  # OpenAI's newer name for it
        if role not in ("system", "user", "assistant"):
            raise InvalidRequest(f"unsupported message role {self.role!r}: use system, user or assistant")
        return Message(role, _text_of(self.content))


def _text_of(content: str | list[dict[str, Any]] | None) -> str:
    if content is None or isinstance(content, str):
        return content or ""
    texts = []
    for part in content:
        if part.get("type") != "text" or not isinstance(part.get("text"), str):
            raise InvalidRequest(f"unsupported content part {part.get('type')!r}: only text parts are supported")
        texts.append(part["text"])
    return "\n".join(texts)


class ChatCompletionRequest(_Sampling):
    messages: list[ChatMessage] = Field(min_length=1)
    max_completion_tokens: int | None = Field(None, ge=1, lt=2**31)
    logprobs: bool | None = None

    @property
    def wants_log_probs(self) -> bool:
        return bool(self.logprobs)

    def chat_messages(self) -> list[Message]:
        return [m.to_message() for m in self.messages]

    def requested_max_tokens(self, default: int) -> int:
        """`max_completion_tokens` (OpenAI's current name) wins over the older `max_tokens`."""
        return self.max_completion_tokens or self.max_tokens or default


class CompletionRequest(_Sampling):
    prompt: str | list[str] | list[int] | list[list[int]]
    logprobs: int | None = Field(None, ge=0, le=0)  # 0: the chosen tokens' log-probs; no alternatives

    @field_validator("logprobs", mode="before")
    @classmethod
    def _chosen_only(cls, value: Any) -> Any:
        if isinstance(value, int) and value > 0:
            raise ValueError(f"logprobs {value} is not supported: only the chosen token's log-prob is available "
                             "(TensorRT-LLM returns no alternatives); send 0")
        return value

    @property
    def wants_log_probs(self) -> bool:
        return self.logprobs is not None

    def single_prompt(self) -> str | list[int]:
        """The one prompt (text or token ids); several prompts in one request are refused like n>1."""
        prompt = self.prompt
        if isinstance(prompt, list) and prompt and isinstance(prompt[0], (str, list)):
            if len(prompt) != 1:
                raise InvalidRequest(f"send one prompt per request, got {len(prompt)}")
            prompt = prompt[0]
        if (isinstance(prompt, str) and not prompt.strip()) or (isinstance(prompt, list) and not prompt):
            raise InvalidRequest("prompt is empty")
        return prompt

    def requested_max_tokens(self, default: int) -> int:
        return self.max_tokens or default


def parse_request(model: type[_Sampling], payload: Any) -> Any:
    """Validate a decoded JSON body; every problem becomes one InvalidRequest message."""
    if not isinstance(payload, dict):
        raise InvalidRequest("the request body must be a JSON object")
    try:
        return model.model_validate(payload)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            where = ".".join(str(p) for p in err["loc"])
            problems.append(f"{where}: {err['msg']}" if where else err["msg"])
        raise InvalidRequest("; ".join(problems)) from None


# --- responses ------------------------------------------------------------------------------------


def usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    return {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens}


class ResponseIds:
    """What every object of one response shares: its id, creation time and model name."""

    def __init__(self, prefix: str, request_id: str, model: str) -> None:
        self.id = f"{prefix}-{request_id}"
        self.created = int(time.time())
        self.model = model


TokenLogProbs = list[tuple[str, float]]  # (token text, log-prob) per generated token


def chat_logprobs(tokens: TokenLogProbs | None) -> dict[str, Any] | None:
    """OpenAI's chat `logprobs` object (None when not asked for): the chosen tokens only."""
    if tokens is None:
        return None
    return {"content": [{"token": text, "logprob": lp, "bytes": list(text.encode("utf-8")), "top_logprobs": []}
                        for text, lp in tokens], "refusal": None}


def completion_logprobs(tokens: TokenLogProbs | None, offset: int = 0) -> dict[str, Any] | None:
    """The completions API's `logprobs` object (None when not asked for); `offset`: where the text starts."""
    if tokens is None:
        return None
    offsets = []
    for text, _ in tokens:
        offsets.append(offset)
        offset += len(text)
    return {"tokens": [t for t, _ in tokens], "token_logprobs": [lp for _, lp in tokens],
            "top_logprobs": [{t: lp} for t, lp in tokens], "text_offset": offsets}


def chat_completion(ids: ResponseIds, text: str, finish: str, use: dict[str, int],
                    logprobs: TokenLogProbs | None = None) -> dict[str, Any]:
    return {
        "id": ids.id, "object": "chat.completion", "created": ids.created, "model": ids.model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "logprobs": chat_logprobs(logprobs),
                     "finish_reason": finish}],
        "usage": use,
    }


def chat_chunk(ids: ResponseIds, delta: dict[str, Any], finish: str | None = None,
               use: dict[str, int] | None = None, with_usage_field: bool = False,
               logprobs: TokenLogProbs | None = None) -> dict[str, Any]:
    chunk: dict[str, Any] = {
        "id": ids.id, "object": "chat.completion.chunk", "created": ids.created, "model": ids.model,
        "choices": [{"index": 0, "delta": delta, "logprobs": chat_logprobs(logprobs), "finish_reason": finish}],
    }
    if with_usage_field:
        chunk["usage"] = use
    return chunk


def usage_chunk(ids: ResponseIds, obj: str, use: dict[str, int]) -> dict[str, Any]:
    """The last chunk when `stream_options.include_usage`: no choices, the whole request's usage."""
    return {"id": ids.id, "object": obj, "created": ids.created, "model": ids.model, "choices": [], "usage": use}


def completion(ids: ResponseIds, text: str, finish: str, use: dict[str, int],
               logprobs: TokenLogProbs | None = None) -> dict[str, Any]:
    return {
        "id": ids.id, "object": "text_completion", "created": ids.created, "model": ids.model,
        "choices": [{"index": 0, "text": text, "logprobs": completion_logprobs(logprobs), "finish_reason": finish}],
        "usage": use,
    }


def completion_chunk(ids: ResponseIds, text: str, finish: str | None = None,
                     use: dict[str, int] | None = None, with_usage_field: bool = False,
                     logprobs: TokenLogProbs | None = None, offset: int = 0) -> dict[str, Any]:
    chunk: dict[str, Any] = {
        "id": ids.id, "object": "text_completion", "created": ids.created, "model": ids.model,
        "choices": [{"index": 0, "text": text, "logprobs": completion_logprobs(logprobs, offset),
                     "finish_reason": finish}],
    }
    if with_usage_field:
        chunk["usage"] = use
    return chunk


def model_list(name: str, created: int) -> dict[str, Any]:
    return {"object": "list", "data": [{"id": name, "object": "model", "created": created, "owned_by": "ltr-serving"}]}
