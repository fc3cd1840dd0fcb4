"""A premise graph per conversation (after He, Dong and Huang, "Grounded Continuation: A Linear-Time Runtime
Verifier for LLM Conversations", arXiv 2605.14175): claims rest on evidence and earlier reasoning, "is this
continuation supported?" is a walk over what it rests on, and a retraction or supersession reaches exactly the
conclusions that lose support, at a cost linear in what changes, not in the size of the graph.

A node is live when it is neither retracted nor superseded, every node it rests on is live, and no live node
attacks it. Support edges and attack edges together must form a DAG (a cycle would leave liveness undefined), so
every node has a level above all its inputs; a change is propagated in level order, each node recomputed at most
once from its direct inputs, and the walk stops wherever a node's live flag did not change.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from enum import Enum

_SHORT = 60


class Operation(str, Enum):
    """The eight updates a conversation makes to its premise graph:

    ASSERT       a new premise is stated, by the user or a document (a public announcement, in dynamic epistemic logic)
    REVISE       a premise replaces the earlier ones on the same key (supersession)
    RETRACT      a premise is withdrawn with no replacement
    HYPOTHESIZE  an abductive, tentative premise: live, but whatever rests on it is flagged tentative
    INTRODUCE    awareness logic: an entity or topic enters the conversation with no claim about it
    INFER        a model's claim derived from listed supports
    ATTACK       argumentation: one node attacks another, which is not live while its attacker is
    QUERY        a question: it adds no node, it asks for a support check
    """

    ASSERT = "assert"
    REVISE = "revise"
    RETRACT = "retract"
    HYPOTHESIZE = "hypothesize"
    INTRODUCE = "introduce"
    INFER = "infer"
    ATTACK = "attack"
    QUERY = "query"


# Base premises: nodes that enter the conversation rather than being derived in it.
_BASE = frozenset({Operation.ASSERT, Operation.REVISE, Operation.HYPOTHESIZE, Operation.INTRODUCE})
# Premises that claim something about their key, so a revision or a retraction by key reaches them.
_CLAIMS = frozenset({Operation.ASSERT, Operation.REVISE, Operation.HYPOTHESIZE})
# Premises a repeated statement of the same text and key revives.
_STATED = frozenset({Operation.ASSERT, Operation.REVISE})


@dataclass
class Node:
    """One premise or claim: what it says, what it is about (`key`, for supersession) and the ids it rests on."""

    id: str
    op: Operation
    text: str
    key: str | None
    supports: tuple[str, ...]
    turn: int
    retracted: bool = False
    superseded_by: str | None = None
    tentative: bool = False


@dataclass(frozen=True)
class Event:
    """One update applied to the graph, in order: the turn it happened at, the operation, the ids it touched."""

    turn: int
    op: Operation
    ids: tuple[str, ...]


class GraphError(ValueError):
    """An update the premise graph refuses; the graph is left as it was."""


class CycleError(GraphError):
    """An edge that would make liveness circular: a node resting on, or attacked by, what depends on it."""


class UnknownNode(GraphError):
    """An id that names no node of the graph."""

    def __init__(self, ids: Iterable[str]):
        self.ids = tuple(ids)
        noun = "id" if len(self.ids) == 1 else "ids"
        super().__init__(f"unknown node {noun} {', '.join(map(repr, self.ids))}")


@dataclass(frozen=True)
class Support:
    """The answer to "is this supported?": `stale` are the checked ids that are not live, `root_causes` the
    retracted, superseded or attacked nodes that staleness traces to, `premises` the live base premises the
    checked ids rest on; `notes` phrase the root causes (or, when supported, the premises) for `reason`."""

    ok: bool
    stale: tuple[str, ...]
    root_causes: tuple[str, ...]
    premises: tuple[str, ...]
    tentative: bool
    notes: tuple[str, ...] = field(default=(), repr=False, compare=False)

    @property
    def reason(self) -> str:
        """One sentence saying why, e.g. "rests on p3 ('the home port of X is Lund'), superseded by p7"."""
        if not self.ok:
            return "rests on " + "; ".join(self.notes)
        if not self.notes:
            return "supported: rests on no premises"
        hedge = " (tentative: rests on a hypothesis)" if self.tentative else ""
        return "supported by " + ", ".join(self.notes) + hedge


def _quote(text: str) -> str:
    short = text if len(text) <= _SHORT else text[: _SHORT - 1] + "…"
    return f"'{short}'"


class PremiseGraph:
    """The premise graph of one conversation, its liveness kept up to date incrementally on every update.

    `last_visited` counts the nodes the last update or check evaluated or walked through, `visited_total` all
    of them; read-only listings (`is_live`, `node`, `stale`, `live_premises`) leave both alone.
    """

    def __init__(self) -> None:
        self._nodes: dict[str, Node] = {}
        self._seq: dict[str, int] = {}
        self._live: dict[str, bool] = {}
        self._level: dict[str, int] = {}
        self._dependants: dict[str, list[str]] = {}
        self._attackers: dict[str, list[str]] = {}
        self._targets: dict[str, list[str]] = {}
        self._by_key: dict[str, list[str]] = {}
        self._by_statement: dict[tuple[str, str | None], list[str]] = {}
        self._next = 1
        self.history: list[Event] = []
        self.last_visited = 0
        self.visited_total = 0

    # -- updates -----------------------------------------------------------------------------------------------

    def assert_(self, text: str, *, key: str | None = None, turn: int = 0, id: str | None = None) -> str:
        """State a premise; the same text and key as an earlier statement reuses that node, reviving it if it
        was retracted or superseded. Asserting never supersedes: only `revise` does."""
        self._begin()
        same = self._identical(text, key, id)
        if same is not None:
            self._revive(same)
            self._log(turn, Operation.ASSERT, (same,))
            return same
        new = self._add(Operation.ASSERT, text, key, (), turn, id)
        self._log(turn, Operation.ASSERT, (new,))
        return new

    def revise(self, text: str, *, key: str, turn: int = 0, id: str | None = None) -> str:
        """State a premise that supersedes the current claims on `key`, and propagate the loss of support; with
        no current claim on `key` it is an assertion. A repeated statement revives its earlier node."""
        self._begin()
        current = [i for i in self._by_key.get(key, ()) if self._is_current_claim(i)]
        self._visit(len(current))
        target = self._identical(text, key, id)
        replaced = [i for i in current if i != target]
        if target is None:
            op = Operation.REVISE if replaced else Operation.ASSERT
            target = self._add(op, text, key, (), turn, id)
        for old in replaced:
            self._nodes[old].superseded_by = target
        self._revive(target, also=replaced)
        self._log(turn, Operation.REVISE if replaced else Operation.ASSERT, (target, *replaced))
        return target

    def retract(self, id: str | None = None, *, key: str | None = None, turn: int = 0) -> tuple[str, ...]:
        """Withdraw a node by id, or every current claim on `key`, and propagate the loss of support; returns
        the ids withdrawn (none when they already were)."""
        if id is not None and key is not None:
            raise GraphError("retract takes an id or a key, not both")
        self._begin()
        if key is not None:
            chosen = [i for i in self._by_key.get(key, ()) if self._is_current_claim(i)]
        elif id is not None:
            self._require((id,))
            chosen = [id] if not self._nodes[id].retracted else []
        else:
            raise GraphError("retract takes an id or a key")
        for i in chosen:
            self._nodes[i].retracted = True
        self._propagate(chosen)
        if chosen:
            self._log(turn, Operation.RETRACT, tuple(chosen))
        return tuple(chosen)

    def reassert(self, id: str, turn: int = 0) -> None:
        """Bring a retracted or superseded node back, reviving the dependants whose supports are all live again."""
        self._require((id,))
        self._begin()
        self._revive(id)
        self._log(turn, Operation.ASSERT, (id,))

    def hypothesize(
        self, text: str, *, key: str | None = None, supports: Iterable[str] = (), turn: int = 0, id: str | None = None
    ) -> str:
        """State a tentative premise, optionally resting on others: live, but checks over it come back tentative."""
        self._begin()
        new = self._add(Operation.HYPOTHESIZE, text, key, tuple(dict.fromkeys(supports)), turn, id)
        self._log(turn, Operation.HYPOTHESIZE, (new,))
        return new

    def introduce(self, text: str, *, key: str | None = None, turn: int = 0, id: str | None = None) -> str:
        """Bring an entity or topic into the conversation: a live node that claims and supports nothing until used."""
        self._begin()
        new = self._add(Operation.INTRODUCE, text, key, (), turn, id)
        self._log(turn, Operation.INTRODUCE, (new,))
        return new

    def infer(
        self, text: str, supports: Iterable[str], *, key: str | None = None, turn: int = 0, id: str | None = None
    ) -> str:
        """Record a model's claim resting on `supports` (at least one); it is live iff all of them are."""
        rests_on = tuple(dict.fromkeys(supports))
        if not rests_on:
            raise GraphError(f"an inference must rest on at least one node: {_quote(text)}")
        self._begin()
        new = self._add(Operation.INFER, text, key, rests_on, turn, id)
        self._log(turn, Operation.INFER, (new,))
        return new

    def attack(self, attacker_id: str, target_id: str, *, turn: int = 0) -> None:
        """Record that `attacker_id` attacks `target_id`: the target and its dependants are stale while the
        attacker is live, and revive when it is not."""
        self._require((attacker_id, target_id))
        if attacker_id == target_id:
            raise CycleError(f"{attacker_id} cannot attack itself")
        self._begin()
        if attacker_id in self._attackers[target_id]:
            return
        if self._reaches(attacker_id, target_id):
            raise CycleError(f"{attacker_id} attacking {target_id} would make a cycle: {attacker_id} already "
                             f"depends on {target_id}")
        self._attackers[target_id].append(attacker_id)
        self._targets[attacker_id].append(target_id)
        self._raise_level(target_id, self._level[attacker_id] + 1)
        self._propagate((target_id,))
        self._log(turn, Operation.ATTACK, (attacker_id, target_id))

    def link(self, node_id: str, support_id: str) -> None:
        """Make `node_id` rest on `support_id` as well, after the fact; refused, graph unchanged, on a cycle."""
        self._require((node_id, support_id))
        if node_id == support_id:
            raise CycleError(f"{node_id} cannot rest on itself")
        self._begin()
        node = self._nodes[node_id]
        if support_id in node.supports:
            return
        if self._reaches(support_id, node_id):
            raise CycleError(f"linking {node_id} to rest on {support_id} would make a cycle: {support_id} already "
                             f"depends on {node_id}")
        node.supports = (*node.supports, support_id)
        self._dependants[support_id].append(node_id)
        self._raise_level(node_id, self._level[support_id] + 1)
        self._propagate((node_id,))

    # -- checks ------------------------------------------------------------------------------------------------

    def check(self, ids: Iterable[str]) -> Support:
        """Whether everything in `ids` is supported: a walk over what they rest on, O(size of that closure)."""
        checked = tuple(dict.fromkeys(ids))
        self._require(checked)
        self._begin()
        seen = set(checked)
        queue = list(checked)
        while queue:
            current = queue.pop()
            self._visit()
            for s in self._nodes[current].supports:
                if s not in seen:
                    seen.add(s)
                    queue.append(s)
        closure = sorted(seen, key=self._seq.__getitem__)
        stale = tuple(i for i in checked if not self._live[i])
        causes = tuple(i for i in closure if not self._live[i] and self._dead_in_itself(i))
        premises = tuple(sorted((i for i in closure if self._live[i] and self._nodes[i].op in _BASE),
                                key=self._turn_order))
        tentative = any(self._nodes[i].tentative for i in closure)
        notes = tuple(self._cause_note(i) for i in causes) if stale else tuple(self._premise_note(i) for i in premises)
        return Support(not stale, stale, causes, premises, tentative, notes)

    def query(self, ids: Iterable[str]) -> Support:
        """The QUERY operation: a support check of `ids`, adding no node."""
        return self.check(ids)

    def is_live(self, id: str) -> bool:
        """Whether `id` is live now (its flag is kept up to date, so this is O(1))."""
        self._require((id,))
        return self._live[id]

    def node(self, id: str) -> Node:
        """A copy of node `id` (the graph's own nodes change only through its updates)."""
        self._require((id,))
        return replace(self._nodes[id])

    def live_premises(self, key: str | None = None) -> list[Node]:
        """The live base premises (asserted, revised, hypothesized, introduced), on `key` if given, in turn order."""
        pool: Iterable[str] = self._by_key.get(key, []) if key is not None else self._nodes
        ids = sorted((i for i in pool if self._live[i] and self._nodes[i].op in _BASE), key=self._turn_order)
        return [replace(self._nodes[i]) for i in ids]

    def stale(self) -> list[str]:
        """The ids of every node that is not live, in the order they were added."""
        return [i for i in self._nodes if not self._live[i]]

    def attacks(self) -> list[tuple[str, str]]:
        """Every attack edge as (attacker, target), in the order the attackers were added."""
        return [(a, t) for a in self._nodes for t in self._targets[a]]

    def __iter__(self) -> Iterator[str]:
        """The ids, in the order they were added."""
        return iter(self._nodes)

    def __len__(self) -> int:
        return len(self._nodes)

    def __contains__(self, id: object) -> bool:
        return id in self._nodes

    # -- internals ---------------------------------------------------------------------------------------------

    def _begin(self) -> None:
        self.last_visited = 0

    def _visit(self, count: int = 1) -> None:
        self.last_visited += count
        self.visited_total += count

    def _log(self, turn: int, op: Operation, ids: tuple[str, ...]) -> None:
        self.history.append(Event(turn, op, ids))

    def _require(self, ids: Iterable[str]) -> None:
        missing = [i for i in ids if i not in self._nodes]
        if missing:
            raise UnknownNode(dict.fromkeys(missing))

    def _fresh_id(self) -> str:
        while f"n{self._next}" in self._nodes:
            self._next += 1
        return f"n{self._next}"

    def _add(self, op: Operation, text: str, key: str | None, supports: tuple[str, ...], turn: int,
             id: str | None) -> str:
        self._require(supports)
        if id is not None and id in self._nodes:
            raise GraphError(f"node id {id!r} is taken")
        new = id if id is not None else self._fresh_id()
        self._nodes[new] = Node(new, op, text, key, supports, turn, tentative=op is Operation.HYPOTHESIZE)
        self._seq[new] = len(self._seq)
        self._dependants[new] = []
        self._attackers[new] = []
        self._targets[new] = []
        self._level[new] = 1 + max((self._level[s] for s in supports), default=-1)
        for s in supports:
            self._dependants[s].append(new)
        if op in _BASE and key is not None:
            self._by_key.setdefault(key, []).append(new)
        if op in _STATED:
            self._by_statement.setdefault((text, key), []).append(new)
        self._live[new] = self._compute(new)
        self._visit()
        return new

    def _identical(self, text: str, key: str | None, id: str | None) -> str | None:
        """The node an earlier statement of `text` on `key` made (a current one first, else the latest), unless
        the caller asked for a different id."""
        earlier = self._by_statement.get((text, key), [])
        self._visit(len(earlier))
        current = [i for i in earlier if self._is_current(i)]
        found = (current or earlier)[-1] if earlier else None
        return found if id is None or found == id else None

    def _is_current(self, id: str) -> bool:
        node = self._nodes[id]
        return not node.retracted and node.superseded_by is None

    def _is_current_claim(self, id: str) -> bool:
        return self._nodes[id].op in _CLAIMS and self._is_current(id)

    def _revive(self, id: str, also: Iterable[str] = ()) -> None:
        node = self._nodes[id]
        node.retracted = False
        node.superseded_by = None
        self._propagate((id, *also))

    def _compute(self, id: str) -> bool:
        node = self._nodes[id]
        return (self._is_current(id) and all(self._live[s] for s in node.supports)
                and not any(self._live[a] for a in self._attackers[id]))

    def _dead_in_itself(self, id: str) -> bool:
        return not self._is_current(id) or any(self._live[a] for a in self._attackers[id])

    def _propagate(self, seeds: Iterable[str]) -> None:
        """Recompute the seeds, then, in level order, the dependants and targets of every node whose flag changed."""
        heap: list[tuple[int, int, str]] = []
        queued: set[str] = set()
        for s in seeds:
            if s not in queued:
                queued.add(s)
                heapq.heappush(heap, (self._level[s], self._seq[s], s))
        while heap:
            _, _, current = heapq.heappop(heap)
            self._visit()
            live = self._compute(current)
            if live == self._live[current]:
                continue
            self._live[current] = live
            for nxt in (*self._dependants[current], *self._targets[current]):
                if nxt not in queued:
                    queued.add(nxt)
                    heapq.heappush(heap, (self._level[nxt], self._seq[nxt], nxt))

    def _reaches(self, start: str, goal: str) -> bool:
        """Whether `start`'s liveness depends, through supports and attackers, on `goal`."""
        seen = {start}
        queue = [start]
        while queue:
            current = queue.pop()
            self._visit()
            if current == goal:
                return True
            for nxt in (*self._nodes[current].supports, *self._attackers[current]):
                if nxt not in seen:
                    seen.add(nxt)
                    queue.append(nxt)
        return False

    def _raise_level(self, id: str, level: int) -> None:
        """Lift `id` to at least `level`, and its dependants and targets above it, keeping levels above inputs."""
        queue = [(id, level)]
        while queue:
            current, floor = queue.pop()
            if self._level[current] >= floor:
                continue
            self._level[current] = floor
            self._visit()
            queue.extend((nxt, floor + 1) for nxt in (*self._dependants[current], *self._targets[current]))

    def _turn_order(self, id: str) -> tuple[int, int]:
        return self._nodes[id].turn, self._seq[id]

    def _cause_note(self, id: str) -> str:
        node = self._nodes[id]
        why = []
        if node.retracted:
            why.append("retracted")
        if node.superseded_by is not None:
            why.append(f"superseded by {node.superseded_by}")
        attackers = [a for a in self._attackers[id] if self._live[a]]
        if attackers:
            why.append("attacked by " + ", ".join(attackers))
        return f"{id} ({_quote(node.text)}), {' and '.join(why)}"

    def _premise_note(self, id: str) -> str:
        node = self._nodes[id]
        kind = "hypothesis " if node.tentative else ""
        return f"{kind}{id} ({_quote(node.text)})"
