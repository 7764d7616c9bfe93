"""``agilab-run fmt``: rewrite lab files in their canonical layout, or with ``--check`` only say which
are not (the rewriting itself is :mod:`agilab_dsl.review.fmt`).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

from .common import EXIT_INVALID, EXIT_OK, EXIT_PROBLEMS

if TYPE_CHECKING:  # pragma: no cover
    import argparse
    from typing import TextIO


def cmd_fmt(args: argparse.Namespace, out: TextIO) -> int:
    from ..load.errors import LoadError, render_text
    from ..load.reading import file_problem
    from ..review.fmt import FormatProblem, format_file

    status = EXIT_OK
    changed = 0
    for name in args.files:
        path = Path(name)
        problem = file_problem(path)
        if problem:
            print(f"agilab-run fmt: error: {name}: {problem}", file=sys.stderr)
            status = EXIT_INVALID
            continue
        try:
            if format_file(path, check=args.check):
                changed += 1
                print(f"{'would reformat' if args.check else 'reformatted'} {name}", file=out)
        except LoadError as exc:
            print("\n".join(render_text(d) for d in exc.diagnostics), file=sys.stderr)
            status = EXIT_INVALID
        except FormatProblem as exc:
            print(f"agilab-run fmt: error: {name}: {exc}", file=sys.stderr)
            status = max(status, EXIT_PROBLEMS)
    if status == EXIT_OK and args.check and changed:
        return EXIT_PROBLEMS
    if status == EXIT_OK and not changed:
        print(f"{len(args.files)} file{'s' * (len(args.files) != 1)} already formatted", file=out)
    return status
