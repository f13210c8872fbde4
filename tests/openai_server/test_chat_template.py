"""What the OpenAI server's length predictor scores of a conversation (the template itself:
tests/runtime/test_chat_template.py)."""

from __future__ import annotations

from openai_server.chat_template import Message, ranking_text


def test_the_predictor_scores_the_last_user_turn():
    conversation = [Message("system", "Be brief."), Message("user", "First question"),
                    Message("assistant", "Answer"), Message("user", "Write an essay on rivers")]
    assert ranking_text(conversation) == "Write an essay on rivers"
    assert ranking_text([Message("system", "Be brief."), Message("user", "  ")]) == "Be brief."
    assert ranking_text([Message("user", "")]) == "(empty)"


def test_a_conversation_without_a_user_text_is_ranked_as_its_turns_joined_by_blank_lines():
    messages = [Message("system", "Be brief."), Message("user", "  "), Message("assistant", "Hello.")]
    assert ranking_text(messages) == "Be brief.\n\nHello."
    assert ranking_text([Message("user", " ")]) == "(empty)"
