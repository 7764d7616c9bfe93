"""What the runner's reporting costs per step, in process, against baselines run in this script.

    python bench/reporting.py [--steps N] [--repeat R]

A run tells its reporters about every step (queued, started, finished): the terminal's reporter as
the CLI builds it for a stream that is not a terminal (``PlainReporter``), the run's event stream
(``.agilab/runs/<run>/events.jsonl``), and, when a reporter wants live output or progress, a
follower of the running steps' files (``execute/follow.py``). Printed, per N (1,000) steps, medians
of R (7):

1. the whole reporting stack of a run (``Runner.run`` builds the same: ``RunStream`` + ``follow``),
   per call kind, against a baseline writing the same number of event lines with a bare
   ``json.dumps`` and ``flush`` (the least a JSON-lines stream can cost);
2. following plain (not parallel) steps for their progress, as the runner asks (it names the steps
   that can write a progress file: only a parallel stage's request names one), against following
   every step as if each could (``progress=None``, what every run did before issue 18's change).

Every step here is a plain step that prints nothing, as in W1 (bench/w1.py).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent))

from agilab_dsl.cli.plain import PlainReporter  # noqa: E402
from agilab_dsl.execute.events import RunStream  # noqa: E402
from agilab_dsl.execute.follow import Follower, Following, follow  # noqa: E402
from agilab_dsl.execute.outcome import SilentReporter, StepOutcome  # noqa: E402

WHY = ["never ran — python: /usr/bin/python3 (agilab-run's own)"]


def _median(fn: Callable[[], float], repeat: int) -> float:
    fn()  # once untimed: imports, first allocations
    return statistics.median(fn() for _ in range(repeat))


def stack(n: int, folder: Path) -> dict[str, float]:
    """Seconds per ``n`` steps of each reporter call, through the run's whole stack."""
    run_dir = folder / ".agilab" / "runs" / "r"
    ids = [f"s{i:06d}" for i in range(n)]
    with open("/dev/null", "w", encoding="utf-8") as shown_to:
        stream = RunStream(folder, "r", "lab_stages.toml", 1)
        reporter, stop = follow(
            stream.reporter(PlainReporter(shown_to, 8)), run_dir, progress=lambda sid: False
        )
        reporter.run_started("r", dict.fromkeys(ids, "ready"))
        times = {}
        start = time.perf_counter()
        for sid in ids:
            reporter.step_queued(sid, WHY)
        times["queued"] = time.perf_counter() - start
        start = time.perf_counter()
        for sid in ids:
            reporter.step_started(sid, WHY, 1, "/usr/bin/python3")
        times["started"] = time.perf_counter() - start
        outcomes = [StepOutcome(sid, "ran", WHY, 0.003, log=str(run_dir / f"{sid}.log")) for sid in ids]
        start = time.perf_counter()
        for outcome in outcomes:
            reporter.step_finished(outcome)
        times["finished"] = time.perf_counter() - start
        stop()
        stream.close()
    return times


def bare_lines(n: int, folder: Path) -> float:
    """Seconds to write ``3 n`` event-sized JSON lines with ``json.dumps`` and a flush each."""
    event = {"sequence": 1, "timestamp": "2026-12-02T01:00:00.000Z", "kind": "step_started"}
    event |= {"target_type": "step", "target_id": "s000000", "status": "running", "message": WHY[0]}
    event |= {"operator_visible": True, "payload": {"reasons": WHY, "attempt": 1, "log": "x.log"}}
    with open(folder / "bare.jsonl", "a", encoding="utf-8") as fh:
        start = time.perf_counter()
        for _ in range(3 * n):
            fh.write(json.dumps(event, default=str) + "\n")
            fh.flush()
        return time.perf_counter() - start


def following(n: int, folder: Path, progress: Callable[[str], bool] | None) -> float:
    """Seconds to follow ``n`` plain steps (started, then finished) for their progress."""
    quiet = SilentReporter()
    follower = Follower(quiet, folder, {"progress"}, progress=progress)
    wrapped = Following(quiet, follower)
    outcomes = [StepOutcome(f"s{i:06d}", "ran") for i in range(n)]
    start = time.perf_counter()
    for outcome in outcomes:
        wrapped.step_started(outcome.id, WHY, 1)
        wrapped.step_finished(outcome)
    seconds = time.perf_counter() - start
    follower.stop()
    return seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args(argv)
    n = args.steps
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        kinds: dict[str, list[float]] = {"queued": [], "started": [], "finished": []}

        def one_stack() -> float:
            times = stack(n, folder)
            for kind, seconds in times.items():
                kinds[kind].append(seconds)
            return sum(times.values())

        whole = _median(one_stack, args.repeat)
        per = {kind: statistics.median(values[1:]) for kind, values in kinds.items()}
        bare = _median(lambda: bare_lines(n, folder), args.repeat)
        every = _median(lambda: following(n, folder, None), args.repeat)
        plain = _median(lambda: following(n, folder, lambda sid: False), args.repeat)
    ms = 1000.0
    print(f"the runner's reporting, {n:,} plain steps, in process, medians of {args.repeat}")
    print(
        f"1. the whole stack: {whole * ms:.1f} ms (queued {per['queued'] * ms:.1f}, started "
        f"{per['started'] * ms:.1f}, finished {per['finished'] * ms:.1f}); baseline, {3 * n:,} bare "
        f"JSON lines written and flushed: {bare * ms:.1f} ms ({whole / bare:.2f}x)"
    )
    print(
        f"2. following plain steps for their progress: {plain * ms:.1f} ms as the runner asks, "
        f"{every * ms:.1f} ms following every step ({plain / every:.2f}x)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
