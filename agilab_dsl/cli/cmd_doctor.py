"""``agilab-run doctor``: ask every worker of a Dask scheduler to read a sentinel back from the
cluster share, and report those that cannot (the check itself is :mod:`agilab_dsl.stages.doctor`).
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from .common import EXIT_INVALID, EXIT_OK, EXIT_PROBLEMS

if TYPE_CHECKING:  # pragma: no cover
    import argparse
    from typing import TextIO


def cmd_doctor(args: argparse.Namespace, out: TextIO) -> int:
    from ..load.errors import to_json_text
    from ..stages.backends import BackendUnavailable
    from ..stages.doctor import ShareProblem, check_share, render

    try:
        report = check_share(args.scheduler, args.share)
    except ShareProblem as exc:
        print(f"agilab-run doctor: error: {exc}", file=sys.stderr)
        return EXIT_INVALID
    except BackendUnavailable as exc:
        print(f"agilab-run doctor: {exc}", file=sys.stderr)
        return EXIT_PROBLEMS
    out.write(to_json_text(report.to_json()) + "\n" if args.json else render(report))
    return EXIT_OK if report.ok else EXIT_PROBLEMS
