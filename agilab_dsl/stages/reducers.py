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


def _csv_rows(name: str, value: Any) -> tuple[list[str], Iterable[list[Any]] | str]:
    """(columns, rows) of one partition's result; rows given as CSV text stay text (copied as they
    are, not parsed and written again)."""
    if isinstance(value, str):  # CSV text: its header is read; its rows are copied as they are
        first, _, body = value.partition("\n")
        header = next(csv.reader([first]), None)
        return (list(header) if header else []), body.replace("\r\n", "\n")
    if isinstance(value, list):
        if not value:
            return [], []
        if not all(isinstance(r, dict) for r in value):
            raise ReduceError(f"{name} returned a list that is not of row dicts (concat-csv)")
        columns = list(value[0])
        return columns, ([r.get(c) for c in columns] for r in value)
    if type(value).__name__ == "Table" and hasattr(value, "to_batches"):  # a pyarrow Table
        columns = list(value.column_names)

        def rows() -> Iterator[list[Any]]:
            for batch in value.to_batches():
                cols = [batch.column(i).to_pylist() for i in range(batch.num_columns)]
                yield from (list(r) for r in zip(*cols, strict=True))

        return columns, rows()
    raise ReduceError(
        f"{name} returned {type(value).__name__}; concat-csv takes a pyarrow Table, a list of row dicts or CSV text"
    )


def concat_csv(results: Iterable[tuple[str, Any]], output: str) -> None:
    with _atomic(output) as fh:
        writer = csv.writer(fh, lineterminator="\n")
        header: list[str] | None = None
        first = ""
        for name, value in results:
            columns, rows = _csv_rows(name, value)
            if not columns:
                continue  # an empty result adds nothing
            if header is None:
                header, first = columns, name
                writer.writerow(header)
            elif columns != header:
                raise ReduceError(
                    f"{name} returned columns {columns}, unlike {first} {header} (concat-csv needs one schema)"
                )
            if isinstance(rows, str):
                fh.write(rows if not rows or rows.endswith("\n") else rows + "\n")
            else:
                writer.writerows(rows)


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
