"""Reading the tool's own files under ``.agilab/`` without trusting them.

Those files are written atomically, but a disk, an editor, a sync tool or a person can still damage
them. :func:`read_json` never raises for what a file holds: it returns the value, or why it could
not be read (not UTF-8, not JSON, nested too deeply, a folder where a file belongs), for the caller
to name in a note and then skip or rebuild. This module imports only the standard library.
"""

from __future__ import annotations

import json
import os

TYPE_CHECKING = False  # typing is not imported: `status` answered from the judgment cache loads this
if TYPE_CHECKING:  # pragma: no cover
    from typing import Any

MAX_NOTES = 5  # damaged records named one by one; the rest are counted


_SHARED: dict[str, tuple[tuple[int, int], Any]] = {}  # path -> (size, mtime_ns), value


def read_json(path: str | os.PathLike[str], *, share: bool = False) -> tuple[Any, str | None]:
    """``(value, None)``; ``(None, None)`` when the file does not exist; ``(None, why)`` when it
    exists and cannot be read as JSON. ``share``: a value this process read from the file as it
    is now (same size and mtime) is returned again, not parsed again — the same object: callers
    that change it must write the file (or copy it) first."""
    key = os.fspath(path)
    try:
        with open(path, "rb") as fh:
            signature = None
            if share:
                st = os.fstat(fh.fileno())
                signature = (st.st_size, st.st_mtime_ns)
                shared = _SHARED.get(key)
                if shared is not None and shared[0] == signature:
                    return shared[1], None
            raw = fh.read()
    except (FileNotFoundError, NotADirectoryError):
        return None, None
    except IsADirectoryError:
        return None, "a folder, not a file"
    except OSError as exc:
        return None, exc.strerror or str(exc)
    value, why = parse_json(raw)
    if signature is not None and why is None:
        _SHARED[key] = (signature, value)
    return value, why


def parse_json(raw: bytes) -> tuple[Any, str | None]:
    """``(value, None)`` or ``(None, why)`` for the bytes of one JSON document."""
    if raw.strip(b"\0 \t\r\n") == b"" and b"\0" in raw:
        return None, "NUL bytes only (a write lost in a crash)"
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return None, f"not UTF-8 (byte {exc.start})"
    try:
        return json.loads(text), None
    except RecursionError:
        return None, "nested too deeply"
    except ValueError as exc:
        return None, f"not JSON: {exc}"


def summary(notes: list[str]) -> str | None:
    """The notes as one text (at most :data:`MAX_NOTES` named, the rest counted), or None."""
    if not notes:
        return None
    shown = notes[:MAX_NOTES]
    if len(notes) > MAX_NOTES:
        shown.append(f"… and {len(notes) - MAX_NOTES} more damaged records")
    return "\n  ".join(shown)
