"""What a one-change run of W1 cannot avoid on this machine, timed in process (goal 2's context).

    PYTHON bench/_w1floor.py LAB_DIR [--repeat K]      (prints one JSON object)

Run by bench/w1.py in a W1 lab whose steps have all run, under the interpreter it benchmarks.
Times, each the median of K (after one untimed pass, so the files are in the page cache, as they
are for the timed runs):

- ``gather``: the gather step's own work, as its snippet in bench/_w1lab.py does it: open and read
  each of the N outputs (any runner running that step pays it; doit's gather does the same);
- ``stat``: one ``os.stat`` of each of the 2N files the lab reads and writes, in one thread: how a
  one-shot runner (make, doit, DVC, ours) learns what changed since its last run;
- ``start``: ``python -c pass`` under this interpreter, as a subprocess.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

from _labload import median_time


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("lab_dir")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    os.chdir(args.lab_dir)
    outputs = sorted(os.path.join("out", name) for name in os.listdir("out"))
    files = sorted(os.path.join("in", name) for name in os.listdir("in")) + outputs

    def gather() -> int:
        total = 0
        for path in outputs:
            with open(path, "rb") as fh:
                total += len(fh.read())
        return total

    def stat() -> None:
        for path in files:
            os.stat(path)

    def start() -> None:
        subprocess.run([sys.executable, "-c", "pass"], check=True)

    print(
        json.dumps(
            {
                "n": len(outputs),
                "gather": median_time(gather, args.repeat),
                "stat": median_time(stat, args.repeat),
                "start": median_time(start, args.repeat),
            }
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
