"""A run's progress on a terminal, drawn with rich: below the lines of the steps that finished (as
:class:`~.show.TextReporter` writes them), a live block with each running step, its elapsed time
and last output line, and for a parallel stage its partitions done / total with a bar, the rate,
the ETA, the backend and the Dask dashboard link. ``-v`` prints each output line above the block
(``sleepy │ line``). The block exists only while a step runs, and leaves nothing on the screen.

This module imports rich: it is imported only when a run shows its progress on a terminal.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, TextIO

from rich.console import Console
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.spinner import Spinner
from rich.table import Table
from rich.text import Text

from .plain import Running, TrackingReporter

if TYPE_CHECKING:  # pragma: no cover
    from ..execute.outcome import RunResult, StepOutcome

REFRESH = 10  # redraws per second
BAR = 24  # the bar's width in cells


class LiveReporter(TrackingReporter):
    """The run on a terminal: finished steps' lines above, the running steps in a live block."""

    wants_live = frozenset({"output", "progress"})

    def __init__(self, out: TextIO, width: int = 20, color: bool = True, verbose: bool = False) -> None:
        super().__init__(out, width, color=color, verbose=verbose)
        self.console = Console(file=out, no_color=not color, highlight=False, soft_wrap=False)
        self._spinners: dict[str, Spinner] = {}
        self._live: Live | None = None

    # -- what the runner says ------------------------------------------------------------
    def _line(self, text: str) -> None:
        with self._lock:
            self.console.print(Text.from_ansi(text), soft_wrap=True)  # above the live block

    def step_started(
        self, step_id: str, why: list[str], attempt: int, interpreter: str | None = None
    ) -> None:
        super().step_started(step_id, why, attempt, interpreter)
        with self._lock:
            self._spinners.setdefault(step_id, Spinner("dots", style="cyan"))
            if self._live is None:
                self._live = Live(
                    _Block(self),
                    console=self.console,
                    refresh_per_second=REFRESH,
                    transient=True,
                    redirect_stdout=False,
                    redirect_stderr=False,
                )
                self._live.start()

    def step_finished(self, outcome: StepOutcome) -> None:
        super().step_finished(outcome)
        with self._lock:
            self._spinners.pop(outcome.id, None)
            if self._live is not None and not self.running.steps:
                self._live.stop()  # nothing runs: the block goes until the next step starts
                self._live = None

    def run_finished(self, result: RunResult) -> None:
        self.close()

    def close(self) -> None:
        with self._lock:
            if self._live is not None:
                self._live.stop()
                self._live = None

    # -- the block -----------------------------------------------------------------------
    def rows(self) -> Table:
        grid = Table.grid(padding=(0, 1))
        grid.add_column(no_wrap=True, min_width=1)
        grid.add_column(no_wrap=True, min_width=self.width)  # the id, never shortened
        grid.add_column(justify="right", no_wrap=True, min_width=6)
        grid.add_column(overflow="ellipsis", no_wrap=True, ratio=1)
        now = self.running.clock()
        for sid, step in self.running.snapshot():
            spinner = self._spinners.get(sid) or Spinner("dots")
            detail = stage_detail(step, now)
            last = Text(f"│ {step.last_line}", style="dim") if step.last_line else Text("")
            elapsed = Text(_duration(now - step.started))
            if detail is None:
                grid.add_row(spinner, Text(f"{sid:<{self.width}}"), elapsed, last)
                continue
            bar, words = detail
            grid.add_row(spinner, Text(f"{sid:<{self.width}}"), elapsed, _with_bar(bar, words))
            if step.last_line:
                grid.add_row("", "", "", last)
        return grid


def _with_bar(bar: ProgressBar, words: Text) -> Table:
    row = Table.grid(padding=(0, 1))
    row.add_column(no_wrap=True)
    row.add_column(overflow="ellipsis", no_wrap=True)
    row.add_row(bar, words)
    return row


def stage_detail(step: Running, now: float) -> tuple[ProgressBar, Text] | None:
    """A parallel stage's bar and words (``6/16 partitions · 1.5/s · ETA 7 s · pool · link``);
    None for a step that reported no partitions."""
    progress = step.progress
    done, total = progress.get("done"), progress.get("total")
    if not isinstance(done, int) or not isinstance(total, int):
        return None
    bar = ProgressBar(total=max(total, 1), completed=done, width=BAR)
    words = [step.partitions()]
    since = step.first_progress if step.first_progress is not None else step.started
    elapsed = now - since
    if done and elapsed > 0:
        rate = done / elapsed
        words.append(f"{rate:.1f}/s" if rate >= 1 else f"{60 * rate:.1f}/min")
        if total > done:
            words.append(f"ETA {_duration((total - done) / rate)}")
    if progress.get("backend"):
        words.append(str(progress["backend"]))
    if progress.get("dashboard"):
        words.append(str(progress["dashboard"]))
    return bar, Text(" · ".join(words))


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}:{rest:02d}"
    return f"{minutes // 60}:{minutes % 60:02d}:{rest:02d}"


class _Block:
    """The live block's renderable: drawn again at each refresh from the reporter's state."""

    def __init__(self, reporter: LiveReporter) -> None:
        self.reporter = reporter

    def __rich__(self) -> Table:
        return self.reporter.rows()
