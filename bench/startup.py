"""Start-up cost of `agilab-run`, as a ratio to a bare `python -c pass` run in this same script.

    python bench/startup.py [--runs N] [FILE]

Prints the median wall time of each command and its ratio to the baseline. Goal (issue 2):
`agilab-run check` on a corpus file at most 4x a bare interpreter start.
Bytecode caching is enabled for the children (as in a normal install), and each command runs once
untimed first so that the timed runs measure start-up, not compilation (and so that `check` finds
its result cache warm, as when a pre-commit hook or CI re-checks unchanged files; the `--no-cache`
row is the cold figure).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_FILE = (
    ROOT.parent
    / "shared"
    / "corpus"
    / "agilab"
    / ("src__agilab__apps__builtin__tescia_diagnostic_project__lab_stages@37a3333c0.toml")
)
FALLBACK_FILE = ROOT / "examples" / "telemetry" / "lab_stages.toml"


def timed(cmd: list[str], runs: int, env: dict[str, str]) -> tuple[float, float]:
    subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, check=False)
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, check=False)
        samples.append(time.perf_counter() - start)
    return statistics.median(samples), min(samples)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("file", nargs="?", type=Path)
    parser.add_argument("--runs", type=int, default=21)
    args = parser.parse_args()
    target = args.file or (DEFAULT_FILE if DEFAULT_FILE.is_file() else FALLBACK_FILE)
    exe = shutil.which("agilab-run", path=str(Path(sys.executable).parent))
    tool = [exe] if exe else [sys.executable, "-m", "agilab_dsl"]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}

    baseline, base_min = timed([sys.executable, "-c", "pass"], args.runs, env)
    rows = [("python -c pass (baseline)", baseline, base_min)]
    for label, cmd in (
        ("agilab-run --help", [*tool, "--help"]),
        (f"agilab-run check {target.name[-48:]}", [*tool, "check", str(target)]),
        (
            "  same, --no-cache (cold: pydantic and the models are loaded)",
            [*tool, "check", "--no-cache", str(target)],
        ),
        ("agilab-run schema lab-steps", [*tool, "schema", "lab-steps"]),
    ):
        med, low = timed(cmd, args.runs, env)
        rows.append((label, med, low))
    print(f"start-up, median of {args.runs} runs (min in brackets), ratio to the baseline in this run")
    for label, med, low in rows:
        print(f"  {label:<64} {med * 1000:7.1f} ms  ({low * 1000:6.1f})  {med / baseline:5.2f}x")
    check_ratio = rows[2][1] / baseline
    cold_ratio = rows[3][1] / baseline
    print(
        f"check ratio {check_ratio:.2f}x with the result cache (goal <= 4x): {'met' if check_ratio <= 4 else 'NOT met'};"
        f" {cold_ratio:.2f}x without it (importing pydantic alone exceeds the budget)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
