"""Large partition results travel as files, not as values: a worker writes its piece of the output
(CSV rows, encoded) to a spill file beside the output and hands back only its name; the reducer copies
the file into the output in the kernel (``os.sendfile``) and removes it.

So a ``pool`` stage's process never holds a partition's result (nor its pickle), and a worker holds
its result once (written in 1 MiB slices). Only ``concat-csv`` results of at least
:data:`SPILL_MIN` (CSV text, a pyarrow Table, a list of row dicts) are spilled; a small one, or one
the reducer would refuse (it then refuses it with its usual message), travels as before.

Spill files are named ``.<output name>.part<index>.<stage pid>.tmp``: the pid is the stage process's,
so the next run sweeps those a killed stage left (see :mod:`agilab_dsl.plan.tempfiles`), and
:func:`clean` removes those a failed stage left.
"""

from __future__ import annotations

import contextlib
import csv
import glob
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Any

from .backends import Done, Failed, PartitionCall
from .splits import Partition

SPILL_MIN = 1 << 20  # bytes of a result (about) from which it is spilled
SPILL_MIN_ROWS = 10_000  # rows of a list of row dicts from which it is spilled
SLICE = 1 << 20  # characters of CSV text encoded at a time


class NotCsv(ValueError):
    """A result concat-csv does not take (the reducer says why, naming the partition)."""


@dataclass(frozen=True)
class Spilled:
    """A partition's CSV rows (encoded, without the header) in a file; ``columns`` its header."""

    path: str
    columns: tuple[str, ...]


class Encoded:
    """A text stream over a binary file (what ``csv.writer`` writes to): UTF-8, nothing held."""

    def __init__(self, raw: IO[bytes]) -> None:
        self.raw = raw

    def write(self, text: str) -> int:
        return self.raw.write(text.encode("utf-8"))


def write_text(raw: IO[bytes], text: str, start: int = 0) -> None:
    """``text[start:]`` encoded into ``raw`` a slice at a time, ``\\r\\n`` written as ``\\n``, ending
    with a newline when not empty (never a copy of the whole text)."""
    end = len(text)
    i = start
    while i < end:
        j = min(i + SLICE, end)
        if text[j - 1] == "\r" and j < end:
            j += 1  # a \r\n pair stays in one slice
        piece = text[i:j]
        if "\r\n" in piece:
            piece = piece.replace("\r\n", "\n")
        raw.write(piece.encode("utf-8"))
        i = j
    if end > start and text[end - 1] != "\n":
        raw.write(b"\n")


def header_of(text: str) -> tuple[list[str], int]:
    """The columns of CSV text's first line and where its rows start."""
    cut = text.find("\n")
    first = text if cut < 0 else text[:cut]
    header = next(csv.reader([first]), None)
    return (list(header) if header else []), (len(text) if cut < 0 else cut + 1)


def table_rows(value: Any) -> Iterator[list[Any]]:
    """The rows of a pyarrow Table, a record batch at a time."""
    for batch in value.to_batches():
        cols = [batch.column(i).to_pylist() for i in range(batch.num_columns)]
        yield from (list(r) for r in zip(*cols, strict=True))


def write_rows(raw: IO[bytes], value: Any) -> tuple[list[str], bool]:
    """Write one concat-csv result's rows (not its header) to ``raw``: its columns, and whether any
    row was written. :class:`NotCsv` for a result concat-csv does not take."""
    if isinstance(value, str):
        columns, start = header_of(value)
        if columns:
            write_text(raw, value, start)
        return columns, bool(columns)
    if isinstance(value, list):
        if not value:
            return [], False
        if not all(isinstance(r, dict) for r in value):
            raise NotCsv("a list that is not of row dicts")
        columns = list(value[0])
        csv.writer(Encoded(raw), lineterminator="\n").writerows([r.get(c) for c in columns] for r in value)
        return columns, True
    if type(value).__name__ == "Table" and hasattr(value, "to_batches"):  # a pyarrow Table
        columns = list(value.column_names)
        if columns:
            csv.writer(Encoded(raw), lineterminator="\n").writerows(table_rows(value))
        return columns, bool(columns)
    raise NotCsv(type(value).__name__)


def large(value: Any) -> bool:
    """Whether a result is worth a file (a small one travels faster as a value)."""
    if isinstance(value, str):
        return len(value) >= SPILL_MIN
    if isinstance(value, list):
        return len(value) >= SPILL_MIN_ROWS
    return type(value).__name__ == "Table" and getattr(value, "nbytes", 0) >= SPILL_MIN


def spill_path(output: str, index: int, pid: int) -> str:
    folder, name = os.path.split(os.path.abspath(output))
    return os.path.join(folder, f".{name}.part{index}.{pid}.tmp")


@dataclass(frozen=True)
class SpillingCall(PartitionCall):
    """A :class:`PartitionCall` whose large concat-csv results are written, on the worker, to a
    spill file beside ``output`` (named with the stage process's ``pid``)."""

    output: str = ""
    pid: int = 0

    def __call__(self, part: Partition) -> Done | Failed:
        outcome = super().__call__(part)
        if not isinstance(outcome, Done) or not large(outcome.value):
            return outcome
        path = spill_path(self.output, part.index, self.pid)
        try:
            with open(path, "wb") as raw:
                columns, _ = write_rows(raw, outcome.value)
        except (NotCsv, OSError, UnicodeEncodeError, csv.Error):  # the reducer says why, as before
            with contextlib.suppress(OSError):
                os.unlink(path)
            return outcome
        return Done(Spilled(path, tuple(columns)), outcome.seconds)


def wrap(call: PartitionCall, backend: str, reducer: str, output: str) -> PartitionCall:
    """The call a stage dispatches: spilling when its results cross a process boundary on this
    machine (``pool``) into a reducer that copies bytes (``concat-csv``)."""
    if backend != "pool" or reducer != "concat-csv":
        return call
    return SpillingCall(call.function, call.retries, call.xp, call.compiled, output, os.getpid())


def copy_into(raw: IO[bytes], path: str) -> None:
    """Append the file ``path`` to ``raw`` (in the kernel where it can) and remove it."""
    raw.flush()
    with open(path, "rb") as src:
        size = os.fstat(src.fileno()).st_size
        sent = 0
        try:
            while sent < size:
                n = os.sendfile(raw.fileno(), src.fileno(), sent, size - sent)
                if n == 0:
                    break
                sent += n
        except (AttributeError, OSError):  # no sendfile (or not between files) here
            pass
        if sent < size:
            src.seek(sent)
            raw.seek(0, os.SEEK_END)
            shutil.copyfileobj(src, raw, SLICE)
    raw.seek(0, os.SEEK_END)  # the buffered writer learns where the kernel left the file
    os.unlink(path)


def clean(output: str, pid: int | None = None) -> None:
    """Remove the spill files a stage (this process by default) left beside ``output``."""
    folder, name = os.path.split(os.path.abspath(output))
    pattern = glob.escape(f".{name}.part") + "*" + glob.escape(f".{pid or os.getpid()}.tmp")
    for path in glob.glob(os.path.join(glob.escape(folder), pattern)):
        with contextlib.suppress(OSError):
            os.unlink(path)
