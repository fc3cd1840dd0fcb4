"""The leakage guard is the contract, not a comment: an arm is never handed a test target.

A hostile arm, named in the task by `python:` like any user arm, searches everything it is handed, in
`prepare` (its parameters and context) and in every `answer` (the query and the model caller too): object
attributes, slots, containers, closures, bound methods and partials. It finds the train targets (so the
search reaches what it should) and no test target. The event loop, frames and module globals are not
searched: any code in the process can reach those, as it can read the data file; the guard is about what
the contract hands an arm.
"""

from __future__ import annotations

import json

from capitals import write_capitals_task

import tunewise
from tunewise.evaluation.experiment import RunOptions

HOSTILE = '''
import asyncio, functools, json, sqlite3, types

import tunewise


def strings(*roots, limit=500_000):
    """Every string reachable from roots by attributes, slots, containers and closures."""
    seen, stack, found = set(), list(roots), set()
    skip = (bytes, int, float, complex, bool, type(None), type, types.ModuleType, types.FrameType,
            asyncio.AbstractEventLoop, sqlite3.Connection, sqlite3.Cursor)
    while stack and len(seen) < limit:
        o = stack.pop()
        if id(o) in seen or isinstance(o, skip):
            continue
        seen.add(id(o))
        if isinstance(o, str):
            found.add(o)
            continue
        if isinstance(o, dict):
            stack += list(o.keys()) + list(o.values())
        elif isinstance(o, (list, tuple, set, frozenset)):
            stack += list(o)
        elif isinstance(o, types.FunctionType):
            stack += [c.cell_contents for c in (o.__closure__ or ()) if c.cell_contents is not None]
            stack += list(o.__defaults__ or ()) + list((o.__kwdefaults__ or {}).values())
        elif isinstance(o, types.MethodType):
            stack += [o.__self__, o.__func__]
        elif isinstance(o, functools.partial):
            stack += [o.func, *o.args, *o.keywords.values()]
        try:
            stack += list(vars(o).values())
        except TypeError:
            pass
        for cls in type(o).__mro__:
            for name in getattr(cls, "__slots__", ()):
                if hasattr(o, name):
                    stack.append(getattr(o, name))
        for name in ("__pydantic_private__", "__pydantic_extra__"):
            stack.append(getattr(o, name, None))
    return found


class Snoop(tunewise.Arm):
    class Params(tunewise.ArmParams):
        report: str

    async def prepare(self):
        self.seen = strings(self, self.params, self.context)
        return None

    async def answer(self, query, lm):
        self.seen |= strings(self, query, lm)
        with open(self.params.report, "w") as f:
            json.dump(sorted(self.seen), f)
        return tunewise.Answer("nothing")
'''


def test_a_hostile_arm_finds_train_targets_and_no_test_target(tmp_path, server):
    report = tmp_path / "seen.json"
    task = write_capitals_task(tmp_path / "task", server.base_url,
                               arms=[{"arm": "python:hostile:Snoop", "report": str(report)}])
    (tmp_path / "task" / "hostile.py").write_text(HOSTILE)
    rows = [json.loads(line) for line in (tmp_path / "task" / "data.jsonl").read_text().splitlines()]
    test_targets = {r["answer"] for r in rows if r["split"] == "test"}
    train_targets = {r["answer"] for r in rows if r["split"] == "train"}
    assert not test_targets & train_targets

    outcome = tunewise.run(task, RunOptions(runs_dir=tmp_path / "runs"))
    assert outcome.summary.arms[0].n == len(test_targets) and outcome.summary.arms[0].errors == 0
    seen = set(json.loads(report.read_text()))
    assert train_targets <= seen  # the search reaches the examples an arm may use...
    assert {q for q in seen if q.startswith("What is the capital of")}  # ...and the test queries
    leaked = {t for t in test_targets if any(t in s for s in seen)}
    assert not leaked, f"test targets reachable from an arm: {sorted(leaked)[:5]}"
