"""The premise graph: retraction, supersession and attack reach exactly the conclusions that lose support,
re-assertion and a withdrawn attack bring them back, cycles are refused, and the cost of a turn does not grow
with the graph."""

from __future__ import annotations

import random

import pytest

from tunewise.verify import CycleError, GraphError, Operation, PremiseGraph, UnknownNode


def chain() -> tuple[PremiseGraph, str, str, str]:
    g = PremiseGraph()
    a = g.assert_("the home port of the Vega is Lund", key="home port of Vega")
    b = g.infer("the Vega docks in Skåne", [a])
    c = g.infer("the Vega's crew speaks Swedish", [b])
    return g, a, b, c


def test_retracting_the_root_of_a_chain_stales_everything_above_it():
    g, a, b, c = chain()
    assert g.check([c]).ok and g.stale() == []
    assert g.retract(a) == (a,)
    assert g.stale() == [a, b, c]
    assert not g.is_live(b) and not g.is_live(c)
    s = g.check([c])
    assert not s.ok
    assert s.stale == (c,)
    assert s.root_causes == (a,)
    assert s.premises == ()
    assert a in s.reason and "retracted" in s.reason and "Lund" in s.reason


def test_retracting_the_root_of_a_diamond_stales_both_arms_and_the_join():
    g = PremiseGraph()
    a = g.assert_("a")
    b, c = g.infer("b", [a]), g.infer("c", [a])
    d = g.infer("d", [b, c])
    g.retract(a)
    assert g.stale() == [a, b, c, d]
    assert g.check([d]).root_causes == (a,)


def test_retracting_one_root_of_a_diamond_leaves_the_other_arm_live():
    g = PremiseGraph()
    a, e = g.assert_("a"), g.assert_("e")
    b, c = g.infer("b", [a]), g.infer("c", [e])
    d = g.infer("d", [b, c])
    g.retract(e)
    assert g.is_live(a) and g.is_live(b)
    assert g.stale() == [e, c, d]
    s = g.check([b, d])
    assert s.stale == (d,) and s.root_causes == (e,)
    assert s.premises == (a,)
    assert g.check([b]).ok


def test_revising_a_key_supersedes_the_old_premise_and_only_what_rests_on_it():
    g = PremiseGraph()
    old = g.assert_("the home port of the Vega is Lund", key="home port", turn=1)
    other = g.assert_("the Vega is a ketch", key="rig", turn=1)
    over_old = g.infer("the Vega docks in Skåne", [old, other], turn=2)
    new = g.revise("the home port of the Vega is Oslo", key="home port", turn=3)
    over_new = g.infer("the Vega docks in Norway", [new, other], turn=4)
    assert new != old
    assert g.node(old).superseded_by == new and not g.node(old).retracted
    assert g.node(new).op is Operation.REVISE
    assert not g.is_live(over_old) and g.is_live(over_new) and g.is_live(other)
    assert [n.id for n in g.live_premises("home port")] == [new]
    assert [n.id for n in g.live_premises()] == [other, new]
    s = g.check([over_old])
    assert s.root_causes == (old,)
    assert f"superseded by {new}" in s.reason and "Lund" in s.reason
    assert g.check([over_new]).premises == (other, new)


def test_asserting_on_a_key_does_not_supersede_and_revising_a_fresh_key_asserts():
    g = PremiseGraph()
    first = g.assert_("Lund", key="port")
    second = g.assert_("Oslo", key="port")
    assert g.is_live(first) and g.is_live(second)
    fresh = g.revise("a ketch", key="rig")
    assert g.node(fresh).op is Operation.ASSERT and g.node(fresh).superseded_by is None
    both = g.revise("Bergen", key="port")
    assert g.node(first).superseded_by == both and g.node(second).superseded_by == both


def test_reasserting_a_retracted_premise_revives_its_dependants():
    g, a, b, c = chain()
    g.retract(a)
    assert g.assert_("the home port of the Vega is Lund", key="home port of Vega") == a
    assert len(g) == 3
    assert g.stale() == [] and g.check([c]).ok
    g.retract(a)
    g.reassert(a, turn=5)
    assert g.is_live(c)
    assert g.history[-1].turn == 5


def test_revising_back_to_a_superseded_statement_revives_it():
    g = PremiseGraph()
    lund = g.assert_("Lund", key="port")
    over = g.infer("docks in Skåne", [lund])
    oslo = g.revise("Oslo", key="port")
    assert not g.is_live(over)
    assert g.revise("Lund", key="port") == lund
    assert g.is_live(over) and g.node(oslo).superseded_by == lund
    assert [n.id for n in g.live_premises("port")] == [lund]


def test_retracting_by_key_withdraws_every_current_claim_on_it():
    g = PremiseGraph()
    a, b = g.assert_("Lund", key="port"), g.hypothesize("maybe Oslo", key="port")
    topic = g.introduce("the Vega", key="port")
    assert g.retract(key="port") == (a, b)
    assert g.retract(key="port") == ()
    assert g.is_live(topic)
    with pytest.raises(GraphError):
        g.retract()
    with pytest.raises(GraphError):
        g.retract(a, key="port")


def test_an_attack_stales_the_target_and_its_dependants_while_the_attacker_is_live():
    g = PremiseGraph()
    claim = g.assert_("the Vega sank in 1912")
    over = g.infer("the Vega is not in service", [claim])
    source = g.assert_("a 1920 register lists the Vega")
    rebuttal = g.infer("the Vega was afloat in 1920", [source])
    g.attack(rebuttal, claim)
    assert not g.is_live(claim) and not g.is_live(over) and g.is_live(rebuttal)
    s = g.check([over])
    assert s.root_causes == (claim,) and f"attacked by {rebuttal}" in s.reason
    g.retract(source)
    assert not g.is_live(rebuttal)
    assert g.is_live(claim) and g.is_live(over)
    g.reassert(source)
    assert not g.is_live(over)


def test_a_revived_target_stays_dead_if_it_is_dead_for_another_reason():
    g = PremiseGraph()
    claim, attacker = g.assert_("claim"), g.assert_("attacker")
    g.attack(attacker, claim)
    g.retract(claim)
    g.retract(attacker)
    assert not g.is_live(claim)
    assert g.check([claim]).reason.endswith("retracted")


def test_a_link_closing_a_cycle_is_refused_and_leaves_the_graph_unchanged():
    g, a, b, c = chain()
    g.retract(a)
    before = ([g.node(i) for i in (a, b, c)], g.stale(), len(g.history))
    with pytest.raises(CycleError, match=f"{c}.*{a}|{a}.*{c}"):
        g.link(a, c)
    with pytest.raises(CycleError):
        g.link(b, b)
    assert ([g.node(i) for i in (a, b, c)], g.stale(), len(g.history)) == before
    d = g.assert_("d")
    g.link(a, d)
    assert g.node(a).supports == (d,)
    g.reassert(a)
    assert g.is_live(c)
    g.retract(d)
    assert not g.is_live(c) and g.check([c]).root_causes == (d,)


def test_attacks_that_would_make_liveness_circular_are_refused():
    g, a, b, c = chain()
    with pytest.raises(CycleError, match="itself"):
        g.attack(a, a)
    with pytest.raises(CycleError):
        g.attack(c, a)
    x = g.assert_("x")
    g.attack(x, c)
    with pytest.raises(CycleError):
        g.attack(c, x)
    assert g.stale() == [c] and g.is_live(x)


def test_unknown_ids_are_refused_by_name():
    g, a, b, c = chain()
    with pytest.raises(UnknownNode, match="'nope'"):
        g.infer("x", [a, "nope"])
    assert len(g) == 3
    with pytest.raises(UnknownNode, match="'p1', 'p2'"):
        g.check([a, "p1", "p2"])
    for call in (lambda: g.retract("nope"), lambda: g.attack(a, "nope"), lambda: g.link("nope", a),
                 lambda: g.is_live("nope"), lambda: g.node("nope"), lambda: g.reassert("nope")):
        with pytest.raises(UnknownNode):
            call()
    with pytest.raises(GraphError, match="taken"):
        g.assert_("again", id=a)
    with pytest.raises(GraphError, match="at least one"):
        g.infer("from nothing", [])


def test_ids_default_in_order_and_skip_taken_ones():
    g = PremiseGraph()
    assert g.assert_("a") == "n1"
    assert g.assert_("b", id="n2") == "n2"
    assert g.assert_("c") == "n3"
    assert "n2" in g and "n4" not in g and len(g) == 3


def test_a_ten_thousand_node_chain_propagates_without_recursion_and_a_turn_costs_a_constant():
    g = PremiseGraph()
    root = g.assert_("root")
    ids = [root]
    for i in range(10_000):
        ids.append(g.infer(f"step {i}", [ids[-1]]))
    g.retract(root)
    assert g.last_visited == 10_001
    assert not g.is_live(ids[-1]) and g.check([ids[-1]]).root_causes == (root,)
    other = g.assert_("other")
    g.link(ids[5000], other)
    assert g.last_visited <= 3
    g.retract(other)
    assert g.last_visited == 2
    g.reassert(other)
    assert g.last_visited == 2
    g.reassert(root)
    assert g.is_live(ids[-1])
    g.infer("one more", [ids[-1]])
    assert g.last_visited <= 3
    fact = g.assert_("a fresh fact")
    assert g.last_visited <= 3
    fresh = g.infer("a fresh claim", [fact])
    assert g.last_visited <= 3
    assert g.check([fresh]).ok and g.last_visited <= 3
    g.retract(fact)
    assert g.last_visited <= 3
    total = g.visited_total
    g.check([fresh])
    assert g.visited_total == total + g.last_visited


def test_an_introduced_topic_is_live_supports_nothing_and_query_adds_no_node():
    g = PremiseGraph()
    topic = g.introduce("the Vega", key="vessel")
    assert g.is_live(topic) and g.node(topic).op is Operation.INTRODUCE
    assert g.check([topic]).premises == (topic,)
    assert [n.id for n in g.live_premises("vessel")] == [topic]
    claim = g.infer("the Vega is a ship", [topic])
    assert g.query([claim]) == g.check([claim]) and len(g) == 2
    assert "query" in {o.value for o in Operation} and len(Operation) == 8


def test_a_check_over_a_hypothesis_is_tentative():
    g = PremiseGraph()
    fact = g.assert_("the Vega left Lund on Monday")
    guess = g.hypothesize("the Vega is bound for Oslo", supports=[fact])
    claim = g.infer("the Vega reaches Oslo on Wednesday", [guess])
    s = g.check([claim])
    assert s.ok and s.tentative
    assert s.premises == (fact, guess)
    assert "hypothesis" in s.reason and "tentative" in s.reason
    assert not g.check([fact]).tentative
    g.retract(fact)
    assert not g.is_live(guess) and not g.check([claim]).ok


def recomputed(g: PremiseGraph) -> list[str]:
    """The stale ids by the definition, from scratch: a fixed point over the whole graph."""
    live = dict.fromkeys(g, True)
    nodes = {i: g.node(i) for i in g}
    attackers = {i: [a for a, t in g.attacks() if t == i] for i in g}
    changed = True
    while changed:
        changed = False
        for i, n in nodes.items():
            value = (not n.retracted and n.superseded_by is None and all(live[s] for s in n.supports)
                     and not any(live[a] for a in attackers[i]))
            if value != live[i]:
                live[i], changed = value, True
    return [i for i in g if not live[i]]


@pytest.mark.parametrize("seed", range(40))
def test_incremental_liveness_matches_a_recomputation_from_scratch(seed):
    rng = random.Random(seed)
    g = PremiseGraph()
    keys = ["k1", "k2", "k3"]
    for turn in range(120):
        ids = list(g)
        pick = rng.random()
        try:
            if pick < 0.2 or not ids:
                g.assert_(rng.choice(["x", "y", "z"]), key=rng.choice(keys), turn=turn)
            elif pick < 0.3:
                g.revise(rng.choice(["x", "y", "z"]), key=rng.choice(keys), turn=turn)
            elif pick < 0.55:
                g.infer(f"c{turn}", rng.sample(ids, min(len(ids), rng.randint(1, 3))), turn=turn)
            elif pick < 0.65:
                g.retract(rng.choice(ids), turn=turn)
            elif pick < 0.7:
                g.reassert(rng.choice(ids), turn=turn)
            elif pick < 0.8:
                g.attack(rng.choice(ids), rng.choice(ids), turn=turn)
            elif pick < 0.9:
                g.link(rng.choice(ids), rng.choice(ids))
            else:
                g.hypothesize(f"h{turn}", supports=rng.sample(ids, rng.randint(0, 1)), turn=turn)
        except CycleError:
            pass
        assert g.stale() == recomputed(g)
