"""Partition planning of a parallel contract (DESIGN §1.2), reproducing AGILAB's preview numbers.

* ``requested = cores if workers == "auto" else workers``
* no input → 1 worker, 1 partition
* unsplittable input (or a strategy other than ``file-chunks`` / ``row-chunks``):
  partitions = item count, effective workers = ``min(requested, item count)``
* splittable: effective workers = requested;
  partitions = ``max(files, target_partitions, requested * min_partitions_per_worker)``

"Items" are input files, except for ``parameter-items``, where they are the grid's points.
A file is splittable by ``file-chunks`` when it is line-oriented text (not compressed or columnar),
and by ``row-chunks`` when it is a CSV/TSV or Parquet table.
"""

from __future__ import annotations

import csv
import glob
import itertools
import json
import os
import tomllib
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..load.model import SPLITTABLE_STRATEGIES, ParallelContract
from .cores import available_cores

_NOT_LINE_TEXT = {
    ".parquet",
    ".arrow",
    ".feather",
    ".gz",
    ".bz2",
    ".xz",
    ".zst",
    ".zip",
    ".7z",
    ".npy",
    ".npz",
    ".pkl",
    ".h5",
    ".hdf5",
}
_TABLES = {".csv", ".tsv", ".parquet"}


@dataclass(frozen=True)
class PartitionPlan:
    input_files: int
    available_cores: int
    requested_workers: int
    effective_workers: int
    planned_partitions: int
    splittable: bool
    strategy: str
    files: tuple[str, ...] = ()
    grid_points: int | None = None

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["files"] = list(self.files)
        return out


def is_splittable(strategy: str, files: Sequence[str]) -> bool:
    if strategy not in SPLITTABLE_STRATEGIES or not files:
        return False
    suffixes = [Path(f).suffix.lower() for f in files]
    if strategy == "file-chunks":
        return all(s not in _NOT_LINE_TEXT for s in suffixes)
    return all(s in _TABLES for s in suffixes)


def plan_partitions(
    contract: ParallelContract, files: Sequence[str], cores: int, grid_points: int | None = None
) -> PartitionPlan:
    """The plan for ``files`` (already resolved) on ``cores`` cores."""
    requested = cores if contract.workers == "auto" else int(contract.workers)
    requested = max(1, requested)
    items = (
        grid_points
        if contract.partition_strategy == "parameter-items" and grid_points is not None
        else len(files)
    )
    splittable = is_splittable(contract.partition_strategy, files)
    if items == 0:
        workers, partitions = 1, 1
    elif not splittable:
        workers, partitions = min(requested, items), items
    else:
        workers = requested
        partitions = max(
            len(files), contract.target_partitions, requested * contract.min_partitions_per_worker
        )
    return PartitionPlan(
        input_files=len(files),
        available_cores=cores,
        requested_workers=requested,
        effective_workers=workers,
        planned_partitions=partitions,
        splittable=splittable,
        strategy=contract.partition_strategy,
        files=tuple(files),
        grid_points=grid_points,
    )


def resolve_inputs(contract: ParallelContract, base_dir: Path) -> list[str]:
    """The contract's input glob, relative to the contract's folder; files only, sorted."""
    pattern = contract.input if os.path.isabs(contract.input) else str(base_dir / contract.input)
    found = sorted(p for p in glob.glob(pattern, recursive=True) if os.path.isfile(p))
    return [os.path.relpath(p, base_dir) if not os.path.isabs(contract.input) else p for p in found]


class GridError(ValueError):
    """A parameter grid that cannot be read or has the wrong shape; the message names the file."""


def load_grid(path: Path) -> list[dict[str, Any]]:
    """The points of a parameter grid.

    TOML: a table of axes (arrays; their product is taken) and scalars (held fixed), or
    ``[[points]]``. JSON: a list of objects, or an object of axes. CSV: one point per row."""
    suffix = path.suffix.lower()
    try:
        if suffix == ".csv":
            with path.open(newline="", encoding="utf-8") as fh:
                return [dict(row) for row in csv.DictReader(fh)]
        if suffix == ".json":
            data = json.loads(path.read_text(encoding="utf-8"))
        else:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError, csv.Error) as exc:
        reason = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)
        raise GridError(f"parameter grid {path} cannot be read: {reason}") from None
    if isinstance(data, dict) and isinstance(data.get("points"), list):
        data = data["points"]
    if isinstance(data, list):
        if not all(isinstance(p, dict) for p in data):
            raise GridError(f"parameter grid {path}: a grid given as a list must hold tables (one per point)")
        return [dict(p) for p in data]
    if not isinstance(data, dict):
        raise GridError(f"parameter grid {path}: a grid is a table of axes or a list of points")
    axes = {k: v for k, v in data.items() if isinstance(v, list)}
    fixed = {k: v for k, v in data.items() if not isinstance(v, list)}
    names = list(axes)
    return [
        fixed | dict(zip(names, combo, strict=True)) for combo in itertools.product(*(axes[n] for n in names))
    ]


def plan_contract(contract: ParallelContract, contract_path: Path, cores: int | None = None) -> PartitionPlan:
    """Resolve the inputs of a contract beside its file and plan them."""
    base = contract_path.parent
    files = resolve_inputs(contract, base)
    points = None
    if contract.partition_strategy == "parameter-items" and files:
        points = sum(len(load_grid(base / f)) for f in files)
    return plan_partitions(contract, files, cores or available_cores(), points)
