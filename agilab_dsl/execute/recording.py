"""A finished run's entry in the experiment history (:mod:`agilab_dsl.record.history`): one row
per settled step — what it ran with, its parallel stage's spread, its metrics, outputs and error.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

from ..plan.fingerprint import digest
from ..plan.longlived import transient
from ..plan.resolve import ResolvedStep
from ..plan.spec import LabSpec, PlacedSpec
from ..plan.state import LabState
from .logs import failure_line, log_tail, stage_result
from .outcome import StepOutcome

TYPE_CHECKING = False  # typing is not imported at run time: ~2 ms of every run's start-up
if TYPE_CHECKING:  # pragma: no cover
    from typing import Any


@transient()  # a row per step: 10,000 of them when 2 steps of 10,000 ran
def record_run(
    lab: LabSpec,
    lab_dir: Path,
    state: LabState,
    resolved: Mapping[str, ResolvedStep],
    run_id: str,
    started: float,
    outcomes: list[StepOutcome],
    attempted: Mapping[str, dict[str, Any]],
    interrupted: bool,
    git: Any,
    note: Callable[[str], None],
) -> None:
    """Append this run to the experiment history (see :mod:`agilab_dsl.record.history`);
    ``note`` hears of a record left pending when it is written here and now."""
    from ..plan.cache import known_sha256
    from ..record import history
    from ..record.rows import FreshTexts, RunRecord, StepRow, metrics_of, tracked_of

    rows: list[StepRow | dict[str, Any] | str] = []
    root = str(lab_dir)
    placed = {s.id: s for s in lab.stages}
    fresh = FreshTexts()
    for o in outcomes:
        brief = state.steps.brief(o.id) if o.status == "fresh" else None
        if brief is not None:
            # a reference: the flusher copies its details from the run it last ran in (the step is
            # not rendered for it, nor its record parsed: a run that touches a few steps of a large
            # lab renders those); written as its JSON text
            p = placed[o.id]
            rows.append(fresh.text(o.id, *brief, p.index + 1, _details(p, _runtime(p, resolved, o.id))))
            continue
        rec = state.steps.get(o.id) if o.status in ("ran", "fresh") else None
        step = resolved[o.id]
        shown = _as_agilab_shows(step.placed, step.env)
        comps = rec.components if rec is not None else attempted.get(o.id)
        stage = stage_result(o.returned)
        spread = (stage or {}).get("partition_seconds") or {}
        rows.append(
            StepRow(
                o.id,
                o.status,
                list(o.reasons),
                fingerprint=rec.fingerprint if rec is not None else (digest(comps) if comps else None),
                code=(comps or {}).get("code"),
                backend=(stage or {}).get("backend"),
                workers=(stage or {}).get("workers"),
                partitions=(stage or {}).get("partitions"),
                partition_seconds_min=spread.get("min"),
                partition_seconds_median=spread.get("median"),
                partition_seconds_max=spread.get("max"),
                output_bytes=(stage or {}).get("output_bytes"),
                duration=round(o.seconds, 6) if o.status in ("ran", "failed") else None,
                attempts=o.attempts or None,
                params=step.params,
                settings=step.settings_used,
                metrics=metrics_of(o.returned) if stage is None else {},
                **_tracked(tracked_of(o.returned)),
                inputs=[{"path": p, "hash": h} for p, h in ((comps or {}).get("inputs") or {}).items()],
                outputs=[
                    {"path": p, "hash": h, "size": history.size_of(os.path.join(root, p))}
                    for p, h in (rec.outputs if rec is not None else {}).items()
                ],
                error=_error_text(o),
                **shown,
            )
        )
    failed = any(o.status in ("failed", "blocked") for o in outcomes)
    commit, dirty = git.result() if git is not None else (None, None)
    lab_file = Path(lab.path).resolve()
    try:
        lab_hash = known_sha256(str(lab_file))  # hashed already when the spec cache was checked
    except OSError:
        lab_hash = ""
    modules = getattr(lab, "module_keys", ())
    history.record(
        lab_dir,
        RunRecord(
            run_id,
            started,
            time.time(),
            "interrupted" if interrupted else ("failed" if failed else "ok"),
            str(lab_file),
            lab_hash,
            modules[0] if modules else lab_dir.name,
            commit,
            dirty,
            rows,
        ),
        note=note,
    )


def _tracked(tracked: Mapping[str, Any]) -> dict[str, Any]:
    """The history columns of what a step logged with AGILAB's tracker."""
    return {
        "tracked_metrics": list(tracked.get("metrics") or ()),
        "tracked_params": dict(tracked.get("params") or {}),
        "tracked_tags": dict(tracked.get("tags") or {}),
        "tracked_artifacts": list(tracked.get("artifacts") or ()),
    }


def _as_agilab_shows(placed: PlacedSpec, runtime: str | None) -> dict[str, Any]:
    """The stage's place (1-based, in its module's list), D, Q, M, R and E, for the history."""
    description, question, model, engine, runtime = _details(placed, runtime)
    return {
        "stage_index": placed.index + 1,
        "description": description,
        "question": question,
        "model": model,
        "engine": engine,
        "runtime": runtime,
    }


def _details(placed: PlacedSpec, runtime: str | None) -> tuple[Any, ...]:
    """The stage's D, Q, M, R and E, in the order of :data:`~agilab_dsl.record.rows.DETAILS` (and
    of :func:`_as_agilab_shows`, whose rows a fresh step's text must match)."""
    stage = placed.stage
    return (stage.description, stage.question, stage.model, stage.engine, runtime)


def _runtime(placed: PlacedSpec, resolved: Mapping[str, ResolvedStep], sid: str) -> str | None:
    """A step's E as run: as written, unless it has ``${…}`` holes (then the step is rendered)."""
    env = placed.stage.env
    return resolved[sid].env if env is not None and "${" in env else env


def _error_text(outcome: StepOutcome) -> str | None:
    """The outcome's error and, from its log, the last line of the traceback (``KeyError: 'x'``)."""
    if outcome.error is None:
        return None
    last = next((line.strip() for line in reversed(log_tail(outcome.log, 5)) if line.strip()), "")
    return f"{outcome.error}: {last}" if last and last not in outcome.error else outcome.error


def remember_failures(
    lab_dir: Path, run_id: str, outcomes: Iterable[StepOutcome], note: Callable[[str], None]
) -> None:
    """Keep which steps failed in this run (and forget those that ran) for ``status`` and the live
    page (:mod:`agilab_dsl.plan.failures`). An interrupted step is not a failure of its own."""
    from ..load.errors import os_error
    from ..plan.failures import update_failures

    failed: dict[str, str | None] = {}
    succeeded: set[str] = set()
    for o in outcomes:
        if o.status == "ran":
            succeeded.add(o.id)
        elif o.status == "failed" and o.error != "interrupted":
            failed[o.id] = failure_line(o.error, o.log)
    if not failed and not succeeded:
        return
    try:
        update_failures(lab_dir, run_id, failed, succeeded)
    except OSError as exc:
        note(f"state: the failed steps could not be kept ({os_error(exc)})")
