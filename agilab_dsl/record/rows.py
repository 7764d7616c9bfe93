"""What a run records in the experiment history: a :class:`RunRecord` with one :class:`StepRow` per
step (a fresh step's row is a plain dict, :func:`fresh_row`), and the numbers and tracker records a
step handed back. :mod:`.history` writes them (JSON pending, then Parquet); plain data, standard
library only.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping

from ..load.records import Record
from .parquet_schema import SCHEMA_VERSION

TYPE_CHECKING = False  # typing is not imported at run time: ~2 ms of every run's start-up
if TYPE_CHECKING:  # pragma: no cover
    from typing import Any


class StepRow(Record):
    _fields = (
        "step_id",
        "status",
        "reasons",
        "fingerprint",
        "code",
        "backend",
        "workers",
        "partitions",
        "partition_seconds_min",
        "partition_seconds_median",
        "partition_seconds_max",
        "output_bytes",
        "duration",
        "attempts",
        "params",
        "settings",
        "metrics",
        "inputs",
        "outputs",
        "error",
        "ran_in",
        "tracked_metrics",
        "tracked_params",
        "tracked_tags",
        "tracked_artifacts",
        "stage_index",
        "description",
        "question",
        "model",
        "engine",
        "runtime",
    )

    def __init__(
        self,
        step_id: str,
        status: str,
        reasons: list[str] | None = None,
        fingerprint: str | None = None,
        code: str | None = None,  # the normalised code's hash (a function step's: "function:…")
        backend: str | None = None,
        workers: int | None = None,
        partitions: int | None = None,
        partition_seconds_min: float | None = None,
        partition_seconds_median: float | None = None,
        partition_seconds_max: float | None = None,
        output_bytes: int | None = None,  # a parallel stage's reduced output
        duration: float | None = None,
        attempts: int | None = None,
        params: Any = None,
        settings: Any = None,  # the settings values the step used
        metrics: dict[str, float] | None = None,
        inputs: list[dict[str, Any]] | None = None,  # {path, hash}
        outputs: list[dict[str, Any]] | None = None,  # {path, hash, size}
        error: str | None = None,
        ran_in: str | None = None,  # a fresh step: the run it last ran in (its details are copied from there)
        # what the step logged with AGILAB's tracker (`from agilab.tracking import tracker`)
        tracked_metrics: list[dict[str, Any]] | None = None,  # {key, value, step}, in order
        tracked_params: dict[str, str] | None = None,
        tracked_tags: dict[str, str] | None = None,
        tracked_artifacts: list[str] | None = None,
        # the stage as AGILAB shows it (schema 2; empty in files of schema 1): its 1-based place in its
        # module's list, D, Q, M, and R and E as written (E rendered)
        stage_index: int | None = None,
        description: str | None = None,
        question: str | None = None,
        model: str | None = None,
        engine: str | None = None,
        runtime: str | None = None,
    ) -> None:
        self.step_id = step_id
        self.status = status
        self.reasons = [] if reasons is None else reasons
        self.fingerprint = fingerprint
        self.code = code
        self.backend = backend
        self.workers = workers
        self.partitions = partitions
        self.partition_seconds_min = partition_seconds_min
        self.partition_seconds_median = partition_seconds_median
        self.partition_seconds_max = partition_seconds_max
        self.output_bytes = output_bytes
        self.duration = duration
        self.attempts = attempts
        self.params = params
        self.settings = settings
        self.metrics = {} if metrics is None else metrics
        self.inputs = [] if inputs is None else inputs
        self.outputs = [] if outputs is None else outputs
        self.error = error
        self.ran_in = ran_in
        self.tracked_metrics = [] if tracked_metrics is None else tracked_metrics
        self.tracked_params = {} if tracked_params is None else tracked_params
        self.tracked_tags = {} if tracked_tags is None else tracked_tags
        self.tracked_artifacts = [] if tracked_artifacts is None else tracked_artifacts
        self.stage_index = stage_index
        self.description = description
        self.question = question
        self.model = model
        self.engine = engine
        self.runtime = runtime


FROM_RAN_IN = ("code", "params", "settings", "inputs", "outputs")  # what a fresh row takes from it


def fresh_row(step_id: str, fingerprint: str, ran_in: str, shown: Mapping[str, Any]) -> dict[str, Any]:
    """A fresh step's row as the pending record holds it (what :meth:`RunRecord.to_json` would
    keep of a :class:`StepRow`): a run that ran 2 steps of 10,000 builds 9,998 of these, not rows."""
    row = {"step_id": step_id, "status": "fresh", "fingerprint": fingerprint, "ran_in": ran_in}
    row.update((k, v) for k, v in shown.items() if v is not None)
    return row


DETAILS = ("description", "question", "model", "engine", "runtime")  # a row's stage details, in order


class FreshTexts:
    """:func:`fresh_row` as the pending record's compact JSON text, byte for byte, for each fresh
    step of one run, without a dict per step nor its encoding: given the stage's place and its
    :data:`DETAILS` as values (the runner shows them as ``{"stage_index": …, "description": …,
    …}``), the strings quoted by json's own C quoting, the place written as the number it is, and
    the details' text encoded once for each distinct set of them (at 100,000 steps nearly all
    alike). The 99,999 fresh rows of a run after one change at 100,000 steps: 0.29 s, where a
    mapping built and read per step took 0.40 s (medians of 10, alternated, in process), and
    building and encoding each row ~0.5 s before that."""

    __slots__ = ("_tails",)

    def __init__(self) -> None:
        self._tails: dict[Any, str] = {}

    def text(
        self, step_id: str, fingerprint: str, ran_in: str, stage_index: int | None, details: tuple[Any, ...]
    ) -> str:
        try:
            whole = not (stage_index is None or type(stage_index) is int)
            tail = None if whole else self._tails.get(details)
        except TypeError:  # a value that cannot be a key
            whole = True
        if whole:  # the row built and encoded
            shown = {"stage_index": stage_index, **dict(zip(DETAILS, details, strict=True))}
            return json.dumps(fresh_row(step_id, fingerprint, ran_in, shown), **_COMPACT)
        if tail is None:
            kept = {k: v for k, v in zip(DETAILS, details, strict=True) if v is not None}
            tail = self._tails[details] = "," + json.dumps(kept, **_COMPACT)[1:-1] if kept else ""
        place = "" if stage_index is None else f',"stage_index":{stage_index}'
        quote = _quote_ascii
        return (
            f'{{"step_id":{quote(step_id)},"status":"fresh","fingerprint":{quote(fingerprint)},'
            f'"ran_in":{quote(ran_in)}{place}{tail}}}'
        )


try:
    from _json import encode_basestring_ascii as _quote_ascii  # what json.dumps quotes with
except ImportError:  # pragma: no cover - an interpreter without json's C accelerator
    from json.encoder import py_encode_basestring_ascii as _quote_ascii


class RunRecord(Record):
    _fields = (
        "run_id",
        "started",
        "ended",
        "status",
        "lab",
        "lab_hash",
        "app",
        "git_commit",
        "git_dirty",
        "steps",
    )

    def __init__(
        self,
        run_id: str,
        started: float,  # epoch seconds
        ended: float,
        status: str,  # ok | failed | interrupted
        lab: str,
        lab_hash: str,
        app: str,
        git_commit: str | None,
        git_dirty: bool | None,
        # a dict: a row as to_json writes it (fresh_row); a str: its JSON text (FreshTexts)
        steps: list[StepRow | dict[str, Any] | str],
    ) -> None:
        self.run_id = run_id
        self.started = started
        self.ended = ended
        self.status = status
        self.lab = lab
        self.lab_hash = lab_hash
        self.app = app
        self.git_commit = git_commit
        self.git_dirty = git_dirty
        self.steps = steps

    def to_json(self) -> dict[str, Any]:
        return {"schema": SCHEMA_VERSION, **vars(self), "steps": [_row_json(s) for s in self.steps]}

    def json_text(self, batch: int = 1000) -> Iterator[str]:
        """The compact JSON text of :meth:`to_json`, ``batch`` rows at a time (a 100,000-step run's
        record is never held whole in memory)."""
        head = json.dumps({"schema": SCHEMA_VERSION, **vars(self), "steps": []}, **_COMPACT)
        yield head[: -len("]}")]
        for start in range(0, len(self.steps), batch):
            chunk = self.steps[start : start + batch]
            if any(type(s) is str for s in chunk):  # rows given as their text (FreshTexts) kept so
                text = ",".join(s if type(s) is str else json.dumps(_row_json(s), **_COMPACT) for s in chunk)
            else:
                text = json.dumps([_row_json(s) for s in chunk], **_COMPACT)[1:-1]
            yield ("," if start else "") + text
        yield "]}"

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RunRecord:
        fields = {k: v for k, v in data.items() if k != "schema"}
        fields["steps"] = [StepRow(**s) for s in data["steps"]]
        return cls(**fields)


_COMPACT: dict[str, Any] = {"default": str, "separators": (",", ":")}


def _row_json(row: StepRow | dict[str, Any] | str) -> dict[str, Any]:
    """A row as the pending record holds it: a shallow copy (the rows hold plain data already;
    dataclasses.asdict deep-copies, ~40 ms for a 1,000-step run) without its empty fields
    (from_json gives them their defaults)."""
    if isinstance(row, dict):
        return row
    if isinstance(row, str):  # its text already (FreshTexts)
        parsed: dict[str, Any] = json.loads(row)
        return parsed
    return {k: v for k, v in vars(row).items() if v is not None and v != [] and v != {}}


def metrics_of(returned: Any) -> dict[str, float]:
    """The numbers a step handed back: a snippet's ``metrics`` dict, or a function step's returned
    mapping (booleans and non-numbers are left out), then each metric it logged with the tracker
    at its latest step (as MLflow shows a metric: the highest step, the last logged among equals)."""
    if not isinstance(returned, Mapping):
        return {}
    value = returned.get("metrics", returned.get("returned"))
    out = (
        {str(k): float(v) for k, v in value.items() if isinstance(v, int | float) and not isinstance(v, bool)}
        if isinstance(value, Mapping)
        else {}
    )
    latest: dict[str, tuple[int, float]] = {}
    for m in tracked_of(returned).get("metrics", ()):
        step = m.get("step") or 0
        if m["key"] not in latest or step >= latest[m["key"]][0]:
            latest[m["key"]] = (step, float(m["value"]))
    return out | {key: number for key, (_, number) in latest.items()}


def tracked_of(returned: Any) -> dict[str, Any]:
    """What a step logged with AGILAB's tracker: ``metrics`` [{key, value, step}], ``params``,
    ``tags``, ``artifacts`` (see ``execute/step_support/_agilab_run_step.py``)."""
    tracked = returned.get("tracked") if isinstance(returned, Mapping) else None
    return tracked if isinstance(tracked, Mapping) else {}  # type: ignore[return-value]
