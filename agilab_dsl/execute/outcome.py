"""What a run takes and gives: its options, each step's outcome, the run's result, and the
reporter protocol the scheduling loop sends outcomes to (the loop itself prints nothing).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from ..load.records import Record

TYPE_CHECKING = False  # typing is not imported at run time: ~2 ms of every run's start-up
if TYPE_CHECKING:  # pragma: no cover
    from typing import Any, Literal, Protocol

    Status = Literal["ran", "fresh", "skipped", "disabled", "failed", "blocked"]
else:
    Protocol = object  # Reporter is a Protocol to the type checker, a plain class at run time


# reasons a step does not run that AGILAB's runner also gives (skipped_not_in_sequence has no
# status of its own there: an unselected stage is simply not run)
NOT_IN_SEQUENCE = "not in the saved sequence"
OUTPUTS_EXIST = "outputs exist (skip_if_outputs_exist)"


def not_run(reasons: Sequence[str]) -> Literal["skipped", "disabled"]:
    """What a run records for a step judged ``disabled``: skipped when only AGILAB's output rule
    keeps it from running, else disabled."""
    return "skipped" if tuple(reasons) == (OUTPUTS_EXIST,) else "disabled"


class RunOptions(Record):
    """What a run was asked for (``agilab-run FILE`` options)."""

    _fields = ("only", "from_step", "force", "jobs", "keep_going", "all_stages", "backend", "scheduler")

    def __init__(
        self,
        only: tuple[str, ...] = (),
        from_step: str | None = None,
        force: bool = False,
        jobs: int = 0,  # 0: the lab's saved max_workers ([__meta__]."<key>__automation"), else 1
        keep_going: bool = False,
        all_stages: bool = False,  # --all: the stages a saved __sequence leaves out run too
        backend: str | None = None,  # --backend: the backend of every parallel step
        scheduler: str | None = None,  # --scheduler: the Dask scheduler of every dask (and gpu) step
    ) -> None:
        self.only = only
        self.from_step = from_step
        self.force = force
        self.jobs = jobs
        self.keep_going = keep_going
        self.all_stages = all_stages
        self.backend = backend
        self.scheduler = scheduler


class StepOutcome(Record):
    """How one step of a run ended, and why it ran (or not)."""

    _fields = ("id", "status", "reasons", "seconds", "error", "log", "attempts", "returned")

    def __init__(
        self,
        id: str,
        status: Status,
        reasons: list[str] | None = None,
        seconds: float = 0.0,
        error: str | None = None,
        log: str | None = None,
        attempts: int = 0,
        returned: Any = None,
    ) -> None:
        self.id = id
        self.status = status
        self.reasons = [] if reasons is None else reasons
        self.seconds = seconds
        self.error = error
        self.log = log
        self.attempts = attempts
        self.returned = returned

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "status": self.status, "reasons": self.reasons}
        if self.status in ("ran", "failed"):
            out["seconds"] = round(self.seconds, 4)
        if self.error:
            out["error"] = self.error
        if self.log:
            out["log"] = self.log
        return out


class RunResult(Record):
    """A run's outcomes, in the lab's order."""

    _fields = ("run_id", "outcomes", "interrupted", "recorded")

    def __init__(
        self,
        run_id: str,
        outcomes: list[StepOutcome],
        interrupted: bool = False,
        recorded: bool = False,  # in the experiment history (a run in which no step started is not)
    ) -> None:
        self.run_id = run_id
        self.outcomes = outcomes
        self.interrupted = interrupted
        self.recorded = recorded

    @property
    def failed(self) -> list[StepOutcome]:
        return [o for o in self.outcomes if o.status == "failed"]

    @property
    def ok(self) -> bool:
        return not self.failed and not self.interrupted

    def to_json(self) -> dict[str, Any]:
        # null when the run is not in the history (no step started): an id `history` cannot find
        return {
            "run_id": self.run_id if self.recorded else None,
            "steps": [o.to_json() for o in self.outcomes],
        }


class Reporter(Protocol):
    """What the scheduling loop tells as a run goes (see README "Event stream": each call
    becomes one event of the run's stream, :mod:`agilab_dsl.execute.events`). Called from the run's
    threads: a reporter locks what it shares."""

    def run_started(self, run_id: str, states: Mapping[str, str]) -> None: ...
    def step_queued(self, step_id: str, why: list[str]) -> None: ...
    def step_started(
        self, step_id: str, why: list[str], attempt: int, interpreter: str | None = None
    ) -> None: ...
    def step_progress(self, step_id: str, progress: Mapping[str, Any]) -> None: ...
    def step_output(self, step_id: str, line: str) -> None: ...
    def step_finished(self, outcome: StepOutcome) -> None: ...
    def note(self, text: str) -> None: ...
    def run_finished(self, result: RunResult) -> None: ...


class SilentReporter:
    """Hears everything, says nothing: the base of every reporter (each overrides what it shows)."""

    wants_live = False  # True: the run follows running steps' logs and progress files for it

    def run_started(self, run_id: str, states: Mapping[str, str]) -> None:
        return None

    def step_queued(self, step_id: str, why: list[str]) -> None:
        return None

    def step_started(
        self, step_id: str, why: list[str], attempt: int, interpreter: str | None = None
    ) -> None:
        return None

    def step_progress(self, step_id: str, progress: Mapping[str, Any]) -> None:
        return None

    def step_output(self, step_id: str, line: str) -> None:
        return None

    def step_finished(self, outcome: StepOutcome) -> None:
        return None

    def note(self, text: str) -> None:
        return None

    def run_finished(self, result: RunResult) -> None:
        return None


class Reporters(SilentReporter):
    """Several reporters heard as one (the terminal's and the event stream's)."""

    def __init__(self, *reporters: Reporter) -> None:
        self.reporters = [r for r in reporters if r is not None]
        self.wants_live = any(getattr(r, "wants_live", False) for r in self.reporters)

    def run_started(self, run_id: str, states: Mapping[str, str]) -> None:
        for r in self.reporters:
            r.run_started(run_id, states)

    def step_queued(self, step_id: str, why: list[str]) -> None:
        for r in self.reporters:
            r.step_queued(step_id, why)

    def step_started(
        self, step_id: str, why: list[str], attempt: int, interpreter: str | None = None
    ) -> None:
        for r in self.reporters:
            r.step_started(step_id, why, attempt, interpreter)

    def step_progress(self, step_id: str, progress: Mapping[str, Any]) -> None:
        for r in self.reporters:
            r.step_progress(step_id, progress)

    def step_output(self, step_id: str, line: str) -> None:
        for r in self.reporters:
            r.step_output(step_id, line)

    def step_finished(self, outcome: StepOutcome) -> None:
        for r in self.reporters:
            r.step_finished(outcome)

    def note(self, text: str) -> None:
        for r in self.reporters:
            r.note(text)

    def run_finished(self, result: RunResult) -> None:
        for r in self.reporters:
            r.run_finished(result)
