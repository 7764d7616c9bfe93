"""Kill -9 (issue 8, item 2): SIGKILL the runner at random moments of real runs of the examples.

    python tests/fault/kill9.py [--kills 50] [--seed N] [--dask 0.25]

Each example is copied to a scratch folder and run once to completion: its outputs are the
reference and its duration bounds the moment of each kill. Then, until ``--kills`` kills have
landed in the middle of a run: pick an example; make steps stale, either by forgetting the state
("fresh": every step must run) or by editing one step's code (it and what follows must run); start
``agilab-run`` (a share of runs on ``--backend dask``, a LocalCluster) and SIGKILL the runner
process alone after a random delay, as ``kill -9 PID`` does. After each kill:

* every file under ``.agilab/`` that the runner writes must load: ``state.json``, every journal
  line but a torn last one, ``hashes.json``, each history Parquet file and pending record, and
  ``agilab-run history --json`` (corrupt files: goal 0);
* every process the runner had started must end by itself within 15 s (orphans: goal 0);
* the next run (no ``--force``) must re-run exactly the steps that the killed run needed and did not
  complete (steps re-run vs the minimum), and leave every output byte-identical to the reference
  (an output half-written by the killed run and taken as fresh would differ).

Prints those figures and where the kills landed (during a step, between steps, while writing the
state and history at the end); exits 1 if any check failed.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import psutil
import tomlkit

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ["plain_lab", "telemetry", "table", "sweep"]
LAB = "lab_stages.toml"


def agilab(lab: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "agilab_dsl", *args],
        cwd=lab.parent,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def judged(lab: Path) -> dict[str, str]:
    proc = agilab(lab, "status", str(lab), "--json")
    return {s["id"]: s["state"] for s in json.loads(proc.stdout)["steps"]}


def recorded(lab: Path) -> dict[str, str]:
    """step id -> the run that last recorded it (state.json and the journal, as the runner loads them)."""
    from agilab_dsl.plan.state import LabState

    return {sid: rec.run_id for sid, rec in LabState.load(lab).steps.items()}


def outputs(folder: Path) -> dict[str, str]:
    out = {}
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder)
        if path.is_file() and rel.parts[0] != ".agilab" and rel.name != LAB:
            out[str(rel)] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def corrupt_files(lab: Path) -> list[str]:
    """Files under .agilab/ that do not load (a torn last journal line is by design, not damage)."""
    import pyarrow.parquet as pq

    from agilab_dsl.plan.state import LabState

    state_dir = lab.parent / ".agilab"
    bad = []
    for name in ("state.json", "hashes.json"):
        path = state_dir / name
        if path.exists():
            try:
                json.loads(path.read_text(encoding="utf-8"))
            except ValueError as exc:
                bad.append(f"{path}: {exc}")
    journal = state_dir / "journal.jsonl"
    if journal.exists():
        lines = journal.read_text(encoding="utf-8").splitlines()
        for n, line in enumerate(lines[:-1], 1):
            try:
                json.loads(line)
            except ValueError:
                bad.append(f"{journal}:{n}: a torn line before the last")
    if (problem := LabState.load(lab).problem) is not None:
        bad.append(problem)
    for path in sorted((state_dir / "history-pending").glob("*.json")):
        try:
            json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            bad.append(f"{path}: {exc}")
    for path in sorted((state_dir / "history").glob("*.parquet")):
        try:
            pq.read_table(path)
        except Exception as exc:  # pyarrow raises its own kinds
            bad.append(f"{path}: {exc}")
    proc = agilab(lab, "history", str(lab), "--json")
    if proc.returncode != 0:
        bad.append(f"history --json: exit {proc.returncode}: {proc.stderr[-200:]}")
    else:
        try:
            json.loads(proc.stdout)
        except ValueError as exc:
            bad.append(f"history --json: {exc}")
    return bad


def forget_state(lab: Path) -> None:
    for name in ("state.json", "journal.jsonl", "hashes.json", "judgment.json"):
        (lab.parent / ".agilab" / name).unlink(missing_ok=True)


def edit_code(lab: Path, rng: random.Random, n: int) -> bool:
    """Append an assignment to one code stage (a change its fingerprint sees, its output does not)."""
    doc = tomlkit.parse(lab.read_text(encoding="utf-8"))
    places = [
        (key, i)
        for key, value in doc.items()
        if key != "__meta__" and isinstance(value, list)
        for i, stage in enumerate(value)
        if isinstance(stage, dict) and isinstance(stage.get("C"), str)
    ]
    if not places:
        return False
    key, i = rng.choice(places)
    doc[key][i]["C"] = str(doc[key][i]["C"]).rstrip("\n") + f"\n_kill_probe = {n}\n"
    lab.write_text(tomlkit.dumps(doc), encoding="utf-8")
    return True


def ended(err: str) -> int:
    """How many steps the report says have ended (✓ ran, ✗ failed)."""
    return sum(1 for line in err.splitlines() if line.startswith(("✓", "✗")))


def contract_steps(lab: Path) -> set[str]:
    """The ids of the lab's parallel stages (stages with a ``stage`` contract)."""
    import tomllib

    data = tomllib.loads(lab.read_text(encoding="utf-8"))
    return {
        str(stage.get("id"))
        for key, value in data.items()
        if key != "__meta__" and isinstance(value, list)
        for stage in value
        if isinstance(stage, dict) and "stage" in stage
    }


def where_killed(err: str, steps: int, parallel: set[str]) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    if not lines:
        return "while starting"
    if ended(err) >= steps:
        return "after the last step, while writing state and history"
    marks = [line for line in lines if line.startswith(("▶", "✓", "✗"))]
    if marks and marks[-1].startswith("▶"):  # (notes may follow a step's ▶ line)
        step = marks[-1].split()[1]
        return "during a parallel stage" if step in parallel else "during a snippet step"
    return "between steps, while recording one"


def wait_for_last_step(err_path: Path, runner: subprocess.Popen[bytes], steps: int) -> None:
    """Until the report shows every needed step ended, or the runner exits."""
    while runner.poll() is None and ended(err_path.read_text(encoding="utf-8", errors="replace")) < steps:
        time.sleep(0.002)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--kills", type=int, default=50)
    ap.add_argument("--seed", type=int, default=20261122)
    ap.add_argument("--dask", type=float, default=0.25, help="share of runs with --backend dask")
    args = ap.parse_args()
    rng = random.Random(args.seed)
    work = Path(tempfile.mkdtemp(prefix="agilab-kill9-"))
    labs: dict[str, Path] = {}
    reference: dict[str, dict[str, str]] = {}
    duration: dict[str, float] = {}
    for name in EXAMPLES:
        shutil.copytree(
            ROOT / "examples" / name, work / name, ignore=shutil.ignore_patterns(".agilab", "artifacts")
        )
        lab = labs[name] = work / name / LAB
        started = time.perf_counter()
        proc = agilab(lab, str(lab))
        duration[name] = time.perf_counter() - started
        if proc.returncode != 0:
            print(f"{name}: the reference run failed:\n{proc.stderr}")
            return 1
        reference[name] = outputs(lab.parent)
    print("reference runs: " + ", ".join(f"{n} {d:.1f} s" for n, d in duration.items()))

    kills = attempts = finished_first = 0
    landed: Counter[str] = Counter()
    modes: Counter[str] = Counter()
    corrupt: list[str] = []
    orphans: list[str] = []
    rerun = minimum = 0
    extra: list[str] = []
    missing: list[str] = []
    mismatched: list[str] = []
    while kills < args.kills and attempts < args.kills * 4:
        attempts += 1
        name = rng.choice(EXAMPLES)
        lab = labs[name]
        mode = "fresh" if rng.random() < 0.5 or not edit_code(lab, rng, attempts) else "edit"
        if mode == "fresh":
            forget_state(lab)
        backend = ["--backend", "dask"] if rng.random() < args.dask else []
        needed = {sid for sid, state in judged(lab).items() if state != "fresh"}
        before = recorded(lab)
        err_path = work / f"{name}.err"
        with err_path.open("w") as err:
            runner = subprocess.Popen(
                [sys.executable, "-m", "agilab_dsl", str(lab), *backend],
                cwd=lab.parent,
                stdout=subprocess.DEVNULL,
                stderr=err,
                start_new_session=True,
            )
            if rng.random() < 0.25:  # aim at the end: the state's compaction and the history record
                wait_for_last_step(err_path, runner, len(needed))
                time.sleep(rng.uniform(0, 0.03))
            else:
                time.sleep(rng.uniform(0.05, duration[name] * (1.5 if backend else 1.0)))
            try:
                family = psutil.Process(runner.pid).children(recursive=True)
            except psutil.NoSuchProcess:
                family = []
            if runner.poll() is not None:
                finished_first += 1
                continue
            runner.send_signal(signal.SIGKILL)
            runner.wait()
        kills += 1
        modes[f"{mode}{' + dask' if backend else ''}"] += 1
        err_text = err_path.read_text(encoding="utf-8", errors="replace")
        landed[where_killed(err_text, len(needed), contract_steps(lab))] += 1
        label = f"kill {kills} ({name}, {mode}{', dask' if backend else ''})"
        _gone, alive = psutil.wait_procs(family, timeout=15)
        for proc in alive:
            command = " ".join(proc.cmdline()[:4]) if proc.is_running() else "?"
            orphans.append(f"{label}: pid {proc.pid} {command}")
            with contextlib.suppress(psutil.Error):
                proc.kill()
        corrupt += [f"{label}: {problem}" for problem in corrupt_files(lab)]
        after = recorded(lab)
        completed = {sid for sid in after if after[sid] != before.get(sid)}
        need = needed - completed
        proc = agilab(lab, str(lab), "--json", *backend)
        try:
            ran = {s["id"] for s in json.loads(proc.stdout)["steps"] if s["status"] == "ran"}
        except ValueError:
            ran = set()
            corrupt.append(f"{label}: the next run failed: {proc.stderr[-300:]}")
        rerun += len(ran)
        minimum += len(need)
        extra += [f"{label}: {sid} re-ran, though the killed run had completed it" for sid in ran - need]
        missing += [f"{label}: {sid} was taken as done, and had not completed" for sid in need - ran]
        now = outputs(lab.parent)
        mismatched += [
            f"{label}: {path} differs from the reference"
            for path in reference[name]
            if now.get(path) != reference[name][path]
        ]
    shutil.rmtree(work, ignore_errors=True)

    print(
        f"kill -9: {kills} kills landed mid-run ({finished_first} runs finished before their kill), seed {args.seed}"
    )
    print("  runs: " + ", ".join(f"{m} {n}" for m, n in sorted(modes.items())))
    print("  killed " + ", ".join(f"{w}: {n}" for w, n in landed.most_common()))
    print(f"  corrupt files found: {len(corrupt)}")
    print(f"  processes left running 15 s after the kill: {len(orphans)}")
    print(f"  steps re-run {rerun} vs minimum needed {minimum} ({len(extra)} extra, {len(missing)} missing)")
    print(f"  outputs differing from the reference after the next run: {len(mismatched)}")
    for problem in [*corrupt, *orphans, *missing, *extra, *mismatched][:20]:
        print("  ✗ " + problem)
    return 1 if corrupt or orphans or missing or extra or mismatched or kills < args.kills else 0


if __name__ == "__main__":
    raise SystemExit(main())
