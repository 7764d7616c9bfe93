"""Temporary files of atomic writes, named so that a later run can clean up after a killed one.

Every atomic write in the tool writes ``.<name>.<pid>.tmp`` beside its target and renames it over
the target (see :func:`temp_path`). A process killed between the two leaves that file behind; the
pid in its name says whose it was, so the next run of the lab removes those whose process is gone
(:func:`sweep`), and never one that a live process (another runner, a ``status``, a step) is still
writing. This module imports only the standard library.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterable
from pathlib import Path

# ``.<name>.<pid>.tmp``; under ``.agilab/`` also ``<name>.<pid>.tmp`` (files of the tool's own)
_DOTTED = re.compile(r"^\..+\.(\d+)\.tmp$")
_PLAIN = re.compile(r"^.+\.(\d+)\.tmp$")


def temp_path(target: str | os.PathLike[str]) -> str:
    """``<folder>/.<name>.<pid>.tmp`` for ``target``: hidden from datasets and globs, and owned."""
    folder, name = os.path.split(os.fspath(target))
    return os.path.join(folder, f".{name}.{os.getpid()}.tmp")


def alive(pid: int) -> bool:
    """Whether a process with this pid exists (one owned by another user counts as alive)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return pid > 0
    return True


def sweep(
    folders: Iterable[str | os.PathLike[str]], *, own: Iterable[str | os.PathLike[str]] = ()
) -> list[Path]:
    """Remove the temporary files left in ``folders`` (``.<name>.<pid>.tmp``) and in the tool's own
    folders ``own`` (also ``<name>.<pid>.tmp``) by processes that no longer run; the removed paths."""
    removed: list[Path] = []
    for pattern, group in ((_DOTTED, folders), (_PLAIN, own)):
        for folder in group:
            try:
                entries = list(os.scandir(folder))
            except OSError:
                continue
            for entry in entries:
                if not entry.name.endswith(".tmp"):  # (an output folder of 10,000 files: most)
                    continue
                match = pattern.match(entry.name)
                if match is None or entry.name.endswith(f".{os.getpid()}.tmp"):
                    continue
                with contextlib.suppress(OSError):
                    if not entry.is_file(follow_symlinks=False) or alive(int(match.group(1))):
                        continue
                    os.unlink(entry.path)
                    removed.append(Path(entry.path))
    return removed
