"""Judging a lab's steps without running them: which steps a call selects, the state of one step
now (disabled, or fresh / stale / never-ran, with its reasons, components and fingerprint), every
selected step's state for ``status`` and ``--dry-run``, and what of a stored judgment a call reuses.

A mixin of :class:`~.run.Runner`, which runs what this judges (its scheduling loop calls
:meth:`StepJudge._judge` for each step it reaches).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path

from ..plan.fingerprint import digest
from ..plan.graph import StepGraph
from ..plan.judgment import files_of
from ..plan.stale import StepStatus, components, reasons
from .agilab_env import StepContext
from .judged import JudgedFiles
from .outcome import NOT_IN_SEQUENCE, OUTPUTS_EXIST, RunOptions
from .reuse import CachedStatus, Known, Reuse

TYPE_CHECKING = False  # typing is not imported at run time: ~2 ms of every run's start-up
if TYPE_CHECKING:  # pragma: no cover
    from typing import Any, Literal

    from ..plan.steprecords import StepRecord


def recorded_hashes(record: StepRecord, lab_dir: str, inputs: bool = True) -> dict[str, str]:
    """The hashes of the files a step's record holds (inputs unless told not to, outputs,
    contract, what the contract's glob found), by absolute path: a fresh step's files' hashes at
    the stored judgment's signatures (:meth:`~agilab_dsl.plan.fingerprint.FileHashes.hint`)."""
    comps = record.components
    join = os.path.join
    out: dict[str, str] = {}
    ins = comps.get("inputs") if inputs else None
    for part in (ins, comps.get("contract"), comps.get("stage_inputs"), record.outputs):
        if type(part) is dict:
            out.update((join(lab_dir, path), h) for path, h in part.items() if type(h) is str)
    return out


def _carried_upstream(
    recorded: Any, ups: frozenset[str], fingerprints: Mapping[str, str], ran: Mapping[str, bool]
) -> dict[str, str] | None:
    """A fresh step's upstream fingerprints as its record holds them, those of the upstream steps
    that ran since put in; None unless that is exactly what ``fingerprints`` has for ``ups``
    (checked in C: a step gathering 100,000 took 0.1 s to sort and look each up)."""
    if type(recorded) is not dict or len(recorded) != len(ups) or recorded.keys() != ups:
        return None
    upstream = dict(recorded)
    upstream.update((u, fingerprints.get(u, "")) for u in ran if u in upstream)
    return upstream if upstream.items() <= fingerprints.items() else None


def outputs_exist(lab_dir: Path, outputs: Iterable[str]) -> bool:
    """AGILAB's skip rule: every declared output exists (existence only; with none, no skip)."""
    paths = list(outputs)
    return bool(paths) and all((lab_dir / p).exists() for p in paths)


class StepJudge(JudgedFiles):
    """The runner's judging of its steps (it holds the graph, the step context and the state)."""

    full_graph: StepGraph
    context: StepContext
    judged_ids: set[str]
    stored: Mapping[str, CachedStatus] = {}  # the stored judgment's statuses, when one is reused

    def select(self, options: RunOptions) -> StepGraph:
        graph = self.full_graph
        if options.from_step:
            graph = graph.from_step(options.from_step)
        if options.only:
            graph = graph.subgraph([i for i in graph.ids if i in set(options.only)])
        return graph

    def _judge(
        self,
        sid: str,
        fingerprints: Mapping[str, str],
        ran: Mapping[str, bool],
        force: bool,
        all_stages: bool = False,
    ) -> StepStatus:
        """The state of one step now: disabled, or fresh / stale / never-ran with reasons (and the
        components and fingerprint it was judged by)."""
        step = self.resolved[sid]
        if not step.placed.selected and not all_stages:
            return StepStatus(sid, "disabled", (NOT_IN_SEQUENCE,))
        if step.placed.stage.off is not None:
            return StepStatus(sid, "disabled", (step.placed.stage.off,))
        # AGILAB's rule reads the declared outputs: not df's frame, not what is inferred from the code
        declared = self.context.required_outputs(step)
        if step.placed.stage.skip_if_outputs_exist and outputs_exist(self.lab_dir, declared):
            return StepStatus(sid, "disabled", (OUTPUTS_EXIST,))
        ups = self.full_graph.upstream(sid)
        record = self.state.steps.get(sid)
        stored = self.stored.get(sid)
        inputs = upstream = None
        if record is not None and stored is not None and stored.state == "fresh":
            recorded = record.components.get("inputs")
            if type(recorded) is dict and recorded:
                inputs = self.hashes.carried(str(self.lab_dir), step.inputs, recorded)
            self.hashes.hint(recorded_hashes(record, str(self.lab_dir), inputs=inputs is None))
            upstream = _carried_upstream(record.components.get("upstream"), ups, fingerprints, ran)
        if upstream is None:
            upstream = {u: fingerprints.get(u, "") for u in sorted(ups)}
        comps = components(
            step, self.lab_dir, self.hashes, upstream, self.chooser.identity(self.interpreter(sid)), inputs
        )
        # equal components have the recorded digest: hash only what changed (most steps are fresh)
        fingerprint = (
            record.fingerprint if record is not None and record.components == comps else digest(comps)
        )
        why = reasons(record, comps, self.lab_dir, self.hashes, ran, fingerprint, step.inferred)
        if force and not why:
            why = ["forced (--force)"]
        state: Literal["never-ran", "stale", "fresh"] = (
            "never-ran" if record is None else ("stale" if why else "fresh")
        )
        return StepStatus(sid, state, tuple(why), fingerprint, comps)

    def statuses(
        self, options: RunOptions | None = None, known: Known | None = None
    ) -> list[StepStatus | CachedStatus]:
        """Every selected step's state and reasons, without running anything (``status``, ``--dry-run``).

        A step downstream of one that would run is stale too: ``upstream X will run``. ``known``: a
        stored judgment reused for the steps none of whose files changed (:mod:`.reuse`)."""
        options = options or RunOptions()
        graph = self.select(options)
        selected = set(graph.ids)  # (a tuple: `in` on it made a full judgment quadratic)
        fingerprints = self.state.steps.fingerprints()
        will: dict[str, bool] = {}
        out: list[StepStatus | CachedStatus] = []
        reuse = self._reuse(known, options, ())
        for sid in self.full_graph.order():
            stored = reuse.status(sid) if reuse is not None else None
            if stored is not None:
                will[sid] = stored.state not in ("fresh", "disabled") and sid in selected
                if sid in selected:
                    out.append(stored)
                continue
            status = self._judge(sid, fingerprints, {}, options.force and sid in selected, options.all_stages)
            if status.state in ("fresh", "stale"):
                upstream_running = [u for u in sorted(self.full_graph.upstream(sid)) if will.get(u)]
                extra = tuple(
                    f"upstream {u} will run"
                    for u in upstream_running
                    if f"upstream {u} ran" not in status.reasons
                )
                if extra and status.state == "fresh":
                    status = StepStatus(sid, "stale", extra, status.fingerprint, status.components)
                elif extra:
                    status = StepStatus(
                        sid, status.state, status.reasons + extra, status.fingerprint, status.components
                    )
                will[sid] = status.state != "fresh" and sid in selected
            if reuse is not None:
                reuse.judged_as(sid, status.state)
            if sid in selected:
                out.append(status)
        position = {sid: n for n, sid in enumerate(self.lab.ids)}
        return sorted(out, key=lambda s: position[s.id])

    def _reuse(self, known: Known | None, options: RunOptions, conditional: Iterable[str]) -> Reuse | None:
        """What of ``known`` (a stored judgment) this call reuses, None for nothing (``--force``);
        sets :attr:`judged_ids`. The files the lookup found unchanged are not looked at again."""
        reuse = Reuse(known, self.full_graph, conditional) if known and not options.force else None
        self.judged_ids = reuse.judged if reuse is not None else set(self.full_graph.ids)
        self.stored = reuse.stored if reuse is not None else {}
        if known is not None:
            self.hashes.assume(files_of(known.entry), but=known.now)
        return reuse
