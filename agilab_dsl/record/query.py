"""Reading the experiment history back: a recorded run (:class:`Run`), its file found from an id or
an abbreviation of it, the runs listed newest first (filtered, each with the run before it) and
two runs compared step by step — status, params, settings, code, inputs, outputs and metrics in
words. Every reader first flushes the pending records (see :mod:`agilab_dsl.record.history`, which
writes the history); nothing here prints: a record left pending is told to a ``note`` callable,
and the files a listing could not read come back with it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ..plan.changes import key_changes, path_changes, settings_changes
from .history import HISTORY, flush
from .parquet_schema import import_pyarrow


@dataclass
class Run:
    """One recorded run, read back."""

    run_id: str
    started: float
    ended: float
    status: str
    lab: str
    lab_hash: str
    app: str
    git_commit: str | None
    git_dirty: bool | None
    steps: list[dict[str, Any]]
    # the steps by id (the first of an id), made when first asked and again if ``steps`` changed:
    # comparing two runs of 1,000 steps looked each up by a scan, ~45 ms a pair of runs listed
    _by_id: tuple[Any, int, dict[str, dict[str, Any]]] | None = field(
        default=None, init=False, repr=False, compare=False
    )

    @property
    def seconds(self) -> float:
        return self.ended - self.started

    def step(self, step_id: str) -> dict[str, Any] | None:
        index = self._by_id
        if index is None or index[0] is not self.steps or index[1] != len(self.steps):
            by_id: dict[str, dict[str, Any]] = {}
            for s in self.steps:
                by_id.setdefault(s["step_id"], s)
            index = self._by_id = (self.steps, len(self.steps), by_id)
        return index[2].get(step_id)

    def to_json(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "started": _iso(self.started),
            "ended": _iso(self.ended),
            "seconds": round(self.seconds, 4),
            "status": self.status,
            "lab": self.lab,
            "lab_hash": self.lab_hash,
            "app": self.app,
            "git_commit": self.git_commit,
            "git_dirty": self.git_dirty,
            "steps": self.steps,
        }


def _iso(epoch: float) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def run_files(lab_dir: Path, note: Callable[[str], None] | None = None) -> list[Path]:
    """The runs' files, newest first (run ids sort by time); ``note`` hears of a record left pending."""
    flush(lab_dir, note)
    folder = lab_dir / HISTORY
    try:
        names = [n for n in os.listdir(folder) if n.endswith(".parquet") and not n.startswith(".")]
    except (FileNotFoundError, NotADirectoryError):
        return []
    return [folder / n for n in sorted(names, reverse=True)]


class DamagedRun(ValueError):
    """A history file that cannot be read as a run (damaged, foreign, or of wrongly typed columns)."""


_RUN_COLUMNS = ("lab", "lab_hash", "app", "git_commit", "git_dirty")  # a run's, beside its run_* ones
# what the text listing shows of each run: its own columns, each step's id and status, and the params
# and metrics it compares with the run before (a run of 1,000 steps read whole: ~45 ms; these: ~10)
SUMMARY_COLUMNS = (
    "run_id",
    "run_started",
    "run_ended",
    "run_status",
    *_RUN_COLUMNS,
    "step_id",
    "status",
    "params",
    "metrics",
)


def read_run(path: Path, columns: Sequence[str] | None = None) -> Run:
    """The run recorded in ``path``; :class:`DamagedRun` (why, in words) for a file that is not one.
    ``columns``: only these of its columns (those it has), for a caller that shows no more of the
    steps (their other keys are then absent)."""
    try:
        return _read_run(path, columns)
    except DamagedRun:
        raise
    except RecursionError:
        raise DamagedRun("nested too deeply") from None
    except (OSError, ValueError, KeyError, IndexError, TypeError, AttributeError) as exc:
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise DamagedRun(f"{type(exc).__name__}: {why}" if not isinstance(exc, OSError) else why) from None


def _read_run(path: Path, columns: Sequence[str] | None = None) -> Run:
    import_pyarrow()
    import pyarrow.parquet as pq

    if columns is None:
        table = pq.read_table(path)
    else:
        with pq.ParquetFile(path) as source:
            present = set(source.schema_arrow.names)
            table = source.read(columns=[c for c in columns if c in present])
    data = table.to_pydict()  # column by column: no dict per row from Arrow, then one again here
    if not table.num_rows:
        raise DamagedRun("no rows")

    def first(name: str) -> Any:
        column = data.get(name)
        return column[0] if column else None

    for name in ("run_started", "run_ended"):
        if not hasattr(first(name), "timestamp"):
            raise DamagedRun(f"{name} is not a time")
    for name in ("run_id", "run_status", "lab", "lab_hash", "app"):
        if not isinstance(first(name), str):
            raise DamagedRun(f"{name} is not a text")
    if not all(isinstance(sid, str) for sid in data.get("step_id") or [None]):
        raise DamagedRun("a step_id is not a text")
    keys = [k for k in data if not k.startswith("run_") and k not in _RUN_COLUMNS]
    steps = [dict(zip(keys, values, strict=True)) for values in zip(*(data[k] for k in keys), strict=True)]
    loads = json.loads
    for step in steps:
        params, settings = step.get("params"), step.get("settings")
        step["params"] = loads(params) if params is not None else None
        step["settings"] = loads(settings) if settings is not None else None
        step["metrics"] = dict(step.get("metrics") or [])
        # what the tracker logged (absent from version 1 files: read as nothing logged)
        step["tracked_metrics"] = list(step.get("tracked_metrics") or [])
        step["tracked_params"] = dict(step.get("tracked_params") or [])
        step["tracked_tags"] = dict(step.get("tracked_tags") or [])
        step["tracked_artifacts"] = list(step.get("tracked_artifacts") or [])
    return Run(
        first("run_id"),
        first("run_started").timestamp(),
        first("run_ended").timestamp(),
        first("run_status"),
        first("lab"),
        first("lab_hash"),
        first("app"),
        first("git_commit"),
        first("git_dirty"),
        steps,
    )


class Listing(list[tuple[Run, Run | None]]):
    """What :func:`listing` returns: (run, the run recorded just before it) pairs, newest first;
    ``skipped`` holds the files it could not read (a foreign or damaged file), each with why."""

    def __init__(self) -> None:
        super().__init__()
        self.skipped: list[tuple[Path, Exception]] = []


def listing(
    lab_dir: Path,
    *,
    last: int | None = None,
    status: str | None = None,
    step: str | None = None,
    note: Callable[[str], None] | None = None,
    columns: Sequence[str] | None = None,
) -> Listing:
    """Recorded runs, newest first, filtered, each with the run recorded just before it (for what
    changed); files are read only as far as needed (those that cannot be read: ``skipped``), and
    of each only ``columns`` when given (:func:`read_run`; :data:`SUMMARY_COLUMNS` for the text
    listing)."""
    files = run_files(lab_dir, note)
    read: dict[int, Run | None] = {}
    out = Listing()

    def at(n: int) -> Run | None:
        if n >= len(files):
            return None
        if n not in read:
            try:
                read[n] = read_run(files[n], columns)
            except DamagedRun as exc:  # a foreign or damaged file: named, and the others still listed
                out.skipped.append((files[n], exc))
                read[n] = None
        return read[n]

    for n in range(len(files)):
        if last is not None and len(out) >= last:
            break
        run = at(n)
        if run is None:
            continue
        if status is not None and not (run.status == status or any(s["status"] == status for s in run.steps)):
            continue
        if step is not None:
            chosen = run.step(step)
            if chosen is None:
                continue
            run = replace(run, steps=[chosen])
        out.append((run, at(n + 1)))
    return out


def changes_since(run: Run, before: Run | None) -> list[str]:
    """Params and metrics that changed since ``before``, per step, in words."""
    if before is None:
        return []
    out = []
    for step in run.steps:
        old = before.step(step["step_id"])
        if old is None:
            continue
        said = _changes(old.get("params"), step.get("params")) + metric_changes(
            old.get("metrics") or {}, step.get("metrics") or {}
        )
        out += [f"{step['step_id']}: {c}" for c in said]
    return out


class UnknownRun(Exception):
    """A run id (or abbreviation) that names no run, or more than one."""


def resolve_run(lab_dir: Path, ref: str, note: Callable[[str], None] | None = None) -> Path:
    """A run's file from its id, a prefix of it, or a prefix of its random tail (as git abbreviates)."""
    files = run_files(lab_dir, note)
    ids = [p.stem for p in files]
    exact = [p for p in files if p.stem == ref]
    if exact:
        return exact[0]
    hits = [
        p
        for p, i in zip(files, ids, strict=True)
        if i.startswith(ref) or i.rpartition("-")[2].startswith(ref)
    ]
    if len(hits) == 1:
        return hits[0]
    if not hits:
        raise UnknownRun(f"no run {ref!r} in the history ({len(ids)} run{'s' * (len(ids) != 1)} recorded)")
    shown = ", ".join(p.stem for p in hits[:5]) + (" …" if len(hits) > 5 else "")
    raise UnknownRun(f"run {ref!r} is ambiguous: {shown}")


# -- comparing ---------------------------------------------------------------------------------
def _changes(old: Any, new: Any) -> list[str]:
    return key_changes(old, new)


def metric_changes(old: Mapping[str, float], new: Mapping[str, float]) -> list[str]:
    return key_changes(old, new, numbers=True)


def file_changes(
    old: Iterable[Mapping[str, Any]] | None, new: Iterable[Mapping[str, Any]] | None
) -> list[str]:
    """``path changed`` / ``path added`` / ``path removed``, by content hash."""
    before = {i["path"]: i["hash"] for i in old or ()}
    after = {i["path"]: i["hash"] for i in new or ()}
    return [f"{path} {what}" for path, what in path_changes(before, after)]


def compare(a: Run, b: Run) -> list[dict[str, Any]]:
    """Step by step, what differs from run ``a`` to run ``b``: status, params, settings used,
    code, inputs, metrics (with deltas), outputs. Steps with no difference are left out."""
    order = [s["step_id"] for s in b.steps] + [s["step_id"] for s in a.steps if b.step(s["step_id"]) is None]
    out = []
    for sid in order:
        old, new = a.step(sid) or {}, b.step(sid) or {}
        diff: dict[str, Any] = {"step_id": sid}
        if not old or not new:
            diff["presence"] = "only in " + (b.run_id if not old else a.run_id)
        if old.get("status") != new.get("status"):
            diff["status"] = f"{old.get('status')} → {new.get('status')}"
        for kind, words in (("params", _changes), ("settings", settings_changes)):
            changed = words(old.get(kind), new.get(kind))
            if changed:
                diff[kind] = changed
        if old.get("code") and new.get("code") and old["code"] != new["code"]:
            diff["code"] = "changed"
        for kind in ("inputs", "outputs"):
            changed = file_changes(old.get(kind), new.get(kind))
            if changed:
                diff[kind] = changed
        metrics = metric_changes(old.get("metrics") or {}, new.get("metrics") or {})
        if metrics:
            diff["metrics"] = metrics
        if len(diff) > 1:
            out.append(diff)
    return out
