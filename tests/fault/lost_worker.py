"""Lost Dask workers (issue 8, item 4): SIGKILL a worker process in the middle of a stage.

    python tests/fault/lost_worker.py [--rounds 10] [--seed N]

A real ``dask scheduler`` and two ``dask worker`` processes (each under its nanny) on 127.0.0.1.
Each round runs a 24-partition contract (~0.15 s a partition) with ``agilab-run … --scheduler``
and, once a random number of its partitions have started, kills one worker process with SIGKILL (not its nanny,
which starts a new one). The stage must complete with output byte-identical to a clean ``local``
run. ``tests/test_parallel.py`` proves the same in CI with a worker that dies inside a partition.
Prints: worker processes killed mid-stage, stages completed, outputs identical.
"""

from __future__ import annotations

import argparse
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests/: conftest

from conftest import DaskProcesses

FUNCTION = """import os, time

def work(part):
    open(os.path.join({markers!r}, str(part.index)), "w").close()  # this partition has started
    time.sleep(0.15)
    return {{"i": part.index, "sum": sum(part.params.values())}}
"""
GRID = "[[points]]\n" + "\n[[points]]\n".join(f"a = {a}\nb = {b}\n" for a in range(6) for b in range(4))


def contract(folder: Path, backend: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "started").mkdir()
    (folder / "fn.py").write_text(FUNCTION.format(markers=str(folder / "started")), encoding="utf-8")
    (folder / "grid.toml").write_text(GRID, encoding="utf-8")
    path = folder / "parallel_stage.toml"
    path.write_text(
        'schema = "agilab.parallel_stage.v1"\nname = "lost"\nfunction = "fn.py:work"\n'
        'split = "parameter-sweep"\ninput = "grid.toml"\nworkers = 2\npartition_strategy = "parameter-items"\n'
        'target_partitions = 0\nmin_partitions_per_worker = 1\nreducer = "concat-jsonl"\n'
        f'backend = "{backend}"\noutput = "out.jsonl"\n',
        encoding="utf-8",
    )
    return path


def worker_processes(cluster: DaskProcesses) -> list[psutil.Process]:
    """The worker processes proper: the children of each ``dask worker`` (nanny) process."""
    found = []
    for proc in cluster.procs[1:]:
        with_children = psutil.Process(proc.pid).children()
        found += [c for c in with_children if "python" in c.name().lower()]
    return found


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--seed", type=int, default=20261122)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory(prefix="agilab-lost-worker-", ignore_cleanup_errors=True) as tmp:
        work = Path(tmp)
        clean = contract(work / "clean", "local")
        subprocess.run([sys.executable, "-m", "agilab_dsl", str(clean)], check=True, capture_output=True)
        expected = (clean.parent / "out.jsonl").read_bytes()
        cluster = DaskProcesses(work / "dask")
        killed = completed = identical = 0
        failures = []
        try:
            for n in range(args.rounds):
                path = contract(work / f"round{n}", "dask")
                stage = subprocess.Popen(
                    [sys.executable, "-m", "agilab_dsl", str(path), "--scheduler", cluster.address],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.PIPE,
                    text=True,
                )
                wanted = rng.randrange(2, 20)  # kill once this many partitions have started
                while stage.poll() is None and len(list((path.parent / "started").iterdir())) < wanted:
                    time.sleep(0.01)
                victims = worker_processes(cluster)
                if stage.poll() is None and victims:
                    rng.choice(victims).send_signal(signal.SIGKILL)
                    killed += 1
                _, err = stage.communicate(timeout=300)
                if stage.returncode == 0:
                    completed += 1
                    identical += (path.parent / "out.jsonl").read_bytes() == expected
                else:
                    failures.append(f"round {n}: exit {stage.returncode}: {err[-300:]}")
                cluster.wait_for_workers(2)  # the nanny has started a new worker
        finally:
            cluster.close()
    print(
        f"lost Dask workers: {killed} worker processes killed mid-stage in {args.rounds} rounds (seed {args.seed})"
    )
    print(
        f"  stages completed: {completed} of {args.rounds}; outputs identical to a clean local run: {identical}"
    )
    for failure in failures:
        print("  ✗ " + failure)
    return 0 if completed == identical == args.rounds and killed == args.rounds else 1


if __name__ == "__main__":
    raise SystemExit(main())
