"""``agilab-run migrate``: between AGILAB's two names for a stage list — ``lab_steps.toml``
(schema ``agilab.lab_steps.v1``) and ``lab_stages.toml`` (``agilab.lab_stages.v1``), a rename
AGILAB shipped without a migration.

The file is edited with tomlkit: only the ``[__meta__] schema`` stamp changes (a file without a
stamp keeps having none: its name says which it is), so comments, key order, quoting and unknown
keys survive, and migrating back gives the original bytes. Before anything is written, both
versions are loaded and must have the same stages, ids and code: a stage is never dropped.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

STAMPS = {"lab_steps": "agilab.lab_steps.v1", "lab_stages": "agilab.lab_stages.v1"}


class MigrationProblem(Exception):
    """Why a file was not migrated (nothing was written)."""


@dataclass(frozen=True)
class Migrated:
    source: Path
    target: Path
    stamp_changed: bool


def target_name(path: Path, to: str) -> Path:
    other = "lab_steps" if to == "lab_stages" else "lab_stages"
    return path.with_name(path.name.replace(other, to)) if other in path.name else path


def migrated_text(text: str, to: str) -> tuple[str, bool]:
    """The file's text with its schema stamp for ``to`` (and whether there was a stamp to change)."""
    import tomlkit
    from tomlkit.items import String

    doc = tomlkit.parse(text)
    meta: Any = doc.get("__meta__")
    stamp = meta.get("schema") if meta is not None else None
    if not isinstance(stamp, str) or not stamp.startswith("agilab.lab_st"):
        return text, False
    if str(stamp) == STAMPS[to]:
        return text, False
    meta["schema"] = (
        String.from_raw(STAMPS[to], type_=stamp.type) if isinstance(stamp, String) else STAMPS[to]
    )
    return tomlkit.dumps(doc), True


def _stages(path: Path) -> list[tuple[str, str | None, str | None]]:
    from ..load.lab import require_lab

    lab = require_lab(path)
    return [(s.id, s.stage.code, s.stage.function) for s in lab.stages]


def migrate(path: Path, to: str, output: Path | None = None, *, force: bool = False) -> Migrated:
    if to not in STAMPS:
        raise MigrationProblem(f"--to must be one of {', '.join(STAMPS)}")
    target = output or target_name(path, to)
    before = _stages(path)  # an invalid lab stops here, its problems located
    text = path.read_text(encoding="utf-8")
    new, changed = migrated_text(text, to)
    elsewhere = target.exists() and target.resolve() != path.resolve()
    if elsewhere and not force and target.read_text(encoding="utf-8") != new:
        raise MigrationProblem(f"{target} exists and differs; --force replaces it")
    tmp = target.with_name(f".{target.name}.migrate.tmp")
    tmp.write_text(new, encoding="utf-8")
    try:
        after = _stages(tmp)
        if before != after:
            lost = [sid for sid, *_ in before if sid not in [a for a, *_ in after]]
            raise MigrationProblem(
                f"the migrated file would not keep every stage (lost: {', '.join(lost) or 'changed'})"
            )
        tmp.replace(target)
    finally:
        if tmp.exists():
            tmp.unlink()
    return Migrated(path, target, changed)
