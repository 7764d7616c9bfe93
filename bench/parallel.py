"""Parallel stages against raw joblib and raw Dask on the same partitions, in this one script.

    python bench/parallel.py [--tiny N] [--busy N] [--gb G] [--repeat R]

1. dispatch overhead — N (1,000) tiny partitions (a parameter sweep whose function returns a dict):
   the whole stage (plan, partitions, dispatch, concat-jsonl written) on ``pool`` against a raw
   ``joblib.Parallel(loky)`` over the same Partition objects, and on ``dask`` against raw
   ``client.map`` + ``client.gather`` on the same LocalCluster. Goal: ≤ 1.2× raw.
2. speed-up — N (64) partitions of ~50 ms CPU work each: ``local`` against ``pool`` and ``dask``
   with 2 workers. Goal: ≥ 1.8× on 2 cores.
3. memory — ``concat-csv`` of ~G (2) GB of partition output (64 partitions of CSV text): the peak
   resident memory of a fresh process running the stage on ``local`` and on ``pool``. Goal: ≤ 256 MB.
4. memory, large partitions (issue 18, goal 6) — ``concat-csv`` of B (16) partitions × M (64) MB of
   CSV text: the peak (``VmHWM``) of the stage's process on ``local`` and ``pool`` (goal ≤ 256 MB) and
   of each loky worker against the partition's size (goal ≤ 2.5x).
5. the time after a stage (goal 6) — the same stage as a lab step run by ``agilab-run`` in a fresh
   process: what passes between the step's process ending and its ``step_finished`` event (the
   runner hashes the output and records the step), and from ``run_finished`` to the process's exit,
   beside the machine's raw hashing rate (``hashlib.file_digest`` sha256 of the same output, page
   cache warm). Goal: ≤ 0.2 s per GB beyond the raw hash.
Times are medians of R (5) runs, warm pools (the first run of each is discarded).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
sys.path.insert(0, str(BENCH.parent))

CONTRACT = """schema = "agilab.parallel_stage.v1"
name = "{name}"
function = "{function}"
split = "parameter-sweep"
input = "grid.json"
workers = 2
partition_strategy = "parameter-items"
target_partitions = 0
min_partitions_per_worker = 1
reducer = "{reducer}"
backend = "local"
output = "out/{name}.out"
"""


def sweep(folder: Path, name: str, function: str, reducer: str, points: list[dict[str, Any]]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "grid.json").write_text(json.dumps(points), encoding="utf-8")
    path = folder / "parallel_stage.toml"
    path.write_text(CONTRACT.format(name=name, function=function, reducer=reducer), encoding="utf-8")
    return path


def median_time(fn: Any, repeat: int) -> float:
    fn()  # warm: pools started, modules imported
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def line(label: str, ours: float, base: float, goal: str) -> None:
    print(
        f"  {label:<34} ours {ours * 1000:8.1f} ms   raw {base * 1000:8.1f} ms   ratio {ours / base:5.2f}x   ({goal})"
    )


def write_jsonl(results: list[Any], output: Path) -> None:
    with output.open("w", encoding="utf-8") as fh:
        fh.writelines(json.dumps(r) + "\n" for r in results)


def dispatch(folder: Path, n: int, repeat: int) -> None:
    import _work
    from distributed import Client
    from joblib import Parallel, delayed

    from agilab_dsl.check.files import load
    from agilab_dsl.stages.backends import FunctionRef, PartitionCall
    from agilab_dsl.stages.backends.dask import DaskBackend, start_local_cluster
    from agilab_dsl.stages.backends.pool import PoolBackend
    from agilab_dsl.stages.parallel import planned, run_contract

    path = sweep(folder, "tiny", "_work:tiny", "concat-jsonl", [{"k": k} for k in range(n)])
    contract = load(path, "contract")
    parts = planned(contract, path, 2)[1]
    call = PartitionCall(FunctionRef.parse("_work:tiny", str(folder)))
    raw_out = folder / "raw.jsonl"
    print(
        f"1. {n} tiny partitions on 2 workers (dispatch: results taken in order; stage: plan, partitions, dispatch, concat-jsonl written)"
    )

    def raw_joblib() -> list[Any]:
        return Parallel(n_jobs=2, backend="loky")(delayed(_work.tiny)(p) for p in parts)

    pool = PoolBackend(2)
    ours = median_time(lambda: list(pool.map(call, parts)), repeat)
    raw = median_time(raw_joblib, repeat)
    line("pool dispatch vs joblib.Parallel", ours, raw, "goal ≤ 1.2x")
    ours = median_time(lambda: run_contract(contract, path, backend="pool", cores=2), repeat)
    raw = median_time(lambda: write_jsonl(raw_joblib(), raw_out), repeat)
    line("pool stage vs joblib + writing", ours, raw, "for information")

    cluster = start_local_cluster(2, 1)
    client = Client(cluster)
    address = cluster.scheduler_address
    dask = DaskBackend(2, 1, address)
    try:

        def raw_dask() -> list[Any]:
            return client.gather(client.map(_work.tiny, parts, pure=False))

        ours = median_time(lambda: list(dask.map(call, parts)), repeat)
        raw = median_time(raw_dask, repeat)
        line("dask dispatch vs client.map+gather", ours, raw, "goal ≤ 1.2x; ours sends batches")
        ours = median_time(
            lambda: run_contract(contract, path, backend="dask", scheduler=address, cores=2), repeat
        )
        raw = median_time(lambda: write_jsonl(raw_dask(), raw_out), repeat)
        line("dask stage vs client.map + writing", ours, raw, "for information")
    finally:
        dask.close()
        client.close()
        cluster.close()


def speedup(folder: Path, n: int, repeat: int) -> None:
    import _work
    from distributed import Client
    from joblib import Parallel, delayed

    from agilab_dsl.check.files import load
    from agilab_dsl.stages.backends.dask import start_local_cluster
    from agilab_dsl.stages.parallel import planned, run_contract

    path = sweep(folder, "busy", "_work:busy", "collect-json", [{"k": k} for k in range(n)])
    contract = load(path, "contract")
    parts = planned(contract, path, 2)[1]
    print(f"2. {n} partitions of ~50 ms CPU work, 2 workers, {os.cpu_count()} cores (whole stage)")
    times = max(1, repeat // 2)

    def show(label: str, took: float, note: str) -> None:
        print(f"  {label:<22} {took:6.2f} s   speed-up {local / took:4.2f}x   ({note})")

    local = median_time(lambda: run_contract(contract, path, backend="local", cores=2), times)
    print(f"  {'local':<22} {local:6.2f} s")
    show(
        "pool",
        median_time(lambda: run_contract(contract, path, backend="pool", cores=2), times),
        "goal ≥ 1.8x",
    )
    raw = median_time(
        lambda: Parallel(n_jobs=2, backend="loky")(delayed(_work.busy)(p) for p in parts), times
    )
    show("raw joblib.Parallel", raw, "the baseline's own")
    cluster = start_local_cluster(2, 1)
    client = Client(cluster)
    try:
        address = cluster.scheduler_address
        # the cluster is up and warm for both: each has run once (the workers import the function
        # and, for ours, agilab_dsl's partition call, on their first task)
        run_contract(contract, path, backend="dask", scheduler=address, cores=2)
        client.gather(client.map(_work.busy, parts, pure=False))
        took = median_time(
            lambda: run_contract(contract, path, backend="dask", scheduler=address, cores=2), times
        )
        show("dask (cluster up)", took, "goal ≥ 1.8x")
        raw = median_time(lambda: client.gather(client.map(_work.busy, parts, pure=False)), times)
        show("raw client.map", raw, "the baseline's own")
    finally:
        client.close()
        cluster.close()
    start = time.perf_counter()
    run_contract(contract, path, backend="dask", cores=2)
    show("dask, own LocalCluster", time.perf_counter() - start, "the cluster's start and close included")


MEMORY_CHILD = """
import resource, sys, time
sys.path[:0] = [{bench!r}, {root!r}]
from agilab_dsl.check.files import load
from agilab_dsl.stages.parallel import run_contract
path = {path!r}
start = time.perf_counter()
result = run_contract(load(path, "contract"), path, backend={backend!r}, cores=2)
seconds = time.perf_counter() - start
import os
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, os.path.getsize(result.output), seconds)
"""


def memory(folder: Path, gb: float) -> None:
    parts = 64
    mb = int(gb * 1000 / parts)
    path = sweep(folder, "big", "_work:big_csv", "concat-csv", [{"mb": mb} for _ in range(parts)])
    print(f"3. concat-csv of {parts} partitions × {mb} MB of CSV text")
    for backend in ("local", "pool"):
        code = MEMORY_CHILD.format(bench=str(BENCH), root=str(BENCH.parent), path=str(path), backend=backend)
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
        peak_kb, size, seconds = out.split()
        print(
            f"  {backend:<6} output {int(size) / 1e9:5.2f} GB in {float(seconds):5.1f} s   "
            f"peak RSS of the stage's process {int(peak_kb) / 1024:6.1f} MB   (goal ≤ 256 MB)"
        )
        (folder / "out" / "big.out").unlink()


HWM_CHILD = """
import sys, time
sys.path[:0] = [{bench!r}, {root!r}]
from agilab_dsl.check.files import load
from agilab_dsl.stages.parallel import run_contract

def hwm(pid="self"):
    with open(f"/proc/{{pid}}/status") as fh:
        return next(int(l.split()[1]) for l in fh if l.startswith("VmHWM:"))

path = {path!r}
start = time.perf_counter()
result = run_contract(load(path, "contract"), path, backend={backend!r}, cores=2)
seconds = time.perf_counter() - start
workers = []  # the worker processes still up: this process's children (and loky's resource tracker)
import glob
children = set()
for path in glob.glob("/proc/self/task/*/children"):
    with open(path) as fh:
        children.update(fh.read().split())
for pid in children:
    try:
        workers.append(hwm(pid))
    except (OSError, StopIteration):
        pass
import os
print(hwm(), os.path.getsize(result.output), seconds, max(workers, default=0), len(workers))
"""


def big_memory(folder: Path, parts: int, mb: int) -> Path:
    path = sweep(folder, "big", "_work:big_csv", "concat-csv", [{"mb": mb} for _ in range(parts)])
    print(
        f"4. concat-csv of {parts} partitions × {mb} MB of CSV text (peak = VmHWM; 2 cores shared with other helpers)"
    )
    for backend in ("local", "pool"):
        code = HWM_CHILD.format(bench=str(BENCH), root=str(BENCH.parent), path=str(path), backend=backend)
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
        peak_kb, size, seconds, worker_kb, workers = out.split()
        text = (
            f"  {backend:<6} output {int(size) / 1e9:5.2f} GB in {float(seconds):5.1f} s   "
            f"stage process peak {int(peak_kb) / 1024:6.1f} MB (goal ≤ 256 MB)"
        )
        if int(workers):
            text += f"   worker peak {int(worker_kb) / 1024:6.1f} MB = {int(worker_kb) / 1024 / mb:4.2f}x a partition (goal ≤ 2.5x)"
        print(text)
        (folder / "out" / "big.out").unlink()
    return path


def _stamp(text: str) -> float:
    from datetime import datetime

    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").timestamp()


def after_stage(folder: Path, runs: int) -> None:
    """The lab step running the contract of section 4 (local backend), each time in a fresh agilab-run
    with no state (so it runs); the raw hash is taken right after each run, in the same conditions."""
    import hashlib
    import shutil

    (folder / "lab_steps.toml").write_text(
        '[[m]]\nid = "big"\nstage = "parallel_stage.toml"\nproduces = ["out/big.out"]\n', encoding="utf-8"
    )
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(BENCH), str(BENCH.parent)]))
    output = folder / "out" / "big.out"
    figures: list[tuple[float, float, float, float, float]] = []
    size = 0.0
    for _ in range(runs):
        shutil.rmtree(folder / ".agilab", ignore_errors=True)
        output.unlink(missing_ok=True)
        proc = subprocess.run(
            [sys.executable, "-m", "agilab_dsl", str(folder / "lab_steps.toml"), "--json"],
            check=False,
            capture_output=True,
            text=True,
            env=env,
            cwd=folder,
        )
        ended = time.time()
        if proc.returncode:
            print(f"5. the lab step failed ({proc.returncode}): {proc.stderr[-500:]}")
            return
        step = json.loads(proc.stdout)["steps"][0]
        events = {}
        log = Path(step["log"])
        for text in (log.parent / "events.jsonl").read_text(encoding="utf-8").splitlines():
            event = json.loads(text)
            events[event["kind"]] = _stamp(event["timestamp"])
        size = output.stat().st_size / 1e9
        hashed = time.perf_counter()
        with output.open("rb") as fh:
            hashlib.file_digest(fh, "sha256")
        raw = time.perf_counter() - hashed
        own = float(log.read_text(encoding="utf-8").rsplit("(", 1)[1].split(" s)")[0])
        runner = events["step_finished"] - events["step_started"] - step["seconds"]
        figures.append((own, step["seconds"], runner, ended - events["run_finished"], raw))
    own, took, runner, tail, raw = (statistics.median(f[i] for f in figures) for i in range(5))
    print(
        f"5. the {size:.2f} GB stage above as a lab step (local), fresh agilab-run, median of {runs} (2 cores shared)"
    )
    print(
        f"  stage's own {own:5.2f} s   step {took:5.2f} s   after the step's process: runner (hash + record) "
        f"{runner:5.2f} s, end of run {tail:5.2f} s   raw sha256 of the output right after {raw:5.2f} s "
        f"({size / raw:4.2f} GB/s)"
    )
    beyond = statistics.median((f[2] - f[4]) / size for f in figures)
    print(f"  after the stage, beyond the raw hash: {beyond:5.2f} s per GB   (goal ≤ 0.2 s per GB)")
    print(
        "  with the end of the run (state, history: once a run, not per GB): "
        f"{statistics.median((f[2] + f[3] - f[4]) / size for f in figures):5.2f} s per GB"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tiny", type=int, default=1000)
    parser.add_argument("--busy", type=int, default=64)
    parser.add_argument("--gb", type=float, default=2.0)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--big-parts", type=int, default=16)
    parser.add_argument("--big-mb", type=int, default=64)
    parser.add_argument("--only", default="12345", help="which sections to run (digits)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="agilab-bench-") as tmp:
        if "1" in args.only:
            dispatch(Path(tmp) / "tiny", args.tiny, args.repeat)
        if "2" in args.only:
            speedup(Path(tmp) / "busy", args.busy, args.repeat)
        if "3" in args.only:
            memory(Path(tmp) / "big", args.gb)
        if "4" in args.only or "5" in args.only:
            big = Path(tmp) / "bigger"
            big_memory(big, args.big_parts, args.big_mb)
            if "5" in args.only:
                after_stage(big, max(1, args.repeat // 2 + 1))


if __name__ == "__main__":
    main()
