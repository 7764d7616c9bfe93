"""Staleness as values: a step's fingerprint components, and the reasons, in words, it must run.

A step is fresh when its recorded fingerprint equals the current one and every output it wrote
is still there, unchanged. Otherwise :func:`reasons` says why, one reason per difference:
``settings args.n changed: 3 → 4``, ``input data/a.csv changed``, ``code changed``,
``upstream load ran``, ``output out.csv missing``, ``never ran``.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping
from pathlib import Path

from ..load.records import FrozenRecord
from .changes import change, differing, key_changes, path_changes, settings_changes
from .fingerprint import FileHashes, code_hash, digest, function_hash
from .interpreter import changed as interpreter_changed
from .resolve import ResolvedStep
from .state import StepRecord

TYPE_CHECKING = False  # typing is not imported at run time: ~2 ms of every run's start-up
if TYPE_CHECKING:  # pragma: no cover
    from typing import Any, Literal

    State = Literal["fresh", "stale", "never-ran", "disabled"]


class StepStatus(FrozenRecord):
    _fields = ("id", "state", "reasons", "fingerprint", "components")
    _uncompared = frozenset({"components"})

    def __init__(
        self,
        id: str,
        state: State,
        reasons: tuple[str, ...] = (),
        fingerprint: str = "",
        components: dict[str, Any] | None = None,
    ) -> None:
        self.id = id
        self.state = state
        self.reasons = reasons
        self.fingerprint = fingerprint
        self.components = {} if components is None else components

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "state": self.state, "reasons": list(self.reasons)}


def components(
    step: ResolvedStep,
    lab_dir: Path,
    hashes: FileHashes,
    upstream: Mapping[str, str],
    interpreter: Mapping[str, str] | None = None,
    inputs: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Everything that changes a step's result, by name. ``upstream`` maps ids to fingerprints;
    ``interpreter`` is the identity (path, version) of the interpreter that runs it; ``inputs``:
    the inputs' hashes when the caller has them (:meth:`FileHashes.carried`)."""
    stage = step.placed.stage
    if stage.function:
        code = "function:" + function_hash(_funcref(stage.function), lab_dir)
    elif stage.code is not None:
        code = code_hash(stage.code)
    else:
        code = ""
    comps: dict[str, Any] = {
        "code": code,
        "function": stage.function,
        "engine": stage.engine or "",
        "env": step.env or "",
        "backend": stage.backend,
        "mode": _mode(stage.mode),
        "params": step.params,
        "settings": step.settings_used,
        "inputs": {p: hashes.of(os.path.join(lab_dir, p)) for p in step.inputs} if inputs is None else inputs,
        "outputs": list(step.outputs),
        "upstream": dict(upstream),
    }
    if step.contract is not None:
        path = os.path.join(lab_dir, step.contract)
        comps["contract"] = {step.contract: hashes.of(path)}
        stage_inputs, function = contract_parts(path)
        # what the contract's glob finds now (a new matching file makes the stage stale) ...
        comps["stage_inputs"] = {
            os.path.relpath(f, lab_dir): hashes.of(f)
            for f in resolve_glob(stage_inputs, os.path.dirname(path))
        }
        # ... and its partition function's own source
        comps["stage_function"] = function_hash(_funcref(function), Path(path).parent) if function else ""
    if interpreter is not None:
        comps["interpreter"] = dict(interpreter)
    return comps


def contract_parts(path: str) -> tuple[str, str]:
    """A contract's ``input`` glob and ``function`` reference, read with the standard library (a
    contract that cannot be read gives empty ones: the step's own load reports why). Read once
    while the file is unchanged: judging, the judgment cache and the run each ask."""
    try:
        st = os.stat(path)
    except OSError:
        return "", ""
    return _contract_parts(path, st.st_mtime_ns, st.st_size)


@functools.lru_cache(maxsize=256)
def _contract_parts(path: str, mtime_ns: int, size: int) -> tuple[str, str]:
    import tomllib

    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except (OSError, tomllib.TOMLDecodeError, RecursionError):
        return "", ""
    pattern, function = data.get("input"), data.get("function")
    return (pattern if isinstance(pattern, str) else ""), (
        function if isinstance(function, str) and ":" in function else ""
    )


def resolve_glob(pattern: str, base: str) -> list[str]:
    """Files matching ``pattern`` (relative to ``base``), absolute, sorted."""
    import glob

    if not pattern:
        return []
    full = pattern if os.path.isabs(pattern) else os.path.join(base, pattern)
    return sorted(p for p in glob.glob(full, recursive=True) if os.path.isfile(p))


def glob_root(pattern: str, base: str) -> str:
    """The folder a glob searches: its longest leading part without wildcards."""
    import glob

    full = pattern if os.path.isabs(pattern) else os.path.join(base, pattern)
    parts = full.split(os.sep)
    fixed = []
    for part in parts[:-1]:
        if glob.has_magic(part):
            break
        fixed.append(part)
    return os.sep.join(fixed) or os.sep


def _dict_changes(kind: str, old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    return key_changes(old, new, prefix=f"{kind} ", verb=" changed")


def reasons(
    record: StepRecord | None,
    comps: Mapping[str, Any],
    lab_dir: Path,
    hashes: FileHashes,
    will_run: Mapping[str, bool] | None = None,
    fingerprint: str | None = None,
    origins: Mapping[str, str] | None = None,
) -> list[str]:
    """Why a step must run, compared with what it last ran with; an empty list when it is fresh.

    ``will_run`` marks upstream steps that run (or ran) in this invocation; ``fingerprint`` is
    ``digest(comps)`` when the caller already has it; ``origins`` maps inferred paths to where they
    were found, said after their reasons: ``input data/a.csv changed (inferred from C line 4)``."""
    if record is None:
        return ["never ran"]
    origins = origins or {}

    def why(path: str) -> str:
        return f" (inferred from {origins[path]})" if path in origins else ""

    old = record.components
    out: list[str] = []
    if old.get("code") != comps["code"]:
        out.append(
            "function changed"
            if comps.get("function") and old.get("function") == comps["function"]
            else "code changed"
        )
    for key, label in (
        ("engine", "engine"),
        ("env", "env"),
        ("backend", "backend"),
        ("function", "function"),
    ):
        if old.get(key) != comps.get(key) and not (
            key == "function" and out and old.get("code") != comps["code"]
        ):
            out.append(f"{label} changed: {change(old.get(key), comps.get(key))}")
    if "interpreter" in comps and old.get("interpreter") != comps["interpreter"]:
        out.append(interpreter_changed(old.get("interpreter"), comps["interpreter"]))
    if old.get("mode") != comps.get("mode"):

        def flags(bits: Any) -> str:
            return f"{bits} ({' | '.join(_mode_flags(bits)) or 'none'})" if isinstance(bits, int) else "unset"

        out.append(f"mode changed: {flags(old.get('mode'))} → {flags(comps.get('mode'))}")
    out += _dict_changes("param", old.get("params", {}), comps["params"])
    out += settings_changes(old.get("settings", {}), comps["settings"], prefix="settings ", verb=" changed")
    old_inputs, new_inputs = old.get("inputs", {}), comps["inputs"]
    out += [
        f"input {path} {what}{why(path)}"
        for path, what in path_changes(old_inputs, new_inputs, missing="missing")
    ]
    if old.get("outputs") != comps["outputs"]:
        out.append(f"outputs changed: {change(old.get('outputs'), comps['outputs'])}")
    if old.get("contract") != comps.get("contract"):
        out.append(f"parallel contract {next(iter(comps.get('contract') or {'': ''}))} changed")
    declared = set(old_inputs) | set(new_inputs)  # a declared input its glob finds too is said once
    old_stage = {p: h for p, h in old.get("stage_inputs", {}).items() if p not in declared}
    new_stage = {p: h for p, h in comps.get("stage_inputs", {}).items() if p not in declared}
    out += [f"parallel input {path} {what}" for path, what in path_changes(old_stage, new_stage)]
    if old.get("stage_function") != comps.get("stage_function") and "stage_function" in old:
        out.append("partition function changed")
    old_up, new_up = old.get("upstream", {}), comps["upstream"]
    ran_now = {sid for sid, ran in (will_run or {}).items() if ran and (sid in old_up or sid in new_up)}
    for sid in sorted(differing(old_up, new_up) | ran_now):
        if (will_run or {}).get(sid):
            out.append(f"upstream {sid} ran")
        elif old_up.get(sid) != new_up.get(sid):
            out.append(
                f"upstream {sid} changed"
                if sid in old_up and sid in new_up
                else f"upstream {sid} {'added' if sid in new_up else 'removed'}"
            )
    for path, recorded in sorted(record.outputs.items()):
        now = hashes.of(os.path.join(lab_dir, path))
        if now == "missing":
            out.append(f"output {path} missing{why(path)}")
        elif now != recorded:
            out.append(f"output {path} changed since it was written{why(path)}")
    if not out and record.fingerprint != (fingerprint or digest(comps)):
        out.append("definition changed")
    return out


# the expression package, imported only for the steps that need it (see plan.resolve._expr)


def _mode(mode: str | None) -> int | None:
    if mode is None:
        return None
    from ..load.expr import parse_mode

    return parse_mode(mode)


def _funcref(text: str) -> Any:
    from ..load.expr import parse_funcref

    return parse_funcref(text)


def _mode_flags(bits: int) -> list[str]:
    from ..load.expr import mode_flags

    return list(mode_flags(bits))
