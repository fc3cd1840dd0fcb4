"""A conversation's premises turn by turn: what an answer rests on, passages below the conversation, and the
store that extends a conversation from its longest known prefix instead of reading it again."""

from __future__ import annotations

from tunewise.verify.conversation import Conversation, Conversations, turn_digests
from tunewise.verify.graph import Operation
from tunewise.verify.labels import TurnLabel, parse_labels

PORT = "home port of Vessa"


def said(*labels: tuple[str, str]) -> Conversation:
    state = Conversation()
    for op, value in labels:
        state.apply([TurnLabel(Operation(op), PORT, value)], f"{op} {value}")
    return state


def test_an_answer_resting_only_on_a_superseded_premise_is_stale_and_says_why():
    state = said(("assert", "Lund"), ("revise", "Kemi"))
    premises = state.premises(PORT)
    stale = state.check("The home port is Lund.", premises, 0.8)
    assert stale.stale and [p.value for p in stale.rests_on] == ["Lund"]
    assert "superseded" in stale.reason and "Lund" in stale.reason
    live = state.check("Kemi", premises, 0.8)
    assert live.supported and not live.stale
    assert not state.check("Oslo", premises, 0.8).supported  # states no premise: unsupported, not stale


def test_an_answer_stating_a_live_and_a_stale_value_is_not_stale():
    state = said(("assert", "Lund"), ("revise", "Kemi"))
    assert not state.check("Kemi, formerly Lund", state.premises(PORT), 0.8).stale


def test_a_correction_supersedes_a_passage_but_a_withdrawal_only_withdraws_the_conversation():
    corrected = said(("revise", "Kemi"))
    fact = TurnLabel(Operation.ASSERT, PORT, "Lund")
    passage = corrected.passage_premise("passage 1", fact, "The home port of Vessa is Lund.")
    assert not passage.live and "revised in the conversation at turn 1" in passage.why
    withdrawn = said(("assert", "Oslo"), ("retract", ""))
    assert withdrawn.passage_premise("passage 1", fact, "...").live
    assert withdrawn.check("Oslo", withdrawn.premises(PORT), 0.8).stale


def test_a_re_assertion_after_a_withdrawal_makes_the_answer_live_again():
    state = said(("assert", "Lund"), ("retract", ""), ("assert", "Lund"))
    assert not state.check("Lund", state.premises(PORT), 0.8).stale


def test_an_inference_rests_on_the_live_premises_of_its_key_and_falls_with_them():
    state = said(("assert", "Lund"))
    state.apply([TurnLabel(Operation.INFER, PORT, "Lund")], "So Vessa sails from Lund.")
    state.apply([TurnLabel(Operation.RETRACT, PORT)], "Forget the home port.")
    assert all(not p.live for p in state.premises(PORT))


def test_the_store_extends_a_conversation_from_its_longest_known_prefix():
    store = Conversations()
    turns = [{"role": "user", "content": f"turn {i}"} for i in range(5)]
    state, new, digests = store.take(turns[:3])
    assert len(new) == 3
    for turn in new:
        state.apply([], turn["content"])
    store.keep(digests[state.turns], state)
    again, new, _ = store.take(turns)
    assert again is state and [t["content"] for t in new] == ["turn 3", "turn 4"]
    other, new, _ = store.take([{"role": "user", "content": "another"}, *turns[1:3]])
    assert other is not state and len(new) == 3  # same length, other first turn: no shared prefix


def test_prefix_digests_chain_role_and_content():
    a = turn_digests([{"role": "user", "content": "x"}])
    b = turn_digests([{"role": "assistant", "content": "x"}])
    assert a[0] == b[0] and a[1] != b[1]


def test_a_models_label_reply_is_parsed_line_by_line_and_other_lines_are_skipped():
    reply = "assert | home port of Vessa | Lund\n- revise | home port of Vessa | Kemi\nI think so.\nbogus | k | v\n"
    assert parse_labels(reply) == [TurnLabel(Operation.ASSERT, PORT, "Lund"), TurnLabel(Operation.REVISE, PORT, "Kemi")]
    assert parse_labels("query | home port of Vessa") == [TurnLabel(Operation.QUERY, PORT, "")]
