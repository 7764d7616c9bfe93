"""The runner against doit on the same workload, whole-process wall time, in this one script.

The smaller, older version of bench/w1.py (issue 18), kept as it is: w1.py runs both tools from an
installed wheel, at up to N = 100,000, checks which steps each run ran, and adds -j 2, a touched
input, peak memory, a CPU workload and the lab file load.

    python bench/runner.py [--steps N] [--repeat R]

Workload (issue 3): N independent one-input/one-output steps plus a final gather step. The lab is
generated as a lab_stages.toml (Python snippet steps) and as a doit dodo.py (shell actions); doit is
installed into a private folder for this benchmark only (pip, from the package index).

Prints, for each scenario, our median time, doit's, and the ratio (ours / doit; below 1 is faster):
  cold run              everything runs
  no-op status          nothing changed (ours: `status` and a no-op run; doit: a no-op run)
  one input changed     one input file edited, then re-run
Goals: no-op and one-change faster than doit; cold run of N snippet steps no slower than doit's N
shell actions.
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

STEP = """[[bench]]
id = "s{i:04d}"
C = "open(outputs[0], 'w').write(open(inputs[0]).read().upper())"
consumes = ["in/{i:04d}.txt"]
produces = ["out/{i:04d}.txt"]

"""
GATHER = """[[bench]]
id = "gather"
C = '''
total = 0
for path in inputs:
    with open(path) as fh:
        total += len(fh.read())
open(outputs[0], "w").write(str(total))
'''
consumes = [{inputs}]
produces = ["total.txt"]
"""

DODO = """
N = {n}

def task_step():
    for i in range(N):
        yield {{
            "name": f"s{{i:04d}}",
            "actions": [f"tr a-z A-Z < in/{{i:04d}}.txt > out/{{i:04d}}.txt"],
            "file_dep": [f"in/{{i:04d}}.txt"],
            "targets": [f"out/{{i:04d}}.txt"],
        }}

def task_gather():
    deps = [f"out/{{i:04d}}.txt" for i in range(N)]
    return {{
        "actions": ["cat out/*.txt | wc -c > total.txt"],
        "file_dep": deps,
        "targets": ["total.txt"],
    }}
"""


def doit_command(private: Path) -> list[str]:
    try:
        import doit  # noqa: F401

        return [sys.executable, "-m", "doit"]
    except ImportError:
        pass
    if not (private / "doit").is_dir():
        print("installing doit into a private folder for this benchmark …", flush=True)
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "-q", "--target", str(private), "doit"], check=True
        )
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(private), os.environ.get("PYTHONPATH")) if p)
    return [sys.executable, "-m", "doit"]


def make_workload(folder: Path, n: int) -> None:
    (folder / "in").mkdir(parents=True)
    (folder / "out").mkdir()
    for i in range(n):
        (folder / "in" / f"{i:04d}.txt").write_text(f"line {i}\n" * 10, encoding="utf-8")
    inputs = ", ".join(f'"out/{i:04d}.txt"' for i in range(n))
    (folder / "lab_stages.toml").write_text(
        "".join(STEP.format(i=i) for i in range(n)) + GATHER.format(inputs=inputs), encoding="utf-8"
    )
    (folder / "dodo.py").write_text(DODO.format(n=n), encoding="utf-8")


def timed(cmd: list[str], cwd: Path) -> float:
    start = time.perf_counter()
    proc = subprocess.run(
        cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, check=False
    )
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stderr[-2000:]}")
    return elapsed


def settle(folder: Path) -> float:
    """Wait until the detached history writer of the last run is done (it would otherwise compete
    for the 2 cores with whatever is timed next); how long that took after the run returned."""
    start = time.perf_counter()
    pending = folder / ".agilab" / "history-pending"
    while pending.is_dir() and any(p.suffix == ".json" for p in pending.iterdir()):
        if time.perf_counter() - start > 60:
            raise SystemExit("the history writer did not finish in 60 s")
        time.sleep(0.01)
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    # both tools run as installed: from bytecode (the first repeat writes what is missing)
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    exe = shutil.which("agilab-run", path=str(Path(sys.executable).parent))
    ours = [exe] if exe else [sys.executable, "-m", "agilab_dsl"]
    rows: dict[str, tuple[list[float], list[float]]] = {}
    background: list[float] = []  # the history writer's time after a run returned

    with tempfile.TemporaryDirectory() as tmp:
        doit = doit_command(Path(tmp) / "doit-private")
        for _ in range(args.repeat):
            for tool in ("ours", "doit"):
                folder = Path(tempfile.mkdtemp(dir=tmp))
                make_workload(folder, args.steps)
                if tool == "ours":
                    cold = timed([*ours, "lab_stages.toml"], folder)
                    background.append(settle(folder))
                    noop = timed([*ours, "status", "lab_stages.toml"], folder)
                    noop_run = timed([*ours, "lab_stages.toml"], folder)
                    (folder / "in" / "0017.txt").write_text("changed\n", encoding="utf-8")
                    change = timed([*ours, "lab_stages.toml"], folder)
                    background.append(settle(folder))
                    rows.setdefault("cold run", ([], []))[0].append(cold)
                    rows.setdefault("no-op status", ([], []))[0].append(noop)
                    rows.setdefault("no-op run", ([], []))[0].append(noop_run)
                    rows.setdefault("one input changed, re-run", ([], []))[0].append(change)
                else:
                    cold = timed([*doit], folder)
                    noop = timed([*doit], folder)
                    (folder / "in" / "0017.txt").write_text("changed\n", encoding="utf-8")
                    change = timed([*doit], folder)
                    rows.setdefault("cold run", ([], []))[1].append(cold)
                    rows.setdefault("no-op status", ([], []))[1].append(noop)
                    rows.setdefault("no-op run", ([], []))[1].append(noop)
                    rows.setdefault("one input changed, re-run", ([], []))[1].append(change)
                    if not (folder / "total.txt").is_file():
                        raise SystemExit("doit did not build total.txt")

    print(
        f"N = {args.steps} independent steps + 1 gather step, median of {args.repeat}, whole-process wall time"
    )
    print(f"  {'scenario':<28} {'agilab-run':>11} {'doit':>9} {'ratio':>7}")
    for name, (a, b) in rows.items():
        ma, mb = statistics.median(a), statistics.median(b)
        verdict = "faster" if ma < mb else "slower"
        print(f"  {name:<28} {ma:10.2f}s {mb:8.2f}s {ma / mb:6.2f}x  ({verdict})")
    print("  (doit's no-op status is a no-op `doit` run; ours is `agilab-run status`, and a no-op run)")
    print(
        f"  after each run that did something, a detached, niced process writes its history record as "
        f"Parquet: done {statistics.median(background):.2f} s (median) after the run returned; the next "
        "command is timed after it"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
