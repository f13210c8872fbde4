"""The prompt a load test or benchmark sends, built in one place for every client.

The length tables (where the stand-in ends an answer) and the predictor's labels come from the
target model's answers to *chat* prompts: each data set's prompt asked as one user turn of the
Llama-3 instruct template. A raw `text_input` without the template is another prompt to the real
model (on a GPU it often gets a different, run-on answer), so by default (`chat`) a request carries
the templated prompt as token ids in the entry's optional `prompt_token_ids` input, as the OpenAI
server sends chat, and `text_input` still carries the user message, which the predictor scores.
`raw` (labelled wherever a run uses it) sends `text_input` alone, as before.
"""

from __future__ import annotations

import argparse
from functools import lru_cache
from typing import Literal

from runtime.chat_template import single_turn_ids
from runtime.contracts import Entry
from runtime.llama3_tokenizer import Tokenizer, load_tokenizer

PromptFormat = Literal["chat", "raw"]
PROMPT_FORMATS: tuple[str, ...] = ("chat", "raw")
DEFAULT_PROMPT_FORMAT: PromptFormat = "chat"
PROMPT_FORMAT_HELP = ("chat (default): the prompt as one user turn of the Llama-3 instruct template in prompt_token_ids, "
                      "as the recorded answers were asked for; raw: text_input only, without the template (labelled: "
                      "the real model answers another prompt than the one its lengths were recorded for)")


@lru_cache(maxsize=1)
def _tokenizer() -> Tokenizer:
    """Loaded once per process: every request of a run templates with it."""
    return load_tokenizer()


def check_format(prompt_format: str) -> PromptFormat:
    if prompt_format not in PROMPT_FORMATS:
        raise ValueError(f"prompt format must be one of {PROMPT_FORMATS}, got {prompt_format!r}")
    return prompt_format  # type: ignore[return-value]


def prompt_inputs(prompt: str, prompt_format: str = DEFAULT_PROMPT_FORMAT) -> dict[str, str | list[int]]:
    """The entry inputs that carry a prompt: `text_input` (the user message) and, for `chat`,
    `prompt_token_ids` (the templated prompt the LLM gets)."""
    inputs: dict[str, str | list[int]] = {Entry.TEXT_INPUT: prompt}
    if check_format(prompt_format) == "chat":
        inputs[Entry.PROMPT_TOKEN_IDS] = single_turn_ids(_tokenizer(), prompt)
    return inputs


def http_body(prompt: str, max_tokens: int, prompt_format: str = DEFAULT_PROMPT_FORMAT, **fields: object) -> dict:
    """A JSON body for `generate` / `generate_stream` (Triton's generate extension takes a list
    for `prompt_token_ids`)."""
    return {**prompt_inputs(prompt, prompt_format), Entry.MAX_TOKENS: max_tokens, **fields}


def add_prompt_format_argument(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """`--prompt-format chat|raw` for every load-test and benchmark command line."""
    parser.add_argument("--prompt-format", default=DEFAULT_PROMPT_FORMAT, choices=list(PROMPT_FORMATS),
                        help=PROMPT_FORMAT_HELP)
