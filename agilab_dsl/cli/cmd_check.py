"""``agilab-run check``: validate lab, contract and settings files and print every problem,
located, as text, JSON or GitHub annotations; a file's reports come from the result cache while
nothing they depend on changed.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    import argparse
    from typing import TextIO


def _check_one(path: str, args: argparse.Namespace, named: set[str]) -> list[dict[str, Any]]:
    """The reports of one named file (and of its lab's settings snapshot when that has problems),
    from the result cache when nothing they depend on changed."""
    from ..plan import cache

    infer = not args.no_infer
    options = {"kind": args.kind, "settings": args.settings, "named": sorted(named), "infer": infer}
    use_cache = not args.no_cache
    if use_cache:
        cached = cache.lookup(path, options)
        if cached is not None:
            return cached
    from ..plan.longlived import collected_once

    obs = cache.Observations()
    with collected_once():  # its garbage cycles found in one pass, not in many over a growing heap
        reports = _checked(path, args, named, infer, obs)
    if use_cache:
        cache.store(path, options, obs, reports)
    return reports


def _checked(
    path: str, args: argparse.Namespace, named: set[str], infer: bool, obs: Any
) -> list[dict[str, Any]]:
    """The reports of one named file, checked now (``obs``: what they depend on)."""
    from ..check.files import check_file

    result, settings = check_file(path, kind=args.kind, settings_path=args.settings, obs=obs)
    entries = [result]
    if settings is not None and settings.diagnostics and os.path.abspath(settings.path) not in named:
        entries.append(settings)
    reports = [{"path": e.path, "kind": e.kind, "diagnostics": list(e.diagnostics)} for e in entries]
    # a stage's contract is checked with its lab; when it is named too, its problems are said once, as its own
    mine = os.path.abspath(result.path)
    reports[0]["diagnostics"] = [
        d
        for d in reports[0]["diagnostics"]
        if os.path.abspath(d.path) == mine or os.path.abspath(d.path) not in named
    ]
    if result.kind == "lab" and result.ok:  # what is inferred, and the steps nothing can make stale
        from ..check.inferred import inferred_report

        reports[0]["inferred"], notes = inferred_report(result, infer)
        reports[0]["diagnostics"] += notes
    return reports


def cmd_check(args: argparse.Namespace, out: TextIO) -> int:
    if args.agilab or args.module_key is not None or args.apps_root is not None or args.require_metadata:
        from .cmd_check_agilab import cmd_check_agilab

        return cmd_check_agilab(args, out)
    from .check_report import show_reports

    fmt = "json" if args.json else args.format
    named = {os.path.abspath(f) for f in args.files}
    return show_reports(args.files, lambda path: _check_one(path, args, named), fmt, args.strict, out)
