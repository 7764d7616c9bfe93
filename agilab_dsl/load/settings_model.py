"""The typed model of ``app_settings.toml``, read the way AGILAB reads it
(``agi_env/project/app_settings_schema.py`` and the code that consumes each key): what AGILAB coerces
is coerced here the same way (:mod:`.coercion`), what it refuses raises. The located warnings and
errors are worded in :mod:`.settings`. Frozen pydantic models, no I/O.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field
from pydantic.json_schema import SkipJsonSchema

from .coercion import as_str, int_flag, loose_bool, settings_version, verbose_level, worker_count
from .model import StrictNonNegativeInt, StrictPositiveInt


def _as_written(value: Any) -> Any:
    return value


def _lenient(documented: Any) -> Any:
    """Any value, kept as written; the JSON Schema shows ``documented``, the values AGILAB uses."""
    return Annotated[Any, BeforeValidator(_as_written, json_schema_input_type=documented)]


LenientStr = _lenient(str)
IntFlag = Annotated[bool, BeforeValidator(int_flag, json_schema_input_type=bool | int)]
LooseBool = Annotated[bool, BeforeValidator(lambda v: bool(loose_bool(v)), json_schema_input_type=bool)]
Verbose = Annotated[
    int, BeforeValidator(verbose_level, json_schema_input_type=Annotated[int, Field(ge=0, le=3)])
]
StrOrStringified = Annotated[str, BeforeValidator(as_str, json_schema_input_type=str)]
WorkerCount = Annotated[int, BeforeValidator(worker_count, json_schema_input_type=StrictNonNegativeInt)]


class ClusterSettings(BaseModel):
    """``[cluster]`` of app_settings.toml, with the values AGILAB reads (its coercions applied).

    Every key AGILAB reads at 37a3333c0 is a field; other keys are kept (AGILAB adds some over time)
    and ``check`` warns about them. Keys AGILAB reads leniently and its validator does not type
    (``user`` … ``workflow_session_policy``) are kept as written."""

    model_config = ConfigDict(frozen=True, extra="allow")

    pool: IntFlag = Field(False, description="process pool (mode bit 1); AGILAB reads int(value)")
    cython: IntFlag = Field(False, description="compiled workers (mode bit 2); AGILAB reads int(value)")
    rapids: IntFlag = Field(False, description="GPU (mode bit 8); AGILAB reads int(value)")
    cluster_enabled: LooseBool = Field(
        False, description="Dask cluster (mode bit 4); AGILAB also reads yes/no/on/off/1/0 strings"
    )
    verbose: Verbose = Field(0, description="diagnostics level 0-3 (AGILAB reads a bad value as 1)")
    scheduler: StrOrStringified = Field("", description="Dask scheduler address host:port")
    workers_data_path: StrOrStringified = Field("", description="the workers' data share")
    workers: dict[str, WorkerCount] = Field(default_factory=dict, description="host -> slot count")
    service_health: dict[str, Any] = Field(default_factory=dict)
    # read leniently by AGILAB (a bad value falls back to its default) and typed by no validator: kept as
    # written; the JSON Schema documents the values AGILAB uses
    user: LenientStr = Field(None, description="SSH user for the workers")
    auth_method: LenientStr = Field(None, description='"ssh_key", else a password login')
    ssh_key_path: LenientStr = Field(None, description="SSH key for the workers")
    pool_executor: _lenient(Literal["auto", "process", "thread"]) = Field(
        None, description="the pool's executor (AGILAB reads any other value as auto)"
    )
    pool_max_workers: _lenient(StrictPositiveInt) = Field(
        None, description="the pool's workers (AGILAB ignores a value that is not a positive int)"
    )
    pool_item_timeout: _lenient(Annotated[float, Field(gt=0)]) = Field(
        None, description="seconds per pool item (AGILAB ignores a value that is not a positive number)"
    )
    workflow_id: LenientStr = Field(None, description="the workflow part of the data path")
    workflow_session: LenientStr = Field(None, description="the session part of the data path")
    workflow_session_policy: _lenient(Literal["new", "last", "select"]) = Field(
        None, description="which session a run uses (AGILAB reads any other value as new)"
    )

    @property
    def mode(self) -> int:
        """``pool + 2*cython + 4*cluster_enabled + 8*rapids`` (DESIGN §1.3)."""
        return int(self.pool) + 2 * int(self.cython) + 4 * int(self.cluster_enabled) + 8 * int(self.rapids)


CLUSTER_KEYS = tuple(ClusterSettings.model_fields)


class SettingsMeta(BaseModel):
    """``[__meta__]`` of app_settings.toml: ``schema = "agilab.app_settings.v1"``, ``version = 1``."""

    model_config = ConfigDict(frozen=True, extra="allow")

    schema_: Any = Field(None, alias="schema", description='"agilab.app_settings.v1" (not checked by AGILAB)')
    version: Annotated[Any, BeforeValidator(settings_version, json_schema_input_type=Literal[1])] = None


class PagesSettings(BaseModel):
    """``[pages]``: the analysis pages AGILAB shows; any other key is a page's own table."""

    model_config = ConfigDict(frozen=True, extra="allow")

    default_view: str | None = Field(None, description="the page module shown first")
    view_module: list[str] | None = Field(None, description="the page modules to show, in order")


class AppSettings(BaseModel):
    """``app_settings.toml``: ``[args]``, ``[cluster]``, ``[pages]``, ``[app_surface]`` and any other
    table, kept as written (``[cluster]`` as AGILAB reads it)."""

    model_config = ConfigDict(frozen=True, extra="allow")

    meta: SettingsMeta | SkipJsonSchema[None] = Field(None, alias="__meta__")
    args: dict[str, Any] = Field(default_factory=dict)
    cluster: ClusterSettings = Field(default_factory=ClusterSettings)
    pages: PagesSettings | SkipJsonSchema[None] = None
    app_surface: dict[str, Any] | SkipJsonSchema[None] = Field(
        None, description="the app's own page: entrypoint or url, title, backends.<name>"
    )

    def as_dict(self) -> dict[str, Any]:
        """The snapshot as plain data (what a step sees as ``settings``): the keys as written, the
        ones AGILAB coerces coerced; a key the file does not write is absent (TOML has no null)."""
        return self.model_dump(by_alias=True, exclude_none=True)

    def lookup(self, dotted: tuple[str | int, ...]) -> Any:
        """The value at a key path, or raise KeyError."""
        value: Any = self.as_dict()
        for part in dotted:
            value = value[part]
        return value
