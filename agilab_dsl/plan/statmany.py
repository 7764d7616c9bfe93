"""Files' signatures (``size:mtime_ns``) looked at in bulk, on every core.

A stored judgment holds while every file it read keeps its signature: at 100,000 steps that is
200,000 ``stat`` calls on each ``status`` and each run, ~1 s on this project's 2-core machine, the
largest part of a no-op ``status``. git looks at its index's files from several threads
(``core.preloadIndex``); here threads do not help (a ``stat`` is a few microseconds, and the GIL is
handed over around each one: 2 threads took 0.65-0.93 s against 0.81-1.06 s for one). So large
lists are split: helper processes (a bare interpreter, ``-I -S``, started at once) look at all parts
but the first while this process looks at that one. 200,000 files: 0.65-0.74 s against 0.79-1.07 s
(one helper). Below :data:`SHARE` paths per process it is not worth a start (~10 ms).

A helper answers only what is cheap to answer the same way: a file's signature, or ``missing``;
a folder (whose signature walks it) or an error is left to this process, and so is every path of a
helper that could not start, failed or answered wrongly. Standard library only, ``subprocess`` only
when a list is large: ``status`` from the judgment cache imports this.
"""

from __future__ import annotations

import os
import stat
import sys

TYPE_CHECKING = False  # typing is not imported: `status` from the judgment cache pays for every module
if TYPE_CHECKING:  # pragma: no cover
    from collections.abc import Iterator, Sequence

SHARE = 25_000  # paths per process at least: below it, one process looks at them all

# reads NUL-separated paths (bytes, as os.fsencode gives them) to the end, then writes one line each:
# ``size:mtime_ns``, ``missing``, or nothing (a folder or an error: the caller looks at it itself)
_HELPER = r"""
import os, sys
out = []
for p in sys.stdin.buffer.read().split(b"\0"):
    try:
        st = os.stat(p)
    except (FileNotFoundError, NotADirectoryError):
        out.append("missing")
        continue
    except (OSError, ValueError):
        out.append("")
        continue
    out.append("" if st.st_mode & 0o170000 == 0o040000 else f"{st.st_size}:{st.st_mtime_ns}")
sys.stdout.write("\n".join(out))
"""


def signature(path: str) -> str:
    """``size:mtime_ns`` of a file, a hash of the listing and signatures of everything in a folder,
    ``missing``, or ``error:<kind>`` when it cannot be looked at."""
    try:
        st = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return "missing"
    except OSError as exc:
        return f"error:{type(exc).__name__}"
    if stat.S_ISDIR(st.st_mode):
        parts = [f"{rel}:{signature(full)}" for rel, full in tree_files(path)]
        import hashlib

        return "dir:" + hashlib.sha256("\n".join(parts).encode("utf-8", "surrogateescape")).hexdigest()
    return f"{st.st_size}:{st.st_mtime_ns}"


def tree_files(folder: str) -> Iterator[tuple[str, str]]:
    """Every file below ``folder``: its path relative to it and its full path, in a fixed order
    (folders and names sorted, top down), the order a folder's signature or tree hash is taken in."""
    for root, dirs, files in os.walk(folder):
        dirs.sort()
        for name in sorted(files):
            full = os.path.join(root, name)
            yield os.path.relpath(full, folder), full


def signatures_of(paths: Sequence[str], *, share: int = SHARE) -> list[str]:
    """:func:`signature` of each path, in order; large lists split over the cores (see above)."""
    parts = min(_cores(), len(paths) // max(share, 1))
    if parts < 2 or not sys.executable:
        return [signature(p) for p in paths]
    size = -(-len(paths) // parts)
    chunks = [paths[i : i + size] for i in range(0, len(paths), size)]
    helpers = [_start(chunk) for chunk in chunks[1:]]
    out = [signature(p) for p in chunks[0]]
    for chunk, helper in zip(chunks[1:], helpers, strict=True):
        answers = _answers(helper, len(chunk))
        if answers is None:
            out.extend(signature(p) for p in chunk)
        else:
            out.extend(a or signature(p) for p, a in zip(chunk, answers, strict=True))
    return out


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not on Linux
        return os.cpu_count() or 1


def _start(chunk: Sequence[str]):  # -> subprocess.Popen[bytes] | None
    import subprocess

    try:
        data = b"\0".join(map(os.fsencode, chunk))
    except (TypeError, ValueError):
        return None
    try:
        helper = subprocess.Popen(
            [sys.executable, "-I", "-S", "-c", _HELPER],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
    except (OSError, ValueError):
        return None
    import threading

    # written from a thread: the helper reads only once started (~30 ms), while this process looks
    # at its own part; it reads everything before it writes, so nothing waits on the other
    threading.Thread(target=_feed, args=(helper, data), daemon=True).start()
    return helper


def _feed(helper, data: bytes) -> None:
    try:
        helper.stdin.write(data)
        helper.stdin.close()
    except OSError:  # the helper ended early: its answer is wrong or missing, and found so
        helper.kill()


def _answers(helper, count: int) -> list[str] | None:  # helper: subprocess.Popen[bytes] | None
    """The helper's lines, or None when it failed or answered for a different number of paths."""
    if helper is None:
        return None
    try:
        assert helper.stdout is not None
        text = helper.stdout.read()
        helper.stdout.close()
    except OSError:
        text = None
    if helper.wait() != 0 or text is None:
        return None
    lines = text.decode("ascii", "replace").split("\n")
    return lines if len(lines) == count else None
