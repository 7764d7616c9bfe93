"""A cache of ``check`` results, so that checking an unchanged file costs an interpreter start.

Importing pydantic alone takes longer than the whole start-up budget of ``check``; like ruff and
mypy, ``check`` therefore keeps its results keyed by everything they depend on:

* the tool itself (the size and mtime of every module and grammar file of the package),
* the call (the file as named, the working folder, ``--kind``, ``--settings``, ``sys.path``),
* every file and folder the check consulted — the checked file, settings candidates, parallel
  contracts, function sources, folders listed for hints — by content hash (or absence).

A stored result is used only when every one of those is unchanged. A result is stored only when
the files it consulted did not change while it was being computed. The cache lives in
``$AGILAB_CACHE_DIR``, else ``$XDG_CACHE_HOME/agilab-dsl``, else ``~/.cache/agilab-dsl``; it is
never required: any failure to read or write it is ignored. ``--no-cache`` or
``AGILAB_NO_CACHE=1`` turns it off. This module imports nothing heavy.

Each kind of entry (``check``, ``spec``) keeps at most ``$AGILAB_CACHE_MAX_MB`` (default 256) MiB,
as ccache does: an entry used is marked (its mtime), and storing one removes the least recently
used beyond that size. Entries keyed by an older version of the tool, a moved lab or an edited
``sys.path`` are never asked for again; without the limit they would pile up (a spec entry of a
100,000-step lab is ~30 MB).
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
import sys

from ..load.errors import Diagnostic, Severity
from .toolsig import tool_signature

TYPE_CHECKING = False  # typing itself is not imported: `check` answered from here pays for every module
if TYPE_CHECKING:  # pragma: no cover
    from typing import Any

FORMAT = 2  # 2: entries are {"seen", "payload"}
MAX_MB = 256  # each namespace's size, unless $AGILAB_CACHE_MAX_MB says otherwise


def cache_dir() -> str:
    explicit = os.environ.get("AGILAB_CACHE_DIR")
    if explicit:
        return explicit
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "agilab-dsl")


def enabled() -> bool:
    return os.environ.get("AGILAB_NO_CACHE", "") in ("", "0")


# The files a check reads are small: their SHA-256 comes from the interpreter's built-in module
# (what hashlib itself falls back to), sparing hashlib's import of OpenSSL (~2 ms of `check`'s
# start-up, and of a run's); a file over this size is hashed by hashlib (OpenSSL's SHA-256 is
# faster on large data). plan.fingerprint hashes a run's small values and files with it too.
SMALL = 1 << 20


# Found once: a failed import is not remembered, so trying `_sha2` at every call searched the whole
# of sys.path each time under Python 3.11 (~0.1 ms per call, 3 calls per step judged).
try:
    from _sha2 import sha256 as _sha256  # Python ≥ 3.12
except ImportError:
    try:
        from _sha256 import sha256 as _sha256  # Python 3.11
    except ImportError:  # an interpreter built without it
        from hashlib import sha256 as _sha256


def sha256_hex(data: bytes) -> str:
    """``hashlib.sha256(data).hexdigest()``, without importing hashlib for small data; data over
    :data:`SMALL` goes through hashlib's OpenSSL, ~6x faster (15 MB: 10 ms against 56 ms; the
    digest of a step gathering 100,000 inputs hashes that much)."""
    if len(data) > SMALL:
        import hashlib

        return hashlib.sha256(data).hexdigest()
    return _sha256(data).hexdigest()


def file_sha256(path: str | os.PathLike[str]) -> str:
    """A file's SHA-256 (hex): read whole when small, else streamed through hashlib."""
    with open(path, "rb") as fh:
        data = fh.read(SMALL + 1)
        if len(data) <= SMALL:
            return sha256_hex(data)
        import hashlib

        h = hashlib.sha256(data)
        while chunk := fh.read(SMALL):
            h.update(chunk)
    return h.hexdigest()


_HASHED: dict[str, tuple[int, int, str]] = {}  # path -> size, mtime_ns, SHA-256 (this process's)


def known_sha256(path: str) -> str:
    """A file's SHA-256, taken once per process while its size and mtime stay (a run hashes its
    lab for the spec cache, then for its history record: 16 MB at 100,000 steps)."""
    st = os.stat(path)
    known = _HASHED.get(path)
    if known is not None and known[:2] == (st.st_size, st.st_mtime_ns):
        return known[2]
    digest = file_sha256(path)
    _HASHED[path] = (st.st_size, st.st_mtime_ns, digest)
    return digest


def signature(path: str) -> str:
    """What a path holds now: 'missing', a folder's listing hash, or a file's content hash."""
    try:
        st = os.stat(path)
        if stat.S_ISDIR(st.st_mode):
            names = "\n".join(sorted(os.listdir(path)))
            return "dir:" + sha256_hex(names.encode("utf-8", "surrogateescape"))
        if not stat.S_ISREG(st.st_mode):  # a FIFO or a device: opening or reading it may never end
            return f"special:{stat.S_IFMT(st.st_mode)}"
        return "file:" + known_sha256(path)
    except FileNotFoundError:
        return "missing"
    except OSError as exc:
        return f"error:{type(exc).__name__}"


class Observations:
    """The paths a check consulted, with what each held when it was first consulted."""

    def __init__(self) -> None:
        self.seen: dict[str, str] = {}

    def note(self, path: str | os.PathLike[str]) -> None:
        key = os.path.abspath(path)
        if key not in self.seen:
            self.seen[key] = signature(key)

    def is_file(self, path: str | os.PathLike[str]) -> bool:
        self.note(path)
        return os.path.isfile(path)

    def unchanged(self) -> bool:
        return all(signature(p) == sig for p, sig in self.seen.items())


def _key(path: str, options: dict[str, Any]) -> str:
    from .. import __version__

    material = json.dumps(
        {
            "format": FORMAT,
            "version": __version__,
            "tool": tool_signature(),
            "path": path,
            "cwd": os.getcwd(),
            "options": options,
            "sys_path": sys.path,
            "python": sys.version,
        },
        sort_keys=True,
    )
    return sha256_hex(material.encode("utf-8", "surrogateescape"))


def _to_json(d: Diagnostic) -> dict[str, Any]:
    return {
        "code": d.code,
        "message": d.message,
        "path": d.path,
        "line": d.line,
        "column": d.column,
        "severity": d.severity.value,
        "key": d.key,
        "hint": d.hint,
        "source_line": d.source_line,
        "width": d.width,
    }


def _from_json(data: dict[str, Any]) -> Diagnostic:
    return Diagnostic(
        code=data["code"],
        message=data["message"],
        path=data["path"],
        line=data["line"],
        column=data["column"],
        severity=Severity(data["severity"]),
        key=data["key"],
        hint=data["hint"],
        source_line=data["source_line"],
        width=data["width"],
    )


def load_entry(namespace: str, path: str, options: dict[str, Any]) -> dict[str, Any] | None:
    """A stored payload whose consulted files are all unchanged, or None."""
    if not enabled():
        return None
    entry_path = os.path.join(cache_dir(), namespace, f"{_key(path, options)}.json")
    try:
        with open(entry_path, encoding="utf-8") as fh:
            entry = json.load(fh)
        if any(signature(p) != sig for p, sig in entry["seen"].items()):
            return None
        payload = entry["payload"]
        if not isinstance(payload, dict):
            return None
        with contextlib.suppress(OSError):
            os.utime(entry_path)  # used: the last to be removed when the namespace is pruned
        return payload
    except (OSError, ValueError, KeyError, TypeError):
        return None


def store_entry(
    namespace: str, path: str, options: dict[str, Any], observations: Observations, payload: dict[str, Any]
) -> None:
    """Keep a payload, unless a file it was computed from changed while it was computed (or the
    payload is not plain JSON data: a TOML date, say)."""
    if not enabled() or not observations.unchanged():
        return
    try:
        text = json.dumps({"seen": observations.seen, "payload": payload})  # C encoder, unlike json.dump
    except (TypeError, ValueError):
        return
    folder = os.path.join(cache_dir(), namespace)
    final = os.path.join(folder, f"{_key(path, options)}.json")
    tmp = f"{final}.{os.getpid()}.tmp"
    try:
        os.makedirs(folder, exist_ok=True)
        with open(tmp, "x", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, final)  # readers see the old entry or the new one, never half of one
    except OSError:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        return
    prune(folder, keep=final)


def max_bytes() -> int:
    """The most one namespace keeps, from ``$AGILAB_CACHE_MAX_MB`` (a number of MiB, ``0``: keep
    only the entry just stored), else :data:`MAX_MB`."""
    try:
        return max(0, int(float(os.environ.get("AGILAB_CACHE_MAX_MB", MAX_MB)) * 2**20))
    except ValueError:
        return MAX_MB * 2**20


def prune(folder: str, keep: str, limit: int | None = None) -> list[str]:
    """Remove the least recently used entries of ``folder`` (oldest mtime first) until it holds at
    most ``limit`` bytes, never ``keep`` (the entry just stored), and the temporary files
    (``<entry>.<pid>.tmp``) of writers no longer running (:func:`.tempfiles.sweep`); the paths
    removed. Another process pruning or using the folder at the same time costs at most an entry
    it then stores again."""
    from .tempfiles import sweep

    limit = max_bytes() if limit is None else limit
    removed = [str(p) for p in sweep([], own=[folder])]
    entries: list[tuple[float, int, str]] = []
    try:
        with os.scandir(folder) as found:
            for item in found:
                if not item.name.endswith(".json"):
                    continue
                try:
                    st = item.stat(follow_symlinks=False)
                except OSError:
                    continue
                if stat.S_ISREG(st.st_mode):
                    entries.append((st.st_mtime, st.st_size, item.path))
    except OSError:
        return removed
    total = sum(size for _, size, _ in entries)
    for _, size, path in sorted(entries):
        if total <= limit:
            break
        if path != keep and _remove(path):
            total -= size
            removed.append(path)
    return removed


def _remove(path: str) -> bool:
    try:
        os.unlink(path)
    except OSError:
        return False
    return True


def lookup(path: str, options: dict[str, Any]) -> list[dict[str, Any]] | None:
    """The stored reports of a check whose inputs are all unchanged, or None."""
    payload = load_entry("check", path, options)
    if payload is None:
        return None
    try:
        return [
            {
                "path": r["path"],
                "kind": r["kind"],
                "diagnostics": [_from_json(d) for d in r["diagnostics"]],
                **({"inferred": r["inferred"]} if "inferred" in r else {}),  # a lab's inferred artifacts
            }
            for r in payload["reports"]
        ]
    except (KeyError, TypeError, ValueError):
        return None


def store(
    path: str, options: dict[str, Any], observations: Observations, reports: list[dict[str, Any]]
) -> None:
    """Keep a check's reports, unless a file it consulted changed while it ran."""
    payload = {
        "reports": [
            {
                "path": r["path"],
                "kind": r["kind"],
                "diagnostics": [_to_json(d) for d in r["diagnostics"]],
                **({"inferred": r["inferred"]} if "inferred" in r else {}),
            }
            for r in reports
        ],
    }
    store_entry("check", path, options, observations, payload)
