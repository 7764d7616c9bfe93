"""What a step sees of AGILAB beyond its own code: AGILAB's environment variables, the ``df`` it is
handed and saves (planned in :mod:`agilab_dsl.plan.dataframe`), and ``from agilab.tracking import
tracker``.

This module adds them to a step's request; the step side is in ``step_support/``, beside it, and
imports only the standard library, since a worker under a foreign interpreter (an AGILAB runtime)
loads it by its path: ``_agilab_run_step.py`` (``df`` in and out, what the tracker logged) and
``agilab/tracking.py`` (the tracker a step gets where AGILAB is not installed).

Environment, as AGILAB's runner sets it for a stage (``pipeline_run_controls.py``):
``AGILAB_PIPELINE_RUN_ID`` (here: this run's id), ``AGILAB_PIPELINE_STAGE_INDEX`` (1-based: AGILAB
writes ``str(idx + 1)``), ``AGILAB_PIPELINE_PROFILE`` (``--profile``, else the lab's saved one,
else ``balanced``) and ``MLFLOW_TRACKING_URI`` when it is set here.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from ..load.records import FrozenRecord
from ..plan.dataframe import FramePaths, frame_links, frame_paths
from ..plan.resolve import ResolvedStep
from ..plan.spec import LabSpec

TYPE_CHECKING = False  # typing is not imported at run time: ~2 ms of every run's start-up
if TYPE_CHECKING:  # pragma: no cover
    from typing import Any

SUPPORT_DIR = str(Path(__file__).resolve().with_name("step_support"))


class AgilabOptions(FrozenRecord):
    """What the command line says of them: ``--dataframe``, ``--export-dir`` (absolute, or
    relative to the lab's folder) and ``--profile``."""

    _fields = ("dataframe", "export_dir", "profile")

    def __init__(
        self, dataframe: str | None = None, export_dir: str | None = None, profile: str | None = None
    ) -> None:
        self.dataframe = dataframe
        self.export_dir = export_dir
        self.profile = profile


class StepContext(FrozenRecord):
    """What every step of a run is told: the frames of the df steps and the pipeline profile."""

    _fields = ("frames", "profile")

    def __init__(self, frames: Mapping[str, FramePaths] | None = None, profile: str = "balanced") -> None:
        self.frames: Mapping[str, FramePaths] = {} if frames is None else frames
        self.profile = profile

    def frame_output(self, step_id: str) -> str | None:
        frame = self.frames.get(step_id)
        return frame.output if frame is not None else None

    def required_outputs(self, step: ResolvedStep) -> list[str]:
        """The outputs a step must write: not df's frame (saved only when df is a non-empty
        DataFrame), not those inferred from its code (on a branch that may not be taken)."""
        frame = self.frame_output(step.id)
        return [p for p in step.outputs if p != frame and p not in step.inferred]


def step_context(lab: LabSpec, lab_dir: Path, options: AgilabOptions) -> StepContext:
    frames = frame_paths(frame_links(lab.stages), str(lab_dir), options.dataframe, options.export_dir)
    return StepContext(frames, options.profile or lab.profile)


def with_frame(step: ResolvedStep, frame: FramePaths | None) -> ResolvedStep:
    """The step with its frame's input and ``lab_out.csv`` among its inputs and outputs (so that
    staleness, the graph's files and the history see them)."""
    if frame is None:
        return step
    inputs = list(step.inputs)
    if frame.input is not None and frame.input not in inputs:
        inputs.append(frame.input)
    outputs = list(step.outputs)
    if frame.output not in outputs:
        outputs.append(frame.output)
    return step.replace(inputs=inputs, outputs=outputs)


def agilab_environ(run_id: str, stage_index: int, profile: str, environ: Mapping[str, str]) -> dict[str, str]:
    """AGILAB's per-stage environment variables (``stage_index``: 0-based position)."""
    env = {
        "AGILAB_PIPELINE_RUN_ID": run_id,
        "AGILAB_PIPELINE_STAGE_INDEX": str(stage_index + 1),
        "AGILAB_PIPELINE_PROFILE": profile,
    }
    uri = environ.get("MLFLOW_TRACKING_URI")
    if uri:
        env["MLFLOW_TRACKING_URI"] = uri
    return env


def step_extras(step: ResolvedStep, run_id: str, lab_dir: Path, context: StepContext) -> dict[str, Any]:
    """The request keys a step's worker reads for AGILAB's environment, tracker and ``df``."""
    extras: dict[str, Any] = {
        "environ": agilab_environ(run_id, step.placed.index, context.profile, os.environ),
        "support": SUPPORT_DIR,
    }
    frame = context.frames.get(step.id)
    if frame is not None:
        extras["frame"] = {
            "reads": frame.reads,
            "input": os.path.join(lab_dir, frame.input) if frame.input else None,
            "output": os.path.join(lab_dir, frame.output),
            "source": frame.source,
        }
    return extras
