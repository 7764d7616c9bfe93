"""W1: our runner against doit on the same pipeline, interleaved in this one script (issue 18).

    python bench/w1.py [--sizes 1000,10000] [--repeat 3] [--doit-timeout 600] [--python PATH]

W1 = N independent steps each copying one input to one output, plus one step gathering the N outputs
(bench/_w1lab.py: Python snippet steps in our lab_stages.toml; shell ``cp`` in doit's dodo.py). Both
tools run from a wheel-like install with compiled bytecode (bench/_install.py: the checkout's wheel
and doit in a private venv; ``--python PATH`` takes an installed interpreter instead).

Scenarios per N, each timed as a whole process (ours / doit / ratio, medians of R; R is 1 at
N ≥ 100,000 unless --repeat is given), ours' peak RSS (the largest over the repeats), and in a
second table the CPU time and page faults of each run's process tree (``os.wait4``; the page
faults hardly move between runs of the same code, the CPU time moves with the machine as wall time does):
  cold -j1 / -j2     everything runs (doit ``-n 1`` / ``-n 2 -P thread``, see --doit-parallel)
  no-op status       ours ``status --json``; doit a no-op run
  no-op run          nothing runs
  one changed        one input edited: exactly that step and gather run
  one touched        one input's mtime changed, same content: nothing runs
(in that order; odd repeats run cold -j2, on a lab of its own, first, and who goes first alternates)
Each of our runs is checked (bench/_measure.py): the bench stops loudly when a cold run did not run
all N+1 steps, a no-op or touched run ran any, or a changed run ran anything but {that step, gather};
doit's output is checked the same way. Then the CPU workload (goal 3: 1,000 steps of ~20 ms CPU,
-j1 against -j2) and the lab file load at each N (goal 2: bench/_labload.py, in process, against
``tomllib.loads``; cold and through the spec cache). Between runs the detached history writer of
ours is waited for (untimed). Last, at each N, what a one-change run cannot avoid on this machine
(bench/_w1floor.py, in process: the gather step's own reading of the N files, a ``stat`` of each of
the 2N files, the interpreter's start), printed beside goal 2.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

import _install  # noqa: E402
import _measure as m  # noqa: E402
import _w1lab as w  # noqa: E402
import _w1report  # noqa: E402

SCENARIOS = ("cold -j1", "cold -j2", "no-op status", "no-op run", "one changed", "one touched")
ORDER = ("cold -j1", "no-op status", "no-op run", "one changed", "one touched", "cold -j2")
# odd repeats run the cold -j2 run (its own lab) first, so that neither cold run is always the one on
# a machine warmed, or slowed, by the scenarios before it
ORDER_ODD = ("cold -j2", *ORDER[:-1])


class Size:
    """Samples of one N: per scenario, our times and peaks, doit's times (or why doit was skipped)."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.ours: dict[str, list[float]] = {s: [] for s in SCENARIOS}
        self.rss: dict[str, list[float]] = {s: [] for s in SCENARIOS}
        # CPU seconds and page faults of each timed run's process tree (bench/_measure.py), per tool
        self.cpu: dict[str, dict[str, list[float]]] = {
            t: {s: [] for s in SCENARIOS} for t in ("ours", "doit")
        }
        self.faults: dict[str, dict[str, list[float]]] = {
            t: {s: [] for s in SCENARIOS} for t in ("ours", "doit")
        }
        self.doit: dict[str, list[float]] = {s: [] for s in SCENARIOS}
        self.doit_skipped: dict[str, str] = {}
        self.history_wait: dict[str, list[float]] = {s: [] for s in SCENARIOS}  # after each of our runs
        self.load: dict[str, Any] | None = None
        self.floor: dict[str, Any] | None = None  # bench/_w1floor.py: what one change cannot avoid


class Bench:
    def __init__(self, install: _install.Install, args: argparse.Namespace, tmp: Path) -> None:
        self.install = install
        self.args = args
        self.tmp = tmp
        self.env = install.env()

    # -- ours ------------------------------------------------------------------------------------
    def ours(self, folder: Path, extra: list[str]) -> tuple[m.Timed, set[str]]:
        before = m.run_folders(folder)
        t = m.timed([*self.install.tool, w.LAB, *extra], folder, self.env)
        return t, m.ran_since(folder, before)

    def ours_scenario(self, size: Size, scenario: str, a: Path, b: Path, k: int, k2: int) -> None:
        n = size.n
        if scenario == "no-op status":
            t = m.timed([*self.install.tool, "status", w.LAB, "--json"], a, self.env)
            m.all_fresh(t.stdout, n + 1)
        else:
            folder = b if scenario == "cold -j2" else a
            if scenario == "one changed":
                w.change(a, k)
            elif scenario == "one touched":
                w.touch(a, k2)
            jobs = "2" if scenario == "cold -j2" else "1"
            t, ran = self.ours(folder, ["-j", jobs])
            size.history_wait[scenario].append(m.settle(folder))
            wanted = {
                "cold -j1": w.all_ids(n),
                "cold -j2": w.all_ids(n),
                "one changed": {w.step_id(k), w.GATHER},
            }.get(scenario, set())
            m.expect(f"ours, N = {n}, {scenario}", ran, wanted)
            if (
                scenario == "one changed"
                and w.output_path(a, k).read_bytes() != w.input_path(a, k).read_bytes()
            ):
                raise m.BenchFailure(f"ours, N = {n}: out/{k:06d}.txt is not a copy of its changed input")
        size.ours[scenario].append(t.seconds)
        size.rss[scenario].append(t.max_rss_mb)
        size.cpu["ours"][scenario].append(t.cpu_seconds)
        size.faults["ours"][scenario].append(t.page_faults)

    # -- doit ------------------------------------------------------------------------------------
    def doit_scenario(self, size: Size, scenario: str, a: Path, b: Path, k: int, k2: int) -> None:
        if self.install.doit is None or scenario in size.doit_skipped:
            return
        n = size.n
        cmd = [*self.install.doit]
        folder = a
        if scenario == "cold -j1":
            cmd += ["-n", "1"]
        elif scenario == "cold -j2":
            cmd += ["-n", "2", "-P", self.args.doit_parallel]
            folder = b
        elif scenario == "one changed":
            w.change(a, k)
        elif scenario == "one touched":
            w.touch(a, k2)
        try:
            t = m.timed(cmd, folder, self.env, timeout=self.args.doit_timeout)
        except m.TimedOut:
            why = f"doit ran past --doit-timeout {self.args.doit_timeout:.0f} s ({scenario})"
            # a cold run that slow: the other one too, and what runs on the lab cold -j1 builds
            dependent = ORDER if scenario in ("cold -j1", "cold -j2") else (scenario,)
            for s in dependent:
                size.doit_skipped.setdefault(s, why)
            print(f"  {why}: skipped", flush=True)
            return
        wanted = {
            "cold -j1": w.all_ids(n),
            "cold -j2": w.all_ids(n),
            "one changed": {w.step_id(k), w.GATHER},
        }.get(scenario, set())
        m.expect(f"doit, N = {n}, {scenario}", m.doit_ran(t.stdout), {m.doit_name(s) for s in wanted})
        size.doit[scenario].append(t.seconds)
        size.cpu["doit"][scenario].append(t.cpu_seconds)
        size.faults["doit"][scenario].append(t.page_faults)

    # -- one N -----------------------------------------------------------------------------------
    def size(self, n: int, repeat: int) -> Size:
        size = Size(n)
        k, k2 = n // 2, n // 3  # the input changed, the input touched
        for r in range(repeat):
            print(f"N = {n:,}: repeat {r + 1} of {repeat}: writing the workloads …", flush=True)
            base = Path(tempfile.mkdtemp(prefix=f"w1-{n}-", dir=self.tmp))
            oa, ob = w.make_ours(base / "ours-a", n).parent, w.make_ours(base / "ours-b", n).parent
            da = w.make_doit(base / "doit-a", n, self.args.doit_backend).parent
            db = w.make_doit(base / "doit-b", n, self.args.doit_backend).parent
            tools = ("ours", "doit") if r % 2 == 0 else ("doit", "ours")  # alternate who goes first
            for scenario in ORDER if r % 2 == 0 else ORDER_ODD:
                for tool in tools:
                    samples = size.ours[scenario] if tool == "ours" else size.doit[scenario]
                    before, start = len(samples), time.perf_counter()
                    if tool == "ours":
                        self.ours_scenario(size, scenario, oa, ob, k, k2)
                    else:
                        self.doit_scenario(size, scenario, da, db, k, k2)
                    if len(samples) > before:  # the timed run, as the table takes it; then the whole
                        whole = time.perf_counter() - start  # (the checks and history writer untimed)
                        print(
                            f"  {scenario:<13} {tool:<4} {samples[-1]:8.2f} s  ({whole:.2f} s with the checks and the history writer)",
                            flush=True,
                        )
            if r == repeat - 1 and self.args.load_repeat > 0:
                size.load = self.lab_load(oa / w.LAB, n)
            if r == repeat - 1:
                size.floor = self.floor(oa, n)
            shutil.rmtree(base, ignore_errors=True)
        return size

    def lab_load(self, lab: Path, n: int) -> dict[str, Any]:
        repeat = 1 if n >= 100_000 else self.args.load_repeat
        print(f"N = {n:,}: the lab file load, median of {repeat} …", flush=True)
        result = self.probe("_labload.py", str(lab), "--repeat", str(repeat), cwd=lab.parent)
        result["repeat"] = repeat
        return result

    def floor(self, lab_dir: Path, n: int) -> dict[str, Any]:
        print(
            f"N = {n:,}: what one change cannot avoid (the gather's reading, a stat per file) …", flush=True
        )
        return self.probe("_w1floor.py", str(lab_dir), cwd=lab_dir)

    def probe(self, script: str, *args: str, cwd: Path) -> dict[str, Any]:
        """The JSON object a bench/ script prints, run under the benchmarked interpreter."""
        proc = subprocess.run(
            [self.install.python, str(BENCH / script), *args],
            cwd=cwd,
            env=self.env,
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode != 0:
            raise m.BenchFailure(f"bench/{script} failed:\n{proc.stderr[-3000:]}")
        result: dict[str, Any] = json.loads(proc.stdout)
        return result

    # -- goal 3's CPU workload -------------------------------------------------------------------
    def cpu(self, steps: int, ms: float, repeat: int) -> dict[str, list[float]]:
        out: dict[str, list[float]] = {"-j1": [], "-j2": []}
        ids = {f"c{i:06d}" for i in range(steps)}
        for r in range(repeat):
            print(f"CPU workload: {steps:,} steps × {ms:g} ms, repeat {r + 1} of {repeat} …", flush=True)
            base = Path(tempfile.mkdtemp(prefix="cpu-", dir=self.tmp))
            for jobs in ("1", "2") if r % 2 == 0 else ("2", "1"):
                folder = w.make_cpu(base / f"j{jobs}", steps, ms).parent
                t, ran = self.ours(folder, ["-j", jobs])
                m.settle(folder)
                m.expect(f"CPU workload, -j {jobs}", ran, ids)
                out[f"-j{jobs}"].append(t.seconds)
                print(f"  cold -j{jobs}  {t.seconds:8.2f} s", flush=True)
            shutil.rmtree(base, ignore_errors=True)
        return out


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="1000,10000", help="comma-separated N (default 1000,10000)")
    parser.add_argument("--repeat", type=int, help="medians of R (default 3; 1 at N ≥ 100,000)")
    parser.add_argument("--doit-timeout", type=float, default=600, help="seconds (default 600)")
    parser.add_argument("--doit-parallel", choices=("thread", "process"), default="thread")
    parser.add_argument(
        "--doit-backend",
        choices=("dbm", "json", "sqlite3"),
        default="dbm",
        help="doit's dep file (default: doit's own default, dbm)",
    )
    parser.add_argument("--python", help="an installed interpreter (or venv) instead of the wheel's venv")
    parser.add_argument("--cpu-steps", type=int, default=1000, help="0: no CPU workload")
    parser.add_argument("--cpu-ms", type=float, default=20)
    parser.add_argument("--cpu-repeat", type=int, default=1)
    parser.add_argument("--load-repeat", type=int, default=5, help="lab file load: median of K (0: skip)")
    parser.add_argument("--save", type=Path, help="also write every sample as JSON to this file")
    args = parser.parse_args(argv)
    try:
        args.sizes = [int(s.replace("_", "")) for s in args.sizes.split(",") if s.strip()]
    except ValueError:
        parser.error(f"--sizes {args.sizes!r}: comma-separated whole numbers")
    if not args.sizes or min(args.sizes) < 1 or max(args.sizes) > 999_999:
        parser.error("--sizes: each N from 1 to 999,999 (ids have six digits)")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    install = _install.resolve(args.python)
    started = time.perf_counter()
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="agilab-w1-") as tmp:
        bench = Bench(install, args, Path(tmp))
        if install.doit is None:
            print(f"doit is not installed beside {install.python}: doit's column stays empty", flush=True)
        sizes = []
        for n in args.sizes:
            repeat = args.repeat or (1 if n >= 100_000 else 3)
            sizes.append(bench.size(n, repeat))
        cpu = bench.cpu(args.cpu_steps, args.cpu_ms, args.cpu_repeat) if args.cpu_steps > 0 else None
    context = {
        "install": install.origin,
        "python": subprocess.run(
            [install.python, "-c", "import sys; print(sys.version.split()[0])"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip(),
        "cores": os.cpu_count(),
        "load": (load_before, os.getloadavg()),
        "minutes": (time.perf_counter() - started) / 60,
        "doit": f"doit {args.doit_backend} backend, -n 2 -P {args.doit_parallel}",
    }
    _w1report.print_report(sizes, cpu, args, context)
    if args.save:
        args.save.write_text(json.dumps(_w1report.samples(sizes, cpu, context), indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
