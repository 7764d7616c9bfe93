"""Export the experiment history to MLflow as AGILAB's own runs look (the optional ``[mlflow]`` extra),
so that AGILAB's UI finds them.

What AGILAB writes when it runs a lab (``pipeline_run_controls._mlflow_parent_payload`` and
``_mlflow_stage_payload``): in the active experiment — ``MLFLOW_EXPERIMENT_NAME``, else "Default" —
a parent run ``<app>:<lab folder>:pipeline`` (tags ``agilab.component = pipeline``,
``agilab.mlflow.evidence_schema = workflow.v2``, ``agilab.app``, ``agilab.lab`` = the lab folder's
name, ``agilab.stages_file``) and one nested run per stage, ``<app>:<lab folder>:stage_N`` with N
the stage's 1-based place in its module (tags ``agilab.component = pipeline-stage``,
``agilab.mlflow.evidence_schema = workflow.stage.v2``, ``agilab.stage_index``, ``agilab.engine``,
``agilab.runtime``; params ``description``, ``question``, ``model``, ``runtime``, ``engine`` — D, Q,
M, E and R, each at most 500 characters as AGILAB cuts them). The app is AGILAB's ``env.app``: the
``*_project`` folder the lab lies in, else the lab's module key.

Beyond that, each step's own params (a name AGILAB's five take is written ``param.<name>``), its
metrics (plus duration and, for parallel stages, partitions and output size), its log as
``stage_N/stdout.txt``, and tags ``agilab.step``, ``agilab.status``, ``agilab.fingerprint``,
``agilab.reasons``. Every exported run carries ``agilab.run_id``; a run already in the experiment is
skipped, so exporting twice adds nothing.
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
EXECUTED = ("ran", "failed")  # the steps that ran in a run (the others were fresh, skipped, …)
PARAM_LIMIT = 500  # AGILAB's truncate_mlflow_text for params
LOG_LIMIT = 1 << 20  # the last MiB of a step's log


class MlflowMissing(Exception):
    """MLflow is not installed."""


class MlflowUnusable(Exception):
    """The tracking URI names no store MLflow can use (an unknown scheme, a server that does not
    answer, a path that cannot be written); the message says which and MLflow's reason."""


@dataclass
class Exported:
    uri: str
    experiment: str
    added: int
    skipped: int


def default_uri(lab_dir: Path) -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or (lab_dir / "mlruns").resolve().as_uri()


def experiment_name() -> str:
    """The experiment AGILAB logs to: the active one, ``MLFLOW_EXPERIMENT_NAME`` or "Default"."""
    return os.environ.get("MLFLOW_EXPERIMENT_NAME") or "Default"


def agilab_app(run: Run) -> str:
    """AGILAB's ``env.app`` for a recorded run: the ``*_project`` folder holding its lab, nearest
    first; else the lab's module key (what the run recorded as its app)."""
    lab = Path(run.lab)
    return next((p.name for p in lab.parents if p.name.endswith("_project")), run.app)


def agilab_engine(engine: str | None, runtime: str | None) -> str:
    """The engine AGILAB runs a stage with (``_resolve_stage_engine_runtime``): R, else ``agi.run``
    with a runtime and ``runpy`` without; ``runpy`` with a runtime is upgraded to ``agi.run``."""
    chosen = engine or ("agi.run" if runtime else "runpy")
    return "agi.run" if runtime and chosen == "runpy" else chosen


def cut(value: Any, limit: int = PARAM_LIMIT) -> str:
    """AGILAB's ``truncate_mlflow_text``: a string of at most ``limit`` characters, ``…`` ending a cut one."""
    text = "" if value is None else str(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def export(runs: list[Run], uri: str, experiment: str | None = None) -> Exported:
    try:
        from mlflow.entities import Metric, Param
        from mlflow.tracking import MlflowClient
    except ImportError as exc:
        raise MlflowMissing(
            f"MLflow is not installed ({exc}); install it with `pip install 'agilab-dsl[mlflow]'`"
        ) from None
    from mlflow.exceptions import MlflowException

    if uri.startswith("file:") or "://" not in uri:
        # AGILAB keeps its runs in a file store; MLflow 3 wants that said out loud
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    # a tracking server that does not answer is said within seconds, not after minutes of retries
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
    try:
        return _export(runs, uri, experiment, Metric, Param, MlflowClient)
    except (MlflowException, OSError, ValueError) as exc:
        first = next((line.strip() for line in str(exc).splitlines() if line.strip()), type(exc).__name__)
        raise MlflowUnusable(f"cannot export to the MLflow tracking store {uri!r}: {first}") from None


def _export(
    runs: list[Run], uri: str, experiment: str | None, Metric: Any, Param: Any, MlflowClient: Any
) -> Exported:
    name = experiment or experiment_name()
    client = MlflowClient(tracking_uri=uri)
    found_experiment = client.get_experiment_by_name(name)
    experiment_id = found_experiment.experiment_id if found_experiment else client.create_experiment(name)
    added = skipped = 0
    for run in sorted(runs, key=lambda r: r.started):
        found = client.search_runs(
            [experiment_id], filter_string=f"tags.`agilab.run_id` = '{run.run_id}'", max_results=1
        )
        if found:
            skipped += 1
            continue
        lab_dir = Path(run.lab).parent
        app = agilab_app(run)
        prefix = f"{app}:{lab_dir.name}"
        common = {
            "agilab.app": app,
            "agilab.lab": lab_dir.name,
            "agilab.stages_file": run.lab,
            "agilab.tracking_uri": uri,
        }
        if run.git_commit:
            common["mlflow.source.git.commit"] = run.git_commit
        start = int(run.started * 1000)
        end = int(run.ended * 1000)
        places = [_place(step, n) for n, step in enumerate(run.steps, 1)]
        parent = client.create_run(
            experiment_id,
            start_time=start,
            run_name=f"{prefix}:pipeline",
            tags=common
            | {
                "agilab.component": "pipeline",
                "agilab.mlflow.evidence_schema": "workflow.v2",
                "agilab.run_id": run.run_id,
                "agilab.git_dirty": str(run.git_dirty),
            },
        )
        executed = sum(step["status"] in EXECUTED for step in run.steps)
        client.log_batch(
            parent.info.run_id,
            metrics=[
                Metric("executed_stages", float(executed), end, 0),
                Metric("skipped_stages", float(len(run.steps) - executed), end, 0),
            ],
            params=[
                Param("sequence", ",".join(str(n) for n in places)),
                Param("stage_count", str(len(run.steps))),
            ],
        )
        for step, place in zip(run.steps, places, strict=True):
            _export_step(client, experiment_id, run, step, place, prefix, common, parent.info.run_id)
        client.set_terminated(parent.info.run_id, STATUS.get(run.status, "KILLED"), end_time=end)
        added += 1
    return Exported(uri, name, added, skipped)


def _place(step: dict[str, Any], position: int) -> int:
    """The stage's 1-based place in its module (recorded since history schema 2), else its
    position in the run (a run recorded before)."""
    index = step.get("stage_index")
    return int(index) if isinstance(index, int) else position


def _export_step(
    client: Any,
    experiment_id: str,
    run: Run,
    step: dict[str, Any],
    place: int,
    prefix: str,
    common: dict[str, str],
    parent_id: str,
) -> None:
    from mlflow.entities import Metric, Param, RunTag

    start, end = int(run.started * 1000), int(run.ended * 1000)
    runtime = step.get("runtime") or ""
    engine = agilab_engine(step.get("engine"), runtime)
    child = client.create_run(
        experiment_id,
        start_time=start,
        run_name=f"{prefix}:stage_{place}",
        tags=common
        | {
            "mlflow.parentRunId": parent_id,
            "agilab.component": "pipeline-stage",
            "agilab.mlflow.evidence_schema": "workflow.stage.v2",
            "agilab.stage_index": str(place),
            "agilab.engine": engine,
            "agilab.runtime": runtime,
            "agilab.run_id": f"{run.run_id}/{step['step_id']}",
            "agilab.step": step["step_id"],
            "agilab.status": step["status"],
            "agilab.fingerprint": step.get("fingerprint") or "",
        },
    )
    shown = {
        "description": cut(step.get("description")),
        "question": cut(step.get("question")),
        "model": cut(step.get("model")),
        "runtime": cut(runtime),
        "engine": engine,
    }
    own = [(k if k not in shown else f"param.{k}", v) for k, v in _params(step.get("params"))]
    metrics = dict(step.get("metrics") or {})
    for name in ("duration", "partitions", "workers", "output_bytes", "partition_seconds_median"):
        if step.get(name) is not None:
            metrics[f"agilab.{name}"] = float(step[name])
    client.log_batch(
        child.info.run_id,
        metrics=[Metric(k, v, end, 0) for k, v in sorted(metrics.items())],
        params=[Param(k, v) for k, v in [*shown.items(), *own]],
        tags=[RunTag("agilab.reasons", "; ".join(step.get("reasons") or []))],
    )
    log = _log_text(Path(run.lab).parent / ".agilab" / "runs" / run.run_id / f"{step['step_id']}.log")
    if log is not None:
        client.log_text(child.info.run_id, log, f"stage_{place}/stdout.txt")
    client.set_terminated(child.info.run_id, STEP_STATUS.get(step["status"], "KILLED"), end_time=end)


def _log_text(path: Path) -> str | None:
    """A step's log (its last :data:`LOG_LIMIT` bytes), or None when it wrote none."""
    try:
        with path.open("rb") as fh:
            size = fh.seek(0, os.SEEK_END)
            fh.seek(max(0, size - LOG_LIMIT))
            return fh.read().decode("utf-8", "replace")
    except OSError:
        return None


def _params(params: Any) -> list[tuple[str, str]]:
    """MLflow params are strings of at most 6,000 characters."""
    if not isinstance(params, dict):
        return []
    out = []
    for key, value in sorted(params.items()):
        text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
        out.append((str(key), text[:6000]))
    return out
