"""The typed model of AGILAB's pipeline files: frozen pydantic models, no I/O.

``parse`` turns files into these; everything downstream (graph, staleness, runner) reads them.
Field aliases are the single source of truth for the keys AGILAB writes: ``D``/``description``,
``C``/``code``, ``depends_on``/``deps``/``dependencies``, and so on.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from types import MappingProxyType
from typing import Annotated, Any, Literal

from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    field_validator,
    model_validator,
)

from .source import SourceMap

LAB_SCHEMAS = ("agilab.lab_steps.v1", "agilab.lab_stages.v1")
PARALLEL_SCHEMA = "agilab.parallel_stage.v1"
KNOWN_ENGINES = ("", "runpy", "agi.run", "agi.install")
LEGACY_ARRAYS = ("steps", "stages")
META_KEY = "__meta__"

Backend = Literal["local", "pool", "dask", "gpu", "auto"]
ContractBackend = Literal["local", "pool", "dask", "gpu"]
Split = Literal["files", "data-partitions", "parameter-sweep"]
SPLIT_ALIASES = {"table": "data-partitions", "params": "parameter-sweep"}
Strategy = Literal["one-file-per-partition", "file-chunks", "row-chunks", "parameter-items"]
Reducer = Literal["collect-json", "concat-jsonl", "concat-csv", "custom"]
SPLITTABLE_STRATEGIES = ("file-chunks", "row-chunks")

StrictPositiveInt = Annotated[StrictInt, Field(ge=1)]
StrictNonNegativeInt = Annotated[StrictInt, Field(ge=0)]
Position = tuple[int, int]  # 1-based (line, column)


def _alias(*names: str) -> Any:
    return AliasChoices(*names)


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True, protected_namespaces=())


def truthy(value: Any) -> bool:
    """AGILAB's reading of an automation flag: booleans as they are, ``"1"``/``"true"``/``"yes"``/
    ``"y"``/``"on"`` (any case) true, other strings false, other values by ``bool``."""
    if isinstance(value, str):
        return value.strip().lower() in {"1", "true", "yes", "y", "on"}
    return bool(value)


def path_specs(value: Any) -> tuple[str, ...]:
    """The paths in an automation ``outputs``/``inputs`` value, as AGILAB lists them: a string, or
    lists, tables (by sorted key) and sets of them, flattened; blanks and booleans dropped."""
    if value is None or isinstance(value, bool):
        return ()
    if isinstance(value, str):
        return (value,) if value.strip() else ()
    if isinstance(value, Mapping):
        return tuple(p for k in sorted(value, key=str) for p in path_specs(value[k]))
    if isinstance(value, (list, tuple)):
        return tuple(p for item in value for p in path_specs(item))
    return (str(value),) if str(value).strip() else ()


# automation keys AGILAB also reads at a stage's top level (lifted when absent from automation)
LIFTED_AUTOMATION_KEYS = ("skip_if_outputs_exist", "skip_if_outputs_current", "parallel_safe")


class StageAutomation(_Frozen):
    """A stage's ``automation = {…}``, as AGILAB's runner reads it (``_stage_automation``).

    Flags are read as AGILAB reads them (:func:`truthy`); ``outputs``/``output_paths`` and
    ``inputs``/``input_paths`` are declared artifacts, joined to the stage's produces/consumes."""

    model_config = ConfigDict(frozen=True, extra="allow", populate_by_name=True)

    skip_if_outputs_exist: bool = False
    parallel_safe: bool = False
    enabled: bool | None = None
    skip: bool | None = None
    outputs: tuple[str, ...] = ()
    inputs: tuple[str, ...] = ()

    @model_validator(mode="before")
    @classmethod
    def _as_agilab_reads_it(cls, data: Any) -> Any:
        if not isinstance(data, Mapping):
            return data
        out = {k: v for k, v in data.items() if k not in AUTOMATION_KEYS}
        rule = data.get("skip_if_outputs_exist", data.get("skip_if_outputs_current"))
        out["skip_if_outputs_exist"] = truthy(rule)
        out["parallel_safe"] = truthy(data.get("parallel_safe"))
        if "enabled" in data:
            out["enabled"] = data["enabled"] is not False
        if "skip" in data:
            out["skip"] = data["skip"] is True
        out["outputs"] = path_specs(data.get("outputs")) + path_specs(data.get("output_paths"))
        out["inputs"] = path_specs(data.get("inputs")) + path_specs(data.get("input_paths"))
        return out


def _no_automation() -> StageAutomation:
    """The automation of a stage that writes none: one frozen instance for all of them (made for
    each, it was ~5% of loading a big lab)."""
    return _NO_AUTOMATION


AUTOMATION_KEYS = (
    "skip_if_outputs_exist",
    "skip_if_outputs_current",
    "parallel_safe",
    "enabled",
    "skip",
    "outputs",
    "output_paths",
    "inputs",
    "input_paths",
)


_NO_AUTOMATION = StageAutomation()


class Stage(_Frozen):
    """One stage of a lab: AGILAB's D/Q/M/C/E/R keys plus this tool's extensions."""

    # -- AGILAB's keys ----------------------------------------------------------------------
    description: str | None = Field(
        None,
        validation_alias=_alias("D", "description"),
        description="D: description (historically a dataframe path)",
    )
    question: str | None = Field(
        None, validation_alias=_alias("Q", "question"), description="Q: the prompt or question text"
    )
    model: str | None = Field(
        None, validation_alias=_alias("M", "model"), description="M: the model that generated the code"
    )
    code: str | None = Field(
        None, validation_alias=_alias("C", "code"), description="C: Python code of the stage"
    )
    env: str | None = Field(
        None, validation_alias=_alias("E", "env"), description="E: runtime, a venv or project path"
    )
    engine: str | None = Field(
        None, validation_alias=_alias("R", "engine"), description='R: "", "runpy", "agi.run" or "agi.install"'
    )
    id: str | None = Field(
        None,
        validation_alias=_alias("id", "stage_id"),
        min_length=1,
        description="stage id (default <module>_<NNN>)",
    )
    deps: tuple[str, ...] = Field(
        (),
        validation_alias=_alias("deps", "depends_on", "dependencies"),
        description="ids this stage depends on",
    )
    produces: tuple[str, ...] = Field(
        (),
        validation_alias=_alias("produces", "outputs", "output_paths"),
        description="artifact paths written (with automation.outputs)",
    )
    consumes: tuple[str, ...] = Field(
        (),
        validation_alias=_alias("consumes", "inputs", "input_paths", "uses"),
        description="artifact paths read (with automation.inputs)",
    )
    enabled: StrictBool = Field(True, description="false disables the stage")
    skip: StrictBool = Field(False, description="true disables the stage")
    automation: StageAutomation = Field(
        default_factory=_no_automation,
        description="AGILAB automation: skip rules, declared outputs/inputs, parallel_safe, enabled/skip",
    )
    profiles: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        validation_alias=_alias("profiles", "pipeline_profiles", "automation_profiles"),
        description="name -> overrides, deep-merged when the profile is selected",
    )
    template_id: str | None = None
    template_version: StrictInt | str | None = None
    label: str | None = None
    kind: str | None = None
    app: str | None = Field(None, validation_alias=_alias("app", "APP"), description="the AGILAB app it runs")
    runtime_role: str | None = Field(
        None,
        validation_alias=_alias("runtime_role", "role", "AGILAB_RUNTIME_ROLE"),
        description="manager or worker (notebook imports)",
    )
    # -- written by AGILAB's WORKFLOW editor and importers: kept, not interpreted -----------
    generation_mode: str | None = Field(None, description="safe_actions or python_snippet")
    action_contract: dict[str, Any] | None = Field(None, description="the safe actions C was generated from")
    action_contract_sha256: str | None = None
    dataframe_schema_sha256: str | None = None
    safe_action_pinned: StrictBool | None = None
    validation_status: Any = None
    orchestrate_locked_stage: Any = Field(None, validation_alias=_alias("_orchestrate_locked_stage"))
    orchestrate_snippet_source: Any = Field(None, validation_alias=_alias("_orchestrate_snippet_source"))
    # -- this tool's extensions ------------------------------------------------------------
    backend: Backend | None = Field(None, description="local, pool, dask, gpu or auto")
    mode: StrictInt | str | None = Field(
        None,
        description='AGILAB execution bitmask: an int or "dask | rapids | pool" (pool 1, cython 2, dask 4, rapids 8)',
    )
    function: str | None = Field(
        None,
        pattern=r"^[A-Za-z0-9_./:-]+:[A-Za-z_][A-Za-z0-9_]*$",
        description="module_or_path:function, run instead of C",
    )
    params: dict[str, Any] = Field(
        default_factory=dict, description="passed to the function, visible to the code"
    )
    stage: str | None = Field(None, min_length=1, description="path to a parallel_stage.toml this step runs")
    settings: tuple[str, ...] | Literal["*"] = Field(
        (), description='settings keys the step depends on, or "*"'
    )
    when: str | None = Field(None, description="condition; false skips the step")
    retries: StrictNonNegativeInt = Field(0, description="times a failed step is tried again")
    timeout: Annotated[float, Field(gt=0)] | None = Field(
        None, description="seconds before the step is stopped"
    )
    fallback: Literal["cpu"] | None = Field(
        None, description='"cpu": run on the CPU when the GPU backend is unavailable'
    )
    allow_outside: StrictBool = Field(
        False, description="true lets the stage write outputs outside the lab's folder (../, absolute paths)"
    )
    infer: StrictBool = Field(
        True,
        description="false: no input or output is inferred from its code or NB_ARTIFACT_REFERENCES",
    )
    # -- notebook provenance (NB_*), preserved as written ------------------------------------
    notebook: dict[str, Any] = Field(default_factory=dict, description="NB_* keys, preserved")

    @property
    def off(self) -> str | None:
        """Why the stage is disabled (``enabled = false`` / ``skip = true``, on the stage or in its
        ``automation``, as AGILAB's runner reads them), or None."""
        if not self.enabled:
            return "enabled = false"
        if self.automation.enabled is False:
            return "automation.enabled = false"
        if self.skip:
            return "skip = true"
        if self.automation.skip is True:
            return "automation.skip = true"
        return None

    @property
    def disabled(self) -> bool:
        return self.off is not None

    @property
    def skip_if_outputs_exist(self) -> bool:
        return self.automation.skip_if_outputs_exist

    @property
    def parallel_safe(self) -> bool:
        return self.automation.parallel_safe


class Automation(_Frozen):
    """``"<key>__automation" = { profile, max_workers }`` in ``[__meta__]``."""

    profile: str | None = None
    max_workers: StrictPositiveInt | Literal["auto"] | None = None


class LabMeta(_Frozen):
    schema_: Literal["agilab.lab_steps.v1", "agilab.lab_stages.v1"] | None = Field(None, alias="schema")
    version: Literal[1] | None = None
    sequences: dict[str, tuple[int, ...]] = Field(default_factory=dict)
    automation: dict[str, Automation] = Field(default_factory=dict)


class LabStage(_Frozen):
    """A stage placed in its lab: its module key, its index in that array, its resolved id."""

    module: str
    index: int  # 0-based position in the module's array, as written
    id: str
    stage: Stage
    selected: bool = True  # False: a saved __sequence exists and does not list this stage


class Lab(_Frozen):
    """A whole ``lab_steps.toml`` / ``lab_stages.toml``. ``source`` answers where each key sits."""

    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)

    path: str
    dialect: Literal["module-keys", "legacy-steps", "legacy-stages"]
    module_keys: tuple[str, ...]
    stages: tuple[LabStage, ...]  # in execution order: __sequence if saved, else file order
    meta: LabMeta
    source: SourceMap | None = Field(default=None, repr=False, exclude=True)

    def stage(self, stage_id: str) -> LabStage:
        for s in self.stages:
            if s.id == stage_id:
                return s
        raise KeyError(stage_id)

    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(s.id for s in self.stages)

    def position(self, *path: str | int) -> Position | None:
        """Line and column of a key as written, e.g. ``lab.position("flight", 0, "C")``."""
        return self.source.key_position(path) if self.source is not None else None


class ParallelContract(_Frozen):
    """``parallel_stage.toml``: function + split rule + reducer = a parallel stage."""

    schema_: Literal["agilab.parallel_stage.v1"] = Field(alias="schema")
    name: str = Field(min_length=1)
    function: str = Field(pattern=r"^[A-Za-z0-9_./:-]+:[A-Za-z_][A-Za-z0-9_]*$")
    split: Split
    input: str = Field(min_length=1, description="glob, table path or parameter-grid file")
    workers: StrictPositiveInt | Literal["auto"]
    partition_strategy: Strategy
    target_partitions: StrictNonNegativeInt = Field(description="0: the runner decides")
    min_partitions_per_worker: StrictPositiveInt
    reducer: Reducer
    backend: ContractBackend
    output: str = Field(min_length=1)
    notes: str | None = None
    next_steps: dict[str, Any] | None = None
    reducer_function: str | None = Field(None, pattern=r"^[A-Za-z0-9_./:-]+:[A-Za-z_][A-Za-z0-9_]*$")
    allow_outside: StrictBool = Field(
        False, description="true lets output lie outside the contract's folder (../, absolute paths)"
    )
    allow_empty: StrictBool = Field(
        False,
        description="true lets input match no file (the stage makes no partition and its reducer writes "
        "an empty output); otherwise a run whose input matches nothing fails, located at input",
    )

    @field_validator("split", mode="before")
    @classmethod
    def _split_alias(cls, value: Any) -> Any:
        return SPLIT_ALIASES.get(value, value) if isinstance(value, str) else value


@functools.cache
def stage_key_aliases() -> Mapping[str, str]:
    """Every key a stage may be written with -> the field it sets (read-only, computed once)."""
    out: dict[str, str] = {}
    for name, info in Stage.model_fields.items():
        if name == "notebook":
            continue
        alias = info.validation_alias
        if isinstance(alias, AliasChoices):
            for choice in alias.choices:
                out[str(choice)] = name
        else:
            out[name] = name
    return MappingProxyType(out)
