"""``agilab-run migrate``: between AGILAB's two forms of a stage list — ``lab_steps.toml`` (schema
``agilab.lab_steps.v1``, often unstamped, often a legacy ``[[steps]]``/``[[stages]]`` list) and
``lab_stages.toml`` as AGILAB accepts it today (``[__meta__] schema = "agilab.lab_stages.v1"``,
``version = 1``, the stages under the module key: the lab folder's name without ``_project``).

``--to lab_stages`` stamps the file (keeping any ``[__meta__]`` keys), renames a legacy list — or,
with an explicit ``--module-key``, the file's single list — to the module key, with its
``__sequence``/``__automation`` keys. ``--to lab_steps`` undoes exactly that on a file it produced
(it reads the record the migration leaves on the last line), and on any other file changes only
the stamp. The edits are text edits at the offsets the scanner reports (:mod:`.migrate_text`):
every other byte, comment and line ending stays. Before anything is written, both versions are
loaded and must hold the same stages in the same order; a rename that would change a default stage
id some stage refers to is refused, located. The file is written atomically with the mode of the
file it replaces (else the source's), through a symlink rather than over it.
"""

from __future__ import annotations

import errno
import os
import re
import stat
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .fmt import plain
from .migrate_text import STAGES_STAMP, STEPS_STAMP, MigrationProblem, Outcome, to_lab_stages, to_lab_steps
from .writing import replace_kept

__all__ = [
    "STAMPS",
    "Migrated",
    "MigrationProblem",
    "migrate",
    "migrated_text",
    "module_key_for",
    "target_name",
]

STAMPS = {"lab_steps": STEPS_STAMP, "lab_stages": STAGES_STAMP}
DEP_KEYS = ("deps", "depends_on", "dependencies")


@dataclass(frozen=True)
class Migrated:
    source: Path
    target: Path
    changed: bool
    done: tuple[str, ...]  # what was edited, in words
    notes: tuple[str, ...]  # what was left as it is and why
    module_key: str | None


def target_name(path: Path, to: str) -> Path:
    other = "lab_steps" if to == "lab_stages" else "lab_stages"
    return path.with_name(path.name.replace(other, to)) if other in path.name else path


def module_key_for(path: Path) -> str:
    """AGILAB's module key of a lab (``module_key_from_project``): its folder's name without ``_project``."""
    return path.absolute().parent.name.removesuffix("_project")


def migrated_text(text: str, to: str, module_key: str | None = None, *, explicit: bool = False) -> Outcome:
    """The migrated text of a lab's text (``module_key`` is needed for ``--to lab_stages``)."""
    if to == "lab_stages":
        if not module_key or module_key == "__meta__":
            raise MigrationProblem(f"{module_key!r} cannot be a module key", hint="pass --module-key KEY")
        return to_lab_stages(text, tomllib.loads(text), module_key, explicit=explicit)
    return to_lab_steps(text)


def _checked(path: Path, text: str | None) -> Any:
    """The loaded, checked lab of ``path`` (of ``text`` read as if it were ``path``'s, so that its
    relative paths resolve alike); a lab that does not build raises."""
    from ..check.files import check_file
    from ..load.errors import LoadError

    result, _ = check_file(path, kind="lab", text=text)
    if result.value is None:
        raise LoadError(result.diagnostics)
    return result


def _new_errors(before: Any, after: Any) -> list[Any]:
    """Errors the migrated lab has beyond the original's: a migration carries the original's own
    findings (prose where code belongs …) as they are, and must add none (counted by code, since a
    renamed list renames default ids in the messages)."""
    from collections import Counter

    had = Counter(d.code for d in before.diagnostics if d.is_error)
    out = []
    for d in after.diagnostics:
        if d.is_error:
            if had[d.code]:
                had[d.code] -= 1
            else:
                out.append(d)
    return out


def _located(problem: MigrationProblem, path: Path, text: str, code: str) -> MigrationProblem:
    """The problem with a diagnostic placed in the source file (when it names a key)."""
    from ..load.parse import Locator
    from ..load.source import SourceMap

    if problem.at is not None and problem.diagnostic is None:
        loc = Locator(str(path), SourceMap(text))
        problem.diagnostic = loc.at_key(code, str(problem), problem.at, hint=problem.hint)
    return problem


def _default_id_references(result: Any, renamed: dict[str, str], path: Path, text: str) -> None:
    """Refuse a rename that changes a default id (``<module>_<NNN>``) a stage refers to."""
    from ..load.parse import Locator
    from ..load.source import SourceMap

    lab = result.value
    changing = {
        f"{s.module}_{s.index + 1:03d}": f"{renamed[s.module]}_{s.index + 1:03d}"
        for s in lab.stages
        if s.module in renamed and s.stage.id is None
    }
    if not changing:
        return
    loc = Locator(str(path), SourceMap(text))
    hint = "give the stage that id explicitly (id = {!r}), then migrate"
    for s in lab.stages:
        raw = result.data[s.module][s.index]
        for key in DEP_KEYS:
            for j, dep in enumerate(raw.get(key) or ()):
                if dep in changing:
                    problem = MigrationProblem(
                        f"stage {s.id!r} depends on {dep!r}, the default id of a stage without an id; "
                        f"renaming its list would make it {changing[dep]!r}"
                    )
                    problem.diagnostic = loc.at_value(
                        "dependency-missing", str(problem), (s.module, s.index, key, j), hint=hint.format(dep)
                    )
                    raise problem
    for ref in result.refs:
        if ref.ref.root == "steps" and ref.ref.path and ref.ref.path[0] in changing:
            old = ref.ref.path[0]
            problem = MigrationProblem(
                f"${{{ref.ref.dotted()}}} names {old!r}, the default id of a stage without an id; "
                f"renaming its list would make it {changing[old]!r}"
            )
            problem.diagnostic = loc.in_string(
                "reference-invalid", str(problem), ref.key_path, ref.offset, hint=hint.format(old)
            )
            raise problem


def _stage_rows(result: Any, renamed: dict[str, str]) -> list[tuple[str, int, Any]]:
    return [
        (renamed.get(s.module, s.module), s.index, plain(s.stage.model_dump())) for s in result.value.stages
    ]


def migrate(
    path: Path,
    to: str,
    output: Path | None = None,
    *,
    force: bool = False,
    module_key: str | None = None,
) -> Migrated:
    """Migrate ``path`` (a checked lab) to ``to``, written to ``output`` or the file under its new name."""
    from ..load.errors import LoadError

    if to not in STAMPS:
        raise MigrationProblem(f"--to must be one of {', '.join(STAMPS)}")
    target = output or target_name(path, to)
    before = _checked(path, None)  # a file that does not build as a lab stops here, located
    text = path.read_bytes().decode("utf-8")  # as it is: CRLF stays CRLF
    key = (module_key or module_key_for(path)) if to == "lab_stages" else None
    try:
        outcome = migrated_text(text, to, key, explicit=module_key is not None)
        if outcome.renamed and to == "lab_stages":
            _default_id_references(before, outcome.renamed, path, text)
    except MigrationProblem as problem:
        raise _located(problem, path, text, "key-conflict") from None
    new = outcome.text
    try:
        after = _checked(path, new)
        added = _new_errors(before, after)
        if added:
            raise LoadError(added)
    except LoadError as exc:  # its lines are the migrated text's: say so rather than point into the file
        first = next(d for d in exc.diagnostics if d.is_error)
        raise MigrationProblem(
            f"the migrated file would not load ({first.code}: {first.message}); nothing was written"
        ) from None
    renamed = outcome.renamed
    same = _stage_rows(before, renamed) == _stage_rows(after, {})
    if not same or _plain(tomllib.loads(text), renamed) != _plain(tomllib.loads(new), {}):
        raise MigrationProblem("the migrated file would not hold the same stages; nothing was written")
    kind = _special_kind(target)
    if kind is not None:  # -o /dev/stdout, a FIFO: written straight through, never read back
        _write_through(target, new, kind)
        return Migrated(path, target, new != text, tuple(outcome.done), tuple(outcome.notes), key)
    elsewhere = target.exists() and target.resolve() != path.resolve()
    if elsewhere and not force and target.read_bytes() != new.encode("utf-8"):
        raise MigrationProblem(f"{target} exists and differs; --force replaces it")
    if new != text or target.resolve() != path.resolve():
        try:
            replace_kept(target, new, path)
        except OSError as exc:
            raise MigrationProblem(
                f"cannot write {target}: {exc.strerror or exc}; nothing was written"
            ) from None
    return Migrated(path, target, new != text, tuple(outcome.done), tuple(outcome.notes), key)


_META_MODULE_KEY = re.compile(r"^(?P<module>.+)__(?:sequence|automation)$")


def _plain(data: dict[str, Any], renamed: dict[str, str]) -> dict[str, Any]:
    """The file's data with its lists under their new names and the stamp left out: what must not
    change (every stage table, key and value, and every other ``[__meta__]`` key)."""
    out = {renamed.get(k, k): plain(v) for k, v in data.items() if k != "__meta__"}
    meta = {}
    for k, v in (data.get("__meta__") or {}).items():
        if k in ("schema", "version"):
            continue
        m = _META_MODULE_KEY.match(k)
        meta[f"{renamed.get(m['module'], m['module'])}{k[len(m['module']) :]}" if m else k] = plain(v)
    out["__meta__"] = meta
    return out


def _special_kind(target: Path) -> str | None:
    """What an existing ``target`` is when it is not a regular file (None for a file or a new path)."""
    from ..load.reading import what_it_is

    try:
        mode = target.stat().st_mode
    except OSError:
        return None
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISDIR(mode):
        raise MigrationProblem(f"{target} is a directory; -o names the file to write")
    return what_it_is(mode)


def _write_through(target: Path, text: str, kind: str) -> None:
    """Write to a device or FIFO as a shell redirection would, without blocking on a FIFO that no
    process reads; a failed write (ENOSPC on /dev/full) is a :class:`MigrationProblem`."""
    try:
        fd = os.open(target, os.O_WRONLY | os.O_NONBLOCK)
    except OSError as exc:
        why = "no process reads it" if exc.errno == errno.ENXIO else exc.strerror or exc
        raise MigrationProblem(f"cannot write {target} ({kind}): {why}") from None
    try:
        os.set_blocking(fd, True)
        data = text.encode("utf-8")
        while data:
            data = data[os.write(fd, data) :]
    except OSError as exc:
        raise MigrationProblem(f"cannot write {target} ({kind}): {exc.strerror or exc}") from None
    finally:
        os.close(fd)
