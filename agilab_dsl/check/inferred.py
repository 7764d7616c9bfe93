"""What ``check`` says about inferred artifacts (:mod:`agilab_dsl.plan.infer`): each stage's list, with
where each artifact was found (``check --json``: ``"inferred"``, by stage id), and an info
(``stage-no-inputs``) for a step that reads no declared or inferred input — only its code and
settings can make it stale. Kept apart from :func:`~.files.check_file`'s diagnostics: these are facts
about a sound lab, not problems, and ``--no-infer`` changes them.
"""

from __future__ import annotations

from typing import Any

from ..load.errors import Diagnostic, Severity
from ..load.parse import LoadResult, Locator
from ..plan.infer import of_lab

NO_INPUTS_HINT = (
    "if it reads files, declare them (consumes, or automation.inputs) so that a change to them re-runs it"
)


def inferred_report(
    result: LoadResult[Any], infer: bool = True
) -> tuple[dict[str, list[dict[str, Any]]], list[Diagnostic]]:
    """A loaded lab's inferred artifacts by stage id, and its ``stage-no-inputs`` infos."""
    lab = result.value
    if lab is None:
        return {}, []
    loc = Locator(result.path, result.source)
    listed: dict[str, list[dict[str, Any]]] = {}
    for s, found in zip(lab.stages, of_lab(lab) if infer else [()] * len(lab.stages), strict=True):
        stage = s.stage
        if found:
            listed[s.id] = [a.to_json() for a in found]
        runs = bool(stage.code and stage.code.strip()) or stage.function is not None
        if not runs or stage.stage is not None or stage.consumes or stage.disabled or not s.selected:
            continue  # nothing runs, a parallel contract (its glob is an input), or inputs declared
        if any(a.direction == "input" for a in found):
            continue
        off = "" if infer and stage.infer else " (inference is off: --no-infer or infer = false)"
        loc.at_key(
            "stage-no-inputs",
            f"stage {s.id!r} has no declared or inferred input: only its code and settings can make "
            f"it stale{off}",
            (s.module, s.index),
            hint=NO_INPUTS_HINT,
            severity=Severity.INFO,
        )
    return listed, loc.diagnostics
