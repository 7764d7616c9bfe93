"""What would re-run after a lab change, data taken as unchanged: each step's fingerprint
components compared across the two definitions (contracts by content), steps the saved sequence
now selects or that are enabled again, and everything downstream of them; a step the new lab leaves
out or disables does not run at all.
"""

from __future__ import annotations

from typing import Any


class _SameData:
    """File hashes for a definition-only comparison: every data file counts as unchanged."""

    def __init__(self) -> None:
        self.cache: dict[str, Any] = {}
        self.changed = False

    def of(self, path: str) -> str:
        return "data"


def definition(runner: Any) -> dict[str, dict[str, Any]]:
    """Each step's fingerprint components with data taken as unchanged (and contracts by content)."""
    from ..plan.cache import file_sha256
    from ..plan.stale import components

    same = _SameData()
    out = {}
    for sid, step in runner.resolved.items():
        comps = components(step, runner.lab_dir, same, {})  # type: ignore[arg-type]
        if step.contract is not None:
            path = runner.lab_dir / step.contract
            comps["contract"] = {step.contract: file_sha256(path) if path.is_file() else "missing"}
            comps["stage_inputs"] = {}
        comps.pop("upstream", None)
        out[sid] = comps
    return out


def would_rerun(
    old_runner: Any, new_runner: Any, renamed: dict[str, str]
) -> tuple[list[str], dict[str, str]]:
    """The new lab's steps that would run because of the change (data unchanged), and why."""
    before, after = definition(old_runner), definition(new_runner)
    why: dict[str, str] = {}
    for sid, comps in after.items():
        was = renamed.get(sid, sid)
        if sid in renamed:
            why[sid] = f"renamed from {was}: nothing is recorded under its new id"
        elif was not in before:
            why[sid] = "new step"
        elif before[was] != comps:
            keys = [k for k in comps if before[was].get(k) != comps.get(k)]
            why[sid] = "changed: " + ", ".join(keys)
    from .agilab_keys import runs, selection_reason

    placed = {s.id: s for s in new_runner.lab.stages}
    old_placed = {s.id: s for s in old_runner.lab.stages}
    for sid, step in placed.items():
        reason = selection_reason(old_placed.get(renamed.get(sid, sid)), step)
        if reason is not None and sid not in why:
            why[sid] = reason
    graph = new_runner.full_graph
    for sid in list(graph.order()):
        if sid in why:
            continue
        ups = sorted(u for u in graph.upstream(sid) if u in why)
        if ups:
            why[sid] = f"upstream {ups[0]} re-runs"
    # a step the new lab leaves out of its saved sequence, or disables, does not run at all
    order = [sid for sid in graph.order() if sid in why and runs(placed[sid])]
    return order, why
