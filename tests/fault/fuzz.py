"""The long fuzz run (issue 8, item 1): 10,000 mutations of every corpus and conformance file.

    python tests/fault/fuzz.py [--cases 10000] [--seed N]

Each mutated file is checked in this process under a time bound (SIGALRM: a hang is counted, not
waited for); every 100th is also checked by the command line in a fresh process, whose stderr must
hold no traceback and whose exit code must be 0, 1 or 2. The process's resident memory is read as
it goes: memory that grew with the number of cases would show as a climb from the first thousand
to the last. Prints the figures; exits 1 if any case gave a traceback, an unlocated diagnostic or
a hang.
"""

from __future__ import annotations

import argparse
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests/: fuzzing, conftest

from fuzzing import KINDS, TIME_BOUND, check_case, mutate, place, sources


class Hang(Exception):
    pass


def _alarm(signum: int, frame: object) -> None:
    raise Hang


def rss_mib() -> float:
    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cases", type=int, default=10_000)
    ap.add_argument("--seed", type=int, default=20261122)
    ap.add_argument("--cli-every", type=int, default=100, help="also check every Nth case by the CLI")
    args = ap.parse_args()
    files = sources()
    if not files:
        print("no corpus or conformance files to mutate")
        return 1
    rng = random.Random(args.seed)
    signal.signal(signal.SIGALRM, _alarm)
    work = Path(tempfile.mkdtemp(prefix="agilab-fuzz-"))
    tracebacks: list[str] = []
    unlocated: list[str] = []
    hangs: list[str] = []
    cli_bad: list[str] = []
    times: list[float] = []
    by_kind = dict.fromkeys(KINDS, 0)
    cli_runs = 0
    rss = {"start": rss_mib()}
    started = time.perf_counter()
    try:
        for case in range(args.cases):
            source = files[case % len(files)]
            kind, data = mutate(source.read_bytes(), rng)
            by_kind[kind] += 1
            folder = work / f"c{case % 50}"  # reused: the disk holds 50 cases at a time
            shutil.rmtree(folder, ignore_errors=True)
            target = place(source, folder, data)
            label = f"case {case}: {kind} of {source.name}"
            signal.setitimer(signal.ITIMER_REAL, TIME_BOUND)
            try:
                outcome = check_case(target)
            except Hang:
                hangs.append(label)
                continue
            except Exception as exc:  # a traceback: the thing this run looks for
                tracebacks.append(f"{label}: {type(exc).__name__}: {exc}")
                continue
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
            times.append(outcome.seconds)
            if outcome.unlocated:
                unlocated.append(f"{label}: {outcome.unlocated[0]}")
            if case % args.cli_every == 0:
                cli_runs += 1
                proc = subprocess.run(
                    [sys.executable, "-m", "agilab_dsl", "check", str(target)],
                    capture_output=True,
                    text=True,
                    timeout=60,
                    check=False,
                )
                if "Traceback" in proc.stderr or proc.returncode not in (0, 1, 2):
                    cli_bad.append(f"{label}: exit {proc.returncode}: {proc.stderr[-300:]}")
            if case + 1 == 1000:
                rss["after 1,000"] = rss_mib()
            if (case + 1) % 1000 == 0:
                print(
                    f"  {case + 1} cases, {time.perf_counter() - started:.0f} s, RSS {rss_mib():.0f} MiB",
                    flush=True,
                )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    rss["end"] = rss_mib()
    times.sort()
    p99 = times[int(len(times) * 0.99)] if times else 0.0
    print(
        f"fuzz: {args.cases} cases from {len(files)} files (seed {args.seed}) in {time.perf_counter() - started:.0f} s"
    )
    print("  by mutation: " + ", ".join(f"{k} {n}" for k, n in by_kind.items()))
    print(
        f"  Python tracebacks: {len(tracebacks)}   unlocated diagnostics: {len(unlocated)}   hangs (> {TIME_BOUND:.0f} s): {len(hangs)}"
    )
    print(
        f"  command line: {cli_runs} cases run as `agilab-run check`, {len(cli_bad)} with a traceback or a bad exit"
    )
    print(
        f"  check time per file: median {times[len(times) // 2] * 1000:.1f} ms, p99 {p99 * 1000:.0f} ms, max {times[-1] * 1000:.0f} ms"
    )
    print("  resident memory: " + ", ".join(f"{k} {v:.0f} MiB" for k, v in rss.items()))
    for problem in [*tracebacks, *unlocated, *hangs, *cli_bad][:20]:
        print("  ✗ " + problem)
    return 1 if tracebacks or unlocated or hangs or cli_bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
