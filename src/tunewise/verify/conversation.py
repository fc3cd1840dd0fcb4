"""One conversation's premises, kept turn by turn, and the check of an answer against them.

Every turn's labels update the conversation's premise graph; a passage put in front of the model is a premise
from before the conversation began, so a correction in the conversation supersedes what a document says on the
same key (a retraction withdraws only what the conversation itself said). An answer rests on the premises whose
value it states; it is stale when all of them are superseded, retracted or attacked.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field

from tunewise.verify.graph import Operation, PremiseGraph
from tunewise.verify.groundedness import overlap
from tunewise.verify.labels import TurnLabel


def states(answer: str, value: str, min_overlap: float) -> bool:
    """Whether `answer` states `value`: at least `min_overlap` of the value's content words are among the
    answer's (the groundedness check, with the value as what must be found)."""
    return overlap(value, answer) >= min_overlap


@dataclass(frozen=True)
class Premise:
    """A premise an answer may rest on: a graph node of the conversation, or a fact a retrieved passage states."""

    id: str
    key: str
    value: str
    text: str
    live: bool
    why: str = ""


@dataclass(frozen=True)
class Verdict:
    """What the check of an answer found: the premises it rests on, whether it is stale and why."""

    rests_on: tuple[Premise, ...]
    stale: bool
    reason: str

    @property
    def supported(self) -> bool:
        """Whether the answer states the value of any premise at all."""
        return bool(self.rests_on)


@dataclass
class Conversation:
    """The premise graph of one conversation and how many of its turns it holds; extended, never re-read."""

    graph: PremiseGraph = field(default_factory=PremiseGraph)
    turns: int = 0
    revised: dict[str, int] = field(default_factory=dict)  # key -> turn of the conversation's latest revision
    values: dict[str, str] = field(default_factory=dict)  # node id -> the value it states
    by_key: dict[str, list[str]] = field(default_factory=dict)  # key -> ids of the nodes stating a value on it
    texts: dict[str, str] = field(default_factory=dict)  # node id -> what its turn said
    keys: dict[str, str] = field(default_factory=dict)  # node id -> its key

    def apply(self, labels: Sequence[TurnLabel], text: str) -> None:
        """Add one turn: each of its labels updates the graph; `text` is what the turn said."""
        turn = self.turns = self.turns + 1
        for label in labels:
            self._update(label, text, turn)

    def _update(self, label: TurnLabel, text: str, turn: int) -> None:
        g, key = self.graph, label.key
        op = label.op
        if op is Operation.ASSERT:
            self._stated(g.assert_(text, key=key, turn=turn), label, text)
        elif op is Operation.REVISE:
            self.revised[key] = turn
            self._stated(g.revise(text, key=key, turn=turn), label, text)
        elif op is Operation.RETRACT:
            g.retract(key=key, turn=turn)
        elif op is Operation.HYPOTHESIZE:
            self._stated(g.hypothesize(text, key=key, turn=turn), label, text)
        elif op is Operation.INTRODUCE:
            g.introduce(text, key=key, turn=turn)
        elif op is Operation.INFER:
            supports = [n.id for n in g.live_premises(key)]
            node = (g.infer(text, supports, key=key, turn=turn) if supports
                    else g.hypothesize(text, key=key, turn=turn))  # a claim resting on nothing is a guess
            self._stated(node, label, text)
        elif op is Operation.ATTACK:
            targets = [n.id for n in g.live_premises(key)]
            if targets:
                attacker = g.assert_(text, turn=turn)
                for target in targets:
                    g.attack(attacker, target, turn=turn)

    def _stated(self, id: str, label: TurnLabel, text: str) -> None:
        if id not in self.values:  # a repeated statement revives its node rather than adding one
            self.by_key.setdefault(label.key, []).append(id)
        self.keys[id] = label.key
        self.values[id] = label.value
        self.texts[id] = text

    def premises(self, key: str | None = None) -> list[Premise]:
        """The conversation's premises that state a value (on `key` if given: what was said on it, not the whole
        conversation), live or not, in the order stated."""
        ids = self.by_key.get(key, []) if key is not None else list(self.values)
        return [self._premise(i) for i in ids]

    def _premise(self, id: str) -> Premise:
        return Premise(id, self.keys[id], self.values[id], self.texts[id], self.graph.is_live(id))

    def passage_premise(self, id: str, label: TurnLabel, text: str) -> Premise:
        """A fact a retrieved passage states: live unless the conversation has revised its key."""
        turn = self.revised.get(label.key)
        why = "" if turn is None else f"rests on {id} ('{label.key}: {label.value}'), revised in the conversation at turn {turn}"
        return Premise(id, label.key, label.value, text, turn is None, why)

    def check(self, answer: str, premises: Sequence[Premise], min_overlap: float) -> Verdict:
        """Whether `answer` rests only on stale premises among `premises` (the ones whose value it states)."""
        rests_on = tuple(p for p in premises if states(answer, p.value, min_overlap))
        if not rests_on or any(p.live for p in rests_on):
            reason = "supported by " + ", ".join(p.id for p in rests_on if p.live) if rests_on else "rests on no premise"
            return Verdict(rests_on, False, reason)
        # Why each is stale is phrased only for what the answer rests on: a walk of its support, not of the key.
        return Verdict(rests_on, True, "; ".join(p.why or self.graph.check([p.id]).reason for p in rests_on))


def turn_digests(turns: Sequence[dict[str, str]]) -> list[str]:
    """A digest of every prefix of `turns` (the empty one first), each chained from the one before."""
    out = [hashlib.sha256(b"tunewise-conversation").hexdigest()]
    for turn in turns:
        out.append(hashlib.sha256(f"{out[-1]}\0{turn['role']}\0{turn['content']}".encode()).hexdigest())
    return out


class Conversations:
    """Conversation states by the digest of the turns they hold, so a conversation that goes on is extended from
    its longest known prefix (turn t costs what turn t adds), never read again from its first turn."""

    def __init__(self) -> None:
        self._states: dict[str, Conversation] = {}

    def take(self, turns: Sequence[dict[str, str]]) -> tuple[Conversation, list[dict[str, str]], list[str]]:
        """The state of the longest known prefix of `turns` (removed from the store while it is extended), the
        turns it still lacks, and every prefix's digest; a fresh state when no prefix is known."""
        digests = turn_digests(turns)
        for n in range(len(turns), -1, -1):
            state = self._states.pop(digests[n], None)
            if state is not None:
                return state, list(turns[n:]), digests
        return Conversation(), list(turns), digests

    def keep(self, digest: str, state: Conversation) -> None:
        """Store `state` as the state of the prefix with this digest."""
        self._states[digest] = state
