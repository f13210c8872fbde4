"""The OpenAI request and response objects this server speaks (chat completions, completions).

Requests are checked here, before anything reaches Triton. Unknown fields, and OpenAI fields this
server does not implement (`logprobs`, `tools`, `response_format`, ...), are ignored, as vLLM does
with fields it does not know: the request is served and the ignored names are logged.
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
        return sorted(self.model_extra or {})


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

    def chat_messages(self) -> list[Message]:
        return [m.to_message() for m in self.messages]

    def requested_max_tokens(self, default: int) -> int:
        """`max_completion_tokens` (OpenAI's current name) wins over the older `max_tokens`."""
        return self.max_completion_tokens or self.max_tokens or default


class CompletionRequest(_Sampling):
    prompt: str | list[str] | list[int] | list[list[int]]

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


def chat_completion(ids: ResponseIds, text: str, finish: str, use: dict[str, int]) -> dict[str, Any]:
    return {
        "id": ids.id, "object": "chat.completion", "created": ids.created, "model": ids.model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "logprobs": None,
                     "finish_reason": finish}],
        "usage": use,
    }


def chat_chunk(ids: ResponseIds, delta: dict[str, Any], finish: str | None = None,
               use: dict[str, int] | None = None, with_usage_field: bool = False) -> dict[str, Any]:
    chunk: dict[str, Any] = {
        "id": ids.id, "object": "chat.completion.chunk", "created": ids.created, "model": ids.model,
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
    }
    if with_usage_field:
        chunk["usage"] = use
    return chunk


def usage_chunk(ids: ResponseIds, obj: str, use: dict[str, int]) -> dict[str, Any]:
    """The last chunk when `stream_options.include_usage`: no choices, the whole request's usage."""
    return {"id": ids.id, "object": obj, "created": ids.created, "model": ids.model, "choices": [], "usage": use}


def completion(ids: ResponseIds, text: str, finish: str, use: dict[str, int]) -> dict[str, Any]:
    return {
        "id": ids.id, "object": "text_completion", "created": ids.created, "model": ids.model,
        "choices": [{"index": 0, "text": text, "logprobs": None, "finish_reason": finish}],
        "usage": use,
    }


def completion_chunk(ids: ResponseIds, text: str, finish: str | None = None,
                     use: dict[str, int] | None = None, with_usage_field: bool = False) -> dict[str, Any]:
    chunk: dict[str, Any] = {
        "id": ids.id, "object": "text_completion", "created": ids.created, "model": ids.model,
        "choices": [{"index": 0, "text": text, "logprobs": None, "finish_reason": finish}],
    }
    if with_usage_field:
        chunk["usage"] = use
    return chunk


def model_list(name: str, created: int) -> dict[str, Any]:
    return {"object": "list", "data": [{"id": name, "object": "model", "created": created, "owned_by": "ltr-serving"}]}
