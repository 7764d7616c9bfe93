"""Reading a named file safely: only regular files, and only up to a bound.

A FIFO named as FILE would block the reader until some writer comes (for ever, usually); a device
such as ``/dev/zero`` never ends. :func:`read_regular` refuses anything that is not a regular file
at once (opening without blocking, then checking what was opened), and a file larger than
:data:`MAX_BYTES`; its :class:`NotReadable` says why in words fit for a diagnostic.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

MAX_BYTES = 64 * 1024 * 1024
"""The largest file read as a lab, contract or settings file (real ones are kilobytes)."""

_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


class NotReadable(Exception):
    """The file cannot be read as a FILE; the message says why (without the path)."""


def what_it_is(mode: int) -> str:
    """A file mode in words: "a FIFO (named pipe)", "a directory", … ("not a regular file")."""
    return next((word for test, word in _KINDS if test(mode)), "not a regular file")


def read_regular(path: str | Path, limit: int = MAX_BYTES) -> bytes:
    """The bytes of ``path``, a regular file of at most ``limit`` bytes. Raises FileNotFoundError
    when it does not exist, :class:`NotReadable` when it is not a regular file or is too large,
    and OSError for the rest (permissions, symlink loops)."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise NotReadable(f"not a regular file: it is {what_it_is(info.st_mode)}")
        if info.st_size > limit:
            raise NotReadable(_too_large(info.st_size, limit))
        os.set_blocking(fd, True)
        chunks, total = [], 0
        while True:
            chunk = os.read(fd, min(1 << 20, limit + 1 - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
            if total > limit:  # it grew while being read
                raise NotReadable(_too_large(total, limit))
        return b"".join(chunks)
    finally:
        os.close(fd)


def _too_large(size: int, limit: int) -> str:
    return (
        f"too large to be a lab, contract or settings file ({size / 2**20:.0f} MiB or more; "
        f"the limit is {limit / 2**20:.0f} MiB)"
    )


def file_problem(path: str | Path) -> str | None:
    """Why ``path`` cannot be read as a FILE ("no such file", "not a regular file: it is a FIFO
    (named pipe)", …), or None. Nothing is opened: a FIFO is told by its mode."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return "no such file"
    except OSError as exc:
        return f"cannot read: {exc.strerror or exc}"
    return None if stat.S_ISREG(mode) else f"not a regular file: it is {what_it_is(mode)}"
