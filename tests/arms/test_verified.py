"""`verify: grounded` end to end through the loopback server: a model that trusts the first value it reads is
stale on corrected and withdrawn facts; the verified arm catches each such answer, re-asks with the live premises
only or declines, and counts its own calls; the labeller is the user's function or the task's model."""

from __future__ import annotations

import json
import re

import pytest
import yaml

import tunewise
from tunewise.errors import InputError
from tunewise.evaluation.experiment import RunOptions
from tunewise.verify.labels import LABEL_INSTRUCTIONS

STATED = re.compile(r"^The home port of (?P<s>[\w ]+?) is (?P<v>\w+)\.$")
CORRECTED = re.compile(r"^Correction: the home port of (?P<s>[\w ]+?) is now (?P<v>\w+)\.$")
WITHDRAWN = re.compile(r"^Forget what I said about the home port of (?P<s>[\w ]+?)\.$")
ASKED = re.compile(r"What is the home port of (?P<s>[\w ]+?)\?")
LABELLER = '''
import re
STATED = re.compile(r"^The home port of (?P<s>[\\w ]+?) is (?P<v>\\w+)\\.$")
CORRECTED = re.compile(r"^Correction: the home port of (?P<s>[\\w ]+?) is now (?P<v>\\w+)\\.$")
WITHDRAWN = re.compile(r"^Forget what I said about the home port of (?P<s>[\\w ]+?)\\.$")
ASKED = re.compile(r"What is the home port of (?P<s>[\\w ]+?)\\?")
CALLS = []

def label(text, role):
    CALLS.append(text)
    for op, pattern in (("assert", STATED), ("revise", CORRECTED), ("retract", WITHDRAWN), ("query", ASKED)):
        m = pattern.search(text)
        if m:
            return [{"op": op, "key": "home port of " + m.group("s"), "value": m.groupdict().get("v") or ""}]
    return []
'''
SHIPS = ["Vessa", "Marl", "Tobin", "Quay Star", "Orla", "Fenwick", "Halda", "Brisk"]


def label_reply(text: str) -> str:
    """What the scripted model answers to the verifier's labelling prompt: the same labels as the function."""
    for op, pattern in (("assert", STATED), ("revise", CORRECTED), ("retract", WITHDRAWN), ("query", ASKED)):
        m = pattern.search(text)
        if m:
            return f"{op} | home port of {m.group('s')} | {m.groupdict().get('v') or ''}".rstrip(" |")
    return "none"


def trusting_writer(messages: list[dict[str, str]]) -> str:
    """A model that answers with the first home port it reads for the ship asked about, or 'unknown'."""
    if messages[0]["content"] == LABEL_INSTRUCTIONS:
        return label_reply(messages[-1]["content"].split("] ", 1)[1])
    ship = ASKED.search(messages[-1]["content"]).group("s")
    for m in messages:
        for line in m["content"].splitlines():
            line = re.sub(r"^\[\d+\] \S+$", "", line).strip()
            found = STATED.match(line) or CORRECTED.match(line)
            if found and found.group("s") == ship:
                return found.group("v")
    return "unknown"


def write_task(root, base_url, arms):
    root.mkdir(parents=True)
    (root / "ports.py").write_text(LABELLER)
    with (root / "data.jsonl").open("w") as f:
        for i, ship in enumerate(SHIPS):
            asked = {"role": "user", "content": f"What is the home port of {ship}?"}
            first = {"role": "user", "content": f"The home port of {ship} is Lund{i}."}
            if i % 2 == 0:
                turns = [first, {"role": "user", "content": f"{ship} has three masts."},
                         {"role": "user", "content": f"Correction: the home port of {ship} is now Kemi{i}."}, asked]
                answer = f"Kemi{i}"
            else:
                turns = [first, {"role": "user", "content": f"Forget what I said about the home port of {ship}."}, asked]
                answer = "unknown"
            f.write(json.dumps({"id": f"s{i}", "messages": turns, "answer": answer, "split": "test",
                                "stale_answers": [f"Lund{i}"]}) + "\n")
    task = {
        "name": "ports",
        "data": {"path": "data.jsonl", "input": "messages", "output": "answer", "id": "id", "split_field": "split"},
        "instructions": "Answer with the home port only.",
        "metric": "exact",
        "model": {"uri": "openai:scripted", "base_url": base_url, "max_concurrency": 4, "price_in_per_1m": 0.5,
                  "price_out_per_1m": 1.5},
        "arms": arms,
        "requirements": {"min_score": 0.5},
    }
    (root / "task.yaml").write_text(yaml.safe_dump(task, sort_keys=False))
    return root / "task.yaml"


def rows(run_dir, arm):
    return [r for r in map(json.loads, (run_dir / "results.jsonl").read_text().splitlines()) if r["arm"] == arm]


ARMS = [
    {"zero_shot": {"name": "plain", "history": "none"}},
    {"zero_shot": {"name": "transcript"}},
    {"zero_shot": {"name": "verified", "verify": {"labeller": "python:ports:label"}}},
    {"zero_shot": {"name": "abstaining", "verify": {"on_stale": "abstain"}}},
]


def test_the_verifier_catches_answers_resting_on_corrected_or_withdrawn_premises(tmp_path, server):
    server.writer = trusting_writer
    task = write_task(tmp_path / "task", server.base_url, ARMS)
    outcome = tunewise.run(task, RunOptions(runs_dir=tmp_path / "runs"))
    arms = {a.name: a for a in outcome.summary.arms}
    run = outcome.store.dir

    transcript = rows(run, "transcript")
    assert all(r["stale"] and r["output"].startswith("Lund") for r in transcript)  # trusts the first value it read
    assert arms["transcript"].score == 0
    plain = rows(run, "plain")
    assert not any(r["stale"] for r in plain) and arms["plain"].score == 0.5  # sees no conversation at all

    verified = {r["example_id"]: r for r in rows(run, "verified")}
    assert arms["verified"].score == 1.0 and not any(r["stale"] for r in verified.values())
    meta = verified["s0"]["meta"]["verify"]
    assert meta["action"] == "reanswered" and meta["stale"] and "superseded" in meta["reason"]
    assert verified["s0"]["calls"] == 2  # the arm's answer and the re-asked one; the function labels for free
    extras = arms["verified"].extras
    assert (extras.caught, extras.reanswered, extras.abstained) == (8, 8, 0)

    abstaining = rows(run, "abstaining")
    assert all(r["abstained"] and not r["stale"] for r in abstaining)
    assert all("retracted" in r["meta"]["verify"]["reason"] or "superseded" in r["meta"]["verify"]["reason"]
               for r in abstaining)
    extras = arms["abstaining"].extras
    assert (extras.caught, extras.abstained) == (8, 8)
    # The task's model labels every turn and the question: 1 answer + 3 or 4 labelling calls per conversation.
    assert extras.verifier_calls == sum(len(json.loads(line)["messages"]) for line in
                                        (tmp_path / "task" / "data.jsonl").read_text().splitlines())
    assert extras.verifier_tokens > 0
    assert arms["abstaining"].calls == 8 + extras.verifier_calls

    sent = len(server.log.entries)
    again = tunewise.run(task, RunOptions(runs_dir=tmp_path / "runs", resume=outcome.store.run_id))
    assert len(server.log.entries) == sent
    assert {a.name: a.score for a in again.summary.arms} == {a.name: a.score for a in outcome.summary.arms}


def test_a_labeller_that_cannot_be_imported_is_an_error_at_its_arm_before_any_call(tmp_path, server):
    task = write_task(tmp_path / "task", server.base_url, [{"zero_shot": {"verify": {"labeller": "python:nosuch:label"}}}])
    with pytest.raises(InputError) as info:
        tunewise.run(task, RunOptions(runs_dir=tmp_path / "runs"))
    assert "verify.labeller: cannot import labeller module 'nosuch'" in info.value.message
    assert info.value.line is not None and not server.log.entries
