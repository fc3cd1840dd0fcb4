"""The lab's `dialog` task: conversations whose truth is known, and the scripted labeller that reads them."""

from __future__ import annotations

import html
import json
import re
from collections import Counter
from pathlib import Path

import yaml

from tunewise.data import load_dataset
from tunewise.lab.dialog import label
from tunewise.lab.tasks import SPLIT_SIZES
from tunewise.lab.world import generate_world
from tunewise.taskfile import load_task
from tunewise.verify.conversation import Conversation
from tunewise.verify.labels import TurnLabel


def rows(world_dir: Path) -> list[dict]:
    lines = (world_dir / "tasks" / "dialog" / "data.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines]


def test_dialogs_load_as_conversations_with_the_truth_and_the_stale_answers(world_dir: Path) -> None:
    ds = load_dataset(load_task(world_dir / "tasks" / "dialog" / "task.yaml"))
    assert ds.sizes == SPLIT_SIZES
    truth = {f.question: f.value for f in generate_world(0).facts()}
    kinds = Counter()
    for example, row in zip([*ds.train, *ds.dev, *ds.test], sorted(rows(world_dir), key=lambda r: r["split"] != "train")):
        kinds[row["kind"]] += 1
        assert example.history and example.input in truth
    for row in rows(world_dir):
        documents = truth[row["messages"][-1]["content"]]
        if row["kind"] == "revised":  # the correction holds; the documents' value is what is stale
            assert row["stale_answers"] == [documents] and row["answer"] != documents
        else:
            assert row["answer"] == documents and documents not in row["stale_answers"]
    assert set(kinds) == {"stated", "revised", "retracted"} and min(kinds.values()) > 30
    spec = yaml.safe_load((world_dir / "tasks" / "dialog" / "task.yaml").read_text())
    assert spec["data"]["input"] == "messages" and spec["requirements"]["max_stale_rate"] == 0.1
    assert [(list(a)[0], a["rag"]["name"]) for a in spec["arms"]] == [
        ("rag", "rag_plain"), ("rag", "rag_transcript"), ("rag", "rag_verified"), ("rag", "rag_plain_verified"),
        ("rag", "rag_plain_abstain")]


def test_the_scripted_labeller_makes_the_stale_answer_stale_and_the_answer_live_on_every_dialog(world_dir: Path):
    for row in rows(world_dir):
        state = Conversation()
        for turn in row["messages"][:-1]:
            labels = [TurnLabel.coerce(item) for item in label(turn["content"], "user")]
            assert labels, turn  # every turn is read
            state.apply(labels, turn["content"])
        (asked,) = label(row["messages"][-1]["content"], "user")
        assert asked["op"] == "query"
        premises = state.premises(asked["key"])
        for stale in row["stale_answers"]:
            assert state.check(stale, premises, 0.8).stale, row
        answer = state.check(row["answer"], premises, 0.8)
        assert not answer.stale and answer.supported == (row["kind"] != "retracted"), row


def test_a_passage_is_labelled_by_its_sentences_and_a_correction_supersedes_it(world_dir: Path) -> None:
    revised = next(r for r in rows(world_dir) if r["kind"] == "revised")
    state = Conversation()
    for turn in revised["messages"][:-1]:
        state.apply([TurnLabel.coerce(item) for item in label(turn["content"], "user")], turn["content"])
    raw = next((world_dir / "docs").glob(f"{revised['gold_docs'][0]}.*")).read_text(encoding="utf-8")
    doc = html.unescape(re.sub(r"<[^>]+>", "\n", raw))  # the passage's text, as a reader extracts it
    facts = [TurnLabel.coerce(item) for item in label(doc, "document")]
    stale = [state.passage_premise("passage 1", f, doc) for f in facts if f.value in revised["stale_answers"]]
    assert stale and not any(p.live for p in stale)
