"""The prompt layout every arm shares: instructions, demonstrations, the conversation so far, then the input."""

from __future__ import annotations

from tunewise.prompt import ContextChunk, Demo, build_messages


def test_the_conversation_goes_after_the_demonstrations_and_the_context_with_the_question():
    history = ({"role": "user", "content": "Lund is the port."}, {"role": "assistant", "content": "Noted."})
    messages = build_messages("Be brief.", "Which port?", [Demo("q", "a")], [ContextChunk("Kemi.", "d1")], history)
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user", "assistant", "user"]
    assert messages[3:5] == list(history) and messages[3] is not history[0]  # copies: callers may not edit turns
    assert messages[-1]["content"] == "Context:\n[1] d1\nKemi.\n\nInput:\nWhich port?"
    assert build_messages("", "Which port?") == [{"role": "user", "content": "Which port?"}]
