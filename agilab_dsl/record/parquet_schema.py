"""The columns of a history Parquet file (one row per step of a run), their schema version, and
pyarrow imported without pandas (:func:`import_pyarrow`)."""

from __future__ import annotations

import sys

TYPE_CHECKING = False  # typing is not imported at run time: ~2 ms of every run's start-up
if TYPE_CHECKING:  # pragma: no cover
    from typing import Any


SCHEMA_VERSION = 2  # 2 adds the tracked_* columns and stage_index, description, question, model, engine, runtime (version 1 files read as before)


_HIDING = [False]  # whether this process hides pandas from pyarrow (:func:`hide_pandas`)


def hide_pandas() -> None:
    """Have :func:`import_pyarrow` hide pandas in this process: one that is this tool's alone (the
    detached history writer, ``agilab-run history``), where no step's code runs that could import
    pandas at that moment or hand pyarrow a DataFrame. A watch run serving stages in process, and
    the live page beside it, do not hide it."""
    _HIDING[0] = True


def import_pyarrow() -> Any:
    """``pyarrow`` (and ``pyarrow.parquet``), imported without pandas where :func:`hide_pandas` said.

    pyarrow looks for pandas when ``pyarrow.parquet`` is imported and when it first converts Python
    values, and pandas' import takes ~0.3-0.4 s: more than the rest of ``agilab-run history``, and
    most of the detached history writer's work after a small run. The history neither gives pandas
    objects to pyarrow nor asks for them, so pandas is hidden while pyarrow looks, once: its probes
    then answer "not a DataFrame". A later call that needs pandas (``to_pandas``, ``from_pandas``)
    still imports it, pyarrow trying again for those. A process that has imported pyarrow or pandas
    already is left as it is."""
    if _HIDING[0] and "pyarrow" not in sys.modules and "pandas" not in sys.modules:
        sys.meta_path.insert(0, _HidePandas)
        try:
            import pyarrow as pa
            import pyarrow.parquet  # imported while pandas is hidden

            pa.array([0])  # pyarrow's first look for pandas, if its imports did not look
        finally:
            sys.meta_path.remove(_HidePandas)
    import pyarrow

    return pyarrow


class _HidePandas:
    """A finder that says pandas is not there (``sys.modules["pandas"] = None`` would not do:
    pyarrow's Cython import takes the None for the module)."""

    @staticmethod
    def find_spec(name: str, path: Any = None, target: Any = None) -> None:
        if name == "pandas" or name.startswith("pandas."):
            raise ModuleNotFoundError(f"No module named {name!r} (hidden while pyarrow loads)", name=name)


def schema() -> Any:
    pa = import_pyarrow()

    def ts() -> Any:
        return pa.timestamp("ms", tz="UTC")

    return pa.schema(
        [
            ("run_id", pa.string()),
            ("run_started", ts()),
            ("run_ended", ts()),
            ("run_status", pa.string()),
            ("lab", pa.string()),
            ("lab_hash", pa.string()),
            ("app", pa.string()),
            ("git_commit", pa.string()),
            ("git_dirty", pa.bool_()),
            ("step_id", pa.string()),
            ("status", pa.string()),
            ("reasons", pa.list_(pa.string())),
            ("fingerprint", pa.string()),
            ("code", pa.string()),
            ("backend", pa.string()),
            ("workers", pa.int32()),
            ("partitions", pa.int32()),
            ("partition_seconds_min", pa.float64()),
            ("partition_seconds_median", pa.float64()),
            ("partition_seconds_max", pa.float64()),
            ("output_bytes", pa.int64()),
            ("duration", pa.float64()),
            ("attempts", pa.int32()),
            ("params", pa.string()),  # JSON: values of any type
            ("settings", pa.string()),  # JSON
            ("metrics", pa.map_(pa.string(), pa.float64())),
            ("inputs", pa.list_(pa.struct([("path", pa.string()), ("hash", pa.string())]))),
            (
                "outputs",
                pa.list_(pa.struct([("path", pa.string()), ("hash", pa.string()), ("size", pa.int64())])),
            ),
            ("error", pa.string()),
            ("ran_in", pa.string()),
            (
                "tracked_metrics",
                pa.list_(pa.struct([("key", pa.string()), ("value", pa.float64()), ("step", pa.int64())])),
            ),
            ("tracked_params", pa.map_(pa.string(), pa.string())),
            ("tracked_tags", pa.map_(pa.string(), pa.string())),
            ("tracked_artifacts", pa.list_(pa.string())),
            ("stage_index", pa.int32()),
            ("description", pa.string()),
            ("question", pa.string()),
            ("model", pa.string()),
            ("engine", pa.string()),
            ("runtime", pa.string()),
        ],
        metadata={"agilab.history.schema": str(SCHEMA_VERSION)},
    )
