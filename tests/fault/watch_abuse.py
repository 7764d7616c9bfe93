"""Watch mode under abuse (issue 8, item 5), with the real watcher on real files.

    python tests/fault/watch_abuse.py [--broken 100] [--burst 1000]

A lab of three steps (``a`` → ``b``; ``c`` apart) is watched by ``agilab-run LAB --watch`` in its
own process. Then: ``--broken`` saves of a broken lab in a row (bad TOML, an unknown key, a cycle, a
wrong type, an unknown dependency, in turn), each awaited until the watcher has said the lab is
invalid; a burst of ``--burst`` file events (files made and rewritten in the lab's folder as fast as
the disk takes them); then one good save that changes ``a``'s code. The watcher must survive it
all, its resident memory stay flat (read with psutil after 10 broken saves, after all of them,
after the burst, at the end), and the good save run what is stale — ``a`` and ``b``, not ``c``.
``tests/test_watch.py`` runs this in CI; run it here to print the figures.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil

GOOD = """[[w]]
id = "a"
C = "open(outputs[0], 'w').write(open(inputs[0]).read() + '{tag}')"
consumes = ["in.txt"]
produces = ["out/a.txt"]

[[w]]
id = "b"
C = "open(outputs[0], 'w').write(open(inputs[0]).read().upper())"
consumes = ["out/a.txt"]
produces = ["out/b.txt"]

[[w]]
id = "c"
C = "open(outputs[0], 'w').write('c')"
produces = ["out/c.txt"]
deps = []
"""
BROKEN = [
    GOOD.format(tag="") + '\n[[w]]\nid = "x\n',  # an unterminated string
    GOOD.format(tag="") + '\n[[w]]\nid = "a"\nC = "1"\n',  # a duplicate id
    GOOD.format(tag="").replace("deps = []", 'deps = ["c"]'),  # a cycle on itself
    GOOD.format(tag="").replace('produces = ["out/c.txt"]', "produces = 3"),  # a wrong type
    GOOD.format(tag="").replace("deps = []", 'deps = ["nope"]'),  # an unknown dependency
]
INVALID = "the lab is invalid"


@dataclass
class Figures:
    broken_handled: int = 0
    burst_events: int = 0
    burst_runs: int = 0
    rss_mib: dict[str, float] = field(default_factory=dict)
    good_ran: list[str] = field(default_factory=list)
    good_seconds: float = 0.0
    alive: bool = False
    log: str = ""

    def growth(self) -> float:
        """Resident memory gained under abuse, from 10 broken saves to after the burst, in MiB (the
        good save's run that follows pays its one-time costs: modules, a history record)."""
        return self.rss_mib[f"after {self.burst_events} events"] - self.rss_mib["after 10 broken saves"]


def _log(path: Path) -> str:
    return path.read_text(encoding="utf-8", errors="replace") if path.exists() else ""


def _wait(path: Path, text: str, count: int, timeout: float = 30) -> str:
    deadline = time.monotonic() + timeout
    while (content := _log(path)).count(text) < count:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{text!r} ×{count} never appeared:\n{content[-2000:]}")
        time.sleep(0.01)
    return content


def abuse(folder: Path, broken: int = 100, burst: int = 1000) -> Figures:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "in.txt").write_text("in", encoding="utf-8")
    lab = folder / "lab_steps.toml"
    lab.write_text(GOOD.format(tag=""), encoding="utf-8")
    log = folder.parent / f"{folder.name}-watch.log"  # outside the watched folder
    env = {**os.environ, "NO_COLOR": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "agilab_dsl", str(lab), "--watch"],
        stdout=subprocess.DEVNULL,
        stderr=log.open("wb"),
        start_new_session=True,
        env=env,
    )
    figures = Figures()
    try:
        _wait(log, "watching", 1)
        watcher = psutil.Process(proc.pid)
        figures.rss_mib["start"] = watcher.memory_info().rss / 2**20
        for n in range(broken):
            lab.write_text(BROKEN[n % len(BROKEN)], encoding="utf-8")
            _wait(log, INVALID, n + 1)
            figures.broken_handled += 1
            if n + 1 == 10:
                figures.rss_mib["after 10 broken saves"] = watcher.memory_info().rss / 2**20
        figures.rss_mib[f"after {broken} broken saves"] = watcher.memory_info().rss / 2**20
        runs_before = _log(log).count("⟳")
        noise = folder / "scratch"
        noise.mkdir()
        for n in range(burst // 2):  # each file: made, then rewritten: two events
            path = noise / f"f{n}.txt"
            path.write_text("1", encoding="utf-8")
            path.write_text("2", encoding="utf-8")
        figures.burst_events = 2 * (burst // 2)
        time.sleep(1.5)  # the watcher's debounce, and the runs the burst started
        _wait(log, INVALID, broken + _log(log).count("⟳") - runs_before)  # every batch answered
        figures.burst_runs = _log(log).count("⟳") - runs_before
        figures.rss_mib[f"after {figures.burst_events} events"] = watcher.memory_info().rss / 2**20
        done_before = _log(log).count("done:")
        started = time.monotonic()
        lab.write_text(GOOD.format(tag="!"), encoding="utf-8")
        text = _wait(log, "done:", done_before + 1)
        figures.good_seconds = time.monotonic() - started
        last = text.rsplit("⟳", 1)[1]
        figures.good_ran = re.findall(r"^▶ (\S+)", last, flags=re.M)
        figures.rss_mib["end"] = watcher.memory_info().rss / 2**20
        figures.alive = proc.poll() is None
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGINT)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
        figures.log = _log(log)
    return figures


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--broken", type=int, default=100)
    ap.add_argument("--burst", type=int, default=1000)
    args = ap.parse_args()
    # (the history flusher the last run started may still be writing as the folder goes)
    with tempfile.TemporaryDirectory(prefix="agilab-watch-abuse-", ignore_cleanup_errors=True) as tmp:
        started = time.perf_counter()
        f = abuse(Path(tmp) / "lab", args.broken, args.burst)
    print(f"watch under abuse ({time.perf_counter() - started:.0f} s):")
    print(f"  broken saves answered 'invalid, still watching': {f.broken_handled} of {args.broken}")
    print(f"  burst: {f.burst_events} file events → {f.burst_runs} reloads (coalesced)")
    print("  watcher RSS: " + ", ".join(f"{k} {v:.1f} MiB" for k, v in f.rss_mib.items()))
    print(f"  growth from 10 broken saves to after the burst: {f.growth():+.1f} MiB")
    print(
        f"  first good save ran {', '.join(f.good_ran) or 'nothing'} in {f.good_seconds:.2f} s; watcher alive: {f.alive}"
    )
    ok = f.alive and f.broken_handled == args.broken and f.good_ran == ["a", "b"]
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
