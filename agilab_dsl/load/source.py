"""Where every key and value sits in a TOML file.

``tomllib`` reads values fast but forgets positions; ``tomlkit`` keeps formatting but has no
line/column API and is ~9x slower on big labs. So values come from ``tomllib`` and positions from
this scanner: a single pass over text that ``tomllib`` has already accepted, recording for each
key path (``("flight", 2, "deps")``) the offset of the key and the span of its value.

It also maps a character index inside a decoded TOML string back to the file, so that an error in
an expression embedded in a string is reported at the right line and column of the file.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterator
from dataclasses import dataclass

KeyPath = tuple[str | int, ...]

_WS = re.compile(r"[ \t]*")
_WS_NL_COMMENT = re.compile(r"(?:[ \t\r\n]|#[^\n]*)*")
_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
_BASIC = re.compile(r'"(?:[^"\\\n]|\\.)*"')
_LITERAL = re.compile(r"'[^'\n]*'")
_ML_BASIC = re.compile(r'"""(?:[^"\\]|\\.|"(?!""))*"{3,5}', re.S)
_ML_LITERAL = re.compile(r"'''(?:[^']|'(?!''))*'{3,5}", re.S)
_SCALAR = re.compile(
    r"\d{4}-\d{2}-\d{2}(?:[Tt ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:[Zz]|[+-]\d{2}:\d{2})?)?"
    r"|[^\s,\]\}#]+"
)


@dataclass(frozen=True, slots=True)
class Span:
    """Offsets (0-based, in characters) of one key and its value."""

    key: int  # start of the key as written (the last segment of a dotted key)
    value: int  # start of the value (opening quote for strings)
    end: int  # one past the end of the value
    kind: str  # 'basic' | 'literal' | 'ml-basic' | 'ml-literal' | 'array' | 'table' | 'header' | 'scalar'


@dataclass(frozen=True, slots=True)
class WrittenKey:
    """One key as the text writes it: a table header, an array-of-tables header or a key = value."""

    kind: str  # 'table' | 'array-table' | 'key'
    table: KeyPath  # for a key = value: the table it sits in (() the root; an inline table's own path)
    segments: tuple[tuple[str, int], ...]  # each dotted segment: (name, offset of its first character)


def written_keys(text: str) -> list[WrittenKey]:
    """Every key of a valid TOML text in file order, with the offset of each segment as written
    (what a text edit that renames a key needs: ``[[steps]]``, ``[steps.x]``, ``steps = …``)."""
    found: list[WrittenKey] = []
    _Scanner(text, {}, found).run()
    return found


class SourceMap:
    """Positions of keys and values in one TOML text (which must already be valid TOML).

    Lazy: the text is scanned on the first question asked, so a load that finds nothing to report
    never pays for positions. The line index alone works on any text, valid TOML or not."""

    def __init__(self, text: str) -> None:
        self.text = text
        self._line_index: list[int] | None = None
        self._spans: dict[KeyPath, Span] | None = None

    @property
    def _line_starts(self) -> list[int]:
        if self._line_index is None:
            self._line_index = [0] + [m.end() for m in re.finditer("\n", self.text)]
        return self._line_index

    @property
    def spans(self) -> dict[KeyPath, Span]:
        if self._spans is None:
            spans: dict[KeyPath, Span] = {}
            _Scanner(self.text, spans).run()
            self._spans = spans
        return self._spans

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SourceMap) and other.text == self.text

    def __hash__(self) -> int:
        return hash(self.text)

    # -- offsets to positions -------------------------------------------------------------
    def line_col(self, offset: int) -> tuple[int, int]:
        """1-based (line, column) of a character offset."""
        line = bisect.bisect_right(self._line_starts, offset) - 1
        return line + 1, offset - self._line_starts[line] + 1

    def line_text(self, line: int) -> str:
        """The text of a 1-based line, without its newline."""
        if line < 1 or line > len(self._line_starts):
            return ""
        start = self._line_starts[line - 1]
        end = self._line_starts[line] - 1 if line < len(self._line_starts) else len(self.text)
        return self.text[start:end].rstrip("\r")

    # -- lookups --------------------------------------------------------------------------
    def span(self, path: KeyPath) -> Span | None:
        """The span of ``path``; for a table only declared implicitly (``[a.b]`` declares ``a``), the
        first key under it; else the span of the longest prefix the file spells out."""
        found = self.spans.get(path)
        if found is not None:
            return found
        n = len(path)
        if n:
            for key, span in self.spans.items():
                if key[:n] == path:
                    return span
        while path:
            path = path[:-1]
            found = self.spans.get(path)
            if found is not None:
                return found
        return None

    def key_position(self, path: KeyPath) -> tuple[int, int] | None:
        span = self.span(path)
        return self.line_col(span.key) if span else None

    def value_position(self, path: KeyPath) -> tuple[int, int] | None:
        span = self.span(path)
        return self.line_col(span.value) if span else None

    def string_offset(self, path: KeyPath, index: int) -> int | None:
        """File offset of character ``index`` of the decoded string value at ``path``."""
        span = self.spans.get(path)
        if span is None or span.kind not in ("basic", "literal", "ml-basic", "ml-literal"):
            return None
        return _decoded_to_raw(self.text, span, index)


def _decoded_to_raw(text: str, span: Span, index: int) -> int:
    quote = 3 if span.kind.startswith("ml-") else 1
    pos = span.value + quote
    end = span.end - quote
    if span.kind.startswith("ml-"):
        # TOML trims a newline that immediately follows the opening delimiter.
        if text.startswith("\r\n", pos):
            pos += 2
        elif text.startswith("\n", pos):
            pos += 1
    if span.kind == "literal":
        return min(pos + index, end)
    seen = 0
    while pos < end and seen < index:
        ch = text[pos]
        if ch == "\r" and text.startswith("\r\n", pos):
            pos += 2  # a multi-line string's CRLF decodes to one "\n"
        elif ch == "\\" and pos + 1 < end and span.kind != "ml-literal":
            nxt = text[pos + 1]
            if nxt == "u":
                pos += 6
            elif nxt == "U":
                pos += 10
            elif nxt in " \t\r\n":
                # line-ending backslash: the newline and following whitespace vanish
                pos += 1
                while pos < end and text[pos] in " \t\r\n":
                    pos += 1
                continue
            else:
                pos += 2
        else:
            pos += 1
        seen += 1
    return pos


def _must(pattern: re.Pattern[str], text: str, pos: int) -> re.Match[str]:
    m = pattern.match(text, pos)
    assert m is not None, f"TOML accepted by tomllib but not scanned at offset {pos}"
    return m


class _Scanner:
    """A structural pass over valid TOML, recording the span of every key path."""

    def __init__(self, text: str, spans: dict[KeyPath, Span], keys: list[WrittenKey] | None = None) -> None:
        self.t = text
        self.n = len(text)
        self.i = 0
        self.spans = spans
        self.keys = keys  # when given, every key as written is appended
        self.aot_count: dict[tuple[str, ...], int] = {}  # array-of-tables name path -> last index

    def run(self) -> None:
        prefix: KeyPath = ()
        t = self.t
        while True:
            self.i = _must(_WS_NL_COMMENT, t, self.i).end()
            if self.i >= self.n:
                return
            if t.startswith("[[", self.i):
                start = self.i
                self.i += 2
                parts = self._key()
                names = [name for name, _ in parts]
                if self.keys is not None:
                    self.keys.append(WrittenKey("array-table", (), tuple(parts)))
                self.i = _must(_WS, t, self.i).end() + 2  # "]]"
                prefix = self._resolve(names, new_element=True)
                self.spans[prefix] = Span(start, start, self.i, "header")
            elif t[self.i] == "[":
                start = self.i
                self.i += 1
                parts = self._key()
                names = [name for name, _ in parts]
                if self.keys is not None:
                    self.keys.append(WrittenKey("table", (), tuple(parts)))
                self.i = _must(_WS, t, self.i).end() + 1  # "]"
                prefix = self._resolve(names, new_element=False)
                self.spans.setdefault(prefix, Span(start, start, self.i, "header"))
            else:
                self._keyval(prefix)

    def _resolve(self, names: list[str], *, new_element: bool) -> KeyPath:
        path: list[str | int] = []
        for depth, name in enumerate(names):
            path.append(name)
            key = tuple(names[: depth + 1])
            last = depth == len(names) - 1
            if last and new_element:
                self.aot_count[key] = self.aot_count.get(key, -1) + 1
                # a new element starts fresh arrays of tables nested under it
                for nested in [k for k in self.aot_count if len(k) > len(key) and k[: len(key)] == key]:
                    del self.aot_count[nested]
                path.append(self.aot_count[key])
            elif key in self.aot_count:
                path.append(self.aot_count[key])
        return tuple(path)

    def _key(self) -> list[tuple[str, int]]:
        """A (possibly dotted) key: a list of (segment, offset)."""
        t = self.t
        parts: list[tuple[str, int]] = []
        while True:
            self.i = _must(_WS, t, self.i).end()
            start = self.i
            ch = t[self.i]
            if ch == '"':
                m = _BASIC.match(t, self.i)
                assert m is not None
                parts.append((_unescape_basic(m.group()[1:-1]), start))
            elif ch == "'":
                m = _LITERAL.match(t, self.i)
                assert m is not None
                parts.append((m.group()[1:-1], start))
            else:
                m = _BARE_KEY.match(t, self.i)
                assert m is not None
                parts.append((m.group(), start))
            self.i = _must(_WS, t, m.end()).end()
            if self.i < self.n and t[self.i] == ".":
                self.i += 1
                continue
            return parts

    def _keyval(self, prefix: KeyPath) -> None:
        parts = self._key()
        if self.keys is not None:
            self.keys.append(WrittenKey("key", prefix, tuple(parts)))
        self.i = _must(_WS, self.t, self.i).end() + 1  # "="
        self.i = _must(_WS, self.t, self.i).end()
        path = prefix + tuple(name for name, _ in parts)
        self._value(path, parts[-1][1])

    def _value(self, path: KeyPath, key_offset: int) -> None:
        t = self.t
        start = self.i
        ch = t[start]
        if ch == '"':
            if t.startswith('"""', start):
                m = _ML_BASIC.match(t, start)
                kind = "ml-basic"
            else:
                m = _BASIC.match(t, start)
                kind = "basic"
            assert m is not None
            self.i = m.end()
        elif ch == "'":
            if t.startswith("'''", start):
                m = _ML_LITERAL.match(t, start)
                kind = "ml-literal"
            else:
                m = _LITERAL.match(t, start)
                kind = "literal"
            assert m is not None
            self.i = m.end()
        elif ch == "[":
            kind = "array"
            self.i += 1
            index = 0
            while True:
                self.i = _must(_WS_NL_COMMENT, t, self.i).end()
                if t[self.i] == "]":
                    self.i += 1
                    break
                item_start = self.i
                self._value(path + (index,), item_start)
                index += 1
                self.i = _must(_WS_NL_COMMENT, t, self.i).end()
                if t[self.i] == ",":
                    self.i += 1
        elif ch == "{":
            kind = "table"
            self.i += 1
            while True:
                self.i = _must(_WS_NL_COMMENT, t, self.i).end()
                if t[self.i] == "}":
                    self.i += 1
                    break
                self._keyval(path)
                self.i = _must(_WS_NL_COMMENT, t, self.i).end()
                if t[self.i] == ",":
                    self.i += 1
        else:
            kind = "scalar"
            m = _SCALAR.match(t, start)
            assert m is not None
            self.i = m.end()
        self.spans[path] = Span(key_offset, start, self.i, kind)


_ESCAPES = {"b": "\b", "t": "\t", "n": "\n", "f": "\f", "r": "\r", '"': '"', "\\": "\\", "e": "\x1b"}


def _unescape_basic(raw: str) -> str:
    def sub(m: re.Match[str]) -> str:
        s = m.group(1)
        if s[0] in "uU":
            return chr(int(s[1:], 16))
        return _ESCAPES.get(s, s)

    return re.sub(r"\\(u[0-9A-Fa-f]{4}|U[0-9A-Fa-f]{8}|.)", sub, raw)


def iter_strings(value: object, path: KeyPath = ()) -> Iterator[tuple[KeyPath, str]]:
    """Every string inside a parsed TOML value, with its key path."""
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from iter_strings(v, path + (k,))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from iter_strings(v, path + (i,))
