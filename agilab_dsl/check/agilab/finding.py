"""One issue of AGILAB's verdict, located: :class:`Finding` carries AGILAB's fields (severity,
check id, message, stage id, path, hint) plus where it sits in the file (line, column, the source
line), and becomes a :class:`~agilab_dsl.load.errors.Diagnostic` for the text and GitHub renderers.
:class:`Places` turns a key path, a value or a character of a string value into that location.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from ...load.errors import Diagnostic, Severity
from ...load.source import KeyPath, SourceMap
from .ids import CHECKS

_WRITTEN_KEY = re.compile(r'"(?:[^"\\]|\\.)*"|\'[^\']*\'|[A-Za-z0-9_-]+')


@dataclass(frozen=True)
class Where:
    """A position in the file: 1-based line and column, the line's text, the caret's width."""

    line: int
    column: int
    source_line: str
    width: int = 1


@dataclass(frozen=True)
class Finding:
    severity: str  # "error" | "warning" | "info"
    check_id: str
    message: str
    file: str  # the file as it was named on the command line
    stage_id: str = ""
    path: str = ""  # AGILAB's own ``path`` field, where AGILAB sets one
    hint: str = ""
    where: Where | None = None

    def as_dict(self) -> dict[str, Any]:
        """AGILAB's issue shape (``stage_id``, ``path``, ``hint`` only when set), plus ``file``,
        ``line`` and ``column``."""
        payload: dict[str, Any] = {
            "severity": self.severity,
            "check_id": self.check_id,
            "message": self.message,
        }
        if self.stage_id:
            payload["stage_id"] = self.stage_id
        if self.path:
            payload["path"] = self.path
        if self.hint:
            payload["hint"] = self.hint
        payload["file"] = self.file
        payload["line"] = self.where.line if self.where else None
        payload["column"] = self.where.column if self.where else None
        return payload

    def diagnostic(self) -> Diagnostic:
        where = self.where
        message = f"[{self.stage_id}] {self.message}" if self.stage_id else self.message
        return Diagnostic(
            code=self.check_id,
            message=message,
            path=self.file,
            line=where.line if where else None,
            column=where.column if where else None,
            severity=Severity(self.severity),
            hint=self.hint or None,
            source_line=where.source_line if where else None,
            width=where.width if where else 1,
        )


class Places:
    """Locations in one file, from its source map (None when the file could not be parsed)."""

    def __init__(self, file: str, source: SourceMap | None) -> None:
        self.file = file
        self.source = source

    def finding(
        self,
        check_id: str,
        message: str,
        where: Where | None,
        *,
        severity: str | None = None,
        stage_id: str = "",
        path: str = "",
        hint: str = "",
    ) -> Finding:
        return Finding(
            severity or CHECKS[check_id][0],
            check_id,
            message,
            self.file,
            stage_id=stage_id,
            path=path,
            hint=hint,
            where=where,
        )

    def at(self, offset: int, width: int = 1) -> Where | None:
        if self.source is None:
            return None
        line, column = self.source.line_col(offset)
        text = self.source.line_text(line)
        width = max(1, min(width, len(text) - column + 1))
        return Where(line, column, text, width)

    def top(self) -> Where | None:
        """The start of the file: for what concerns the file as a whole."""
        return self.at(0)

    def key(self, path: KeyPath) -> Where | None:
        """Where the key of ``path`` is written (a ``[[table]]`` header for an array element)."""
        span = self.source.span(path) if self.source else None
        if span is None:
            return self.top()
        width = 1
        if span.kind != "header":
            written = _WRITTEN_KEY.match(self.source.text, span.key) if self.source else None
            width = len(written.group()) if written else 1
        return self.at(span.key, width)

    def value(self, path: KeyPath) -> Where | None:
        """Where the value of ``path`` is written (its header, for a ``[[table]]`` element)."""
        span = self.source.span(path) if self.source else None
        if span is None:
            return self.top()
        if span.kind == "header":
            return self.at(span.key, span.end - span.key)
        return self.at(span.value, span.end - span.value)

    def in_string(self, path: KeyPath, index: int, width: int = 1) -> Where | None:
        """Where character ``index`` of the decoded string at ``path`` is written."""
        offset = self.source.string_offset(path, index) if self.source else None
        if offset is None:
            return self.value(path)
        return self.at(offset, width)

    def first_of(self, paths: list[KeyPath]) -> Where | None:
        """The key of whichever of ``paths`` comes first in the file."""
        if self.source is None or not paths:
            return self.top()
        source = self.source
        placed = [(span.key, p) for p in paths if (span := source.span(p)) is not None]
        return self.key(min(placed, key=lambda t: t[0])[1]) if placed else self.top()
