"""``agilab-run check --agilab``: AGILAB's own verdict on each file (``agilab workflow validate`` for
labs, ``tools/parallel_stage.py --check`` for contracts), printed as located text, JSON (AGILAB's
report shapes) or GitHub annotations; exit 2 when a file fails, 1 when one warns under ``--strict``,
else 0 — AGILAB's own exit codes.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from .common import EXIT_INVALID, use_color

if TYPE_CHECKING:  # pragma: no cover
    import argparse
    from typing import TextIO


def cmd_check_agilab(args: argparse.Namespace, out: TextIO) -> int:
    if not args.agilab:
        given = [
            flag
            for flag, value in (
                ("--module-key", args.module_key is not None),
                ("--apps-root", args.apps_root is not None),
                ("--require-metadata", args.require_metadata),
            )
            if value
        ]
        verb = "needs" if len(given) == 1 else "need"
        print(f"agilab-run check: error: {', '.join(given)} {verb} --agilab", file=sys.stderr)
        return EXIT_INVALID
    if args.settings is not None:
        print("agilab-run check: error: --settings does not apply with --agilab", file=sys.stderr)
        return EXIT_INVALID
    from ..check.agilab.report import check_agilab, exit_code, to_github, to_json, to_text

    reports = check_agilab(
        args.files,
        kind=args.kind,
        module_key=args.module_key,
        apps_root=args.apps_root,
        require_metadata=args.require_metadata,
    )
    fmt = "json" if args.json else args.format
    if fmt == "json":
        out.write(to_json(reports) + "\n")
    elif fmt == "github":
        out.write(to_github(reports))
    else:
        out.write(to_text(reports, color=use_color(out)))
    return exit_code(reports, strict=args.strict)
