"""``agilab-run fmt``: one canonical, stable layout for lab files, so that diffs stay small.

The layout: every stage list as an array of tables (``[[module]]``, one key per line) rather than
an inline array of inline tables; multi-line code (``C``) in a literal ``'''`` block starting on its
own line (a ``\"\"\"`` block when the code holds ``'''`` or control characters). Keys keep their order
and every comment is kept: an inline array with a comment in it or after it is left as written.

Each change (one stage list, one code value) is checked before it is kept: the file must load to
the very same data (``nan`` equal to ``nan``) and hold the very same comments; a change that fails
is dropped and its value left as written, so ``fmt`` never refuses a valid lab and ``--check``
passes once ``fmt`` has run. Formatting is idempotent: a formatted file formats to itself.
A file whose every line ends in CRLF stays CRLF; the file keeps its mode, and a symlink stays a
symlink (its target is rewritten).
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

from .writing import replace_kept

CODE_KEYS = ("C", "code")

Change = tuple[Any, ...]  # (list key,) for an inline array, (list key, stage, code key) for code


class FormatProblem(Exception):
    """Why a file was not formatted (nothing was written)."""


def comments(text: str) -> list[str]:
    """Every comment of a TOML text, in order (``#`` to the end of its line, trailing blanks
    and CR dropped); ``#`` inside a string of any quoting is not one."""
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch == "#":
            end = text.find("\n", i)
            end = n if end < 0 else end
            out.append(text[i:end].rstrip())
            i = end
        elif ch in "\"'":
            if text.startswith(ch * 3, i):
                close = text.find(ch * 3, i + 3) if ch == "'" else _basic_end(text, i + 3, ch * 3)
                i = n if close < 0 else close + 3
                while i < n and text[i] == ch:  # up to two quotes end the content
                    i += 1
            else:
                close = text.find(ch, i + 1) if ch == "'" else _basic_end(text, i + 1, ch)
                i = n if close < 0 else close + 1
        else:
            i += 1
    return out


def _basic_end(text: str, i: int, closing: str) -> int:
    while True:
        close = text.find(closing, i)
        slash = text.find("\\", i)
        if close < 0 or slash < 0 or slash > close:
            return close
        i = slash + 2


def plain(value: Any) -> Any:
    """``value`` with every ``nan`` made comparable (``nan == nan``)."""
    if isinstance(value, float) and math.isnan(value):
        return ("nan", math.copysign(1.0, value))
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def same_data(a: str, b: str) -> bool:
    """Whether two TOML texts load to the same data (False when either does not load)."""
    import tomllib

    try:
        return plain(tomllib.loads(a)) == plain(tomllib.loads(b))
    except (tomllib.TOMLDecodeError, RecursionError):
        return False


def _code_string(value: str, trivia: Any = None) -> Any:
    """A block string whose text starts on the line after its opening quotes (TOML drops that
    first newline): literal when it can be, basic with escapes otherwise."""
    from tomlkit.items import String, StringType, Trivia

    trivia = trivia if trivia is not None else Trivia()
    literal_ok = "'" * 3 not in value and not value.endswith("'")
    if literal_ok and all(ch in "\t\n" or (0x20 <= ord(ch) != 0x7F) for ch in value):
        return String(StringType.MLL, value, "\n" + value, trivia)
    escaped = String.from_raw(value, type_=StringType.MLB)
    return String(StringType.MLB, value, "\n" + escaped._original, trivia)


def _is_multiline_code(key: str, value: Any) -> bool:
    from tomlkit.items import String, StringType

    if key not in CODE_KEYS or not isinstance(value, str) or "\n" not in value:
        return False
    # already a block that starts on its own line: keep it as written
    return not (
        isinstance(value, String)
        and value.type in (StringType.MLL, StringType.MLB)
        and value.as_string()[3:4] == "\n"
    )


def _stage_table(inline: Any) -> Any:
    import tomlkit

    table = tomlkit.table()
    for key, value in inline.items():
        table.add(key, _code_string(str(value)) if _is_multiline_code(key, value) else value)
    return table


def _has_comments(array: Any) -> bool:
    return bool(comments(array.as_string()) or array.trivia.comment)


def _layout(text: str, only: set[Change] | None) -> tuple[str, list[Change]]:
    """The text with the canonical layout applied (only the changes in ``only``, when given), and
    every change it could make."""
    import tomlkit
    from tomlkit.items import AoT, Array, InlineTable

    doc = tomlkit.parse(text)
    changes: list[Change] = []
    for key in list(doc.keys()):
        value = doc[key]
        if isinstance(value, Array) and value and all(isinstance(v, InlineTable) for v in value):
            if _has_comments(value):
                continue  # its comments have nowhere to go in tables: keep it as written
            changes.append((key,))
            if only is not None and (key,) not in only:
                continue
            aot = tomlkit.aot()
            for stage in value:
                table = _stage_table(stage)
                table.add(tomlkit.nl())  # a blank line after each stage
                aot.append(table)
            doc[key] = aot
        elif isinstance(value, AoT):
            for i, stage in enumerate(value):
                for k in list(stage.keys()):
                    if _is_multiline_code(k, stage[k]):
                        changes.append((key, i, k))
                        if only is None or (key, i, k) in only:
                            stage[k] = _code_string(str(stage[k]), stage[k].trivia)
    return tomlkit.dumps(doc).strip("\n") + "\n", changes


def _kept(before: str, after: str) -> bool:
    return same_data(before, after) and sorted(comments(before)) == sorted(comments(after))


def formatted(text: str) -> str:
    """The canonical text of a lab file's text: every change that keeps its data and comments."""
    try:
        new, changes = _layout(text, None)
    except Exception:  # a text tomlkit cannot lay out is left as written
        return text
    if _kept(text, new):
        return new
    accepted: set[Change] = set()
    for change in changes:  # one at a time: the ones that fail stay as written
        candidate, _ = _layout(text, accepted | {change})
        if _kept(text, candidate):
            accepted.add(change)
    new, _ = _layout(text, accepted)
    return new if _kept(text, new) else text


def format_text(text: str) -> str:
    """``formatted`` with the file's line endings: a file whose every line ends CRLF stays CRLF
    (a file that mixes endings is laid out as it is)."""
    lf = text.count("\n")
    crlf = text.count("\r\n")
    if crlf and crlf == lf:
        return formatted(text.replace("\r\n", "\n")).replace("\n", "\r\n")
    return formatted(text)


def format_file(path: Path, *, check: bool = False) -> bool:
    """Format ``path`` in place (or, with ``check``, only tell); whether it was (or would be) changed."""
    from ..load.lab import require_lab

    require_lab(path)  # a file that does not build as a lab stops here, its problems located
    real = Path(os.path.realpath(path))  # a symlink stays a symlink: its target is rewritten
    text = real.read_bytes().decode("utf-8")
    new = format_text(text)
    if new == text:
        return False
    if check:
        return True
    if not _kept(text, new):  # format_text guarantees it; never write a file that would lose data
        raise FormatProblem(
            "the formatted file would not hold the same data and comments; nothing was written"
        )
    replace_kept(real, new, real)
    return True
