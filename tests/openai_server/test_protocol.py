"""Request checks before Triton: what is refused with which message, what is ignored."""

from __future__ import annotations

import pytest

from openai_server.chat_template import Message
from openai_server.protocol import ChatCompletionRequest, CompletionRequest, InvalidRequest, parse_request

CHAT = {"model": "m", "messages": [{"role": "user", "content": "Hi"}]}


def chat(**fields) -> ChatCompletionRequest:
    return parse_request(ChatCompletionRequest, {**CHAT, **fields})


@pytest.mark.parametrize("fields, message", [
    ({"n": 2}, "only n=1"),
    ({"max_tokens": 0}, "max_tokens"),
    ({"max_completion_tokens": -1}, "max_completion_tokens"),
    ({"temperature": 3}, "temperature"),
    ({"top_p": 0}, "top_p"),
    ({"seed": -1}, "seed"),
    ({"stop": ["a", "b", "c", "d", "e"]}, "at most 4 stop strings"),
    ({"stream_options": {"include_usage": True}}, "stream_options can only be set when stream is true"),
    ({"messages": []}, "messages"),
])
def test_bad_fields_are_refused_with_a_clear_message(fields, message):
    with pytest.raises(InvalidRequest, match=message):
        chat(**fields)


def test_missing_fields_and_non_objects_are_refused():
    with pytest.raises(InvalidRequest, match="model"):
        parse_request(ChatCompletionRequest, {"messages": CHAT["messages"]})
    with pytest.raises(InvalidRequest, match="JSON object"):
        parse_request(ChatCompletionRequest, [CHAT])


def test_unknown_fields_are_ignored_and_named():
    req = chat(logprobs=True, tools=[], frequency_penalty=0.5, user="u1", store=True, metadata={"a": "b"})
    assert req.ignored_fields == ["metadata", "store"]  # `tools: []` asks for nothing; the rest are used


@pytest.mark.parametrize("fields, message", [
    ({"tools": [{"type": "function", "function": {"name": "f"}}]}, "tools: tool calling is not implemented"),
    ({"tool_choice": "required"}, "tool_choice: tool calling"),
    ({"functions": [{"name": "f"}]}, "functions: function calling"),
    ({"function_call": {"name": "f"}}, "function_call: function calling"),
    ({"response_format": {"type": "json_object"}}, "response_format: only text responses"),
    ({"response_format": {"type": "json_schema", "json_schema": {}}}, "response_format"),
    ({"logit_bias": {"42": 5}}, "logit_bias is not implemented"),
    ({"logprobs": True, "top_logprobs": 2}, "top_logprobs: only the chosen token's log-prob"),
    ({"modalities": ["text", "audio"]}, "modalities"),
    ({"n": 3}, "only n=1"),
])
def test_known_fields_that_are_not_implemented_are_refused_by_name(fields, message):
    with pytest.raises(InvalidRequest, match=message):
        chat(**fields)


def test_several_unimplemented_fields_are_named_in_one_message():
    with pytest.raises(InvalidRequest, match="tools: .*response_format: "):
        chat(tools=[{"type": "function"}], response_format={"type": "json_object"})


def test_unimplemented_fields_sent_with_their_do_nothing_value_are_served():
    req = chat(tools=[], tool_choice="none", response_format={"type": "text"}, logit_bias={}, top_logprobs=0,
               functions=None, modalities=["text"])
    assert req.ignored_fields == []


@pytest.mark.parametrize("fields, message", [
    ({"logprobs": 2}, "logprobs 2 is not supported: only the chosen token's log-prob"),
    ({"echo": True}, "echo is not implemented"),
    ({"best_of": 2}, "best_of > 1"),
    ({"suffix": "end"}, "suffix"),
    ({"n": 2}, "only n=1"),
])
def test_completions_refuse_what_they_cannot_honour(fields, message):
    with pytest.raises(InvalidRequest, match=message):
        parse_request(CompletionRequest, {"model": "m", "prompt": "Hi", **fields})


def test_log_probs_and_penalties_are_used():
    req = chat(logprobs=True, frequency_penalty=0.5, presence_penalty=-0.5, repetition_penalty=1.2, min_tokens=3)
    assert req.wants_log_probs and (req.frequency_penalty, req.presence_penalty) == (0.5, -0.5)
    assert (req.repetition_penalty, req.min_tokens) == (1.2, 3)
    assert not chat().wants_log_probs and not chat(logprobs=False).wants_log_probs
    completion = parse_request(CompletionRequest, {"model": "m", "prompt": "Hi", "logprobs": 0})
    assert completion.wants_log_probs
    with pytest.raises(InvalidRequest, match="frequency_penalty"):
        chat(frequency_penalty=2.5)
    with pytest.raises(InvalidRequest, match="repetition_penalty"):
        chat(repetition_penalty=0)


def test_fields_that_are_used():
    req = chat(max_tokens=7, max_completion_tokens=9, temperature=0.5, top_p=0.9, seed=3, stop=".",
               stream=True, stream_options={"include_usage": True}, n=1)
    assert req.requested_max_tokens(100) == 9  # max_completion_tokens wins
    assert chat(max_tokens=7).requested_max_tokens(100) == 7
    assert chat().requested_max_tokens(100) == 100
    assert req.stop_strings == ["."] and req.include_usage_chunk
    assert not chat(stream=True).include_usage_chunk
    assert chat(stop=["a", ""]).stop_strings == ["a"]


def test_message_roles_and_content_parts():
    req = chat(messages=[{"role": "developer", "content": "Be brief."},
                         {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
                         {"role": "assistant", "content": None, "name": "bot"}])
    assert req.chat_messages() == [Message("system", "Be brief."), Message("user", "a\nb"), Message("assistant", "")]
    with pytest.raises(InvalidRequest, match="role 'tool'"):
        chat(messages=[{"role": "tool", "content": "{}"}]).chat_messages()
    with pytest.raises(InvalidRequest, match="image_url"):
        chat(messages=[{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}]).chat_messages()


def test_completion_prompts():
    def prompt(p):
        return parse_request(CompletionRequest, {"model": "m", "prompt": p}).single_prompt()

    assert prompt("Once upon") == "Once upon"
    assert prompt(["Once upon"]) == "Once upon"
    assert prompt([1, 2, 3]) == [1, 2, 3]
    assert prompt([[1, 2]]) == [1, 2]
    with pytest.raises(InvalidRequest, match="one prompt per request"):
        prompt(["a", "b"])
    with pytest.raises(InvalidRequest, match="empty"):
        prompt("  ")
    assert parse_request(CompletionRequest, {"model": "m", "prompt": "x"}).requested_max_tokens(16) == 16


# ---- responses: OpenAI's objects, field by field --------------------------------------------------
def test_response_objects_have_openais_fields(monkeypatch):
    from openai_server import protocol

    monkeypatch.setattr(protocol.time, "time", lambda: 1700000000.9)
    ids = protocol.ResponseIds("chatcmpl", "abc", "llama")
    assert (ids.id, ids.created, ids.model) == ("chatcmpl-abc", 1700000000, "llama")
    use = protocol.usage(3, 4)
    assert use == {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}
    head = {"id": "chatcmpl-abc", "created": 1700000000, "model": "llama"}
    assert protocol.chat_completion(ids, "hi", "stop", use) == {
        **head, "object": "chat.completion", "usage": use,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}, "logprobs": None,
                     "finish_reason": "stop"}]}
    delta = {"content": "h"}
    assert protocol.chat_chunk(ids, delta) == {
        **head, "object": "chat.completion.chunk",
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": None}]}
    assert protocol.chat_chunk(ids, {}, "length", None, with_usage_field=True) == {
        **head, "object": "chat.completion.chunk", "usage": None,
        "choices": [{"index": 0, "delta": {}, "logprobs": None, "finish_reason": "length"}]}
    assert protocol.chat_chunk(ids, {}, "stop", use, True)["usage"] == use
    assert protocol.usage_chunk(ids, "chat.completion.chunk", use) == {
        **head, "object": "chat.completion.chunk", "choices": [], "usage": use}
    assert protocol.completion(ids, "x", "length", use) == {
        **head, "object": "text_completion", "usage": use,
        "choices": [{"index": 0, "text": "x", "logprobs": None, "finish_reason": "length"}]}
    assert protocol.completion_chunk(ids, "y") == {
        **head, "object": "text_completion",
        "choices": [{"index": 0, "text": "y", "logprobs": None, "finish_reason": None}]}
    assert protocol.completion_chunk(ids, "", "stop", use, with_usage_field=True) == {
        **head, "object": "text_completion", "usage": use,
        "choices": [{"index": 0, "text": "", "logprobs": None, "finish_reason": "stop"}]}
    assert protocol.model_list("llama", 5) == {
        "object": "list", "data": [{"id": "llama", "object": "model", "created": 5, "owned_by": "ltr-serving"}]}


@pytest.mark.parametrize("part", [{"type": "image_url", "text": "a picture"}, {"type": "text", "text": 5},
                                  {"type": "text"}])
def test_a_content_part_must_be_text_with_a_string(part):
    with pytest.raises(InvalidRequest, match="only text parts are supported"):
        chat(messages=[{"role": "user", "content": [part]}]).chat_messages()


def test_an_empty_prompt_is_refused_by_name():
    for prompt in ("  ", [], [" "], [[]]):
        with pytest.raises(InvalidRequest, match="^prompt is empty$"):
            parse_request(CompletionRequest, {"model": "m", "prompt": prompt}).single_prompt()


def test_every_problem_is_named_by_its_field_path_in_one_message():
    with pytest.raises(InvalidRequest) as raised:
        parse_request(ChatCompletionRequest, {"model": "m", "messages": [{"content": "x"}], "n": 2})
    assert str(raised.value) == ("n: Value error, only n=1 is supported, got n=2; "
                                 "messages.0.role: Field required")
    with pytest.raises(InvalidRequest) as raised:  # a check of the whole request has no field path
        chat(stream_options={"include_usage": True})
    assert str(raised.value) == "Value error, stream_options can only be set when stream is true"
    with pytest.raises(InvalidRequest) as raised:
        parse_request(ChatCompletionRequest, "text")
    assert str(raised.value) == "the request body must be a JSON object"
