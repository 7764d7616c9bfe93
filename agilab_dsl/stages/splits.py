"""Real partitions of a parallel contract: what each call of its function receives.

* ``files`` / ``one-file-per-partition``: one partition per input file;
* ``files`` / ``file-chunks``: byte ranges aligned on line ends; a CSV/TSV header is carried to
  every chunk (``read_text()`` starts with it);
* ``data-partitions`` / ``row-chunks``: a CSV/TSV table in line-aligned byte ranges (whole rows, the
  header carried; no partition reads the whole file), a Parquet table by row groups (``start`` /
  ``stop`` are then row numbers);
* ``parameter-sweep`` / ``parameter-items``: one partition per point of the grid.

The planned partition count (:mod:`agilab_dsl.stages.partition`) is spread over the input files in
proportion to their sizes, at least one per file; a range that would be empty is dropped, so a tiny
file yields fewer chunks than planned. Partitions are small picklable values: a process or a Dask
worker reads its own range.
"""

from __future__ import annotations

import io
import itertools
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

_HEADED = (".csv", ".tsv")


@dataclass(frozen=True)
class Partition:
    """One call's share of the input. ``start``/``stop``: a byte range (``unit = "bytes"``) or a
    row range (``unit = "rows"``); both None when the partition is a whole file or a grid point."""

    index: int
    path: str | None = None
    start: int | None = None
    stop: int | None = None
    unit: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    header: bytes = b""  # the CSV header line carried to this chunk
    row_groups: tuple[int, ...] = ()  # Parquet row groups of a row-chunk

    def describe(self) -> str:
        """How a failure names this partition: file, range or params."""
        if self.path is None:
            return f"partition {self.index} (params {self.params})"
        where = f" {self.unit} {self.start}-{self.stop}" if self.start is not None else ""
        return f"partition {self.index} ({self.path}{where})"

    def read_bytes(self) -> bytes:
        if self.path is None:
            raise ValueError(f"{self.describe()} has no file")
        with open(self.path, "rb") as fh:
            if self.start is None or self.unit != "bytes":
                return fh.read()
            fh.seek(self.start)
            return self.header + fh.read(self.stop - self.start if self.stop is not None else -1)

    def read_text(self, encoding: str = "utf-8") -> str:
        """The partition's text; a CSV chunk starts with the file's header."""
        if self.unit == "rows" and self.path is not None and self.path.lower().endswith(".parquet"):
            raise ValueError(f"{self.describe()} is a Parquet table: use read_table()")
        return self.read_bytes().decode(encoding)

    def read_table(self) -> Any:
        """The partition as a pyarrow Table (CSV/TSV chunks are parsed with their header)."""
        if self.path is None:
            import pyarrow as pa

            return pa.Table.from_pylist([self.params])
        if self.path.lower().endswith(".parquet"):
            import pyarrow.parquet as pq

            parquet = pq.ParquetFile(self.path)
            if self.row_groups:
                return parquet.read_row_groups(list(self.row_groups))
            return parquet.read()
        import pyarrow.csv as pacsv

        options = pacsv.ParseOptions(delimiter="\t") if self.path.lower().endswith(".tsv") else None
        return pacsv.read_csv(io.BytesIO(self.read_bytes()), parse_options=options)


def _header(path: str) -> bytes:
    if not path.lower().endswith(_HEADED):
        return b""
    with open(path, "rb") as fh:
        return fh.readline()


def _line_ranges(path: str, chunks: int, header: bytes) -> list[tuple[int, int]]:
    """``chunks`` byte ranges of a file after its header, each ending just after a newline."""
    size = os.path.getsize(path)
    begin = len(header)
    if size <= begin:
        return []
    cuts = [begin]
    with open(path, "rb") as fh:
        for k in range(1, chunks):
            target = begin + (size - begin) * k // chunks
            if target <= cuts[-1]:
                continue
            fh.seek(target - 1)
            fh.readline()  # to just after the line that holds byte target-1
            cut = fh.tell()
            if cuts[-1] < cut < size:
                cuts.append(cut)
    cuts.append(size)
    return [(a, b) for a, b in itertools.pairwise(cuts) if b > a]


def _shares(sizes: Sequence[int], total: int) -> list[int]:
    """``total`` partitions spread over files in proportion to size, at least one each."""
    count = len(sizes)
    if count == 0:
        return []
    total = max(total, count)
    weight = sum(sizes) or count
    shares = [max(1, (s or 1) * total // weight) if sum(sizes) else 1 for s in sizes]
    # hand out what rounding left, largest files first
    for i in sorted(range(count), key=lambda i: -sizes[i]):
        if sum(shares) >= total:
            break
        shares[i] += 1
    return shares


def make_partitions(
    strategy: str, files: Sequence[str], planned: int, splittable: bool, grid: Sequence[dict[str, Any]] = ()
) -> list[Partition]:
    """The partitions of a plan. ``files`` are absolute paths; ``grid`` the points of a sweep."""
    if strategy == "parameter-items":
        return [Partition(i, params=dict(point)) for i, point in enumerate(grid)]
    if not splittable or strategy == "one-file-per-partition":
        return [Partition(i, path=f) for i, f in enumerate(files)]
    out: list[Partition] = []
    shares = _shares([os.path.getsize(f) for f in files], planned)
    for path, share in zip(files, shares, strict=True):
        if path.lower().endswith(".parquet"):
            out += _parquet_chunks(path, share, len(out))
            continue
        header = _header(path)
        for start, stop in _line_ranges(path, share, header):
            out.append(Partition(len(out), path, start, stop, "bytes", header=header))
    return out


def _parquet_chunks(path: str, share: int, first_index: int) -> list[Partition]:
    import pyarrow.parquet as pq

    meta = pq.ParquetFile(path).metadata
    groups = list(range(meta.num_row_groups))
    if not groups:
        return []
    share = min(share, len(groups))
    out = []
    row = 0
    for k in range(share):
        mine = tuple(groups[len(groups) * k // share : len(groups) * (k + 1) // share])
        rows = sum(meta.row_group(g).num_rows for g in mine)
        out.append(Partition(first_index + k, path, row, row + rows, "rows", row_groups=mine))
        row += rows
    return out
