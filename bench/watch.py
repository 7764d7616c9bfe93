"""Watch mode's latency against raw watchfiles, in this one script.

    python bench/watch.py [--edits N]

From a file write to the first affected step starting (its code's first line reads the clock),
over N (20) edits of the step's input, median and 90th percentile — beside the latency of a raw
``watchfiles.watch`` on the same folder with the same step/debounce settings, measured here too.
Goal (issue 6): at most 100 ms (p50) and 200 ms (p90) on top of raw watchfiles.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

LAB = """[[b]]
id = "probe"
C = '''
import time
started = time.time()
open(outputs[0], "w").write(repr(started))
'''
consumes = ["in.txt"]
produces = ["started.txt"]

[[b]]
id = "other"
C = "open(outputs[0], 'w').write('x')"
produces = ["other.txt"]
"""


def p90(values: list[float]) -> float:
    return statistics.quantiles(values, n=10)[-1]


def raw_latency(folder: Path, edits: int) -> list[float]:
    import watchfiles

    seen: list[float] = []
    stop = threading.Event()

    def watch() -> None:  # step and debounce as agilab_dsl.execute.watch.watchfiles_source uses them
        for _ in watchfiles.watch(
            folder, watch_filter=None, step=30, debounce=400, stop_event=stop, raise_interrupt=False
        ):
            seen.append(time.time())

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    time.sleep(0.5)
    out = []
    for n in range(edits):
        before = len(seen)
        wrote = time.time()
        (folder / "raw.txt").write_text(f"{n}\n")
        deadline = time.monotonic() + 10
        while len(seen) == before and time.monotonic() < deadline:
            time.sleep(0.001)
        out.append(seen[before] - wrote)
        time.sleep(0.3)
    stop.set()
    return out


def watch_latency(folder: Path, edits: int) -> list[float]:
    lab = folder / "lab_steps.toml"
    lab.write_text(LAB, encoding="utf-8")
    (folder / "in.txt").write_text("0\n")
    log = folder / "watch.log"
    proc = subprocess.Popen(
        [sys.executable, "-m", "agilab_dsl", str(lab), "--watch"],
        stdout=subprocess.DEVNULL,
        stderr=log.open("wb"),
    )
    try:
        deadline = time.monotonic() + 60
        while "watching" not in log.read_text():
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
        time.sleep(0.5)
        out = []
        started = folder / "started.txt"
        for n in range(1, edits + 1):
            last = started.read_text()
            wrote = time.time()
            (folder / "in.txt").write_text(f"{n}\n")
            deadline = time.monotonic() + 10
            while True:
                text = started.read_text() if started.exists() else last
                if text != last and text:
                    break
                assert time.monotonic() < deadline, log.read_text()[-2000:]
                time.sleep(0.002)
            out.append(float(text) - wrote)
            time.sleep(0.5)  # the run ends and its history writer finishes
        return out
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--edits", type=int, default=20)
    args = parser.parse_args()
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    with tempfile.TemporaryDirectory(prefix="agilab-watch-") as tmp:
        raw_dir, lab_dir = Path(tmp) / "raw", Path(tmp) / "lab"
        raw_dir.mkdir()
        lab_dir.mkdir()
        raw = raw_latency(raw_dir, args.edits)
        ours = watch_latency(lab_dir, args.edits)
    rp50, rp90 = statistics.median(raw), p90(raw)
    op50, op90 = statistics.median(ours), p90(ours)
    print(f"{args.edits} edits: from the write to …")
    print(f"  raw watchfiles.watch yields        p50 {rp50 * 1000:6.1f} ms   p90 {rp90 * 1000:6.1f} ms")
    print(f"  the affected step starts (--watch) p50 {op50 * 1000:6.1f} ms   p90 {op90 * 1000:6.1f} ms")
    print(
        f"  added by watch mode                p50 {(op50 - rp50) * 1000:6.1f} ms   p90 {(op90 - rp90) * 1000:6.1f} ms"
        "   (goal ≤ 100 ms / ≤ 200 ms)"
    )


if __name__ == "__main__":
    main()
