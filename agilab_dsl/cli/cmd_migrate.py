"""``agilab-run migrate``: write a stage list under the other name and schema stamp (lab_steps ↔
lab_stages), the original left in place (the conversion itself is :mod:`agilab_dsl.review.migrate`).
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
    from ..review.migrate import MigrationProblem, migrate

    path = Path(args.file)
    if not path.is_file():
        print(f"agilab-run migrate: error: {args.file}: no such file", file=sys.stderr)
        return EXIT_INVALID
    try:
        done = migrate(path, args.to, Path(args.output) if args.output else None, force=args.force)
    except LoadError as exc:
        print("\n".join(render_text(d) for d in exc.diagnostics), file=sys.stderr)
        return EXIT_INVALID
    except MigrationProblem as exc:
        print(f"agilab-run migrate: error: {exc}", file=sys.stderr)
        return EXIT_PROBLEMS
    stamp = "schema stamp changed" if done.stamp_changed else "no schema stamp to change"
    where = "in place" if done.target.resolve() == path.resolve() else f"→ {done.target}"
    print(f"{path} {where} ({stamp}; every stage kept)", file=out)
    if done.target.resolve() != path.resolve():
        print(f"  the original stays; with git: git rm {path} && git add {done.target}", file=out)
    return EXIT_OK
