"""The tool's own signature, which every cache entry is keyed by: each source file of the tool (its
sub-packages and grammars included), by size and mtime. Only ``os`` is imported: ``status``
answered from the judgment cache pays for nothing more (:mod:`agilab_dsl.cli.fast`)."""

from __future__ import annotations

import os

_TAKEN: list[str] = []  # this process's signature, once taken


def tool_signature() -> str:
    """Every source file of the tool (its sub-packages and grammars included), by size and mtime;
    taken once per process (~1 ms, and a run asks 4 times): it names the code this process runs,
    which a later change to the files (an upgrade during a watch session) does not change."""
    if not _TAKEN:
        _TAKEN.append(_take())
    return _TAKEN[0]


def _take() -> str:
    package = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    folders = [os.path.join(os.path.dirname(package), "grammar")]
    for folder, dirs, _files in os.walk(package):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        folders.append(folder)
    parts = []
    for folder in folders:
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError:
            continue
        for entry in entries:
            if entry.name.endswith((".py", ".lark")):
                st = entry.stat()
                parts.append(f"{entry.path}:{st.st_size}:{st.st_mtime_ns}")
    return "\n".join(parts)
