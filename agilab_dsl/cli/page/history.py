"""The live page's history panel, from the Parquet history through the record layer
(:mod:`agilab_dsl.record.query`): every run, oldest first, with each step's status, duration and
recorded metrics (for the plots), and two runs side by side. A run's file never changes once
written, so each is read once per server.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any


class History:
    """Reads the runs recorded beside a lab, keeping each read run by file name."""

    def __init__(self, lab_dir: Path) -> None:
        self.lab_dir = lab_dir
        self.lock = threading.Lock()
        self.read: dict[str, Any] = {}  # file name -> Run (None: damaged, skipped)

    def _runs(self) -> list[Any]:
        from ...record.query import DamagedRun, read_run, run_files

        runs = []
        with self.lock:
            for path in reversed(run_files(self.lab_dir)):  # oldest first
                if path.name not in self.read:
                    try:
                        self.read[path.name] = read_run(path)
                    except DamagedRun:
                        self.read[path.name] = None
                if self.read[path.name] is not None:
                    runs.append(self.read[path.name])
        return runs

    def series(self) -> dict[str, Any]:
        """``{runs: [{run_id, started, status, seconds, steps: {id: {status, duration, metrics}}}],
        steps: [ids], metrics: ["step.metric"]}``, oldest run first."""
        runs = self._runs()
        steps: dict[str, None] = {}
        metrics: dict[str, None] = {}
        out = []
        for run in runs:
            per_step = {}
            for s in run.steps:
                sid = s["step_id"]
                steps.setdefault(sid)
                values = {k: float(v) for k, v in (s.get("metrics") or {}).items() if v is not None}
                for name in values:
                    metrics.setdefault(f"{sid}.{name}")
                per_step[sid] = {
                    "status": s.get("status"),
                    "duration": s.get("duration"),
                    "backend": s.get("backend"),
                    "partitions": s.get("partitions"),
                    "metrics": values,
                }
            data = run.to_json()
            out.append(
                {
                    "run_id": run.run_id,
                    "started": data["started"],
                    "status": run.status,
                    "seconds": data["seconds"],
                    "steps": per_step,
                }
            )
        return {"runs": out, "steps": list(steps), "metrics": list(metrics)}

    def side_by_side(self, a: str, b: str) -> dict[str, Any] | str:
        """Two runs' steps in one table (status, duration, metrics of each) and what differs; a
        string (why) when a run id names no run or more than one."""
        from ...record.query import DamagedRun, UnknownRun, compare, read_run, resolve_run

        try:
            run_a, run_b = (read_run(resolve_run(self.lab_dir, ref)) for ref in (a, b))
        except (UnknownRun, DamagedRun) as exc:
            return str(exc)
        rows = []
        order = [s["step_id"] for s in run_a.steps]
        order += [s["step_id"] for s in run_b.steps if s["step_id"] not in order]
        diffs = {d["step_id"]: d for d in compare(run_a, run_b)}
        for sid in order:
            sa, sb = run_a.step(sid) or {}, run_b.step(sid) or {}
            rows.append(
                {
                    "step_id": sid,
                    "a": {k: sa.get(k) for k in ("status", "duration", "backend")}
                    | {"metrics": dict(sa.get("metrics") or {})},
                    "b": {k: sb.get(k) for k in ("status", "duration", "backend")}
                    | {"metrics": dict(sb.get("metrics") or {})},
                    "differences": {k: v for k, v in diffs.get(sid, {}).items() if k != "step_id"},
                }
            )
        return {"a": run_a.run_id, "b": run_b.run_id, "steps": rows}
