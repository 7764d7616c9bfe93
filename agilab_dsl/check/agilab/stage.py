"""One displayable stage as AGILAB's validator sees it (``workflow_validation._stage_contract``): its
id (``id``, else ``<module>_<NNN>`` from its raw index), label, kind, engine, runtime role, app,
code hash, ``depends_on`` (only that key: ``deps`` and ``dependencies`` are the runner's), and the
artifacts it consumes (``consumes`` + ``uses`` + ``inputs`` + code) and produces (``produces`` +
``outputs`` + code) — each with where it is written — and the stage's own issues.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ...load.source import KeyPath
from .code import ROLE_KEYS, CodeFacts, Spot, code_facts
from .finding import Finding, Places, Where

SUPPORTED_ENGINES = {"", "runpy", "agi.run", "agi.install"}


@dataclass(frozen=True)
class Stage:
    stage_id: str
    source_key: str
    index: int
    label: str
    kind: str
    engine: str
    runtime_role: str
    app: str
    code_sha256: str
    depends_on: tuple[tuple[str, Where | None], ...]
    consumes: tuple[tuple[str, Where | None], ...]
    produces: tuple[tuple[str, Where | None], ...]
    id_at: Where | None  # the id's value, else the stage's header

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.stage_id,
            "source_key": self.source_key,
            "index": self.index,
            "label": self.label,
            "kind": self.kind,
            "engine": self.engine,
            "runtime_role": self.runtime_role,
            "app": self.app,
            "code_sha256": self.code_sha256,
            "depends_on": [d for d, _ in self.depends_on],
            "consumes": [a for a, _ in self.consumes],
            "produces": [a for a, _ in self.produces],
        }


@dataclass(frozen=True)
class AppSearch:
    """Where AGILAB looks for a referenced app (``_app_exists``)."""

    apps_root: Path | None
    repo_root: Path | None
    stages_file: Path

    def finds(self, app: str) -> bool:
        candidates: list[Path] = []
        if self.apps_root is not None:
            candidates.append(self.apps_root.expanduser() / app)
        if self.repo_root is not None:
            candidates.append(self.repo_root / "src" / "agilab" / "apps" / "builtin" / app)
            candidates.append(self.repo_root / "src" / "agilab" / "apps" / app)
        candidates.append(self.stages_file.parent)
        return any(candidate.name == app and candidate.exists() for candidate in candidates)


def repo_root_from(path: Path) -> Path | None:
    """AGILAB's ``_repo_root_from``: the nearest folder above the file holding ``pyproject.toml``
    and ``src/agilab`` (an AGILAB checkout)."""
    for candidate in (path.parent, *path.parents):
        if (candidate / "pyproject.toml").is_file() and (candidate / "src" / "agilab").is_dir():
            return candidate
    return None


def build_stage(
    entry: Mapping[str, Any],
    source_key: str,
    index: int,
    places: Places,
    apps: AppSearch,
    agilab_path: str,
) -> tuple[Stage, list[Finding]]:
    here: KeyPath = (source_key, index)
    explicit_id = text(entry.get("id"))
    stage_id = explicit_id or f"{slug(source_key)}_{index + 1:03d}"
    raw_code = entry.get("C")
    code = text(raw_code)
    lead = len(str(raw_code or "")) - len(str(raw_code or "").lstrip())
    facts = code_facts(code)
    findings: list[Finding] = []

    def in_code(spot: Spot) -> Where | None:
        return places.in_string((*here, "C"), lead + spot.index, spot.width)

    if facts.syntax is not None:
        message, spot = facts.syntax
        findings.append(
            places.finding("stage-code-syntax", message, in_code(spot), stage_id=stage_id, path=agilab_path)
        )
    for name, spot in facts.risky:
        findings.append(
            places.finding(
                "stage-code-risky-call",
                f"Stage contains a risky call for dry-run review: {name}",
                in_code(spot),
                stage_id=stage_id,
                path=agilab_path,
                hint="Review isolation and secrets before executing imported or generated code.",
            )
        )

    label = text(entry.get("label")) or text(entry.get("D")) or first_line(entry.get("Q")) or stage_id
    engine = text(entry.get("R")).lower()
    kind = text(entry.get("kind")) or engine_kind(engine)
    app, app_at = _app(entry, facts, here, places, in_code)
    runtime_role = _runtime_role(entry, facts)
    produces = unique(
        [*items(entry.get("produces"), (*here, "produces"), places)]
        + [*items(entry.get("outputs"), (*here, "outputs"), places)]
        + [(a, in_code(s)) for a, s in facts.produces]
    )
    consumes = unique(
        [*items(entry.get("consumes"), (*here, "consumes"), places)]
        + [*items(entry.get("uses"), (*here, "uses"), places)]
        + [*items(entry.get("inputs"), (*here, "inputs"), places)]
        + [(a, in_code(s)) for a, s in facts.consumes]
    )
    depends_on = unique(items(entry.get("depends_on"), (*here, "depends_on"), places))
    stage_at = places.value(here)

    if not explicit_id and source_key == "stages":
        findings.append(
            places.finding(
                "stage-id-missing",
                "Stage has no explicit id; generated ids are stable only while order is unchanged.",
                stage_at,
                stage_id=stage_id,
                path=agilab_path,
                hint='Add id = "..." to make dependency and evidence references durable.',
            )
        )
    if engine not in SUPPORTED_ENGINES:
        findings.append(
            places.finding(
                "stage-engine-unknown",
                f"Stage engine {engine!r} is not a standard AGILAB dry-run engine.",
                places.value((*here, "R")),
                stage_id=stage_id,
                path=agilab_path,
                hint="Use runpy, agi.run, or agi.install when the stage is meant to be executable.",
            )
        )
    if code.strip() and not runtime_role:
        findings.append(
            places.finding(
                "runtime-role-missing",
                "Stage has code but no explicit manager/worker role metadata.",
                places.key((*here, "C")),
                stage_id=stage_id,
                path=agilab_path,
                hint="Notebook imports can set NB_RUNTIME_ROLE to manager, worker, or analysis.",
            )
        )
    if app and not apps.finds(app):
        findings.append(
            places.finding(
                "app-reference-missing",
                f"Referenced app project was not found locally: {app}",
                app_at,
                stage_id=stage_id,
                path=agilab_path,
                hint="Pass --apps-root or install the app before executing this workflow.",
            )
        )
    stage = Stage(
        stage_id=stage_id,
        source_key=source_key,
        index=index,
        label=label,
        kind=kind,
        engine=engine or "runpy",
        runtime_role=runtime_role or "unspecified",
        app=app,
        code_sha256=hashlib.sha256(code.encode("utf-8")).hexdigest() if code else "",
        depends_on=tuple(depends_on),
        consumes=tuple(consumes),
        produces=tuple(produces),
        id_at=places.value((*here, "id")) if explicit_id else stage_at,
    )
    return stage, findings


def _app(
    entry: Mapping[str, Any], facts: CodeFacts, here: KeyPath, places: Places, in_code: Any
) -> tuple[str, Where | None]:
    """``app`` key, else ``APP = …`` in the code, else ``APP`` key; with where it is written."""
    if text(entry.get("app")):
        return text(entry.get("app")), places.value((*here, "app"))
    if facts.app and facts.app_at is not None:
        return facts.app, in_code(facts.app_at)
    app = text(entry.get("APP"))
    return app, places.value((*here, "APP")) if app else None


def _runtime_role(entry: Mapping[str, Any], facts: CodeFacts) -> str:
    for key in ROLE_KEYS:
        value = text(entry.get(key))
        if value:
            return value.lower()
    return text(facts.role).lower()


def items(raw: Any, path: KeyPath, places: Places) -> list[tuple[str, Where | None]]:
    """AGILAB's ``_items``: a string, a table's ``artifact``/``id``/``path``/``name``, or a list of
    those (flattened); any other value as ``str``; each with where it is written."""
    if raw is None:
        return []
    if isinstance(raw, str):
        return [(raw.strip(), places.value(path))] if raw.strip() else []
    if isinstance(raw, Mapping):
        for key in ("artifact", "id", "path", "name"):
            value = text(raw.get(key))
            if value:
                return [(value, places.value((*path, key)))]
        return []
    if isinstance(raw, Sequence) and not isinstance(raw, (bytes, bytearray)):
        out: list[tuple[str, Where | None]] = []
        for i, item in enumerate(raw):
            out.extend(items(item, (*path, i), places))
        return out
    return [(str(raw).strip(), places.value(path))] if str(raw).strip() else []


def unique(values: list[tuple[str, Where | None]]) -> list[tuple[str, Where | None]]:
    """AGILAB's ``_unique_texts``, keeping where each text was first written."""
    seen: set[str] = set()
    out = []
    for value, where in values:
        t = text(value)
        if t and t not in seen:
            seen.add(t)
            out.append((t, where))
    return out


def text(value: Any) -> str:
    """AGILAB's ``_text``: ``str(value or "").strip()`` (so ``0`` and ``false`` are empty)."""
    return str(value or "").strip()


def first_line(value: Any) -> str:
    for line in text(value).splitlines():
        if line.strip():
            return line.strip()
    return ""


def engine_kind(engine: str) -> str:
    return {"agi.install": "install", "agi.run": "run", "runpy": "python"}.get(engine, "stage")


def slug(value: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", value.strip()).strip("_.-") or "stage"
