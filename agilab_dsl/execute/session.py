"""Open a lab for judging or running, through the caches that keep repeated calls cheap.

Three layers, each used only while everything it was computed from is unchanged:

1. the **judgment cache** (:mod:`agilab_dsl.plan.judgment`): a whole answer — every step's state — for
   ``status`` and for a run with nothing to do;
2. the **spec cache** (here, stored by :mod:`agilab_dsl.plan.cache`): the lab validated, its graph and
   the settings snapshot, as plain data (:class:`~agilab_dsl.plan.spec.LabSpec`), keyed by the content
   of every file the check consulted. A run after an input changed starts from it, without pydantic
   or a TOML parse;
3. the full load: parse, validate, check (:func:`agilab_dsl.check.files.check_file`).

Nothing here prints; refusals are values (:class:`Refusal`) the CLI renders.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path

from ..load.records import Record
from .judging import (
    definition_files,
    judgment_key,
    keep,
    keep_known,
    state_unchanged,
    step_readers,
    upstream_of,
    use_cache,
)
from .request import LabRequest

TYPE_CHECKING = False  # typing is not imported at run time: ~2 ms of every run's start-up
if TYPE_CHECKING:  # pragma: no cover
    from collections.abc import Iterable
    from typing import Any

    from ..load.errors import Diagnostic
    from ..plan.graph import StepGraph
    from ..plan.judgment import CachedStatus, Known
    from ..plan.spec import LabSpec
    from ..plan.stale import StepStatus
    from .agilab_env import AgilabOptions
    from .outcome import Reporter, RunOptions, RunResult
    from .pool import Worker
    from .run import Runner

SPEC_CACHE = "spec"


BUSY = "busy"  # a Refusal's kind when AGILAB's run lock for the app is held


class Refusal(Record):
    """Why a lab cannot be judged or run: diagnostics located in files, or one message."""

    _fields = ("diagnostics", "message", "kind", "value")

    def __init__(
        self,
        diagnostics: list[Diagnostic] | None = None,
        message: str | None = None,
        kind: str | None = None,  # the kind of file it is, when it is a valid file other than a lab
        value: Any = None,  # and its model (a contract runs by itself)
    ) -> None:
        self.diagnostics = [] if diagnostics is None else diagnostics
        self.message = message
        self.kind = kind
        self.value = value


class Opened(Record):
    _fields = ("spec", "graph", "settings", "warnings")

    def __init__(
        self,
        spec: LabSpec,
        graph: StepGraph,
        settings: dict[str, Any],
        warnings: list[str] | None = None,
    ) -> None:
        self.spec = spec
        self.graph = graph
        self.settings = settings
        self.warnings = [] if warnings is None else warnings


def _spec_options(request: LabRequest) -> dict[str, Any]:
    return {"settings": request.settings, "profile": request.profile, "for": "run", "infer": request.infer}


def _cached_spec(request: LabRequest) -> tuple[LabSpec, StepGraph, dict[str, Any]] | None:
    from ..plan import cache

    payload = cache.load_entry(SPEC_CACHE, request.file, _spec_options(request))
    if payload is None:
        return None
    from ..plan.graph import StepGraph
    from ..plan.spec import LabSpec

    try:
        loaded = (
            LabSpec.from_json(payload["lab"]),
            StepGraph.from_json(payload["graph"]),
            dict(payload["settings"]),
        )
        hashes = payload.get("code_hashes", {})
        if not (isinstance(hashes, dict) and all(type(v) is str for v in hashes.values())):
            return None
    except (KeyError, TypeError, ValueError):
        return None
    from ..plan.fingerprint import know_code_hashes

    know_code_hashes(hashes)  # judging a step from this spec parses no code
    return loaded


def _load_spec(request: LabRequest) -> tuple[LabSpec, StepGraph, dict[str, Any]] | Refusal:
    """Parse, validate and check the lab; keep the result as plain data when it has no errors."""
    from ..check.files import check_file
    from ..plan import cache

    obs = cache.Observations()
    result, settings = check_file(
        request.file, settings_path=request.settings, profile=request.profile, obs=obs
    )
    from ..check.functions import REFUSED_AT_RUN

    # errors, and the warnings a run refuses: code from outside the lab, a callable that runs commands
    problems = [d for d in result.diagnostics if d.is_error or d.code in REFUSED_AT_RUN]
    if settings is not None:
        problems += [d for d in settings.diagnostics if d.is_error]
    if result.kind != "lab" and not problems:
        return Refusal(
            message=f"{request.file} is a {result.kind or 'unrecognised'} file, not a lab",
            kind=result.kind,
            value=result.value,
        )
    if problems or result.value is None:
        diagnostics = problems or list(result.diagnostics)
        return Refusal(sorted(diagnostics, key=lambda d: (d.path, d.line or 0, d.column or 0)))
    lab = result.value
    if request.profile and not any(request.profile in s.stage.profiles for s in lab.stages):
        names = sorted({p for s in lab.stages for p in s.stage.profiles})
        return Refusal(
            message=f"no stage defines profile {request.profile!r}"
            + (f" (profiles: {', '.join(names)})" if names else " (the lab has no profiles)")
        )
    from ..plan.infer import lab_spec, with_edges

    assert result.graph is not None  # a cycle is an error, reported above
    spec = lab_spec(lab, request.infer)
    graph = with_edges(result.graph, spec.stages)  # producer -> consumer through inferred artifacts
    snapshot = settings.value.as_dict() if settings is not None and settings.value is not None else {}
    if use_cache(request):
        from ..plan.fingerprint import code_hash

        payload = {
            "lab": spec.to_json(),
            "graph": graph.to_json(),
            "settings": snapshot,
            # so that judging a step from the cached spec parses no code (nor imports ast: ~3 ms)
            "code_hashes": {s.stage.code: code_hash(s.stage.code) for s in spec.stages if s.stage.code},
        }
        cache.store_entry(SPEC_CACHE, request.file, _spec_options(request), obs, payload)
    return spec, graph, snapshot


def open_lab(request: LabRequest, *, load_state: bool = True, trusted: bool = False) -> Runner | Refusal:
    """A runner for the lab, ready to judge or run it; or why there is none. Without
    ``load_state`` its state is empty until the caller loads it (a run does, under the lock);
    ``trusted``: a stored judgment vouches for the state files (:meth:`LabState.load`)."""
    from ..load.errors import did_you_mean
    from ..plan.longlived import long_lived, parsed
    from ..plan.state import LabState, state_dir
    from .run import Runner

    problem = request.interpreters.problem() if request.interpreters is not None else None
    if problem is not None:
        return Refusal(message=problem)
    loaded = None
    if use_cache(request):
        with long_lived():  # a spec of 10,000 steps: its records live as long as the run
            loaded = _cached_spec(request)
    if loaded is None:  # parsed and validated: its garbage cycles collected once, at the end
        with parsed():
            fresh = _load_spec(request)
        if isinstance(fresh, Refusal):
            return fresh
        loaded = fresh
    spec, graph, snapshot = loaded
    for sid in (*request.only, *([request.from_step] if request.from_step else [])):
        if sid not in spec.ids:
            hint = did_you_mean(sid, spec.ids)
            return Refusal(message=f"no step {sid!r} in {request.file}" + (f"; {hint}" if hint else ""))
    agilab = _agilab_options(request)
    if isinstance(agilab, Refusal):
        return agilab
    state = (
        LabState.load(request.file, trusted=trusted)
        if load_state
        else LabState(state_dir(request.file) / "state.json")
    )
    runner = Runner(spec, snapshot, state, graph, agilab=agilab, interpreters=request.interpreters)
    if state.problem:
        runner.warnings.append(state.problem)
    return runner


def _agilab_options(request: LabRequest) -> AgilabOptions | Refusal:
    """``--dataframe`` (an existing CSV, Parquet or JSON file) and ``--export-dir``, made absolute."""
    from .agilab_env import AgilabOptions

    frame = request.dataframe
    if frame is not None:
        if not os.path.isfile(frame):
            return Refusal(message=f"--dataframe {frame}: no such file")
        if os.path.splitext(frame)[1].lower() not in (".csv", ".parquet", ".json"):
            return Refusal(message=f"--dataframe {frame}: a dataframe is a .csv, .parquet or .json file")
        frame = os.path.abspath(frame)
    export = os.path.abspath(request.export_dir) if request.export_dir else None
    return AgilabOptions(frame, export, request.profile)


# -- the judgment cache ------------------------------------------------------------------------
def sweep_temps(request: LabRequest) -> None:
    """Remove the temporary files that killed writers left in ``.agilab/`` and beside the lab (a run
    under the lock also sweeps its outputs' folders): for a run that has nothing to do."""
    from ..plan.state import state_dir
    from ..plan.tempfiles import sweep

    folder = state_dir(request.file)
    sweep([folder.parent], own=(folder, folder / "history", folder / "history-pending"))


def judge(
    request: LabRequest, options: RunOptions | None, known: Known | None = None
) -> tuple[Runner, list[StepStatus | CachedStatus]] | Refusal:
    """A judgment, kept in the judgment cache: in full, or from ``known`` (only the steps whose
    files changed and what is downstream judged again)."""
    from ..plan import judgment

    definition = definition_files(request)
    before = judgment.signatures(definition)
    # the lookup found the state files as the judgment has them: read lazily, then checked again
    runner = open_lab(request, trusted=known is not None)
    if isinstance(runner, Refusal):
        return runner
    if known is not None and not state_unchanged(known, set(definition[-2:])):  # a run moved it since
        from ..plan.state import LabState

        runner.state = LabState.load(request.file)  # read whole, checked
        if runner.state.problem:
            runner.warnings.append(runner.state.problem)
        known = None
    if known is not None:
        statuses = runner.statuses(options, known)
        if use_cache(request):
            keep(request, known, {}, [s for s in statuses if s.id in runner.judged_ids])
        return runner, statuses
    files, env = runner.dependencies()
    files += runner.interpreter_files()
    before |= judgment.signatures(files)
    statuses = runner.statuses(options)
    if use_cache(request) and not runner.state.repair:  # a judgment vouches for a sound state only
        judgment.store(
            request.file,
            judgment_key(request),
            [*definition_files(request), *files],
            env,
            statuses,
            runner.conditional(),
            before=before,
            readers=step_readers(runner, definition),
            upstream=upstream_of(runner),
        )
    return runner, statuses


def run(
    request: LabRequest,
    options: RunOptions,
    reporter_for: Callable[[Runner], Reporter],
    say: Callable[[str], None] | None = None,
    warm: Any = None,
    opened: Runner | None = None,
    events: Any = None,
    known: Known | None = None,
) -> tuple[Runner, RunResult] | Refusal:
    """Run the lab under its lock; afterwards, when every selected step is fresh, keep that as the
    judgment. ``reporter_for`` makes the reporter once the lab is open (it may size columns to the
    ids); ``say`` hears that the run waits for the lab's lock, and why. ``opened``: run this
    runner's definition instead of the file's (watch mode, the last good one while the file is
    broken); no judgment is kept then, the file on disk being another definition. ``events``: an
    :class:`~.events.EventHub` the run's events also go to. ``known``: the stored judgment, when
    only some steps' files changed since (:func:`known_judgment`): only those steps, and what is
    downstream, are judged, and only what they change is stored again."""
    from .pool import Worker as StepWorker

    # the first step worker boots while the lab and its state load: at 1,000 steps, one change runs
    # in 0.141 s instead of 0.155 s (A/B, medians of 10)
    early = StepWorker() if opened is None and warm is None else None
    try:
        return _run(request, options, reporter_for, say, warm, opened, events, known, early)
    finally:
        if early is not None:  # a refusal: it was never used; after a run, closed already (a no-op)
            early.close()


def _run(
    request: LabRequest,
    options: RunOptions,
    reporter_for: Callable[[Runner], Reporter],
    say: Callable[[str], None] | None,
    warm: Any,
    opened: Runner | None,
    events: Any,
    known: Known | None,
    early: Worker | None,
) -> tuple[Runner, RunResult] | Refusal:
    """:func:`run`; ``early``: the worker started for it, handed to the run's pool."""
    from ..plan import judgment
    from ..plan.state import LabState, lab_lock

    definition = definition_files(request)
    state_files = set(definition[-2:])  # the run itself rewrites these
    before = judgment.signatures([f for f in definition if f not in state_files])
    runner = opened if opened is not None else open_lab(request, load_state=False)
    if isinstance(runner, Refusal):
        return runner
    from .agilab_lock import before_run

    held, note = before_run(Path(request.file), runner.lab.module_keys, runner.settings, os.environ)
    if held is not None:  # AGILAB runs this app's workflow now
        return Refusal(message=held, kind=BUSY, value=runner)  # the lab itself is valid: its runner
    if note is not None:
        runner.warnings.append(note)
    with lab_lock(request.file, say=say):
        if known is not None and (opened is not None or not state_unchanged(known, state_files)):
            known = None  # another run moved the state meanwhile: judged in full
        # read under the lock: no other runner moves it now (and what the judgment vouches for, lazily)
        runner.state = LabState.load(request.file, trusted=known is not None)
        earlier, runner.hashes.cache = runner.hashes.cache, runner.state.hashes  # read when needed
        if type(earlier) is dict:  # hashed since the lab opened: kept, unless the state has them
            for path, entry in earlier.items():
                if path not in runner.hashes.cache:
                    runner.hashes.cache[path] = entry
        if runner.state.problem:
            runner.warnings.append(runner.state.problem)
        reporter = reporter_for(runner)
        if known is not None:
            _sweep_beside(runner, known.affected)
            result = runner.run(options, reporter, warm=warm, events=events, known=known, early=early)
            keep_known(request, runner, result, known, state_files)
            return runner, result
        files, env = runner.dependencies()
        files += runner.interpreter_files()
        data = set(runner.data_files())
        _sweep_beside(runner, runner.resolved)  # temporary files of killed writers, beside outputs
        before |= judgment.signatures([f for f in files if f not in data and f not in state_files])
        result = runner.run(options, reporter, warm=warm, events=events, early=early)
    selected = {o.id for o in result.outcomes}
    complete = all(o.status in ("ran", "fresh", "disabled") for o in result.outcomes)
    if (
        opened is None
        and use_cache(request)
        and complete
        and not runner.state.repair  # not saved repaired: a judgment vouches for a sound state only
        and not selected & set(runner.conditional())
    ):
        # every selected step is now fresh: keep that judgment, provided no data file changed after
        # its hash was taken and no definition file changed since the run started
        hashed = runner.hashed_signatures(sorted(data))
        if hashed is not None:
            statuses = [
                judgment.CachedStatus(
                    o.id,
                    "disabled" if o.status == "disabled" else "fresh",
                    tuple(o.reasons) if o.status == "disabled" else (),
                )
                for o in result.outcomes
            ]
            judgment.store(
                request.file,
                judgment_key(request),
                [*definition, *files],
                env,
                statuses,
                runner.conditional(),
                before=before | hashed,
                readers=step_readers(runner, definition),
                upstream=upstream_of(runner),
            )
    return runner, result


def _sweep_beside(runner: Runner, ids: Iterable[str]) -> None:
    """Remove the temporary files killed writers left beside these steps' outputs."""
    from ..plan.tempfiles import sweep

    sweep(
        {
            os.path.dirname(os.path.join(runner.lab_dir, p))
            for sid in ids
            for p in runner.resolved[sid].outputs
        }
    )
