"""AGILAB's ``agilab workflow validate`` on one lab file (``validate_lab_stages_file``), on the raw
TOML: the metadata contract (``lab_stages_contract.lab_stages_metadata_issues``), the stage lists
WORKFLOW would ignore or prune, then each displayable stage under the module key and the graph they
form. The report is AGILAB's ``agilab.workflow_dry_run_report.v1``; every issue is also located.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .finding import Finding, Places
from .graph import artifact_edges, dependency_edges, external_inputs, graph_findings
from .read import read_table
from .stage import AppSearch, Stage, build_stage, repo_root_from

WORKFLOW_DRY_RUN_SCHEMA = "agilab.workflow_dry_run_report.v1"
LAB_STAGES_SCHEMA = "agilab.lab_stages.v1"
LAB_STAGES_SCHEMA_VERSION = 1
META = "__meta__"


def module_key_from_project(folder: str | Path) -> str:
    """The module key WORKFLOW uses for a lab folder: its name without ``_project``."""
    raw = str(folder).strip().replace("\\", "/").rstrip("/")
    name = raw.rsplit("/", 1)[-1] if raw else ""
    return name.removesuffix("_project")


def is_displayable_stage(entry: Any) -> bool:
    """A non-empty table with a non-blank string ``Q`` or ``C``: what WORKFLOW keeps."""
    if not isinstance(entry, Mapping) or not entry:
        return False
    return any(isinstance(entry.get(f), str) and bool(entry[f].strip()) for f in ("Q", "C"))


def validate_lab(
    file: str,
    *,
    module_key: str | None = None,
    apps_root: str | Path | None = None,
    require_metadata: bool = False,
) -> dict[str, Any]:
    """AGILAB's report for ``file``, each issue with ``file``/``line``/``column``; the located
    :class:`Finding` objects are under the ``"_findings"`` key (for the text renderer)."""
    stages_file = Path(file).expanduser()
    absolute = stages_file.absolute()
    key = str(module_key).strip() if module_key is not None else module_key_from_project(absolute.parent)
    report: dict[str, Any] = {
        "schema": WORKFLOW_DRY_RUN_SCHEMA,
        "status": "fail",
        "mode": "static_dry_run",
        "stages_file": str(stages_file),
        "module_key": key,
        "summary": {
            "stage_count": 0,
            "dependency_count": 0,
            "artifact_produced_count": 0,
            "artifact_consumed_count": 0,
            "external_input_count": 0,
            "error_count": 0,
            "warning_count": 0,
            "info_count": 0,
        },
        "stages": [],
        "dependency_edges": [],
        "artifact_edges": [],
        "external_inputs": [],
        "issues": [],
    }
    agilab_path = str(stages_file)
    data, source, unreadable = read_table(
        file,
        missing_id="stages-file-missing",
        missing_message="Workflow stages file does not exist: {path}",
        missing_hint="Create or export a lab_stages.toml file before validating the workflow.",
        unreadable_id="stages-file-unreadable",
        what="lab_stages.toml",
        universal_newlines=True,
    )
    if data is None:
        assert unreadable is not None
        return _finalize(report, [unreadable])
    places = Places(file, source)
    findings = metadata_findings(data, places, require_metadata=require_metadata)
    unexpected = sorted(str(k) for k, v in data.items() if str(k) not in {META, key} and isinstance(v, list))
    if unexpected:
        findings.append(
            places.finding(
                "unexpected-stage-lists",
                f"lab_stages.toml contains stage lists WORKFLOW will ignore: {unexpected!r}.",
                places.first_of([(k,) for k in unexpected]),
                path=agilab_path,
                hint=(
                    f"Reconcile those entries under {key!r}, then remove "
                    "the stale lists; AGILAB will not delete user-owned stages automatically."
                ),
            )
        )
    entries = data.get(key)
    if isinstance(entries, list):
        pruned = [i for i, entry in enumerate(entries) if not is_displayable_stage(entry)]
        if pruned:
            findings.append(
                places.finding(
                    "undisplayable-stages",
                    f"WORKFLOW would prune stage entries at indices {pruned!r} under {key!r}.",
                    places.value((key, pruned[0])),
                    path=agilab_path,
                    hint="Give every stage a non-empty Q or C field.",
                )
            )
    rows = (
        [(i, e) for i, e in enumerate(entries) if is_displayable_stage(e)]
        if isinstance(entries, list)
        else []
    )
    if not rows:
        findings.append(_no_stages(data, key, entries, places, agilab_path))
        return _finalize(report, findings)

    search = AppSearch(Path(apps_root) if apps_root is not None else None, repo_root_from(absolute), absolute)
    stages: list[Stage] = []
    for index, entry in rows:
        stage, stage_findings = build_stage(entry, key, index, places, search, agilab_path)
        stages.append(stage)
        findings.extend(stage_findings)
    findings.extend(graph_findings(stages, places))
    report["stages"] = [stage.as_dict() for stage in stages]
    report["dependency_edges"] = dependency_edges(stages)
    report["artifact_edges"] = artifact_edges(stages)
    report["external_inputs"] = external_inputs(stages)
    report["summary"].update(
        {
            "stage_count": len(stages),
            "dependency_count": len(report["dependency_edges"]),
            "artifact_produced_count": sum(len(s.produces) for s in stages),
            "artifact_consumed_count": sum(len(s.consumes) for s in stages),
            "external_input_count": len(report["external_inputs"]),
        }
    )
    return _finalize(report, findings)


def _no_stages(data: Mapping[str, Any], key: str, entries: Any, places: Places, agilab_path: str) -> Finding:
    hint_missing = (
        f"Store stages under [[{key}]]; WORKFLOW does not render generic [[stages]] or [[steps]] tables."
    )
    if isinstance(entries, list):
        return places.finding(
            "no-displayable-stages",
            f"No displayable workflow stages were found under {key!r}.",
            places.key((key,)),
            path=agilab_path,
            hint="Give each stage a non-empty Q or C field so WORKFLOW keeps it.",
        )
    available = sorted(str(k) for k in data if str(k) != META)
    if not available:
        return places.finding(
            "no-stages",
            "No workflow stages were found in lab_stages.toml.",
            places.top(),
            path=agilab_path,
            hint=hint_missing,
        )
    where = places.key((key,)) if key in data else places.first_of([(k,) for k in available])
    return places.finding(
        "module-key-missing",
        f"No workflow stage list exists under the module key {key!r}; found {available!r}.",
        where,
        path=agilab_path,
        hint=hint_missing,
    )


def metadata_findings(data: Mapping[str, Any], places: Places, *, require_metadata: bool) -> list[Finding]:
    """``lab_stages_metadata_issues``: ``[__meta__]`` present, a table, ``schema`` the current one,
    ``version`` a real integer in 1..1; absent fields are errors only with ``require_metadata``."""
    meta = data.get(META, {})
    if meta in ({}, None):
        return [
            places.finding(
                "metadata-missing",
                "lab_stages.toml has no __meta__ schema block; treating it as a legacy-compatible contract.",
                places.key((META,)) if META in data else places.top(),
                severity="error" if require_metadata else "info",
                hint=f"Add [__meta__] schema = {LAB_STAGES_SCHEMA!r}, version = {LAB_STAGES_SCHEMA_VERSION}.",
            )
        ]
    if not isinstance(meta, Mapping):
        return [
            places.finding(
                "metadata-shape", "lab_stages.toml __meta__ must be a TOML table.", places.key((META,))
            )
        ]
    findings: list[Finding] = []
    schema = str(meta.get("schema", "") or "")
    if require_metadata and not schema:
        findings.append(
            places.finding(
                "metadata-schema",
                "lab_stages.toml metadata must declare its schema.",
                places.value((META, "schema")) if "schema" in meta else places.key((META,)),
            )
        )
    elif schema and schema != LAB_STAGES_SCHEMA:
        findings.append(
            places.finding(
                "metadata-schema",
                f"Unsupported lab_stages.toml schema {schema!r}.",
                places.value((META, "schema")),
            )
        )
    raw_version = meta.get("version")
    if require_metadata and raw_version in (None, ""):
        findings.append(
            places.finding(
                "metadata-version",
                "lab_stages.toml metadata must declare its schema version.",
                places.value((META, "version")) if "version" in meta else places.key((META,)),
            )
        )
    elif raw_version not in (None, ""):
        if isinstance(raw_version, bool) or not isinstance(raw_version, int):
            message = f"Unsupported lab_stages.toml schema version {raw_version!r}."
        elif raw_version < 1 or raw_version > LAB_STAGES_SCHEMA_VERSION:
            message = (
                f"Unsupported lab_stages.toml schema version {raw_version}; "
                "upgrade AGILAB before editing this pipeline."
            )
        else:
            message = ""
        if message:
            findings.append(places.finding("metadata-version", message, places.value((META, "version"))))
    return findings


def _finalize(report: dict[str, Any], findings: list[Finding]) -> dict[str, Any]:
    counts = {sev: sum(1 for f in findings if f.severity == sev) for sev in ("error", "warning", "info")}
    report["issues"] = [f.as_dict() for f in findings]
    report["summary"]["error_count"] = counts["error"]
    report["summary"]["warning_count"] = counts["warning"]
    report["summary"]["info_count"] = counts["info"]
    report["status"] = "fail" if counts["error"] else "warn" if counts["warning"] else "pass"
    report["_findings"] = findings
    return report
