"""The columns of a history Parquet file (one row per step of a run), and their schema version."""

from __future__ import annotations

TYPE_CHECKING = False  # typing is not imported at run time: ~2 ms of every run's start-up
if TYPE_CHECKING:  # pragma: no cover
    from typing import Any


SCHEMA_VERSION = 2  # 2 adds the tracked_* columns and stage_index, description, question, model, engine, runtime (version 1 files read as before)


def schema() -> Any:
    import pyarrow as pa

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
