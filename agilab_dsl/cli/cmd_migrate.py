"""``agilab-run migrate``: a stage list to the form AGILAB accepts today (``--to lab_stages``: stamp,
module key) or back (``--to lab_steps``), the original left in place (the conversion itself is
:mod:`agilab_dsl.review.migrate`).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

from .common import EXIT_INVALID, EXIT_OK, EXIT_PROBLEMS

if TYPE_CHECKING:  # pragma: no cover
    import argparse
    from typing import TextIO


def cmd_migrate(args: argparse.Namespace, out: TextIO) -> int:
    from ..load.errors import LoadError, render_text
    from ..load.reading import file_problem
    from ..review.migrate import migrate
    from ..review.migrate_text import MigrationProblem

    path = Path(args.file)
    problem = file_problem(path)
    if problem:
        print(f"agilab-run migrate: error: {args.file}: {problem}", file=sys.stderr)
        return EXIT_INVALID
    if args.module_key is not None and args.to != "lab_stages":
        print("agilab-run migrate: error: --module-key goes with --to lab_stages", file=sys.stderr)
        return EXIT_INVALID
    try:
        done = migrate(
            path,
            args.to,
            Path(args.output) if args.output else None,
            force=args.force,
            module_key=args.module_key,
        )
    except LoadError as exc:
        print("\n".join(render_text(d) for d in exc.diagnostics), file=sys.stderr)
        return EXIT_INVALID
    except MigrationProblem as exc:
        if exc.diagnostic is not None:
            print(render_text(exc.diagnostic), file=sys.stderr)
        else:
            print(f"agilab-run migrate: error: {exc}", file=sys.stderr)
        return EXIT_PROBLEMS
    what = "; ".join(done.done) if done.done else "nothing to change"
    where = "in place" if done.target.resolve() == path.resolve() else f"→ {done.target}"
    key = f", module key {done.module_key!r}" if done.module_key else ""
    print(f"{path} {where} ({what}{key}; every stage kept)", file=out)
    for note in done.notes:
        print(f"  note: {note}", file=out)
    if done.target.resolve() != path.resolve():
        print(f"  the original stays; with git: git rm {path} && git add {done.target}", file=out)
    return EXIT_OK
