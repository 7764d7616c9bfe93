"""Read a file the way AGILAB's validators read it, and say why not when it cannot be read.

The lab validator reads text (``Path.read_text``: universal newlines, so ``\\r\\n`` and a lone
``\\r`` become ``\\n``) and hands it to ``tomllib``; the contract checker hands the raw bytes to
``tomllib``. Neither strips a byte-order mark (``tomllib`` rejects it). Where AGILAB would crash (a
file that is not UTF-8, arrays nested too deeply for ``tomllib``'s recursion), this reports the same
"unreadable" issue, located, instead.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

from ...load.source import SourceMap
from .finding import Finding, Places, Where

_AT = re.compile(r"\(at line (\d+), column (\d+)\)")


def read_table(
    file: str,
    *,
    missing_id: str,
    missing_message: str,
    missing_hint: str,
    unreadable_id: str,
    what: str,
    universal_newlines: bool,
) -> tuple[dict[str, Any] | None, SourceMap | None, Finding | None]:
    """The parsed table and its source map, or the finding that says why there is none.
    ``what`` names the file in AGILAB's message (``Could not read lab_stages.toml: …``)."""
    path = Path(file).expanduser()
    none = Places(file, None)
    if not path.is_file():
        return (
            None,
            None,
            none.finding(
                missing_id, missing_message.format(path=path), None, path=str(path), hint=missing_hint
            ),
        )
    try:
        raw = path.read_bytes()
    except OSError as exc:
        return None, None, none.finding(unreadable_id, f"Could not read {what}: {exc}", None, path=str(path))
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        good = SourceMap(raw[: exc.start].decode("utf-8"))
        where = Places(file, good).at(len(good.text))
        return None, None, none.finding(unreadable_id, f"Could not read {what}: {exc}", where, path=str(path))
    if universal_newlines:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    source = SourceMap(text)
    places = Places(file, source)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        m = _AT.search(str(exc))
        if m:
            line, column = int(m.group(1)), int(m.group(2))
            text_line = source.line_text(line)
            where: Where | None = Where(line, column, text_line)
        else:  # "(at end of document)"
            where = places.at(len(text))
        return (
            None,
            None,
            places.finding(unreadable_id, f"Could not read {what}: {exc}", where, path=str(path)),
        )
    except RecursionError:
        return (
            None,
            None,
            places.finding(
                unreadable_id,
                f"Could not read {what}: arrays or inline tables are nested too deeply",
                places.top(),
                path=str(path),
            ),
        )
    return data, source, None
