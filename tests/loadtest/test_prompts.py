"""The one request builder: a dataset prompt goes chat-templated in `prompt_token_ids` with the user
message in `text_input`, or (labelled `raw`) as text alone."""

from __future__ import annotations

import argparse

import pytest

from loadtest.prompts import DEFAULT_PROMPT_FORMAT, add_prompt_format_argument, http_body, prompt_inputs
from runtime.chat_template import Message, chat_prompt_ids
from runtime.contracts import Entry
from runtime.llama3_tokenizer import load_tokenizer

PROMPT = "  Write a limerick about a cat.\n"


def test_chat_is_the_default_and_carries_the_template_and_the_user_message() -> None:
    tok = load_tokenizer()
    inputs = prompt_inputs(PROMPT)
    assert DEFAULT_PROMPT_FORMAT == "chat"
    assert inputs[Entry.TEXT_INPUT] == PROMPT  # the predictor scores the message as the user wrote it
    assert inputs[Entry.PROMPT_TOKEN_IDS] == chat_prompt_ids(tok, [Message("user", PROMPT)])


def test_raw_sends_the_text_alone() -> None:
    assert prompt_inputs(PROMPT, "raw") == {Entry.TEXT_INPUT: PROMPT}


def test_http_body_adds_max_tokens_and_fields_and_is_json_ready() -> None:
    body = http_body(PROMPT, 64, "chat", **{Entry.STREAM: True})
    assert set(body) == {Entry.TEXT_INPUT, Entry.PROMPT_TOKEN_IDS, Entry.MAX_TOKENS, Entry.STREAM}
    assert body[Entry.MAX_TOKENS] == 64 and all(isinstance(i, int) for i in body[Entry.PROMPT_TOKEN_IDS])
    assert set(http_body(PROMPT, 64, "raw")) == {Entry.TEXT_INPUT, Entry.MAX_TOKENS}


def test_an_unknown_format_is_refused() -> None:
    with pytest.raises(ValueError, match="prompt format"):
        prompt_inputs(PROMPT, "jinja")


def test_the_command_line_option_defaults_to_chat() -> None:
    parser = argparse.ArgumentParser()
    add_prompt_format_argument(parser)
    assert parser.parse_args([]).prompt_format == "chat"
    assert parser.parse_args(["--prompt-format", "raw"]).prompt_format == "raw"
    with pytest.raises(SystemExit):
        parser.parse_args(["--prompt-format", "text"])
