"""A parallel stage's progress as it happens: one JSON line per partition started and finished.

The runner names a file in the step's request (``.agilab/runs/<run_id>/<step>.progress.jsonl``);
the stage appends a line, flushed, each time a partition starts (``pool``: is handed to a worker
process; ``dask``: is submitted to the scheduler) and each time one finishes, with the counts so
far, so that whoever follows the file (:mod:`agilab_dsl.execute.follow`) needs only its last line:

    {"event": "started"|"finished", "partition": "partition 3 (data/f3.csv)", "done": 3,
     "total": 16, "failed": 0, "backend": "pool", "dashboard": "http://127.0.0.1:8787/status"}

(``dashboard`` only for a Dask backend; a partition that failed adds ``"error"``, its exception in
one line). Nothing here fails a stage: a progress file that cannot be
written is given up silently (the stage's result and log are what count).
"""

from __future__ import annotations

import contextlib
import json
import threading
from typing import Any, TextIO


class StageProgress:
    """The progress of one stage, written to ``path`` (nothing is written without one). Thread-safe:
    a backend may report starts from its own threads."""

    def __init__(self, path: str | None, total: int, backend: str, dashboard: str | None = None) -> None:
        self.total = total
        self.backend = backend
        self.dashboard = dashboard
        self.done = 0
        self.failed = 0
        self._lock = threading.Lock()
        self._out: TextIO | None = None
        if path:
            try:
                self._out = open(path, "a", encoding="utf-8")  # noqa: SIM115 - closed by close()
            except OSError:
                self._out = None

    def started(self, partition: str) -> None:
        self._write("started", partition)

    def finished(self, partition: str, error: str | None = None) -> None:
        with self._lock:
            self.done += 1
            self.failed += 0 if error is None else 1
        self._write("finished", partition, error)

    def _write(self, event: str, partition: str, error: str | None = None) -> None:
        if self._out is None:
            return
        with self._lock:
            line: dict[str, Any] = {
                "event": event,
                "partition": partition,
                "done": self.done,
                "total": self.total,
                "failed": self.failed,
                "backend": self.backend,
            }
            if self.dashboard:
                line["dashboard"] = self.dashboard
            if error is not None:
                line["error"] = error
            try:
                self._out.write(json.dumps(line) + "\n")
                self._out.flush()
            except (OSError, ValueError):  # a full disk, or closed: progress is given up, not the stage
                self._out = None

    def close(self) -> None:
        with self._lock:
            out, self._out = self._out, None
        if out is not None:
            with contextlib.suppress(OSError):
                out.close()
