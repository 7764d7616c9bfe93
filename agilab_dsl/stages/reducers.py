"""Reducers: partition results, in partition order, streamed into one output file.

Each reducer takes results one at a time (memory stays bounded by one partition's result) and
writes to a temporary file beside the output, renamed over it only when every partition reduced,
so a failed or killed stage never leaves a half-written output.

What a partition function returns, per reducer:

* ``collect-json``: any JSON value; the output is a JSON list in partition order;
* ``concat-jsonl``: a dict (one line) or a list of dicts (one line each);
* ``concat-csv``: a pyarrow Table, a list of row dicts, or CSV text with a header line; one header
  is written, and a partition whose columns differ from the first is an error naming it;
* ``custom``: ``reducer_function(results, output_path)``, given an iterator of the results.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from .spill import Encoded, NotCsv, Spilled, copy_into, header_of, write_rows


class ReduceError(Exception):
    """A result the reducer cannot take; the message names the partition."""


@contextlib.contextmanager
def _replacing(output: str) -> Iterator[str]:
    """A temporary path beside ``output``, renamed over it when the block ends without error and
    removed whatever happens."""
    folder = os.path.dirname(os.path.abspath(output))
    os.makedirs(folder, exist_ok=True)
    tmp = os.path.join(folder, f".{os.path.basename(output)}.{os.getpid()}.tmp")
    try:
        yield tmp
        os.replace(tmp, output)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


@contextlib.contextmanager
def _atomic(output: str) -> Iterator[Any]:
    with _replacing(output) as tmp, open(tmp, "w", encoding="utf-8", newline="") as fh:
        yield fh


def collect_json(results: Iterable[tuple[str, Any]], output: str) -> None:
    with _atomic(output) as fh:
        fh.write("[")
        for n, (name, value) in enumerate(results):
            try:
                text = json.dumps(value, ensure_ascii=False)
            except (TypeError, ValueError) as exc:
                raise ReduceError(f"{name} returned a value JSON cannot hold: {exc}") from None
            fh.write(("," if n else "") + "\n" + text)
        fh.write("\n]\n")


def concat_jsonl(results: Iterable[tuple[str, Any]], output: str) -> None:
    with _atomic(output) as fh:
        for name, value in results:
            rows = value if isinstance(value, list) else [value]
            for row in rows:
                if not isinstance(row, dict):
                    raise ReduceError(
                        f"{name} returned {type(row).__name__}; concat-jsonl takes a dict or a list of dicts"
                    )
                try:
                    fh.write(json.dumps(row, ensure_ascii=False) + "\n")
                except (TypeError, ValueError) as exc:
                    raise ReduceError(f"{name} returned a row JSON cannot hold: {exc}") from None


def concat_csv(results: Iterable[tuple[str, Any]], output: str) -> None:
    """One header, then every partition's rows in order; CSV text is copied as it is (a slice at a
    time, not parsed), a spilled result (:mod:`.spill`) is copied from its file in the kernel."""
    with _replacing(output) as tmp, open(tmp, "wb") as raw:
        header: list[str] | None = None
        first = ""

        def check(name: str, columns: list[str]) -> None:
            nonlocal header, first
            if header is None:
                header, first = columns, name
                csv.writer(Encoded(raw), lineterminator="\n").writerow(header)
            elif columns != header:
                raise ReduceError(
                    f"{name} returned columns {columns}, unlike {first} {header} (concat-csv needs one schema)"
                )

        for name, value in results:
            if isinstance(value, Spilled):
                if value.columns:  # an empty result adds nothing
                    check(name, list(value.columns))
                    copy_into(raw, value.path)
                else:
                    os.unlink(value.path)
                continue
            columns = _columns(name, value)
            if not columns:
                continue  # an empty result adds nothing
            check(name, columns)
            try:
                write_rows(raw, value)
            except NotCsv:  # pragma: no cover - _columns refused it already
                raise ReduceError(f"{name}: concat-csv cannot take this result") from None
            del value  # not held while the next partition runs


def _columns(name: str, value: Any) -> list[str]:
    """The columns of one partition's concat-csv result; :class:`ReduceError` names a result that
    concat-csv does not take."""
    if isinstance(value, str):  # CSV text: its header is read; its rows are copied as they are
        return header_of(value)[0]
    if isinstance(value, list):
        if not value:
            return []
        if not all(isinstance(r, dict) for r in value):
            raise ReduceError(f"{name} returned a list that is not of row dicts (concat-csv)")
        return list(value[0])
    if type(value).__name__ == "Table" and hasattr(value, "to_batches"):  # a pyarrow Table
        return list(value.column_names)
    raise ReduceError(
        f"{name} returned {type(value).__name__}; concat-csv takes a pyarrow Table, a list of row dicts or CSV text"
    )


REDUCERS: dict[str, Callable[[Iterable[tuple[str, Any]], str], None]] = {
    "collect-json": collect_json,
    "concat-jsonl": concat_jsonl,
    "concat-csv": concat_csv,
}


def custom(function: Callable[..., Any], results: Iterable[tuple[str, Any]], output: str) -> None:
    """``reducer_function(results, output_path)``: it writes to a temporary path, renamed after."""
    with _replacing(output) as tmp:
        function((value for _, value in results), tmp)
        if not os.path.exists(tmp):
            raise ReduceError(f"the reducer function wrote nothing to the output path it was given ({tmp})")
