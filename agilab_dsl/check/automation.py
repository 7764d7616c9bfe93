"""Rules over stages' ``automation``: a ``parallel_safe`` stage must declare a complete list of
literal output roots (else AGILAB runs it serialized: a warning), and two ``parallel_safe`` stages
that may run at the same time (neither depends on the other) must not declare overlapping outputs
(AGILAB blocks such a wave: an error here, before anything runs).

Mirrors ``_stage_parallel_output_contract`` and ``_declared_outputs_overlap`` of AGILAB's
``pipeline_run_controls.py``; paths are compared as written (relative to the lab's folder), not
resolved against AGILAB's workflow data root.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Mapping
from typing import Any

from ..load.model import LIFTED_AUTOMATION_KEYS, truthy
from ..load.parse import Locator
from ..plan.graph import StepGraph


def automation_of(raw: Mapping[str, Any]) -> dict[str, Any]:
    """A written stage's automation as AGILAB reads it: the table, plus the keys it lifts from the
    stage's top level (outputs and inputs included) when the table lacks them."""
    table = raw.get("automation")
    automation = dict(table) if isinstance(table, Mapping) else {}
    for key in (*LIFTED_AUTOMATION_KEYS, "outputs", "output_paths", "inputs", "input_paths"):
        if key in raw and key not in automation:
            automation[key] = raw[key]
    return automation


def _leaves(value: Any) -> tuple[list[str], bool]:
    """Explicit output leaves, and whether the declaration is incomplete (an empty or odd value)."""
    if isinstance(value, str):
        return ([value.strip()], False) if value.strip() else ([], True)
    if isinstance(value, Mapping | list | tuple) and value:
        items = [value[k] for k in sorted(value, key=str)] if isinstance(value, Mapping) else list(value)
        out: list[str] = []
        incomplete = False
        for item in items:
            leaves, bad = _leaves(item)
            out += leaves
            incomplete = incomplete or bad
        return out, incomplete
    return [], True


def _literal(text: str) -> bool:
    text = text.strip().strip("\"'")
    if not text or "://" in text or "`" in text or any(c in text for c in "${}*?[]"):
        return False
    return re.search(r"%[A-Za-z_][A-Za-z0-9_]*%", text) is None


def parallel_outputs(raw: Mapping[str, Any]) -> tuple[list[str], str | None]:
    """A parallel_safe stage's output roots, or why its declaration does not qualify."""
    automation = automation_of(raw)
    found = [k for k in ("outputs", "output_paths") if k in automation]
    values: list[str] = []
    incomplete = False
    for key in found:
        leaves, bad = _leaves(automation[key])
        values += leaves
        incomplete = incomplete or bad
    if not found or incomplete or not values:
        return [], (
            "parallel_safe = true needs a non-empty, complete automation.outputs list of literal output roots"
        )
    for value in values:
        if not _literal(value):
            return [], f"parallel output root {value!r} is dynamic; declare one literal path root"
    return sorted({posixpath.normpath(v.replace("\\", "/").strip()) for v in values}), None


def overlap(left: str, right: str) -> bool:
    """Equal or nested paths (``out`` and ``out/a.csv``); ``.`` overlaps everything."""
    if left.startswith("/") != right.startswith("/"):
        return False
    a, b = (tuple(p for p in x.split("/") if p) or (".",) for x in (left, right))
    if a == (".",) or b == (".",):
        return True
    common = min(len(a), len(b))
    return a[:common] == b[:common]


def check_automation(loc: Locator, stages: Any, raw: Mapping[str, Any], graph: StepGraph | None) -> None:
    safe: list[tuple[Any, list[str]]] = []
    for s in stages:
        written = raw[s.module][s.index]
        table = written.get("automation")
        if isinstance(table, Mapping) and "parallel_safe" in table:
            declared = table["parallel_safe"]
        else:  # lifted from the stage's top level, as automation_of does
            declared = written.get("parallel_safe")
        if not truthy(declared):
            continue
        outputs, problem = parallel_outputs(written)
        where = (s.module, s.index, "automation") if "automation" in written else (s.module, s.index)
        if problem is not None:
            loc.at_key(
                "parallel-safe-incomplete",
                f"stage {s.id!r}: {problem}; AGILAB runs it serialized",
                where,
                hint="list every output root in automation.outputs, or drop parallel_safe",
            )
            continue
        safe.append((s, outputs))
    for n, (right, right_out) in enumerate(safe):
        for left, left_out in safe[:n]:
            if graph is not None and (
                left.id in graph.ancestors(right.id) or right.id in graph.ancestors(left.id)
            ):
                continue  # ordered by a dependency: never at the same time
            pair = next(((a, b) for a in left_out for b in right_out if overlap(a, b)), None)
            if pair is None:
                continue
            written = raw[right.module][right.index]
            loc.at_key(
                "parallel-outputs-overlap",
                f"parallel_safe stages {left.id!r} and {right.id!r} may run at once and declare "
                f"overlapping outputs: {pair[0]!r} and {pair[1]!r}",
                (right.module, right.index, "automation")
                if "automation" in written
                else (right.module, right.index),
                hint=f"add deps = [{left.id!r}] to serialize them, or use disjoint outputs",
            )
