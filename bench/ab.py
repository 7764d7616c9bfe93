"""A/B of two revisions of this project on one W1 scenario, interleaved in one script.

    python bench/ab.py REV_A REV_B [--size N] [--scenario one|touched|status|noop|cold] [--rounds R]
                       [--jobs J]

On a noisy machine a change of a few percent is lost between two bench runs; here the two
versions run turn about (A B, then B A, ...) on two copies of one W1 lab (bench/_w1lab.py), each
from a git worktree of its revision (``python -m agilab_dsl`` with the worktree first on
``PYTHONPATH``, under this interpreter: its environment must have the project's dependencies).
Each lab is run cold once, then once more (so that what a revision keeps — the stored judgment,
the spec cache — is its own), untimed. A round then times, for each version: one input changed
(``one``, the input a round-dependent one), one touched (``touched``), a no-op ``status --json``
(``status``), a no-op run (``noop``) or a cold run with ``-j J`` (``cold``: a new lab each time, every
step runs); which steps ran is checked (the changed one and the gather step, none, or all). The detached history writer of each run is waited for before the next is timed.
Prints each version's samples and medians, and B / A.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import _measure as m  # bench/ is the script's folder, first on sys.path
import _w1lab as w

ROOT = Path(__file__).resolve().parent.parent


def worktree(rev: str, where: Path) -> Path:
    subprocess.run(
        ["git", "-C", str(ROOT), "worktree", "add", "--detach", "-f", str(where), rev],
        check=True,
        capture_output=True,
    )
    return where


def command(scenario: str, jobs: int = 1) -> list[str]:
    if scenario == "status":
        return [sys.executable, "-m", "agilab_dsl", "status", w.LAB, "--json"]
    if scenario == "cold":
        return [sys.executable, "-m", "agilab_dsl", w.LAB, "-j", str(jobs)]
    return [sys.executable, "-m", "agilab_dsl", w.LAB]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("a", help="revision A (the baseline)")
    parser.add_argument("b", help="revision B")
    parser.add_argument("--size", type=int, default=1000, help="W1's N (default 1000)")
    parser.add_argument("--scenario", choices=("one", "touched", "status", "noop", "cold"), default="one")
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--jobs", type=int, default=1, help="-j of the cold runs (default 1)")
    args = parser.parse_args(argv)
    n = args.size
    samples: dict[str, list[float]] = {"A": [], "B": []}
    rss: dict[str, list[float]] = {"A": [], "B": []}
    with tempfile.TemporaryDirectory(prefix="agilab-ab-") as tmp:
        base = Path(tmp)
        trees = {"A": worktree(args.a, base / "tree-a"), "B": worktree(args.b, base / "tree-b")}
        try:
            labs = {}
            for name in ("A", "B"):
                labs[name] = w.make_ours(base / f"lab-{name.lower()}", n).parent
            env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
            envs = {name: {**env, "PYTHONPATH": str(trees[name])} for name in ("A", "B")}
            for name in ("A", "B"):
                print(
                    f"{name} ({getattr(args, name.lower())}): cold run of N = {n:,}, then one more …",
                    flush=True,
                )
                for _ in range(2):
                    m.timed(command("noop"), labs[name], envs[name])
                    m.settle(labs[name])
            for r in range(args.rounds):
                for name in ("A", "B") if r % 2 == 0 else ("B", "A"):
                    lab = labs[name]
                    k = (r * 7 + (0 if name == "A" else 3)) % n
                    if args.scenario == "cold":
                        shutil.rmtree(lab)
                        lab = w.make_ours(lab, n).parent
                    if args.scenario == "one":
                        w.change(lab, k)
                    elif args.scenario == "touched":
                        w.touch(lab, k)
                    before = m.run_folders(lab)
                    t = m.timed(command(args.scenario, args.jobs), lab, envs[name])
                    if args.scenario == "status":
                        m.all_fresh(t.stdout, n + 1)
                    else:
                        wanted = (
                            w.all_ids(n)
                            if args.scenario == "cold"
                            else {w.step_id(k), w.GATHER}
                            if args.scenario == "one"
                            else set()
                        )
                        m.expect(f"{name}, round {r + 1}", m.ran_since(lab, before), wanted)
                    m.settle(lab)
                    samples[name].append(t.seconds)
                    rss[name].append(t.max_rss_mb)
                    print(f"  round {r + 1:>2} {name} {t.seconds:8.3f} s  {t.max_rss_mb:6.0f} MB", flush=True)
                    time.sleep(0.5)
        finally:
            for tree in trees.values():
                subprocess.run(
                    ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)], check=False
                )
            shutil.rmtree(base, ignore_errors=True)
    med = {name: statistics.median(v) for name, v in samples.items()}
    scenario = f"cold -j{args.jobs}" if args.scenario == "cold" else args.scenario
    print(f"\nW1, N = {n:,}, {scenario}, {args.rounds} interleaved rounds (medians):")
    for name in ("A", "B"):
        print(
            f"  {name} {getattr(args, name.lower())}: {med[name]:.3f} s, peak RSS {max(rss[name]):.0f} MB "
            f"(samples {', '.join(f'{s:.2f}' for s in samples[name])})"
        )
    print(f"  B / A = {med['B'] / med['A']:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
