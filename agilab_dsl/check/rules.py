"""Phase 3 — semantics across stages and files, on top of what ``parse`` found: the lab rules.

For labs: duplicate ids, unknown deps, dependency cycles (with their path), an artifact produced
twice, ``${steps.…}`` / ``${params.…}`` / ``${settings.…}`` references that name nothing,
declared ``settings`` keys absent from the snapshot, ``stage`` files that do not exist, and function
references whose module, file or function cannot be found (found by reading source, never by
importing user code). Risky calls (``eval``, ``os.system``, ``subprocess``…) in stage code and in
the lab's own function modules are warnings. The entry points are in :mod:`.files`, the contract
rules in :mod:`.contract`, function references in :mod:`.functions`, risky calls in :mod:`.risky`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..load import expr
from ..load.errors import did_you_mean
from ..load.parse import LoadResult, Locator, toml_repr
from ..plan.cache import Observations
from ..plan.graph import Edge, OutputRules, StepGraph, normalize_artifact
from .automation import check_automation
from .code import check_code
from .contract import contract_problems, report_output
from .functions import check_function, siblings


def check_lab(
    result: LoadResult[Any], settings: LoadResult[Any] | None, obs: Observations | None = None
) -> StepGraph | None:
    """Semantic checks of a lab; returns its graph when the graph is sound."""
    obs = obs or Observations()
    lab = result.partial
    loc = result.locator()
    raw = result.data or {}
    base_dir = Path(result.path).parent

    from ..load.model import stage_key_aliases

    aliases = stage_key_aliases()

    def written(stage: Any, field: str) -> str | None:
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
        for j, dep in enumerate(s.stage.deps):
            if dep not in first_seen:
                if dep in result.invalid_ids:
                    continue  # that stage's own errors are reported; its id exists
                loc.at_value(
                    "dependency-missing",
                    f"stage {s.id!r} depends on {dep!r}, which no stage has",
                    (s.module, s.index, written(s, "deps") or "deps", j),
                    hint=did_you_mean(dep, ids),
                )
            elif dep == s.id:
                loc.at_value(
                    "dependency-cycle",
                    f"stage {s.id!r} depends on itself",
                    (s.module, s.index, written(s, "deps") or "deps", j),
                )

    # artifacts produced twice; outputs that would write outside the lab or over its own files
    protected = [Path(result.path)]
    if settings is not None:
        protected.append(Path(settings.path))
    protected += [base_dir / s.stage.stage for s in lab.stages if s.stage.stage and "${" not in s.stage.stage]
    # the lab's folder and its protected files resolved once; each folder above an output looked at once
    rules = OutputRules(str(base_dir), [str(p) for p in protected], folders={})
    producer: dict[str, tuple[Any, int]] = {}
    for s in lab.stages:
        for j, out in enumerate(s.stage.produces):
            norm = normalize_artifact(out)
            if norm in producer and producer[norm][0].id != s.id:
                other = producer[norm][0]
                loc.at_value(
                    "artifact-produced-twice",
                    f"artifact {out!r} is produced by {other.id!r} and {s.id!r}",
                    (s.module, s.index, written(s, "produces") or "produces", j),
                    hint="one stage writes an artifact; the others consume it",
                )
            else:
                producer.setdefault(norm, (s, j))
            if "${" not in out:
                problem = rules.problem(out, allow_outside=s.stage.allow_outside)
                if problem is not None:
                    where = (s.module, s.index, written(s, "produces") or "produces", j)
                    what = f"stage {s.id!r} would write {out!r}"
                    outside = f"{what}, outside the lab's folder"
                    report_output(loc, problem, what, outside, where, "on this stage")

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

    # code, stage contracts (each checked whole: a run must not start to fail at it) and functions
    check_code(loc, lab.stages, written)
    contracts_seen: set[Path] = set()
    for s in lab.stages:
        if s.stage.stage:
            target = base_dir / s.stage.stage
            if "${" not in s.stage.stage and not obs.is_file(target):
                loc.at_value(
                    "stage-file-missing",
                    f"parallel contract {s.stage.stage!r} does not exist "
                    "(paths are relative to the lab's folder)",
                    (s.module, s.index, written(s, "stage") or "stage"),
                    hint=did_you_mean(Path(s.stage.stage).name, siblings(target, obs)),
                )
            elif "${" not in s.stage.stage and target.resolve() not in contracts_seen:
                contracts_seen.add(target.resolve())
                result.diagnostics.extend(contract_problems(target, obs))
        if s.stage.function:
            check_function(
                loc, s.stage.function, base_dir, (s.module, s.index, "function"), obs, s.stage.allow_outside
            )

    graph = StepGraph.from_lab(lab, extra_edges)
    check_automation(loc, lab.stages, raw, graph)
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
