"""The Llama-3 instruct chat template, applied as token ids.

Meta's reference (llama_models ChatFormat) and the checkpoint's Jinja template give, per message,
`<|start_header_id|>` role `<|end_header_id|>` "\\n\\n" content.strip() `<|eot_id|>`, after one
`<|begin_of_text|>`, and then the assistant's header for the answer. Built from ids rather than as
text, so that the template's markers are the special tokens while whatever a message contains is
tokenized as plain text: a user who types "<|eot_id|>" gets those characters, not the end of a turn.
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


def ranking_text(messages: Sequence[Message]) -> str:
    """The text the length predictor scores: the last user turn, what the answer answers (it was
    trained on single prompts), or the whole conversation when that turn is blank."""
    for message in reversed(messages):
        if message.role == "user" and message.content.strip():
            return message.content
    joined = "\n\n".join(m.content for m in messages if m.content.strip())
    return joined or "(empty)"
