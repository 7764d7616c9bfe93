"""``agilab-run history``: the runs recorded beside a lab, newest first, with what changed since the
run before; ``--compare`` two runs step by step; ``--export-mlflow``.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

from .common import EXIT_INVALID, EXIT_OK, EXIT_PROBLEMS

if TYPE_CHECKING:  # pragma: no cover
    import argparse
    from typing import TextIO


def cmd_history(args: argparse.Namespace, out: TextIO) -> int:
    from ..load.errors import to_json_text
    from ..record import query as history
    from ..record.parquet_schema import hide_pandas
    from .show import print_comparison, print_history

    hide_pandas()  # it reads the history and runs no step's code (see import_pyarrow)

    lab = Path(args.file)
    if not lab.is_file():
        print(f"agilab-run history: error: {args.file}: no such lab file", file=sys.stderr)
        return EXIT_INVALID
    if args.last is not None and args.last < 1:
        print("agilab-run history: error: --last must be at least 1", file=sys.stderr)
        return EXIT_INVALID
    lab_dir = lab.resolve().parent

    def note(text: str) -> None:  # a record left pending (a full disk, say)
        print(f"agilab-run: {text}", file=sys.stderr)

    if args.compare:
        try:
            a, b = (history.read_run(history.resolve_run(lab_dir, ref, note)) for ref in args.compare)
        except history.UnknownRun as exc:
            print(f"agilab-run history: error: {exc}", file=sys.stderr)
            return EXIT_INVALID
        except (OSError, ValueError, KeyError, IndexError) as exc:  # a damaged or foreign file
            print(f"agilab-run history: error: a run's record cannot be read ({exc})", file=sys.stderr)
            return EXIT_PROBLEMS
        diffs = history.compare(a, b)
        if args.json:
            out.write(to_json_text({"a": a.run_id, "b": b.run_id, "steps": diffs}) + "\n")
        else:
            print_comparison(a, b, diffs, out)
        return EXIT_OK
    # the text listing reads a summary of each run; JSON and the MLflow export take all of it
    shown = None if args.json or args.export_mlflow is not None else history.SUMMARY_COLUMNS
    listed = history.listing(
        lab_dir, last=args.last, status=args.status, step=args.step, note=note, columns=shown
    )
    for path, exc in listed.skipped:
        print(f"agilab-run history: skipping {path.name}: {exc}", file=sys.stderr)
    if args.export_mlflow is not None:
        from ..record.mlflow_export import MlflowMissing, MlflowUnusable, default_uri, export

        runs = [run for run, _ in listed]
        try:
            done = export(runs, args.export_mlflow or default_uri(lab_dir))
        except (MlflowMissing, MlflowUnusable) as exc:
            print(f"agilab-run history: {exc}", file=sys.stderr)
            return EXIT_PROBLEMS
        print(
            f"MLflow {done.uri}: experiment {done.experiment!r}: {done.added} run{'s' * (done.added != 1)} "
            f"exported, {done.skipped} already there",
            file=out,
        )
        return EXIT_OK
    if args.json:
        payload = [run.to_json() | {"changes": history.changes_since(run, before)} for run, before in listed]
        out.write(to_json_text(payload) + "\n")
    else:
        print_history(listed, out)
    return EXIT_OK
