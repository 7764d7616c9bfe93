"""Semantic diff of two versions of a lab, a parallel contract or a settings snapshot.

What a reviewer needs from a change: per step, added / removed / renamed (same code, new id) /
reordered; code changes as a unified diff of the *normalised* code (an edit of comments or
formatting only is called cosmetic); engine, backend, mode (decoded), params, settings
dependencies, deps, artifacts and the other keys; and, for the lab as a whole, which steps would
re-run because of the change (data is taken as unchanged). For contracts: the fields changed and
what they do to the partition plan; for settings snapshots: the keys changed.

Versions are files; :func:`materialize` copies a git revision of a lab (with its settings,
function modules and contracts) into a folder so the same code compares them. The drivers git
itself calls (external diff, textconv) are in :mod:`agilab_dsl.review.git_drivers`.
"""

from __future__ import annotations

import ast
import difflib
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..load import expr
from ..load.locate import settings_candidates
from ..plan.changes import change as change_words
from ..plan.changes import key_changes
from ..plan.fingerprint import code_hash

STEP_KEYS = (  # compared key by key, in this order (code and mode are shown specially)
    "function",
    "engine",
    "env",
    "backend",
    "params",
    "settings",
    "deps",
    "consumes",
    "produces",
    "stage",
    "when",
    "retries",
    "timeout",
    "off",
    "skip_if_outputs_exist",
    "parallel_safe",
    "fallback",
)
LABELS = {"engine": "R (engine)", "env": "E (env)", "deps": "deps", "stage": "parallel stage"}


@dataclass
class StepChange:
    id: str
    kind: str  # added | removed | renamed | changed
    was: str | None = None  # a renamed step's old id
    changes: list[str] = field(default_factory=list)
    code_diff: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "kind": self.kind}
        if self.was:
            out["was"] = self.was
        if self.changes:
            out["changes"] = self.changes
        if self.code_diff:
            out["code_diff"] = self.code_diff
        return out


@dataclass
class LabDiff:
    old: str
    new: str
    steps: list[StepChange]
    order: tuple[list[str], list[str]] | None  # (old, new) order of the common steps, when it moved
    rerun: list[str]
    why: dict[str, str]
    meta: list[str] = field(default_factory=list)  # [__meta__] changes: stamp, sequences, automation

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "kind": "lab",
            "old": self.old,
            "new": self.new,
            "steps": [s.to_json() for s in self.steps],
            "would_rerun": [{"id": sid, "because": self.why[sid]} for sid in self.rerun],
        }
        if self.meta:
            out["meta"] = self.meta
        if self.order:
            out["reordered"] = {"old": self.order[0], "new": self.order[1]}
        return out


# -- labs ----------------------------------------------------------------------------------------
def normalised_code(code: str) -> str:
    """The code as the fingerprint sees it, as text to show: comments, docstrings and layout gone
    (whether two codes differ is :func:`~agilab_dsl.plan.fingerprint.code_hash`'s to say)."""
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return code.strip()
    from ..plan.fingerprint import strip_docstrings

    return ast.unparse(strip_docstrings(tree))


def _mode(value: Any) -> str:
    if value is None:
        return "unset"
    try:
        bits = expr.parse_mode(value)
    except Exception:
        return str(value)
    return str(bits)


def mode_change(old: Any, new: Any) -> str:
    """``mode 4 → 13: + rapids, + pool``."""
    line = f"mode {_mode(old)} → {_mode(new)}"
    try:
        a = expr.parse_mode(old) if old is not None else 0
        b = expr.parse_mode(new) if new is not None else 0
    except Exception:
        return line
    gained = [f"+ {f}" for f in expr.mode_flags(b & ~a)]
    lost = [f"- {f}" for f in expr.mode_flags(a & ~b)]
    return line + (": " + ", ".join(gained + lost) if gained or lost else "")


def _key_changes(key: str, old: Any, new: Any) -> list[str]:
    label = LABELS.get(key, key)
    if key == "off":  # enabled = false / skip = true, on the stage or in its automation
        return [
            f"disabled ({new})"
            if old is None
            else f"enabled again (was {old})"
            if new is None
            else f"disabled: {old} → {new}"
        ]
    if isinstance(old, dict | type(None)) and isinstance(new, dict | type(None)) and (old or new):
        return key_changes(old, new, prefix=f"{label} ")
    if isinstance(old, tuple | list) and isinstance(new, tuple | list):
        gained = [x for x in new if x not in old]
        lost = [x for x in old if x not in new]
        if not gained and not lost:
            return []
        return [f"{label}: " + ", ".join([f"+ {x}" for x in gained] + [f"- {x}" for x in lost])]
    return [f"{label}: {change_words(old, new)}"]


def compare_steps(old: Any, new: Any) -> tuple[list[str], list[str]]:
    """(changes in words, unified diff of the normalised code) between two StepSpecs."""
    changes: list[str] = []
    code_diff: list[str] = []
    if (old.code or "") != (new.code or ""):
        if code_hash(old.code or "") == code_hash(new.code or ""):  # the fingerprint's own rule
            changes.append("code: cosmetic only (comments, docstrings or layout)")
        else:
            changes.append("code changed")
            a, b = normalised_code(old.code or ""), normalised_code(new.code or "")
            code_diff = list(
                difflib.unified_diff(a.splitlines(), b.splitlines(), "old", "new", lineterm="", n=2)
            )
    if old.mode != new.mode:
        changes.append(mode_change(old.mode, new.mode))
    for key in STEP_KEYS:
        a, b = getattr(old, key), getattr(new, key)
        if a != b:
            changes += _key_changes(key, a, b)
    return changes, code_diff


def _code_key(step: Any) -> tuple[str, str]:
    return (code_hash(step.code) if step.code else ""), step.function or ""


def diff_labs(old_runner: Any, new_runner: Any, old_label: str, new_label: str) -> LabDiff:
    from .agilab_keys import Raw, meta_changes, stage_changes

    old = {s.id: s.stage for s in old_runner.lab.stages}
    new = {s.id: s.stage for s in new_runner.lab.stages}
    old_placed = {s.id: s for s in old_runner.lab.stages}
    new_placed = {s.id: s for s in new_runner.lab.stages}
    old_raw, new_raw = Raw(old_runner), Raw(new_runner)
    added = [i for i in new if i not in old]
    removed = [i for i in old if i not in new]
    renamed: dict[str, str] = {}  # new id -> old id
    for nid in added:
        key = _code_key(new[nid])
        match = next(
            (
                oid
                for oid in removed
                if oid not in renamed.values() and _code_key(old[oid]) == key and key != ("", "")
            ),
            None,
        )
        if match is not None:
            renamed[nid] = match
    steps: list[StepChange] = []
    for nid in new:
        was = renamed.get(nid, nid)
        if nid in renamed:
            changes, code_diff = compare_steps(old[renamed[nid]], new[nid])
            changes += stage_changes(old_raw, new_raw, old_placed[was], new_placed[nid])
            steps.append(StepChange(nid, "renamed", renamed[nid], changes, code_diff))
        elif nid not in old:
            steps.append(StepChange(nid, "added"))
        else:
            changes, code_diff = compare_steps(old[nid], new[nid])
            changes += stage_changes(old_raw, new_raw, old_placed[was], new_placed[nid])
            if changes:
                steps.append(StepChange(nid, "changed", None, changes, code_diff))
    steps += [StepChange(oid, "removed") for oid in removed if oid not in renamed.values()]
    common_old = [i for i in old if i in new]
    common_new = [i for i in new if i in old]
    order = (common_old, common_new) if common_old != common_new else None
    from .rerun import would_rerun

    rerun, why = would_rerun(old_runner, new_runner, renamed)
    meta = meta_changes(old_runner.lab.path, new_runner.lab.path)
    return LabDiff(old_label, new_label, steps, order, rerun, why, meta)


def render_text(diff: LabDiff, *, markdown: bool = False) -> str:
    lines: list[str] = []
    head = f"{diff.old} → {diff.new}"
    lines.append(f"### Lab change: `{head}`" if markdown else head)
    for change in diff.meta:
        lines.append(f"- {change}" if markdown else f"  {change}")
    if not diff.steps and not diff.order:
        lines.append("no step changed" if not markdown else "_no step changed_")
    mark = {"added": "+", "removed": "-", "renamed": "~", "changed": "~"}
    for s in diff.steps:
        title = {
            "added": "added",
            "removed": "removed",
            "renamed": f"renamed from {s.was}",
            "changed": "changed",
        }[s.kind]
        lines.append(f"- **{s.id}** {title}" if markdown else f"{mark[s.kind]} {s.id}: {title}")
        for c in s.changes:
            lines.append(f"  - {c}" if markdown else f"    {c}")
        if s.code_diff:
            if markdown:
                lines += ["", "  ```diff", *[f"  {d}" for d in s.code_diff], "  ```"]
            else:
                lines += [f"      {d}" for d in s.code_diff]
    if diff.order:
        lines.append(
            f"{'- ' if markdown else ''}order: {', '.join(diff.order[0])} → {', '.join(diff.order[1])}"
        )
    if diff.rerun:
        lines.append("" if markdown else "would re-run:")
        if markdown:
            lines.append("**Would re-run:**")
        for sid in diff.rerun:
            lines.append(f"- `{sid}` — {diff.why[sid]}" if markdown else f"  {sid}  ({diff.why[sid]})")
    else:
        lines.append("_nothing would re-run_" if markdown else "nothing would re-run")
    return "\n".join(lines) + "\n"


# -- contracts and settings ----------------------------------------------------------------------
def diff_contracts(old: Any, new: Any, old_path: Path, new_path: Path, cores: int) -> dict[str, Any]:
    from ..stages.partition import plan_contract

    fields = [name for name in type(new).model_fields if getattr(old, name, None) != getattr(new, name, None)]
    changes = [
        f"{name}: {change_words(getattr(old, name, None), getattr(new, name, None))}" for name in fields
    ]
    a, b = plan_contract(old, old_path, cores), plan_contract(new, new_path, cores)
    plan = None
    if (a.effective_workers, a.planned_partitions, a.splittable) != (
        b.effective_workers,
        b.planned_partitions,
        b.splittable,
    ):
        plan = (
            f"plan on {cores} cores: {a.effective_workers} workers / {a.planned_partitions} partitions"
            f" → {b.effective_workers} workers / {b.planned_partitions} partitions"
        )
    return {"kind": "contract", "old": str(old_path), "new": str(new_path), "changes": changes, "plan": plan}


def flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(data, dict):
        out: dict[str, Any] = {}
        for k, v in data.items():
            out |= flatten(v, f"{prefix}{k}.")
        return out
    return {prefix[:-1]: data}


def diff_settings(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    a, b = flatten(old), flatten(new)
    return _key_changes("settings", a, b) if a != b else []


def lab_beside(settings: Path) -> Path | None:
    """The lab a settings snapshot belongs to: a lab file beside it, or beside its ``src/`` folder."""
    for folder in (settings.parent, settings.parent.parent if settings.parent.name == "src" else None):
        if folder is None:
            continue
        for name in ("lab_stages.toml", "lab_steps.toml"):
            if (folder / name).is_file():
                return folder / name
    return None


def settings_effect(old: Path, new: Path, lab: Path) -> tuple[list[str], dict[str, str]] | None:
    """Which steps of ``lab`` a settings change makes stale (and why), or None when the lab
    cannot be opened with one of the two snapshots."""
    from ..execute.session import LabRequest, Refusal, open_lab
    from .rerun import would_rerun

    runners = [open_lab(LabRequest(file=str(lab), settings=str(s), use_cache=False)) for s in (old, new)]
    if any(isinstance(r, Refusal) for r in runners):
        return None
    return would_rerun(runners[0], runners[1], {})


# -- git revisions -------------------------------------------------------------------------------
class GitProblem(Exception):
    """A revision or path git cannot give; says why."""


def git(args: list[str], cwd: Path) -> bytes:
    proc = subprocess.run(["git", *args], cwd=cwd, capture_output=True, check=False)
    if proc.returncode != 0:
        raise GitProblem(proc.stderr.decode("utf-8", "replace").strip() or f"git {' '.join(args)} failed")
    return proc.stdout


def materialize(rev: str, path: Path, into: Path) -> Path:
    """Copy the lab ``path`` as it is at ``rev`` into ``into`` (same relative layout), with the
    settings snapshots beside it, the function modules and contracts it names; its new path."""
    path = path.resolve()
    try:
        top = Path(git(["rev-parse", "--show-toplevel"], path.parent).decode().strip())
    except FileNotFoundError:
        raise GitProblem("git is not installed") from None
    rel = path.relative_to(top)

    def fetch(relpath: Path) -> bool:
        try:
            data = git(["show", f"{rev}:{relpath.as_posix()}"], top)
        except GitProblem:
            return False
        target = into / relpath
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        return True

    if not fetch(rel):
        raise GitProblem(f"{rel} does not exist at {rev}")
    for candidate in settings_candidates(rel):
        fetch(candidate)
    text = (into / rel).read_text(encoding="utf-8", errors="replace")
    for name in _referenced_files(text):
        fetch(rel.parent / name)
    return into / rel


def _referenced_files(text: str) -> list[str]:
    """Files a lab names: function modules (paths, or dotted modules as paths) and contracts,
    and a contract's own function module."""
    import re

    out = []
    for ref in re.findall(r"""function\s*=\s*["']([^"']+:[A-Za-z_][A-Za-z0-9_]*)["']""", text):
        module = ref.rpartition(":")[0]
        out.append(module if module.endswith(".py") else module.replace(".", "/") + ".py")
    for stage in re.findall(r"""\bstage\s*=\s*["']([^"']+\.toml)["']""", text):
        out.append(stage)
    return out
