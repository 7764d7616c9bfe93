"""Start-up cost of `agilab-run`, as a ratio to a bare `python -c pass` run in this same script.

    python bench/startup.py [--runs N] [--wheel | --python PATH] [FILE]

Prints the median wall time of each command and its ratio to the baseline, the baseline being the
same interpreter that runs `agilab-run`. By default that is this checkout as it is installed here
(editable: bytecode of the checkout). ``--wheel`` measures the checkout's wheel installed into a
private venv the way pip installs it (bytecode compiled at install; bench/_install.py, shared with
bench/w1.py); ``--python PATH`` an interpreter where agilab-dsl is already installed.

Goals: issue 2, `agilab-run check` on a corpus file ≤ 4x a bare interpreter start; issue 18 (goal 4),
`agilab-run status` and `check` ≤ 2.5x from an installed wheel.
Bytecode caching is enabled for the children (as in a normal install), and each command runs once
untimed first so that the timed runs measure start-up, not compilation (and so that `check` finds
its result cache warm, and `status` its judgment cache, as when a pre-commit hook, CI or an editor
asks again about unchanged files; the `--no-cache` row is the cold figure). `status` runs on a copy of
FILE's lab (by default examples/telemetry, copied whole) in a temporary folder, since it keeps its
judgment in ``.agilab/`` beside the lab.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

import _install  # noqa: E402

ROOT = BENCH.parent
DEFAULT_FILE = (
    ROOT.parent
    / "shared"
    / "corpus"
    / "agilab"
    / ("src__agilab__apps__builtin__tescia_diagnostic_project__lab_stages@37a3333c0.toml")
)
FALLBACK_FILE = ROOT / "examples" / "telemetry" / "lab_stages.toml"
STATUS_LAB = ROOT / "examples" / "telemetry"


def timed(cmd: list[str], runs: int, env: dict[str, str]) -> tuple[float, float]:
    warm = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, check=False)
    if warm.returncode != 0:  # a timing of a refusal would mean nothing
        raise SystemExit(
            f"{' '.join(cmd)} exited {warm.returncode}:\n{warm.stderr.decode(errors='replace')[-2000:]}"
        )
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, check=False)
        samples.append(time.perf_counter() - start)
    return statistics.median(samples), min(samples)


def status_lab(file: Path | None, tmp: Path) -> Path:
    """A copy of the lab `status` is timed on: FILE alone, or the whole example folder."""
    if file is not None:
        target = tmp / file.name
        shutil.copyfile(file, target)
        return target
    shutil.copytree(STATUS_LAB, tmp / STATUS_LAB.name)
    return tmp / STATUS_LAB.name / "lab_stages.toml"


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("file", nargs="?", type=Path)
    parser.add_argument("--runs", type=int, default=21)
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--wheel", action="store_true", help="the checkout's wheel in a private venv")
    where.add_argument("--python", help="an interpreter (or venv) where agilab-dsl is installed")
    args = parser.parse_args()
    if args.file is not None and not args.file.is_file():
        parser.error(f"{args.file}: no such file")
    target = args.file or (DEFAULT_FILE if DEFAULT_FILE.is_file() else FALLBACK_FILE)
    if args.wheel or args.python:
        install = _install.resolve(args.python)
    else:
        install = _install.existing_install(sys.executable)
    tool, env = list(install.tool), install.env()

    with tempfile.TemporaryDirectory(prefix="agilab-startup-") as tmp:
        lab = status_lab(args.file, Path(tmp))
        baseline, base_min = timed([install.python, "-c", "pass"], args.runs, env)
        rows = [("python -c pass (baseline)", baseline, base_min)]
        for label, cmd in (
            ("agilab-run --help", [*tool, "--help"]),
            (f"agilab-run check {target.name[-48:]}", [*tool, "check", str(target)]),
            (
                "  same, --no-cache (cold: pydantic and the models are loaded)",
                [*tool, "check", "--no-cache", str(target)],
            ),
            (f"agilab-run status {lab.parent.name}/{lab.name}", [*tool, "status", str(lab)]),
            ("agilab-run schema lab-steps", [*tool, "schema", "lab-steps"]),
        ):
            med, low = timed(cmd, args.runs, env)
            rows.append((label, med, low))
    print(f"agilab-run from {install.origin}")
    print(f"start-up, median of {args.runs} runs (min in brackets), ratio to the baseline in this run")
    for label, med, low in rows:
        print(f"  {label:<64} {med * 1000:7.1f} ms  ({low * 1000:6.1f})  {med / baseline:5.2f}x")
    ratio = {
        label.split()[1] if label.startswith("agilab-run") else label: med / baseline
        for label, med, _ in rows
    }
    check, status, cold = ratio["check"], ratio["status"], rows[3][1] / baseline
    print(
        f"check {check:.2f}x with the result cache (issue 2's goal ≤ 4x: {'met' if check <= 4 else 'NOT met'});"
        f" {cold:.2f}x without it (importing pydantic alone exceeds the budget)"
    )
    wheel = (
        "from an installed wheel" if args.wheel or args.python else "NOT from a wheel (--wheel measures that)"
    )
    for name, value in (("status", status), ("check", check)):
        print(f"issue 18 goal 4, {name} ≤ 2.5x {wheel}: {value:.2f}x: {'met' if value <= 2.5 else 'NOT met'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
