"""The chat template as the OpenAI server uses it: the Llama-3 instruct template as token ids
(runtime.chat_template, shared with the load tests and the length tables, so that every client
builds the same prompt) and the text the length predictor scores."""

from __future__ import annotations

from typing import Sequence

from runtime.chat_template import ROLES, Message, chat_prompt_ids, header_ids

__all__ = ["ROLES", "Message", "chat_prompt_ids", "header_ids", "ranking_text"]


def ranking_text(messages: Sequence[Message]) -> str:
    """The text the length predictor scores: the last user turn, what the answer answers (it was
    trained on single prompts), or the whole conversation when that turn is blank."""
    for message in reversed(messages):
        if message.role == "user" and message.content.strip():
            return message.content
    joined = "\n\n".join(m.content for m in messages if m.content.strip())
    return joined or "(empty)"
