"""Export the experiment history to MLflow in AGILAB's layout (the optional ``[mlflow]`` extra).

One MLflow experiment per app; one parent run per pipeline run, one nested run per step (tag
``mlflow.parentRunId``), with the step's params, its metrics (plus duration and, for parallel
stages, partitions and output size) and tags ``agilab.app``, ``agilab.lab``, ``agilab.stages_file``.
Every exported run carries ``agilab.run_id``; a run already in the experiment is skipped, so
exporting twice adds nothing.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .query import Run

STATUS = {"ok": "FINISHED", "failed": "FAILED", "interrupted": "KILLED"}
STEP_STATUS = {"ran": "FINISHED", "fresh": "FINISHED", "failed": "FAILED"}


class MlflowMissing(Exception):
    """MLflow is not installed."""


@dataclass
class Exported:
    uri: str
    experiment: str
    added: int
    skipped: int


def default_uri(lab_dir: Path) -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or (lab_dir / "mlruns").resolve().as_uri()


def export(runs: list[Run], app: str, uri: str) -> Exported:
    try:
        from mlflow.entities import Metric, Param, RunTag
        from mlflow.tracking import MlflowClient
    except ImportError as exc:
        raise MlflowMissing(
            f"MLflow is not installed ({exc}); install it with `pip install 'agilab-dsl[mlflow]'`"
        ) from None
    if uri.startswith("file:") or "://" not in uri:
        # AGILAB keeps its runs in a file store; MLflow 3 wants that said out loud
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name(app)
    experiment_id = experiment.experiment_id if experiment else client.create_experiment(app)
    added = skipped = 0
    for run in sorted(runs, key=lambda r: r.started):
        found = client.search_runs(
            [experiment_id], filter_string=f"tags.`agilab.run_id` = '{run.run_id}'", max_results=1
        )
        if found:
            skipped += 1
            continue
        common = {
            "agilab.app": app,
            "agilab.lab": str(Path(run.lab).parent),
            "agilab.stages_file": run.lab,
        }
        if run.git_commit:
            common["mlflow.source.git.commit"] = run.git_commit
        start = int(run.started * 1000)
        end = int(run.ended * 1000)
        parent = client.create_run(
            experiment_id,
            start_time=start,
            run_name=run.run_id,
            tags=common | {"agilab.run_id": run.run_id, "agilab.git_dirty": str(run.git_dirty)},
        )
        for step in run.steps:
            child = client.create_run(
                experiment_id,
                start_time=start,
                run_name=step["step_id"],
                tags=common
                | {
                    "mlflow.parentRunId": parent.info.run_id,
                    "agilab.run_id": f"{run.run_id}/{step['step_id']}",
                    "agilab.step": step["step_id"],
                    "agilab.status": step["status"],
                    "agilab.fingerprint": step.get("fingerprint") or "",
                },
            )
            metrics = dict(step.get("metrics") or {})
            for name in ("duration", "partitions", "workers", "output_bytes", "partition_seconds_median"):
                if step.get(name) is not None:
                    metrics[f"agilab.{name}"] = float(step[name])
            client.log_batch(
                child.info.run_id,
                metrics=[Metric(k, v, end, 0) for k, v in sorted(metrics.items())],
                params=[Param(k, v) for k, v in _params(step.get("params"))],
                tags=[RunTag("agilab.reasons", "; ".join(step.get("reasons") or []))],
            )
            client.set_terminated(child.info.run_id, STEP_STATUS.get(step["status"], "KILLED"), end_time=end)
        client.set_terminated(parent.info.run_id, STATUS.get(run.status, "KILLED"), end_time=end)
        added += 1
    return Exported(uri, app, added, skipped)


def _params(params: Any) -> list[tuple[str, str]]:
    """MLflow params are strings of at most 6,000 characters."""
    if not isinstance(params, dict):
        return []
    out = []
    for key, value in sorted(params.items()):
        text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
        out.append((str(key), text[:6000]))
    return out
