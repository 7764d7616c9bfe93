"""Timing one command of bench/w1.py, and telling which steps it ran.

:func:`timed` runs a command as a child of this process and takes its wall time and, from
``os.wait4``'s rusage, its peak resident memory (``ru_maxrss``: Linux reports the larger of the
process's own peak and that of any child it waited for — a maximum, never a sum), and its CPU time
and page faults (sums over the command and every descendant reaped by its parent: our runner, its
workers, their zygotes and step processes; doit, its shells and ``cp``; not our detached history
writer, which nobody waits for).

Which steps a run of ours ran comes from the events every run that starts a step keeps in
``.agilab/runs/<run_id>/events.jsonl`` (read after the timed run, so the check costs the run
nothing); a run that starts nothing writes no run folder. ``status --json`` is read for the no-op
status. doit's own output says which of its tasks ran (``.  name``) and which were up to date
(``-- name``).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path


class BenchFailure(SystemExit):
    """A staleness answer that is not the expected one: the bench stops, loudly."""


@dataclass(frozen=True)
class Timed:
    seconds: float
    max_rss_mb: float
    stdout: str
    cpu_seconds: float = 0.0  # user + system CPU of the command and every process it waited for
    page_faults: int = 0  # minor + major, the same processes: a count the machine's speed moves little


class TimedOut(Exception):
    pass


def timed(cmd: list[str], cwd: Path, env: dict[str, str], timeout: float | None = None) -> Timed:
    """Run ``cmd`` in ``cwd``; its wall time and peak RSS. Fails loudly on a non-zero exit;
    :class:`TimedOut` (the child killed) past ``timeout`` seconds."""
    out_path = cwd.parent / f".{cwd.name}.stdout"  # beside the folder: the tools see nothing new
    err_path = cwd.parent / f".{cwd.name}.stderr"
    with out_path.open("wb") as out, err_path.open("wb") as err:
        start = time.perf_counter()
        # a session of its own: a timeout ends the tool and whatever it started (a doit timed out
        # at N = 100,000 once left a `python -m doit` behind, holding 0.5 GB, into the next scenarios)
        proc = subprocess.Popen(
            cmd, cwd=cwd, env=env, stdout=out, stderr=err, stdin=subprocess.DEVNULL, start_new_session=True
        )
        status, rusage = _wait(proc, start, timeout)
        elapsed = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)  # reaped by wait4: tell Popen
    stdout = out_path.read_text(encoding="utf-8", errors="replace")
    if proc.returncode != 0:
        stderr = err_path.read_text(encoding="utf-8", errors="replace")
        raise BenchFailure(f"{' '.join(cmd)} (in {cwd}) exited {proc.returncode}:\n{stderr[-3000:]}")
    return Timed(
        elapsed,
        rusage.ru_maxrss / 1024,
        stdout,
        rusage.ru_utime + rusage.ru_stime,
        rusage.ru_minflt + rusage.ru_majflt,
    )


def _wait(proc: subprocess.Popen[bytes], start: float, timeout: float | None) -> tuple[int, os.struct_rusage]:
    if timeout is None:
        _, status, rusage = os.wait4(proc.pid, 0)
        return status, rusage
    while True:
        pid, status, rusage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            return status, rusage
        if time.perf_counter() - start > timeout:
            os.killpg(proc.pid, signal.SIGKILL)
            os.wait4(proc.pid, 0)
            proc.returncode = -9
            raise TimedOut(f"{' '.join(proc.args)} ran past {timeout:.0f} s")  # type: ignore[arg-type]
        time.sleep(0.05)


# -- ours -------------------------------------------------------------------------------------------
def run_folders(lab_folder: Path) -> set[str]:
    runs = lab_folder / ".agilab" / "runs"
    return {p.name for p in runs.iterdir() if p.is_dir()} if runs.is_dir() else set()


def ran_since(lab_folder: Path, before: set[str]) -> set[str]:
    """The steps the runs started after ``before`` (run folder names) ran; fails loudly when a
    run's events cannot say, or when a step failed."""
    ran: set[str] = set()
    for run_id in sorted(run_folders(lab_folder) - before):
        events = lab_folder / ".agilab" / "runs" / run_id / "events.jsonl"
        if not events.is_file():
            raise BenchFailure(f"run {run_id} kept no events.jsonl: cannot tell which steps it ran")
        finished = False
        for line in events.read_text(encoding="utf-8").splitlines():
            event = json.loads(line)
            if event.get("kind") == "run_finished":
                finished = True
            if event.get("kind") != "step_finished":
                continue
            outcome = (event.get("payload") or {}).get("outcome") or {}
            if outcome.get("status") == "ran":
                ran.add(event["target_id"])
            elif outcome.get("status") not in ("fresh", "skipped", "disabled"):
                raise BenchFailure(f"run {run_id}: step {event['target_id']} ended {outcome.get('status')!r}")
        if not finished:
            raise BenchFailure(f"run {run_id}: its events.jsonl has no run_finished event")
    return ran


def expect(what: str, got: set[str], wanted: set[str]) -> None:
    if got != wanted:
        extra = sorted(got - wanted)
        missing = sorted(wanted - got)
        raise BenchFailure(
            f"STALENESS CHECK FAILED — {what}: {len(got)} step(s) ran, expected {len(wanted)}"
            f"; ran but should not: {extra[:10]}{' …' if len(extra) > 10 else ''}"
            f"; should have run: {missing[:10]}{' …' if len(missing) > 10 else ''}"
        )


def all_fresh(status_json: str, n_steps: int) -> None:
    """``status --json``: every one of the ``n_steps`` steps fresh."""
    steps = json.loads(status_json)["steps"]
    stale = [s["id"] for s in steps if s.get("state") != "fresh"]
    if len(steps) != n_steps or stale:
        raise BenchFailure(
            f"STALENESS CHECK FAILED — no-op status: {len(steps)} steps listed (expected {n_steps}), "
            f"not fresh: {stale[:10]}"
        )


def settle(lab_folder: Path, limit: float = 600) -> float:
    """Wait until the detached history writer of the last run is done (it would otherwise compete
    for the cores with whatever is timed next); how long that took after the run returned."""
    start = time.perf_counter()
    pending = lab_folder / ".agilab" / "history-pending"
    while pending.is_dir() and any(p.suffix == ".json" for p in pending.iterdir()):
        if time.perf_counter() - start > limit:
            raise BenchFailure(f"the history writer did not finish in {limit:.0f} s")
        time.sleep(0.01)
    return time.perf_counter() - start


# -- doit -------------------------------------------------------------------------------------------
def doit_ran(stdout: str) -> set[str]:
    """The tasks a doit run (verbosity 1, the default) executed: its lines ``.  name``."""
    return {line[3:].strip() for line in stdout.splitlines() if line.startswith(".  ")}


def doit_name(step: str) -> str:
    """Our step id as doit's task name (``s000017`` → ``s:000017``)."""
    return step if step == "gather" else f"s:{step[1:]}"
