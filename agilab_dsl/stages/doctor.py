"""The cluster-share check (AGILAB's doctor): can every Dask worker read what this machine writes
under the shared folder? A sentinel with a random token is written under the share, every worker
is asked to read it back, and each worker's answer is reported; the sentinel is removed after.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import socket
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class WorkerAnswer:
    address: str
    host: str
    ok: bool
    detail: str


@dataclass
class ShareReport:
    scheduler: str
    share: str
    sentinel: str
    workers: list[WorkerAnswer] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return bool(self.workers) and all(w.ok for w in self.workers)

    def to_json(self) -> dict[str, Any]:
        return {
            "scheduler": self.scheduler,
            "share": self.share,
            "sentinel": self.sentinel,
            "ok": self.ok,
            "workers": [asdict(w) for w in self.workers],
        }


class ShareProblem(Exception):
    """The check could not be made here (the share cannot be written); says why."""


def _read_back(path: str, token: str) -> tuple[str, bool, str]:
    """Runs on each worker. Nested imports only: a closure-free function travels by value."""
    import socket as _socket

    host = _socket.gethostname()
    try:
        with open(path, encoding="utf-8") as fh:
            got = fh.read()
    except OSError as exc:
        return host, False, f"cannot read {path}: {type(exc).__name__}: {exc.strerror or exc}"
    if got != token:
        return host, False, f"{path} holds something else (another share mounted at that path?)"
    return host, True, f"reads {path}"


def check_share(scheduler: str, share: str | Path) -> ShareReport:
    """Write a sentinel under ``share`` and ask every worker of ``scheduler`` to read it back."""
    import cloudpickle

    from .backends.dask import connect

    folder = Path(share).expanduser().resolve()
    if not folder.is_dir():
        raise ShareProblem(f"share {share} is not a folder on this machine ({socket.gethostname()})")
    token = secrets.token_hex(16)
    sentinel = folder / f".agilab-doctor-{token[:12]}"
    try:
        sentinel.write_text(token, encoding="utf-8")
    except OSError as exc:
        raise ShareProblem(f"cannot write under the share {folder}: {exc.strerror or exc}") from None
    report = ShareReport(scheduler, str(folder), str(sentinel))
    try:
        client = connect(scheduler)
        try:
            import sys

            # the workers need not have agilab_dsl installed: the check travels by value
            cloudpickle.register_pickle_by_value(sys.modules[__name__])
            try:
                answers = client.run(_read_back, str(sentinel), token, on_error="return")
            finally:
                cloudpickle.unregister_pickle_by_value(sys.modules[__name__])
        finally:
            client.close()
        for address in sorted(answers):
            answer = answers[address]
            if isinstance(answer, BaseException):
                report.workers.append(WorkerAnswer(address, "?", False, f"{type(answer).__name__}: {answer}"))
            else:
                host, ok, detail = answer
                report.workers.append(WorkerAnswer(address, host, ok, detail))
    finally:
        with contextlib.suppress(OSError):
            os.unlink(sentinel)
    return report


def render(report: ShareReport) -> str:
    lines = [f"share {report.share} seen from the workers of {report.scheduler}:"]
    if not report.workers:
        lines.append("  ✗ no worker is connected to the scheduler")
    for w in report.workers:
        lines.append(f"  {'✓' if w.ok else '✗'} {w.address} ({w.host}) {w.detail}")
    bad = sum(not w.ok for w in report.workers)
    if report.workers:
        lines.append(
            f"{len(report.workers) - bad} of {len(report.workers)} worker{'s' * (len(report.workers) != 1)} "
            "read the sentinel"
            + ("" if not bad else f"; {bad} cannot — mount the share there at the same path")
        )
    return "\n".join(lines) + "\n"
