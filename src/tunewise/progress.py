"""A rich progress bar per arm: done, errors, tokens and cost so far (written to stderr)."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from tunewise.arms.base import Result


class RichProgress:
    """ProgressSink drawing one bar per arm; use as a context manager."""

    def __init__(self, console: Console | None = None):
        self.console = console or Console(stderr=True)
        self._progress = Progress(
            TextColumn("[bold]{task.description:<16}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[info]}"),
            TimeElapsedColumn(),
            console=self.console,
        )
        self._rows: dict[str, Any] = {}
        self.run_id: str | None = None
        self._stopped = False

    def __enter__(self) -> RichProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.run_id is not None and not self._stopped:
            self._stopped = True
            self._progress.stop()

    def clear(self) -> None:
        """Stop drawing and take the bars away, so an error's one line stands alone under the run's header. (Not
        on a terminal nothing was drawn yet, the final state being printed on stop: so nothing is printed.)"""
        if self.run_id is None or self._stopped:
            return
        self._stopped = True
        self._progress.live.transient = True
        quiet = self.console.quiet
        self.console.quiet = quiet or not self.console.is_terminal
        try:
            self._progress.stop()
        finally:
            self.console.quiet = quiet

    def start_run(self, run_id: str, directory: str) -> None:
        """Draws nothing until a run really starts, so an input error prints only its one line."""
        self.run_id = run_id
        self.console.print(f"run [bold]{run_id}[/bold] -> {directory}")
        self._progress.start()

    def start_arm(self, arm: str, total: int, done: int) -> None:
        self._rows[arm] = self._progress.add_task(
            arm, total=total, completed=done, errors=0, tokens=0, cost=0.0, info=self._usage(0, 0, 0.0)
        )

    def advance(self, arm: str, result: Result) -> None:
        row = self._rows[arm]
        fields = self._progress.tasks[row].fields
        fields["errors"] += result.error is not None
        fields["tokens"] += result.tokens_in + result.tokens_out
        fields["cost"] += result.fresh_cost
        self._progress.update(row, advance=1, info=self._usage(fields["errors"], fields["tokens"], fields["cost"]))

    def training(self, arm: str, step: int, total: int, loss: float) -> None:
        """A row of its own while an arm trains: steps and the latest loss."""
        key = f"{arm} (training)"
        if key not in self._rows:
            self._rows[key] = self._progress.add_task(f"{arm} train", total=total, info="")
        self._progress.update(self._rows[key], completed=step, total=total, info=f"loss {loss:.3f}")

    @staticmethod
    def _usage(errors: int, tokens: int, cost: float) -> str:
        return f"errors {errors} tokens {tokens:<7,} ${cost:.4f}"


class StepProgress:
    """A bar for a long loop (embedding, training): shown only once work starts; `update(done, total)`."""

    def __init__(self, console: Console, label: str, *extra: TextColumn):
        self._progress = Progress(
            TextColumn(f"[bold]{label:<16}"), BarColumn(), MofNCompleteColumn(), *extra, TimeElapsedColumn(),
            console=console,
        )
        self._row: Any = None

    def __enter__(self) -> StepProgress:
        return self

    def __exit__(self, exc_type: type[BaseException] | None = None, *exc: object) -> None:
        if self._row is not None:
            if exc_type is None:
                self._progress.stop()
            else:  # cleared without a trace, so the error's one line stands alone
                self._progress.live.transient = True
                self._progress.live.stop()
            self._row = None

    def update(self, done: int, total: int, **fields: float) -> None:
        if self._row is None:
            self._progress.start()
            self._row = self._progress.add_task("work", total=total, **fields)
        self._progress.update(self._row, completed=done, total=total, **fields)
        if done >= total:
            self.__exit__()  # rich allows one live display at a time: make way for the next bar


class TrainingProgress(StepProgress):
    """Training steps with the latest loss."""

    def __init__(self, console: Console, label: str):
        super().__init__(console, label, TextColumn("loss {task.fields[loss]:.3f}"))

    def update(self, step: int, total: int, loss: float) -> None:  # type: ignore[override]
        super().update(step, total, loss=loss)


class SynthProgress:
    """A bar of accepted samples out of those wanted, with rejected samples and tokens generated so far."""

    def __init__(self, console: Console, wanted: int):
        self._progress = Progress(
            TextColumn("[bold]synth"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[info]}"),
            TimeElapsedColumn(), console=console,
        )
        self._bar = self._progress.add_task("synth", total=wanted, info="")
        self.counts = {"msifr": [0, 0, 0], "filter": [0, 0, 0]}  # accepted, rejected, tokens

    def __enter__(self) -> SynthProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress.live.is_started:
            self._progress.stop()

    def update(self, outcome: Any) -> None:
        """Count a finished sample; the bar is drawn from the first one on, so an error before stands alone."""
        if not self._progress.live.is_started:
            self._progress.start()
        counts = self.counts[outcome.method]
        counts[0 if outcome.accepted else 1] += 1
        counts[2] += outcome.tokens_out
        accepted, rejected, tokens = self.counts["msifr"]
        info = f"rejected {rejected} tokens {tokens:,}"
        if self.counts["filter"][2]:
            info += f" (filter: {self.counts['filter'][2]:,})"
        self._progress.update(self._bar, completed=accepted, info=info)
