"""Listing a long experiment history, against reading the whole history folder, in this one script.

    python bench/history.py [--runs N] [--steps S] [--repeat R]

N (5,000) runs of S (5) steps are recorded through the recorder's own API into a fresh lab folder,
then, medians of R (5):
  agilab-run history --last 20    the whole command, a fresh process (Python and pyarrow imports included)
  listing(last=20) in process     the library call alone
  full scan                       pyarrow.dataset over the folder, to_table() — what a reader without
                                  the newest-first file order would do — in process
Goal (issue 5): the command lists in well under a second.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))


def record_runs(lab_dir: Path, runs: int, steps: int) -> float:
    from agilab_dsl.record import history
    from agilab_dsl.record.rows import RunRecord, StepRow

    start = time.perf_counter()
    t0 = time.time() - runs * 60
    for n in range(runs):
        began = t0 + n * 60
        rows = [
            StepRow(
                f"step{k}",
                "ran",
                ["input data/a.csv changed"],
                fingerprint=f"{n:08x}{k:04x}",
                duration=0.5 + k,
                params={"lr": 0.1 * (n % 7), "depth": k},
                settings={"args.seed": n % 3},
                metrics={"score": (n % 100) / 100, "loss": 1 / (n + 1)},
                outputs=[{"path": f"out/{k}.csv", "hash": f"{n:016x}", "size": 100 + n}],
            )
            for k in range(steps)
        ]
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(began))
        run = RunRecord(
            f"{stamp}.000-{n:06x}",
            began,
            began + 3,
            "ok",
            str(lab_dir / "lab_steps.toml"),
            "0" * 64,
            "bench",
            None,
            None,
            rows,
        )
        history.record(lab_dir, run, background=False)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5000)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    import pyarrow.dataset as ds
    from parallel import median_time  # the same warm-then-median timing as the other benchmark

    from agilab_dsl.record.query import listing

    with tempfile.TemporaryDirectory(prefix="agilab-history-") as tmp:
        lab_dir = Path(tmp)
        lab = lab_dir / "lab_steps.toml"
        lab.write_text('[[bench]]\nid = "step0"\nC = "x = 1"\n', encoding="utf-8")
        took = record_runs(lab_dir, args.runs, args.steps)
        print(
            f"recorded {args.runs} runs × {args.steps} steps in {took:.1f} s ({took / args.runs * 1000:.1f} ms a run)"
        )
        command = [sys.executable, "-m", "agilab_dsl", "history", str(lab), "--last", "20"]
        out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
        assert len(out.splitlines()) == 22, out  # header, rule, 20 runs
        whole = median_time(lambda: subprocess.run(command, capture_output=True, check=True), args.repeat)
        python = median_time(lambda: subprocess.run([sys.executable, "-c", "pass"], check=True), args.repeat)
        inproc = median_time(lambda: listing(lab_dir, last=20), args.repeat)
        scan = median_time(
            lambda: ds.dataset(lab_dir / ".agilab" / "history", format="parquet").to_table(), args.repeat
        )
        print(
            f"  agilab-run history --last 20   {whole * 1000:7.1f} ms   (python -c pass: {python * 1000:.1f} ms; goal: well under 1 s)"
        )
        print(f"  listing(last=20) in process    {inproc * 1000:7.1f} ms")
        print(
            f"  full scan with pyarrow.dataset {scan * 1000:7.1f} ms   → listing is {scan / inproc:.0f}x faster"
        )


if __name__ == "__main__":
    main()
