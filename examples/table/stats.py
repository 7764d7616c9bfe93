"""The table example's partition function: a summary of one row chunk of the readings table."""

from __future__ import annotations

from typing import Any


def chunk_stats(part: Any) -> dict[str, Any]:
    """``part.read_table()`` is this chunk's rows as a pyarrow Table; the dict becomes one JSON element."""
    import pyarrow.compute as pc

    table = part.read_table()
    values = table.column("value")
    return {
        "chunk": part.index,
        "rows": table.num_rows,
        "first_row": part.start,
        "sensors": sorted(set(table.column("sensor").to_pylist())),
        "mean": round(pc.mean(values).as_py(), 6),
        "min": pc.min(values).as_py(),
        "max": pc.max(values).as_py(),
    }
