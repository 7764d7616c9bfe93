"""The judgment cache's side of a session (:mod:`.session`): the key a call on a lab is stored
under, the stored judgment looked up (whole, or but for some steps' files: :mod:`.reuse`), and what
a judgment or a run keeps of itself afterwards — each step file's readers and each step's upstream
steps in full, or only what changed (:func:`keep_known`) — plus the states in AGILAB's words that
``status`` shows from either.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence

TYPE_CHECKING = False  # typing is not imported at run time: ~2 ms of every run's start-up
if TYPE_CHECKING:  # pragma: no cover
    from typing import Any

    from ..plan.judgment import CachedStatus, Known
    from ..plan.shared import SharedState
    from ..plan.stale import StepStatus
    from .outcome import RunResult
    from .request import LabRequest
    from .run import Runner


def use_cache(request: LabRequest) -> bool:
    """Whether this call may use the caches (not ``--no-cache``, not ``AGILAB_NO_CACHE=1``)."""
    from ..plan import cache

    return request.use_cache and cache.enabled()


def judgment_key(request: LabRequest) -> dict[str, Any]:
    from ..plan.judgment import request_key

    return request_key(
        request.file,
        settings=request.settings,
        profile=request.profile,
        only=request.only,
        from_step=request.from_step,
        all_stages=request.all_stages,
        dataframe=request.dataframe,
        export_dir=request.export_dir,
        interpreters=request.interpreters.to_json() if request.interpreters else None,
        infer=request.infer,
    )


def definition_files(request: LabRequest) -> list[str]:
    """What loading a lab reads or looks for, before the lab itself says more; the last two are
    the state files a run rewrites."""
    from ..load.locate import settings_candidates

    folder = os.path.dirname(os.path.abspath(request.file))
    settings = [request.settings] if request.settings else [str(p) for p in settings_candidates(request.file)]
    agilab = os.path.join(folder, ".agilab")
    return [
        request.file,
        *settings,
        os.path.join(agilab, "state.json"),
        os.path.join(agilab, "journal.jsonl"),
    ]


def known_judgment(request: LabRequest) -> Known | None:
    """The stored judgment and what changed since, while only steps' own files changed."""
    from ..plan import judgment

    if not use_cache(request):
        return None
    return judgment.lookup_known(request.file, judgment_key(request))


def upstream_of(runner: Runner) -> dict[str, frozenset[str]]:
    """Each step's upstream steps in the lab's whole graph (for AGILAB's ready / stale)."""
    graph = runner.full_graph
    return {sid: graph.upstream(sid) for sid in graph.order()}


def shared_states(
    request: LabRequest, statuses: Sequence[StepStatus | CachedStatus], upstream: Mapping[str, Iterable[str]]
) -> dict[str, SharedState]:
    """Every step's state in AGILAB's words (:mod:`..plan.shared`), the failures of the lab's last
    runs (``.agilab/failed.json``) read now: the same for a full judgment and the cached answer."""
    from ..plan.failures import failure_reasons, read_failures
    from ..plan.shared import shared_states as shared

    lab_dir = os.path.dirname(os.path.abspath(request.file))
    return shared(statuses, upstream, failure_reasons(read_failures(lab_dir)))


def step_readers(runner: Runner, shared: list[str]) -> dict[str, list[str]]:
    """The files only steps read, and which; a file the lab as a whole also depends on (the lab,
    the settings, the state, an interpreter's) is left out: its change is judged in full."""
    common = {os.path.abspath(f) for f in [*shared, *runner.interpreter_files()]}
    return {p: ids for p, ids in runner.readers().items() if os.path.abspath(p) not in common}


def state_unchanged(known: Known, state_files: set[str]) -> bool:
    from ..plan.judgment import files_of, signatures

    stored = files_of(known.entry)
    return all(stored.get(p) == sig for p, sig in signatures(state_files).items())


def keep_known(
    request: LabRequest, runner: Runner, result: RunResult, known: Known, state_files: set[str]
) -> None:
    """After a run judged from ``known``: store the steps judged again and the files they touched,
    when every selected step is now fresh (as a full run does)."""
    from ..plan import judgment

    selected = {o.id for o in result.outcomes}
    complete = all(o.status in ("ran", "fresh", "disabled") for o in result.outcomes)
    if not (use_cache(request) and complete and not selected & set(runner.conditional())):
        return
    signed: dict[str, str] = {}
    signature = runner.hashes.signature
    for path, sig in known.now.items():  # as looked at before judging: a later change is seen again
        signed[path] = signature(path) or sig
    # the files hashed in this run (the judged steps' inputs that changed, the outputs written), as
    # hashed; every other file of theirs is as the stored judgment has it (not walked: a step
    # gathering 100,000 inputs has 99,999 of those)
    for path in runner.hashes.updated:
        hashed = signature(path)
        if hashed is not None:
            signed[path] = hashed
    signed |= judgment.signatures(state_files)
    keep(
        request,
        known,
        signed,
        [
            judgment.CachedStatus(
                o.id,
                "disabled" if o.status == "disabled" else "fresh",
                tuple(o.reasons) if o.status == "disabled" else (),
            )
            for o in result.outcomes
            if o.id in runner.judged_ids
        ],
    )


def keep(request: LabRequest, known: Known, signed: dict[str, str], statuses: list[Any]) -> None:
    """Store a judgment made from ``known``: the changed files as they were looked at (a change
    since is seen again), then ``signed``, and the statuses of the steps judged again."""
    from ..plan import judgment

    judgment.update(request.file, known, {**known.now, **signed}, statuses)
