"""The grounded-continuation verifier's per-turn cost at 10 to 10,000 turns, against re-reading the transcript.

One long conversation in the lab's phrasings (tunewise/lab/documents.py's sentences, the `dialog` task's
"Correction: ..." and "Forget what I said about ..." turns, tunewise/lab/world.py's questions) over subjects
invented as the conversation goes (NameMaker), generated from a seed: every `--ask-every`-th turn a question about a
random earlier key with a candidate answer (the current value, or a stale one a quarter of the time), the other
turns 85% statements (a new fact, or now and then the current value of an earlier one again), 10% corrections and
5% withdrawals of a random earlier key. Labels come from the lab's scripted labeller (tunewise.lab.dialog.label),
counted as the one model call per text the model labeller would make.

- verifier: what a verified arm does per turn: label the new turn, `Conversation.apply`, and on a question
  `premises(key)` and `check(answer)`. Timed turn by turn over the whole run; a checkpoint's figure is the mean
  over the last `--window` turns up to it (all 10 at 10 turns).
- transcript: what a verifier without state does at turn t: label all t turns again into a fresh `Conversation`
  and check the answer; t model calls, the tokens of all t turns. Timed at each checkpoint turn (a question turn),
  `--rereads` times per repeat, the median kept.

Each repeat is a new seed and measures both, one after the other; ratios are taken inside a repeat, the median
over repeats is shown with [min-max].

    .venv/bin/python bench/verify.py [--quick] [--repeats N] [--window N] [--rereads N] [--ask-every N] [--subjects N]
                                     [--seed N] [--out PATH]
"""

from __future__ import annotations

import argparse
import gc
import math
import random
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))

from tables import median, ratio, table  # noqa: E402

from tunewise.lab.dialog import CORRECTION, RELATION_WORDS, WITHDRAWAL, key, label  # noqa: E402
from tunewise.lab.documents import SENTENCES  # noqa: E402
from tunewise.lab.names import NameMaker  # noqa: E402
from tunewise.lab.teacher import Stated, invented  # noqa: E402
from tunewise.lab.world import QUESTIONS  # noqa: E402
from tunewise.verify.conversation import Conversation, turn_digests  # noqa: E402
from tunewise.verify.graph import Operation  # noqa: E402
from tunewise.verify.labels import LABEL_INSTRUCTIONS, TurnLabel  # noqa: E402

CHECKPOINTS = (10, 100, 1000, 10_000)
MIN_OVERLAP = 0.8  # the `verify:` default (tunewise/spec/verify.py)
RELATIONS = {"person": ("born_in", "birth_year", "works_at"), "company": ("founded_year", "headquarters"),
             "product": ("made_by", "price")}
FIRST_VALUE = {"birth_year": (1930, 2000), "founded_year": (1820, 2015)}
WARM_UP = 300  # turns
DEFAULT_OUT = REPO / "runs" / "bench" / "verify.html"  # runs/ is git-ignored


def tokens(text: str) -> int:
    """A token estimate: characters / 4, rounded up (no tokenizer is involved in the scripted labeller)."""
    return math.ceil(len(text) / 4)


# -- the workload -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Turn:
    text: str
    answer: str = ""  # on a question: the candidate answer checked
    stale: bool = False  # on a question: whether the workload expects that answer to rest on stale premises only


@dataclass
class _Fact:
    subject: str
    relation: str
    value: str
    said: list[str] = field(default_factory=list)  # every value stated on the key
    withdrawn: bool = False


def workload(turns: int, seed: int, ask_every: int, subjects: int) -> list[Turn]:
    """One conversation of `turns` user turns; `subjects` > 0 caps the subjects (keys then accumulate history)."""
    rng = random.Random(seed)
    names = NameMaker(rng)
    facts: dict[str, _Fact] = {}
    keys: list[str] = []
    people: list[tuple[str, str]] = []  # (kind, subject) made so far

    def sentence(fact: _Fact, value: str) -> str:
        return rng.choice(SENTENCES[fact.relation]).format(s=fact.subject, v=value)

    def new_fact() -> str:
        if subjects and len(people) >= subjects or people and rng.random() < 0.3:
            kind, subject = rng.choice(people)
        else:
            kind = rng.choice(tuple(RELATIONS))
            subject = getattr(names, kind)()
            people.append((kind, subject))
        relation = rng.choice(RELATIONS[kind])
        k = key(relation, subject)
        if k in facts:  # already said: say its current value again
            return k
        if relation in FIRST_VALUE:
            value = str(rng.randint(*FIRST_VALUE[relation]))
        elif relation == "price":
            value = f"{rng.randint(2, 90) * 10} crowns"
        else:
            value = names.company() if relation in ("works_at", "made_by") else names.place()
        facts[k] = _Fact(subject, relation, value)
        keys.append(k)
        return k

    out: list[Turn] = []
    for t in range(1, turns + 1):
        if t % ask_every == 0 and keys:
            fact = facts[rng.choice(keys)]
            stale = [v for v in fact.said if fact.withdrawn or v != fact.value]
            if stale and (fact.withdrawn or rng.random() < 0.25):
                answer, expect = rng.choice(stale), True
            else:
                answer, expect = fact.value, False
            out.append(Turn(QUESTIONS[fact.relation].format(s=fact.subject), f"{answer}.", expect))
            continue
        u = rng.random() if keys else 1.0
        if u < 0.10:  # a correction of an earlier key
            fact = facts[rng.choice(keys)]
            fact.value = invented(Stated(fact.subject, fact.relation, fact.value), rng)
            fact.withdrawn = False
            text = CORRECTION + sentence(fact, fact.value)
        elif u < 0.15:  # a withdrawal
            fact = facts[rng.choice(keys)]
            fact.withdrawn = True
            text = WITHDRAWAL.format(w=RELATION_WORDS[fact.relation], s=fact.subject)
        else:  # a statement: mostly a new fact, else an earlier key's value (again, or again after a withdrawal)
            fact = facts[new_fact() if rng.random() < 0.8 or not keys else rng.choice(keys)]
            fact.withdrawn = False
            text = sentence(fact, fact.value)
        if fact.value not in fact.said:
            fact.said.append(fact.value)
        out.append(Turn(text))
    return out


# -- the two methods ----------------------------------------------------------------------------------------------


def labelled(text: str) -> list[TurnLabel]:
    """The scripted labeller's labels for one user turn: one model labeller call."""
    return [TurnLabel.coerce(item) for item in label(text, "user")]


def answer_check(conv: Conversation, labels: list[TurnLabel], turn: Turn) -> bool:
    """What a verified arm does before returning the answer to a question: its key's premises, the check."""
    premises = [p for lab in labels if lab.op is Operation.QUERY for p in conv.premises(lab.key)]
    return conv.check(turn.answer, premises, MIN_OVERLAP).stale


@dataclass
class Incremental:
    seconds: list[float]  # per turn
    visited: list[int]  # graph nodes visited per turn (visited_total deltas)
    right: int = 0  # question verdicts as the workload expects
    asked: int = 0
    unkeyed_us: dict[int, float] = field(default_factory=dict)  # premises() of the whole conversation + check, at T
    nodes: dict[int, int] = field(default_factory=dict)  # graph size at T


def run_verifier(conversation: list[Turn], checkpoints: tuple[int, ...]) -> Incremental:
    conv = Conversation()
    graph = conv.graph
    result = Incremental([], [])
    clock = time.perf_counter
    for t, turn in enumerate(conversation, start=1):
        before = graph.visited_total
        start = clock()
        labels = labelled(turn.text)
        conv.apply(labels, turn.text)
        stale = answer_check(conv, labels, turn) if turn.answer else None
        result.seconds.append(clock() - start)
        result.visited.append(graph.visited_total - before)
        if stale is not None:
            result.asked += 1
            result.right += stale == turn.stale
        if t in checkpoints:  # untimed above: a question whose labels name no key checks every premise
            result.nodes[t] = len(graph)
            start = clock()
            conv.check(turn.answer, conv.premises(), MIN_OVERLAP)
            result.unkeyed_us[t] = (clock() - start) * 1e6
    return result


@dataclass(order=True)
class Reread:
    seconds: float
    visited: int
    calls: int
    tokens: int


def reread(conversation: list[Turn]) -> Reread:
    """Turn len(conversation) served from the transcript: every turn labelled again into a fresh conversation."""
    start = time.perf_counter()
    conv = Conversation()
    for turn in conversation:
        labels = labelled(turn.text)
        conv.apply(labels, turn.text)
    answer_check(conv, labels, conversation[-1])
    seconds = time.perf_counter() - start
    return Reread(seconds, conv.graph.visited_total, len(conversation), sum(tokens(t.text) for t in conversation))


def digests_us(conversation: list[Turn], reps: int = 3) -> float:
    """What `Conversations.take` spends finding the longest known prefix: a digest of every prefix of the history."""
    messages = [{"role": "user", "content": t.text} for t in conversation]
    best = math.inf
    for _ in range(reps):
        start = time.perf_counter()
        turn_digests(messages)
        best = min(best, time.perf_counter() - start)
    return best * 1e6


# -- the run ------------------------------------------------------------------------------------------------------


@dataclass
class Repeat:
    verifier_us: dict[int, float]
    verifier_visited: dict[int, float]
    verifier_tokens: dict[int, float]
    transcript: dict[int, Reread]
    unkeyed_us: dict[int, float]
    digests_us: dict[int, float]
    nodes: dict[int, int]
    right: int
    asked: int


def one_repeat(seed: int, args: argparse.Namespace) -> Repeat:
    conversation = workload(max(CHECKPOINTS), seed, args.ask_every, args.subjects)
    # Untimed, right before: a short other conversation, so that turn 1 does not pay for the caches the workload's
    # generation left cold (it cost ~2x a later turn without this).
    gc.collect()
    run_verifier(workload(WARM_UP, -1 - seed, args.ask_every, args.subjects), ())
    inc = run_verifier(conversation, CHECKPOINTS)
    us, visited, toks = {}, {}, {}
    for T in CHECKPOINTS:
        lo = max(0, T - args.window)
        us[T] = statistics.fmean(inc.seconds[lo:T]) * 1e6
        visited[T] = statistics.fmean(inc.visited[lo:T])
        toks[T] = statistics.fmean(tokens(t.text) for t in conversation[lo:T])
    gc.collect()
    transcript = {T: statistics.median_low([reread(conversation[:T]) for _ in range(args.rereads)])
                  for T in CHECKPOINTS}
    digests = {T: digests_us(conversation[:T]) for T in CHECKPOINTS}
    return Repeat(us, visited, toks, transcript, inc.unkeyed_us, digests, inc.nodes, inc.right, inc.asked)


def vs_first(values: list[dict[int, float]], T: int) -> list[float]:
    return [v[T] / v[CHECKPOINTS[0]] for v in values]


def report(reps: list[Repeat], args: argparse.Namespace) -> tuple[float, float]:
    first, last = CHECKPOINTS[0], CHECKPOINTS[-1]
    ver = [r.verifier_us for r in reps]
    tra = [{T: r.transcript[T].seconds * 1e6 for T in CHECKPOINTS} for r in reps]
    rows = []
    for T in CHECKPOINTS:
        rows.append([
            f"{T:,}", f"{median([v[T] for v in ver]):,.1f}", "1", f"{median([r.verifier_tokens[T] for r in reps]):.1f}",
            f"{median([r.verifier_visited[T] for r in reps]):.2f}", f"{median([v[T] for v in tra]):,.0f}",
            f"{reps[0].transcript[T].calls:,}", f"{median([r.transcript[T].tokens for r in reps]):,.0f}",
            f"{median([r.transcript[T].visited for r in reps]):,.0f}",
            ratio([t[T] / v[T] for t, v in zip(tra, ver)]), ratio(vs_first(ver, T)), ratio(vs_first(tra, T)),
        ])
    print("per turn: the verifier's µs, labeller calls, tokens, graph nodes visited; the same for the transcript "
          "re-read")
    print(table(["turns", "verifier µs", "calls", "tokens", "visited", "transcript µs", "calls", "tokens", "visited",
                 "transcript/verifier", "verifier vs 10", "transcript vs 10"], rows))
    instructions = tokens(LABEL_INSTRUCTIONS)
    print(f"(tokens: turn text only, characters/4 rounded up; the model labeller would add its ~{instructions}-token "
          f"instructions to every call, i.e. {instructions} x calls/turn more)")

    print("\nwhat the verified arm also does per answer, outside Conversation (not in the figures above)")
    rows = []
    for T in CHECKPOINTS:
        rows.append([f"{T:,}", f"{median([r.nodes[T] for r in reps]):,.0f}",
                     f"{median([r.unkeyed_us[T] for r in reps]):,.1f}",
                     ratio(vs_first([r.unkeyed_us for r in reps], T)),
                     f"{median([r.digests_us[T] for r in reps]):,.1f}",
                     ratio(vs_first([r.digests_us for r in reps], T))])
    print(table(["turns", "graph nodes", "premises() no key + check µs", "vs 10", "prefix digests µs (take)",
                 "vs 10"], rows))
    print("(premises() with no key: what arms/verified.py does when the question's labels name no key; prefix "
          "digests: Conversations.take hashes every prefix of the history on every answer)")

    right, asked = sum(r.right for r in reps), sum(r.asked for r in reps)
    print(f"\nverdicts as the workload expects: {right:,} of {asked:,} questions "
          f"({sum(r.asked for r in reps) // len(reps):,} per repeat)")
    x = median(vs_first(ver, last))
    y = median(vs_first(tra, last))
    print(f"verifier per-turn at {last:,} within 1.5x of {first}: {'yes' if x <= 1.5 else 'NO'} ({x:.2f}x); "
          f"transcript re-reading grows: {'yes' if y > 1.5 else 'NO'} ({y:.1f}x)")
    return x, y


def plot(reps: list[Repeat], out: Path) -> None:
    """Per-turn wall time and model calls against turns, log-log, both methods, in the report's style."""
    import plotly.graph_objects as go
    import plotly.io as pio

    from tunewise.report.charts import CONFIG, HEIGHT, OTHER, RECOMMENDED

    xs = list(CHECKPOINTS)

    def series(values: list[dict[int, float]]) -> tuple[list[float], list[float], list[float]]:
        mid = [median([v[T] for v in values]) for T in xs]
        return mid, [max(v[T] for v in values) - m for T, m in zip(xs, mid)], \
            [m - min(v[T] for v in values) for T, m in zip(xs, mid)]

    ver = [r.verifier_us for r in reps]
    tra = [{T: r.transcript[T].seconds * 1e6 for T in xs} for r in reps]
    time_fig = go.Figure()
    for name, values, color in (("verifier", ver, RECOMMENDED), ("transcript re-read", tra, OTHER)):
        mid, plus, minus = series(values)
        time_fig.add_trace(go.Scatter(
            x=xs, y=mid, name=name, mode="lines+markers", marker={"size": 9, "color": color}, line={"color": color},
            error_y={"type": "data", "symmetric": False, "array": plus, "arrayminus": minus, "thickness": 1.5},
            hovertemplate=name + "<br>%{x:,} turns<br>%{y:,.1f} µs per turn<extra></extra>"))
    time_fig.update_layout(xaxis_type="log", yaxis_type="log", xaxis_title="turns in the conversation",
                           yaxis_title="wall time per turn (µs, median over repeats, min-max)",
                           legend={"orientation": "h", "y": 1.1})
    tok_ver = [median([r.verifier_tokens[T] for r in reps]) for T in xs]
    tok_tra = [median([r.transcript[T].tokens for r in reps]) for T in xs]
    calls_fig = go.Figure()
    for name, calls, toks, color in (("verifier", [1] * len(xs), tok_ver, RECOMMENDED),
                                     ("transcript re-read", xs, tok_tra, OTHER)):
        calls_fig.add_trace(go.Scatter(
            x=xs, y=calls, name=name, mode="lines+markers", marker={"size": 9, "color": color}, line={"color": color},
            customdata=toks, hovertemplate=name + "<br>%{x:,} turns<br>%{y:,} labeller calls per turn<br>"
                                                  "%{customdata:,.0f} tokens per turn<extra></extra>"))
    calls_fig.update_layout(xaxis_type="log", yaxis_type="log", xaxis_title="turns in the conversation",
                            yaxis_title="labeller model calls per turn", legend={"orientation": "h", "y": 1.1})
    parts = []
    for i, (fig, title) in enumerate(((time_fig, "Per-turn wall time"), (calls_fig, "Per-turn model calls"))):
        fig.update_layout(template="plotly_white", height=HEIGHT, margin={"l": 60, "r": 30, "t": 30, "b": 50})
        html = pio.to_html(fig, include_plotlyjs=i == 0, full_html=False, div_id=f"chart-verify-{i}", config=CONFIG,
                           default_height=f"{HEIGHT}px")
        parts.append(f"<h2>{title}</h2>\n{html}")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("<!doctype html>\n<html><head><meta charset='utf-8'><title>bench/verify.py</title></head>\n"
                   "<body style='font-family: sans-serif; max-width: 960px; margin: auto'>\n"
                   "<h1>Grounded-continuation verifier: per-turn cost against re-reading the transcript</h1>\n"
                   + "\n".join(parts) + "\n</body></html>\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="5 repeats, 50-turn windows (~15 s; under a minute)")
    parser.add_argument("--repeats", type=int, default=None,
                        help="seeds, each measuring both methods (default 20; 5 with --quick)")
    parser.add_argument("--window", type=int, default=None,
                        help="turns up to a checkpoint averaged (default 100; 50 with --quick)")
    parser.add_argument("--rereads", type=int, default=3, help="transcript re-reads per checkpoint per repeat (median)")
    parser.add_argument("--ask-every", type=int, default=2, choices=(1, 2, 5, 10),
                        help="a question every N turns (N divides 10: every checkpoint turn is a question)")
    parser.add_argument("--subjects", type=int, default=0,
                        help="cap the subjects (0: new ones as the conversation goes; a cap makes keys accumulate "
                             "corrections)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="the plot (self-contained HTML)")
    args = parser.parse_args()
    repeats = args.repeats or (5 if args.quick else 20)
    args.window = args.window or (50 if args.quick else 100)
    start = time.perf_counter()
    run_verifier(workload(1000, args.seed - 1, args.ask_every, args.subjects), ())  # warm-up: imports, regexes
    reread(workload(1000, args.seed - 1, args.ask_every, args.subjects))
    reps = [one_repeat(args.seed + r, args) for r in range(repeats)]
    seconds = time.perf_counter() - start
    print(f"verifier against transcript re-reading: one conversation of {max(CHECKPOINTS):,} turns per repeat, "
          f"{repeats} repeats (seeds {args.seed}-{args.seed + repeats - 1}), a question every {args.ask_every} turns, "
          f"subjects {'capped at ' + str(args.subjects) if args.subjects else 'unbounded'}; verifier: mean over the "
          f"last {args.window} turns up to each checkpoint; transcript: the checkpoint turn re-read "
          f"{args.rereads} times per repeat, median ({seconds:.1f} s)\n")
    x, y = report(reps, args)
    plot(reps, args.out)
    print(f"plot: {args.out}")
    print(f"per-turn cost {max(CHECKPOINTS)}/{CHECKPOINTS[0]} turns: verifier {x:.2f}x, transcript {y:.1f}x")


if __name__ == "__main__":
    main()
