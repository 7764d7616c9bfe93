"""``judgment-graph.json``: what a stored judgment (:mod:`agilab_dsl.plan.judgment`) keeps apart
and reads only when asked — which steps read each step file, as two columns of (file, step) pairs,
and each step's upstream steps. Standard library only (``status`` from the judgment cache may read
it)."""

from __future__ import annotations

import json
import os

TYPE_CHECKING = False  # typing is not imported: `status` from the judgment cache pays for every module
if TYPE_CHECKING:  # pragma: no cover
    from collections.abc import Iterable, Mapping
    from typing import Any

GRAPH = "judgment-graph.json"  # the readers and upstream steps: read only when needed


def graph_json(
    token: str, readers: Mapping[str, Iterable[str]], upstream: Mapping[str, Iterable[str]]
) -> dict[str, Any]:
    """The graph file of the judgment ``token``: the readers of each step file (by absolute path)
    as two columns, and each step's upstream steps (a step without any left out)."""
    files, steps = _readers(readers)
    return {
        "token": token,
        "reader_files": files,
        "reader_steps": steps,
        "upstream": {sid: sorted(ups) for sid, ups in upstream.items() if ups},
    }


def _readers(readers: Mapping[str, Iterable[str]]) -> tuple[list[str], list[str]]:
    """The (file, step) pairs of ``readers`` as two columns, by absolute path."""
    files: list[str] = []
    steps: list[str] = []
    for path, ids in readers.items():
        full = path if os.path.isabs(path) else os.path.abspath(path)
        for sid in sorted(set(ids)):
            files.append(full)
            steps.append(sid)
    return files, steps


class StoredGraph:
    """What a stored judgment keeps apart, in ``judgment-graph.json``, and reads only when asked:
    which steps read each step file (needed when such a file changed) and each step's upstream
    steps (needed for AGILAB's ready / stale of a step that is not fresh). At 100,000 steps they
    are half of the judgment; a no-op ``status`` reads neither. Both files carry the same token: a
    graph file of another judgment reads as none."""

    def __init__(self, path: str, token: str) -> None:
        self._path = path  # judgment-graph.json
        self._token = token
        self._data: dict[str, Any] | None = None
        self._read = False

    def _load(self) -> dict[str, Any] | None:
        if not self._read:
            self._read = True
            try:
                with open(self._path, encoding="utf-8") as fh:
                    data = json.load(fh)
                if isinstance(data, dict) and data.get("token") == self._token:
                    self._data = data
            except (OSError, ValueError):
                pass
        return self._data

    def readers(self, paths: Iterable[str]) -> dict[str, list[str]] | None:
        """Each of ``paths`` (step files, absolute) that some step reads → those steps; None when
        there is no such record. Kept as two columns, a (file, step) pair each: 300,000 pairs at
        100,000 steps parse in a sixth of the time of a table of lists, and are scanned once."""
        data = self._load()
        files = data.get("reader_files") if data is not None else None
        steps = data.get("reader_steps") if data is not None else None
        if type(files) is not list or type(steps) is not list or len(files) != len(steps):
            return None  # damaged: the caller judges in full, and the next full judgment replaces it
        wanted = set(paths)
        found: dict[str, list[str]] = {}
        for path, sid in zip(files, steps, strict=True):
            if path in wanted:
                if type(sid) is not str:
                    return None
                found.setdefault(path, []).append(sid)
        return found

    def upstream(self) -> dict[str, list[str]] | None:
        """Step id → its upstream steps (a step without any is left out); None when unrecorded."""
        return self._part("upstream")

    def _part(self, name: str) -> dict[str, list[str]] | None:
        data = self._load()
        part = data.get(name) if data is not None else None
        if not isinstance(part, dict) or not all(isinstance(v, list) for v in part.values()):
            return None  # damaged: the caller judges in full, and the next full judgment replaces it
        return part
