"""The Llama-3 instruct chat template, applied as token ids.

Meta's reference (llama_models ChatFormat) and the checkpoint's Jinja template give, per message,
`<|start_header_id|>` role `<|end_header_id|>` "\\n\\n" content.strip() `<|eot_id|>`, after one
`<|begin_of_text|>`, and then the assistant's header for the answer. Built from ids rather than as
text, so that the template's markers are the special tokens while whatever a message contains is
tokenized as plain text: a user who types "<|eot_id|>" gets those characters, not the end of a turn.

Shared by the OpenAI server, the load tests and benchmarks (which send dataset prompts the way the
recorded answers were asked: as one user turn), the length tables (`make lengths` keys each prompt
templated too) and the request log (which logs a templated prompt's user turn, the text retraining
wants).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from runtime.llama3_tokenizer import Tokenizer

ROLES = ("system", "user", "assistant")


@dataclass(frozen=True)
class Message:
    role: str  # one of ROLES
    content: str


def header_ids(tokenizer: Tokenizer, role: str) -> list[int]:
    return [
        tokenizer.special_id("<|start_header_id|>"),
        *tokenizer.encode(role),
        tokenizer.special_id("<|end_header_id|>"),
        *tokenizer.encode("\n\n"),
    ]


def chat_prompt_ids(tokenizer: Tokenizer, messages: Sequence[Message]) -> list[int]:
    """The prompt's token ids: the conversation, then the assistant's header (the model answers)."""
    if not messages:
        raise ValueError("messages is empty")
    ids = [tokenizer.bos_id]
    for message in messages:
        if message.role not in ROLES:
            raise ValueError(f"unsupported role {message.role!r}: use one of {', '.join(ROLES)}")
        ids += header_ids(tokenizer, message.role)
        ids += tokenizer.encode(message.content.strip())
        ids.append(tokenizer.eot_id)
    return ids + header_ids(tokenizer, "assistant")


def single_turn_ids(tokenizer: Tokenizer, prompt: str) -> list[int]:
    """One user message, templated: how the recorded answers of the data sets were asked for."""
    return chat_prompt_ids(tokenizer, [Message("user", prompt)])


def last_user_ids(tokenizer: Tokenizer, ids: Sequence[int]) -> list[int] | None:
    """The last user message's content ids of a templated prompt (`chat_prompt_ids`' layout), or
    None when `ids` are not such a prompt (a raw one): what the request log keeps as its text.
    Turns split cleanly at `<|eot_id|>`: message text never holds a special id."""
    start, eot = tokenizer.special_id("<|start_header_id|>"), tokenizer.eot_id
    tail, user = header_ids(tokenizer, "assistant"), header_ids(tokenizer, "user")
    body = [int(i) for i in ids]
    body = body[1:] if body[:1] == [tokenizer.bos_id] else body
    if len(body) <= len(tail) or body[-len(tail):] != tail:
        return None
    body = body[: -len(tail)]
    found = None
    i = 0
    while i < len(body):
        if body[i] != start or eot not in body[i:]:
            return None
        k = body.index(eot, i)
        if body[i: i + len(user)] == user:
            found = body[i + len(user): k]
        i = k + 1
    return found


def logged_prompt(tokenizer: Tokenizer, ids: Sequence[int]) -> str:
    """The text the request log keeps of a prompt: a chat-templated prompt's last user turn (what
    the predictor scored and retrains on, not the template's markers), else the ids decoded without
    their leading BOS."""
    user = last_user_ids(tokenizer, ids)
    if user is not None:
        return tokenizer.decode(user)
    return tokenizer.decode([int(i) for i in ids if int(i) != tokenizer.bos_id])
