"""Read AGILAB's files into the typed model, in phases, collecting every problem at once.

Phase 1 — the bytes: the file exists, is UTF-8, is TOML (``tomli``, tomllib's parser compiled).
Phase 2 — the schema: keys, aliases, types and enum values, per stage (pydantic); expressions inside
strings (``mode``, ``when``, ``function``, ``${…}`` holes) parse.
Semantic checks across stages and files (ids, deps, cycles, settings references) are in ``check``.

Every problem becomes a located :class:`~agilab_dsl.load.errors.Diagnostic`; foreign exceptions
(tomllib, pydantic, lark) never escape.

This module holds what every kind of file shares: the result of loading (:class:`LoadResult`),
the :class:`Locator` that places diagnostics, phase 1 (:func:`read_toml`) and :func:`detect_kind`.
Phase 2 is in the builders — :mod:`.lab` (with :mod:`.stage`), :mod:`.contract`, :mod:`.settings` —
which word pydantic's errors through :mod:`.validation`; :mod:`.any` loads a file of any kind.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, Literal, TypeVar

from . import expr
from .errors import Diagnostic, Severity, did_you_mean, make
from .reading import NotReadable, read_regular
from .source import KeyPath, SourceMap

try:  # tomllib's own code, compiled (mypyc): the same TOML 1.0 parser, ~3x faster on a big lab
    from tomli import TOMLDecodeError
    from tomli import loads as toml_loads
except ImportError:  # pragma: no cover - tomli is a dependency; a wheel-less platform still works
    from tomllib import TOMLDecodeError
    from tomllib import loads as toml_loads

T = TypeVar("T")
FileKind = Literal["lab", "contract", "settings"]


@dataclass(frozen=True)
class StringRef:
    """A ``${…}`` (or ``when``) reference found in a stage, with where it sits."""

    stage_index: int  # index into Lab.stages
    ref: expr.Ref
    key_path: KeyPath  # where the string sits in the file
    offset: int  # offset of the reference inside the string (for locating it)
    in_template: bool


@dataclass
class LoadResult(Generic[T]):
    """What loading one file gave: the value (None when an error stopped it) and every diagnostic."""

    path: str
    kind: FileKind | None
    value: T | None
    diagnostics: list[Diagnostic] = field(default_factory=list)
    source: SourceMap | None = None
    data: dict[str, Any] | None = None
    refs: list[StringRef] = field(default_factory=list)
    partial: Any = None  # for labs: the Lab built from the stages that validated, even when others did not
    invalid_ids: set[str] = field(default_factory=set)  # for labs: ids of stages that failed validation
    profile: str | None = None  # for labs: the selected profile, deep-merged into the stages that define it
    graph: Any = None  # for labs: the StepGraph, once the semantic checks found it sound

    def locator(self) -> Locator:
        """A locator that appends to this result's diagnostics."""
        loc = Locator(self.path, self.source)
        loc.diagnostics = self.diagnostics
        return loc

    @property
    def ok(self) -> bool:
        return self.value is not None and not any(d.is_error for d in self.diagnostics)


# ---------------------------------------------------------------------------------------------
# Locating diagnostics


class Locator:
    """Builds diagnostics for one file, turning key paths and offsets into line/column + source."""

    def __init__(self, path: str, source: SourceMap | None) -> None:
        self.path = path
        self.source = source
        self.diagnostics: list[Diagnostic] = []

    def _emit(
        self,
        code: str,
        message: str,
        offset: int | None,
        *,
        key: str | None,
        hint: str | None,
        width: int,
        severity: Severity | None,
    ) -> Diagnostic:
        line = col = None
        text = None
        if offset is not None and self.source is not None:
            line, col = self.source.line_col(offset)
            text = self.source.line_text(line)
        d = make(
            code,
            message,
            self.path,
            line,
            col,
            severity=severity,
            key=key,
            hint=hint,
            source_line=text,
            width=width,
        )
        self.diagnostics.append(d)
        return d

    def at_offset(
        self,
        code: str,
        message: str,
        offset: int | None,
        *,
        key: KeyPath | str | None = None,
        hint: str | None = None,
        width: int = 1,
        severity: Severity | None = None,
    ) -> Diagnostic:
        return self._emit(code, message, offset, key=key_text(key), hint=hint, width=width, severity=severity)

    def at_key(
        self,
        code: str,
        message: str,
        path: KeyPath,
        *,
        hint: str | None = None,
        severity: Severity | None = None,
    ) -> Diagnostic:
        span = self.source.span(path) if self.source else None
        offset = span.key if span else (0 if self.source is not None and not path else None)
        width = 1
        if (
            span is not None
            and self.source is not None
            and isinstance(path[-1], str)
            and span.kind != "header"
        ):
            width = len(self._written_key(span.key)) or 1
        return self._emit(
            code, message, offset, key=key_text(path), hint=hint, width=width, severity=severity
        )

    def at_value(
        self,
        code: str,
        message: str,
        path: KeyPath,
        *,
        hint: str | None = None,
        severity: Severity | None = None,
    ) -> Diagnostic:
        span = self.source.span(path) if self.source else None
        offset = span.value if span else None
        width = 1
        if span is not None and self.source is not None:
            line, col = self.source.line_col(span.value)
            width = min(span.end - span.value, len(self.source.line_text(line)) - col + 1)
        return self._emit(
            code, message, offset, key=key_text(path), hint=hint, width=width, severity=severity
        )

    def in_string(
        self,
        code: str,
        message: str,
        path: KeyPath,
        index: int,
        *,
        hint: str | None = None,
        width: int = 1,
        severity: Severity | None = None,
    ) -> Diagnostic:
        offset = self.source.string_offset(path, index) if self.source else None
        if offset is None:
            return self.at_value(code, message, path, hint=hint, severity=severity)
        return self._emit(
            code, message, offset, key=key_text(path), hint=hint, width=width, severity=severity
        )

    def _written_key(self, offset: int) -> str:
        assert self.source is not None
        m = re.compile(r'"(?:[^"\\]|\\.)*"|\'[^\']*\'|[A-Za-z0-9_-]+').match(self.source.text, offset)
        return m.group() if m else ""


def key_text(key: KeyPath | str | None) -> str | None:
    if key is None or isinstance(key, str):
        return key
    out = ""
    for part in key:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            seg = part if re.fullmatch(r"[A-Za-z0-9_-]+", part) else json.dumps(part, ensure_ascii=False)
            out += ("." if out else "") + seg
    return out


def toml_repr(value: Any, limit: int = 60) -> str:
    """A value as TOML would show it, shortened for messages."""
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, str):
        text = json.dumps(value, ensure_ascii=False)
    elif isinstance(value, dict):
        text = "{" + ", ".join(f"{k} = {toml_repr(v, limit)}" for k, v in value.items()) + "}"
    elif isinstance(value, list):
        text = "[" + ", ".join(toml_repr(v, limit) for v in value) + "]"
    else:
        text = str(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


# ---------------------------------------------------------------------------------------------
# Phase 1: bytes and TOML

_TOML_POS = re.compile(r"\(at line (\d+), column (\d+)\)")


def read_toml(
    path: str | Path, text: str | None = None
) -> tuple[dict[str, Any] | None, SourceMap | None, Locator]:
    """Read and parse a TOML file. On failure the locator holds the diagnostic and data is None."""
    name = str(path)
    loc = Locator(name, None)
    if text is None:
        p = Path(path)
        try:
            raw = read_regular(p)
        except NotReadable as exc:
            loc.at_offset("file-unreadable", str(exc), None)
            return None, None, loc
        except FileNotFoundError:
            siblings = [c.name for c in p.parent.glob("*.toml")] if p.parent.is_dir() else []
            loc.at_offset(
                "file-missing", "no such file", None, hint=did_you_mean(p.name, siblings, cutoff=0.8)
            )
            return None, None, loc
        except IsADirectoryError:
            loc.at_offset("file-unreadable", "is a directory, not a file", None)
            return None, None, loc
        except OSError as exc:
            loc.at_offset("file-unreadable", f"cannot read: {exc.strerror or exc}", None)
            return None, None, loc
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            good = raw[: exc.start].decode("utf-8")
            partial = SourceMap(good)  # only its line index is used: the text is not TOML
            line, col = partial.line_col(len(good))
            loc.diagnostics.append(
                make(
                    "encoding-invalid",
                    f"byte 0x{raw[exc.start]:02x} is not valid UTF-8",
                    name,
                    line,
                    col,
                    source_line=partial.line_text(line),
                    hint="TOML files must be UTF-8",
                )
            )
            return None, None, loc
    if text.startswith("\ufeff"):
        text = text[1:]
    try:
        data = toml_loads(text)
    except RecursionError:  # arrays or inline tables nested thousands deep: tomllib recurses
        partial = SourceMap(text)
        line, col = _deepest_opening(text, partial)
        loc.diagnostics.append(
            make(
                "toml-syntax",
                "arrays or inline tables are nested too deeply to read",
                name,
                line,
                col,
                source_line=partial.line_text(line),
                hint="a lab file needs a few levels of nesting, not hundreds",
            )
        )
        return None, None, loc
    except TOMLDecodeError as exc:
        msg = str(exc)
        m = _TOML_POS.search(msg)
        reason = _TOML_POS.sub("", msg).strip()
        reason = reason[0].lower() + reason[1:] if reason else "invalid TOML"
        partial = SourceMap(text)  # only its line index is used: the text is not TOML
        if m:
            line, col = int(m.group(1)), int(m.group(2))
            if "cannot overwrite" in reason or "cannot declare" in reason:
                text_line = partial.line_text(line)
                col = len(text_line) - len(text_line.lstrip()) + 1  # point at the key, not past the value
        else:  # "at end of document"
            line, col = partial.line_col(len(text))
            reason = reason.replace("(at end of document)", "").strip() + " at end of file"
        loc.diagnostics.append(
            make(
                "toml-syntax",
                reason,
                name,
                line,
                col,
                source_line=partial.line_text(line),
                hint=_toml_hint(reason, partial.line_text(line)),
            )
        )
        return None, None, loc
    source = SourceMap(text)
    loc.source = source
    return data, source, loc


def _toml_hint(reason: str, line: str) -> str | None:
    if "cannot overwrite a value" in reason.lower() or "cannot declare" in reason.lower():
        return "a key (or table) is defined twice"
    if "invalid value" in reason.lower() and re.search(r"=\s*[A-Za-z]", line):
        return "strings need quotes; booleans are lowercase true/false"
    if "illegal character" in reason.lower() and "\\n" in reason:
        return "a string is not closed before the end of the line (use ''' or \"\"\" for multi-line text)"
    if "unclosed" in reason.lower() or ("expected" in reason.lower() and "]" in reason):
        return "check that every bracket, brace and quote is closed"
    return None


def _deepest_opening(text: str, source: SourceMap) -> tuple[int, int]:
    """Line and column of the bracket or brace that opens the deepest nesting (outside strings,
    roughly: quotes toggle a flag), for a file too deeply nested to parse."""
    depth, best, best_at, quote = 0, 0, 0, ""
    for at, ch in enumerate(text):
        if quote:
            if ch == quote:
                quote = ""
        elif ch in "\"'":
            quote = ch
        elif ch in "[{":
            depth += 1
            if depth > best:
                best, best_at = depth, at
        elif ch in "]}":
            depth -= 1
        elif ch == "\n":
            quote = ""
    return source.line_col(best_at)


def detect_kind(path: str | Path, data: Mapping[str, Any]) -> FileKind | None:
    """Which of the three formats a parsed file is: by schema stamp, then file name, then shape."""
    schema = data.get("schema")
    meta = data.get("__meta__")
    if isinstance(schema, str) and schema.startswith("agilab.parallel_stage"):
        return "contract"
    if (
        isinstance(meta, dict)
        and isinstance(meta.get("schema"), str)
        and meta["schema"].startswith("agilab.lab_st")
    ):
        return "lab"
    name = Path(path).name.lower()
    if "parallel_stage" in name:
        return "contract"
    if "lab_steps" in name or "lab_stages" in name:
        return "lab"
    if "app_settings" in name:
        return "settings"
    if "__meta__" in data or any(_is_table_array(v) for v in data.values()):
        return "lab"
    if {"function", "split", "reducer"} <= data.keys():
        return "contract"
    if isinstance(data.get("args"), dict) or isinstance(data.get("cluster"), dict):
        return "settings"
    return None


def _is_table_array(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, dict) for v in value)


# ---------------------------------------------------------------------------------------------
# Phase 2 starts from here: the builders (lab, contract, settings) fill in this result


def read_source(
    path: str | Path, text: str | None, kind: FileKind | None, profile: str | None = None
) -> tuple[LoadResult[Any], Locator]:
    data, source, loc = read_toml(path, text)
    return LoadResult(str(path), kind, None, loc.diagnostics, source, data, profile=profile), loc
