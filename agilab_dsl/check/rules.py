"""Phase 3 — semantics across stages and files, on top of what ``parse`` found.

For labs: duplicate ids, unknown deps, dependency cycles (with their path), an artifact produced
twice, ``${steps.…}`` / ``${params.…}`` / ``${settings.…}`` references that name nothing,
declared ``settings`` keys absent from the snapshot, ``stage`` files that do not exist, and function
references whose module, file or function cannot be found (found by reading source, never by
importing user code). For contracts: the function and reducer references. Risky calls (``eval``,
``os.system``, ``subprocess``…) in stage code and in the lab's own function modules are warnings.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

from ..load import expr
from ..load.any import load_any
from ..load.errors import Severity, did_you_mean
from ..load.locate import function_source, settings_candidates
from ..load.parse import FileKind, LoadResult, Locator, toml_repr
from ..load.settings import load_settings
from ..plan.cache import Observations
from ..plan.graph import Edge, StepGraph, escapes, normalize_artifact
from . import risky

MAX_RISKY_PER_MODULE = 5
RISKY_HINT = "review what it runs before running a lab you did not write"
OUTSIDE_HINT = "write inside the folder, or set allow_outside = true {where} to let it write there"


def find_settings(
    lab_path: str | Path, explicit: str | Path | None = None, obs: Observations | None = None
) -> Path | None:
    """``--settings PATH``, else ``app_settings.toml`` beside the lab, else ``src/app_settings.toml``."""
    obs = obs or Observations()
    if explicit is not None:
        obs.note(explicit)
        return Path(explicit)
    for candidate in settings_candidates(lab_path):
        if obs.is_file(candidate):
            return candidate
    return None


def check_file(
    path: str | Path,
    *,
    kind: FileKind | None = None,
    settings_path: str | Path | None = None,
    obs: Observations | None = None,
    profile: str | None = None,
) -> tuple[LoadResult[Any], LoadResult[Any] | None]:
    """Load a file of any kind and run every check. Returns the file's result and, for labs, the
    settings result (whose own diagnostics belong to the settings file). Every path consulted is
    noted in ``obs`` (for the result cache)."""
    obs = obs or Observations()
    obs.note(path)
    result = load_any(path, kind, profile=profile)
    if any(d.code == "file-missing" for d in result.diagnostics):
        obs.note(Path(path).parent)  # its listing gave the hint
    settings_result = None
    if result.kind == "lab" and result.partial is not None:
        found = find_settings(path, settings_path, obs)
        if found is not None:
            settings_result = load_settings(found)
        result.graph = check_lab(result, settings_result, obs)
    elif result.kind == "contract" and result.value is not None:
        check_contract(result, obs)
    return result, settings_result


def load(
    path: str | Path,
    kind: FileKind | None = None,
    *,
    settings_path: str | Path | None = None,
    profile: str | None = None,
) -> Any:
    """Load and check a file of any kind; return its model, or raise :class:`LoadError` carrying
    every diagnostic (warnings included) when it has errors. ``profile`` selects a stage profile."""
    from ..load.errors import LoadError

    result, _ = check_file(path, kind=kind, settings_path=settings_path, profile=profile)
    if not result.ok:
        raise LoadError(result.diagnostics)
    return result.value


def check_lab(
    result: LoadResult[Any], settings: LoadResult[Any] | None, obs: Observations | None = None
) -> StepGraph | None:
    """Semantic checks of a lab; returns its graph when the graph is sound."""
    obs = obs or Observations()
    lab = result.partial
    loc = result.locator()
    raw = result.data or {}
    base_dir = Path(result.path).parent

    def written(stage: Any, field: str) -> str | None:
        from ..load.model import stage_key_aliases

        aliases = stage_key_aliases()
        for key in raw[stage.module][stage.index]:
            if aliases.get(key) == field:
                return key
        return None

    # ids
    first_seen: dict[str, Any] = {}
    for s in lab.stages:
        if s.id in first_seen:
            other = first_seen[s.id]
            key = written(s, "id")
            where: tuple[str | int, ...] = (s.module, s.index, key) if key else (s.module, s.index)
            pos = lab.position(other.module, other.index)
            loc.at_value(
                "stage-id-duplicate",
                f"stage id {s.id!r} is already used by the stage at line {pos[0] if pos else '?'}",
                where,
                hint="give each stage its own id",
            )
        else:
            first_seen[s.id] = s
    ids = list(first_seen)

    # deps
    for s in lab.stages:
        key = written(s, "deps")
        for j, dep in enumerate(s.stage.deps):
            if dep not in first_seen:
                if dep in result.invalid_ids:
                    continue  # that stage's own errors are reported; its id exists
                loc.at_value(
                    "dependency-missing",
                    f"stage {s.id!r} depends on {dep!r}, which no stage has",
                    (s.module, s.index, key or "deps", j),
                    hint=did_you_mean(dep, ids),
                )
            elif dep == s.id:
                loc.at_value(
                    "dependency-cycle",
                    f"stage {s.id!r} depends on itself",
                    (s.module, s.index, key or "deps", j),
                )

    # artifacts produced twice
    producer: dict[str, tuple[Any, int]] = {}
    for s in lab.stages:
        key = written(s, "produces")
        for j, out in enumerate(s.stage.produces):
            norm = normalize_artifact(out)
            if norm in producer and producer[norm][0].id != s.id:
                other = producer[norm][0]
                loc.at_value(
                    "artifact-produced-twice",
                    f"artifact {out!r} is produced by {other.id!r} and {s.id!r}",
                    (s.module, s.index, key or "produces", j),
                    hint="one stage writes an artifact; the others consume it",
                )
            else:
                producer.setdefault(norm, (s, j))
            if "${" not in out and escapes(out) and not s.stage.allow_outside:
                loc.at_value(
                    "output-outside-lab",
                    f"stage {s.id!r} would write {out!r}, outside the lab's folder",
                    (s.module, s.index, key or "produces", j),
                    hint=OUTSIDE_HINT.format(where="on this stage"),
                )

    # references in strings
    snapshot = settings.value.as_dict() if settings is not None and settings.value is not None else None
    reported_missing_settings = False
    extra_edges: list[Edge] = []
    for sref in result.refs:
        s = lab.stages[sref.stage_index]
        ref = sref.ref
        if ref.root == "steps":
            target_id = str(ref.path[0])
            n = ref.path[2]
            if target_id not in first_seen:
                _in_ref(
                    loc,
                    sref,
                    "reference-invalid",
                    f"${{{ref.dotted()}}} names no stage {target_id!r}",
                    did_you_mean(target_id, ids),
                )
                continue
            target = first_seen[target_id]
            assert isinstance(n, int)
            if not -len(target.stage.produces) <= n < len(target.stage.produces):
                _in_ref(
                    loc,
                    sref,
                    "reference-invalid",
                    f"stage {target_id!r} declares {len(target.stage.produces)} output(s); "
                    f"outputs[{n}] does not exist",
                    None,
                )
                continue
            if target_id != s.id:
                extra_edges.append(Edge(target_id, s.id, "reference"))
        elif ref.root == "params":
            if ref.path[0] not in s.stage.params:
                _in_ref(
                    loc,
                    sref,
                    "reference-invalid",
                    f"stage {s.id!r} has no param {ref.path[0]!r}",
                    did_you_mean(str(ref.path[0]), s.stage.params),
                )
        elif ref.root == "settings":
            if snapshot is None:
                if not reported_missing_settings:
                    reported_missing_settings = True
                    _in_ref(
                        loc,
                        sref,
                        "settings-not-found",
                        f"${{{ref.dotted()}}} needs a settings snapshot, and none was found",
                        "put app_settings.toml beside the lab (or in src/), or pass --settings PATH",
                    )
                continue
            problem = _missing_setting(snapshot, ref.path)
            if problem is not None:
                _in_ref(loc, sref, "settings-reference-unknown", problem[0], problem[1])

    # declared settings dependencies
    for s in lab.stages:
        if s.stage.settings == "*" or not s.stage.settings:
            continue
        for j, dotted in enumerate(s.stage.settings):
            path = (s.module, s.index, "settings", j)
            try:
                parsed = expr.parse_reference("settings." + dotted)
            except expr.ExprSyntaxError:
                loc.at_value(
                    "reference-invalid",
                    f"{dotted!r} is not a settings key path",
                    path,
                    hint='write keys as "args.data_in" or "cluster.workers"',
                )
                continue
            if snapshot is None:
                if not reported_missing_settings:
                    reported_missing_settings = True
                    loc.at_value(
                        "settings-not-found",
                        f"settings key {dotted!r} declared, and no settings snapshot was found",
                        path,
                        hint="put app_settings.toml beside the lab (or in src/), or pass --settings PATH",
                    )
                continue
            problem = _missing_setting(snapshot, parsed.path)
            if problem is not None:
                loc.at_value("settings-reference-unknown", problem[0], path, hint=problem[1])

    # stage contracts, function references and risky calls in code
    for s in lab.stages:
        if s.stage.code:
            code_path = (s.module, s.index, written(s, "code") or "C")
            for call in risky.find(s.stage.code):
                loc.in_string(
                    "risky-call",
                    f"stage {s.id!r} calls {call.name}: {risky.why(call)}",
                    code_path,
                    call.index,
                    width=call.width,
                    hint=RISKY_HINT,
                )
        if s.stage.stage:
            target = base_dir / s.stage.stage
            if "${" not in s.stage.stage and not obs.is_file(target):
                loc.at_value(
                    "stage-file-missing",
                    f"parallel contract {s.stage.stage!r} does not exist "
                    "(paths are relative to the lab's folder)",
                    (s.module, s.index, written(s, "stage") or "stage"),
                    hint=did_you_mean(Path(s.stage.stage).name, _siblings(target, obs)),
                )
        if s.stage.function:
            _check_function(loc, s.stage.function, base_dir, (s.module, s.index, "function"), obs)

    graph = StepGraph.from_lab(lab, extra_edges)
    cycle = graph.cycle()
    if cycle is not None:
        head = first_seen[cycle[0]]
        key = written(head, "deps")
        loc.at_key(
            "dependency-cycle",
            "dependency cycle: " + " → ".join(cycle),
            (head.module, head.index, key) if key else (head.module, head.index),
            hint="each stage must run after the one before it in this list; remove one dependency",
        )
        return None
    return graph


def check_contract(result: LoadResult[Any], obs: Observations | None = None) -> None:
    obs = obs or Observations()
    contract = result.value
    assert contract is not None
    loc = result.locator()
    base_dir = Path(result.path).parent
    _check_function(loc, contract.function, base_dir, ("function",), obs)
    if escapes(contract.output) and not contract.allow_outside:
        loc.at_value(
            "output-outside-lab",
            f"output {contract.output!r} is outside the contract's folder",
            ("output",),
            hint=OUTSIDE_HINT.format(where="in this contract"),
        )
    if contract.reducer_function:
        _check_function(loc, contract.reducer_function, base_dir, ("reducer_function",), obs)


def _in_ref(loc: Locator, sref: Any, code: str, message: str, hint: str | None) -> None:
    width = max(1, sref.ref.end - sref.ref.pos)
    loc.in_string(code, message, sref.key_path, sref.offset, hint=hint, width=width)


def _missing_setting(snapshot: dict[str, Any], path: tuple[str | int, ...]) -> tuple[str, str | None] | None:
    node: Any = snapshot
    walked = "settings"
    for part in path:
        if isinstance(node, dict) and part in node:  # noqa: SIM114 - separate arms keep the type narrowing
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and -len(node) <= part < len(node):
            node = node[part]
        else:
            where = (
                f"[{walked.removeprefix('settings.')}]" if walked != "settings" else "the settings snapshot"
            )
            options = [str(k) for k in node] if isinstance(node, dict) else []
            if not isinstance(node, (dict, list)):
                return f"{walked} is {toml_repr(node)}, not a table; it has no key {part!r}", None
            return f"{where} has no key {part!r}", did_you_mean(str(part), options)
        walked += f".{part}" if isinstance(part, str) else f"[{part}]"
    return None


def _siblings(target: Path, obs: Observations) -> list[str]:
    obs.note(target.parent)
    try:
        return [p.name for p in target.parent.iterdir()] if target.parent.is_dir() else []
    except OSError:
        return []


def _check_function(
    loc: Locator, text: str, base_dir: Path, key: tuple[str | int, ...], obs: Observations
) -> None:
    try:
        ref = expr.parse_funcref(text)
    except expr.ExprSyntaxError:
        return  # reported by the loader
    problem, source, code = _locate(ref, base_dir, obs)
    if problem is not None:
        loc.at_value("function-not-found", problem[0], key, hint=problem[1], severity=Severity.WARNING)
        return
    if source is None or code is None or not source.resolve().is_relative_to(base_dir.resolve()):
        return  # no Python source, or an installed library's: not the lab's code to review
    calls = risky.find(code)
    shown = calls[:MAX_RISKY_PER_MODULE]
    for n, call in enumerate(shown, 1):
        line = code.count("\n", 0, call.index) + 1
        rest = len(calls) - len(shown) if n == len(shown) else 0
        loc.at_value(
            "risky-call",
            f"{source.name}, the module of {ref}, calls {call.name} at line {line}: {risky.why(call)}"
            + (f" (and {rest} more such calls)" if rest else ""),
            key,
            hint=RISKY_HINT,
        )


def locate_function(
    ref: expr.FuncRef, base_dir: Path, obs: Observations | None = None
) -> tuple[str, str | None] | None:
    """Find a function's source without importing anything: None when found, else (message, hint).

    A module that exists but has no Python source (an extension) is accepted unread."""
    return _locate(ref, base_dir, obs or Observations())[0]


def _locate(
    ref: expr.FuncRef, base_dir: Path, obs: Observations
) -> tuple[tuple[str, str | None] | None, Path | None, str | None]:
    """(the problem or None, the module's file, its Python source when it was read)."""
    source_file = function_source(ref.module, ref.is_path, base_dir, obs.is_file, obs.note)
    if source_file is None and ref.is_path:
        file = (base_dir / ref.module).resolve()
        return (
            (
                f"file {ref.module!r} does not exist beside the file that names it",
                did_you_mean(Path(ref.module).name, _siblings(file, obs)),
            ),
            None,
            None,
        )
    if source_file is None:
        return (
            (
                f"module {ref.module!r} is not found beside the file or on the Python path",
                "run check in the environment the lab runs in, or use a path: file.py:function",
            ),
            None,
            None,
        )
    if source_file.suffix != ".py":
        return None, source_file, None  # no Python source (built in, or compiled): accepted unread
    try:
        code = source_file.read_text(encoding="utf-8")
        tree = ast.parse(code)
    except (OSError, SyntaxError, UnicodeDecodeError, ValueError) as exc:
        return (f"cannot read {source_file}: {exc}", None), source_file, None
    names = _top_level_names(tree)
    if ref.function not in names:
        return (
            (f"{ref.module!r} defines no {ref.function!r}", did_you_mean(ref.function, names)),
            source_file,
            code,
        )
    return None, source_file, code


def _top_level_names(tree: ast.Module) -> list[str]:
    names: list[str] = []
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.append(node.name)
        elif isinstance(node, ast.Assign):
            names += [t.id for t in node.targets if isinstance(t, ast.Name)]
        elif isinstance(node, (ast.AnnAssign,)) and isinstance(node.target, ast.Name):
            names.append(node.target.id)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names += [(a.asname or a.name).split(".")[0] for a in node.names]
    return names
