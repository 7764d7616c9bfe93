"""``agilab-run fmt``: one canonical, stable layout for lab files, so that diffs stay small.

The layout: every stage list as an array of tables (``[[module]]``, one key per line) rather than
an inline array of inline tables; multi-line code (``C``) in a literal ``'''`` block starting on its
own line (a ``\"\"\"`` block when the code holds ``'''`` or control characters). Keys keep their order
and every comment is kept: an inline array with comments between its stages is left as it is.
The result is checked before it is written: it must load to the very same stages.
Formatting is idempotent: a formatted file formats to itself.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

CODE_KEYS = ("C", "code")


class FormatProblem(Exception):
    """Why a file was not formatted (nothing was written)."""


def _code_string(value: str) -> Any:
    """A block string whose text starts on the line after its opening quotes (TOML drops that
    first newline): literal when it can be, basic with escapes otherwise."""
    from tomlkit.items import String, StringType, Trivia

    literal_ok = "'" * 3 not in value and not value.endswith("'")
    if literal_ok and all(ch in "\t\n" or (0x20 <= ord(ch) != 0x7F) for ch in value):
        return String(StringType.MLL, value, "\n" + value, Trivia())
    escaped = String.from_raw(value, type_=StringType.MLB)
    return String(StringType.MLB, value, "\n" + escaped._original, Trivia())


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
    return "#" in "".join(str(getattr(item, "trivia", "") or "") for item in array._value) or any(
        type(item).__name__ == "Comment" for item in getattr(array, "_value", [])
    )


def formatted(text: str) -> str:
    """The canonical text of a lab file's text."""
    import tomlkit
    from tomlkit.items import AoT, Array, InlineTable

    doc = tomlkit.parse(text)
    for key in list(doc.keys()):
        value = doc[key]
        if isinstance(value, Array) and value and all(isinstance(v, InlineTable) for v in value):
            if _has_comments(value):
                continue  # its comments have nowhere to go in tables: keep it as written
            aot = tomlkit.aot()
            for stage in value:
                table = _stage_table(stage)
                table.add(tomlkit.nl())  # a blank line after each stage
                aot.append(table)
            doc[key] = aot
        elif isinstance(value, AoT):
            for stage in value:
                for k in list(stage.keys()):
                    if _is_multiline_code(k, stage[k]):
                        stage[k] = _code_string(str(stage[k]))
    return tomlkit.dumps(doc).strip("\n") + "\n"


def _same_stages(a: Path, b: Path) -> bool:
    from ..load.lab import require_lab

    one, two = require_lab(a), require_lab(b)
    return [(s.id, s.stage.model_dump()) for s in one.stages] == [
        (s.id, s.stage.model_dump()) for s in two.stages
    ]


def format_file(path: Path, *, check: bool = False) -> bool:
    """Format ``path`` in place (or, with ``check``, only tell); whether it was (or would be) changed."""
    from ..load.lab import require_lab

    require_lab(path)  # a file that does not build as a lab stops here, its problems located
    real = Path(os.path.realpath(path))  # a symlink stays a symlink: its target is rewritten
    text = real.read_bytes().decode("utf-8")
    crlf = "\r\n" in text  # CRLF files stay CRLF
    new = formatted(text.replace("\r\n", "\n"))
    if crlf:
        new = new.replace("\n", "\r\n")
    if new == text:
        return False
    if check:
        return True
    tmp = real.with_name(f".{real.name}.fmt.tmp")
    tmp.write_bytes(new.encode("utf-8"))
    try:
        if not _same_stages(real, tmp):
            raise FormatProblem("the formatted file would not load to the same stages; nothing was written")
        os.chmod(tmp, stat.S_IMODE(real.stat().st_mode))  # the file keeps its mode
        tmp.replace(real)
    finally:
        if tmp.exists():
            tmp.unlink()
    return True
