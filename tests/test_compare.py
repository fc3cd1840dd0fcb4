"""`tunewise report` and `tunewise compare` on constructed runs, through the library and the CLI."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from constructed_run import ArmSpec, write_run

from tunewise.decide.compare import compare_runs


def two_runs(tmp_path):
    a = write_run(tmp_path, [ArmSpec("zero_shot", [1] * 20 + [0] * 20), ArmSpec("few_shot", [1] * 30 + [0] * 10)],
                  requirements={"min_score": 0.7})
    b = write_run(tmp_path, [ArmSpec("zero_shot", [1] * 21 + [0] * 19),
                             ArmSpec("few_shot", [1] * 39 + [0] * 1, cost=0.002), ArmSpec("rag", [1] * 40)],
                  requirements={"min_score": 0.8})
    return a.run_id, b.run_id


def test_compare_says_which_changes_are_significant(tmp_path):
    run_a, run_b = two_runs(tmp_path)
    result = compare_runs(run_a, run_b, tmp_path)
    arms = {c.name: c for c in result.arms}
    zero, few, rag = arms["zero_shot"], arms["few_shot"], arms["rag"]
    assert zero.score_delta == pytest.approx(0.025) and not zero.significant and zero.shared == 40
    assert few.significant and few.method == "mcnemar exact" and few.p_value == pytest.approx(2 * 0.5**9)
    assert few.cost_delta == pytest.approx(1.0)  # $ per 1k: 0.001 -> 0.002 per query
    assert "significant: +0.225 on 40 shared examples" in few.note
    assert rag.a is None and rag.note == "only in run B"
    assert (result.recommendation_a.arm, result.recommendation_b.arm) == ("few_shot", "rag")
    changed = {s.key: (s.a, s.b) for s in result.settings}
    assert changed["requirements.min_score"] == ("0.7", "0.8")


def test_compare_pairs_only_the_examples_both_runs_answered(tmp_path):
    a = write_run(tmp_path, [ArmSpec("x", [1] * 10 + [0] * 10)])
    b = write_run(tmp_path, [ArmSpec("x", [1] * 10 + [0] * 10 + [1] * 5, errors=(0, 1))])
    (change,) = compare_runs(a.run_id, b.run_id, tmp_path).arms
    assert change.shared == 18  # 25 in B, 20 in A, two of the shared ones errored in B


def tunewise(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tunewise.cli", *args], capture_output=True, text=True)


def test_cli_report_regenerates_and_compare_prints(tmp_path):
    run_a, run_b = two_runs(tmp_path)
    r = tunewise("report", run_a, "--runs-dir", str(tmp_path))
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == [str(tmp_path / run_a / name) for name in ("summary.json", "report.md", "report.html")]
    assert json.loads((tmp_path / run_a / "summary.json").read_text())["recommendation"]["arm"] == "few_shot"
    r = tunewise("compare", run_a, run_b, "--runs-dir", str(tmp_path))
    assert r.returncode == 0, r.stderr
    assert "recommendation: few_shot → rag" in r.stdout and "requirements.min_score: 0.7 → 0.8" in r.stdout
    r = tunewise("compare", run_a, run_b, "--json", "--runs-dir", str(tmp_path))
    assert json.loads(r.stdout)["arms"][1]["significant"] is True


def test_cli_unknown_run_is_one_line_and_exit_2(tmp_path):
    for args in (["report", "nope"], ["compare", "nope", "nada"]):
        r = tunewise(*args, "--runs-dir", str(tmp_path))
        assert r.returncode == 2 and r.stderr == f"error: no run 'nope' (looked in {tmp_path})\n"
