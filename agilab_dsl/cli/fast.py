"""``agilab-run status FILE [--json]`` and ``check FILE... [--json]`` answered from their caches
before anything else is loaded: no argument parser, no lab request, no runner. ``status``: the
stored judgment's key, its files' signatures and its statuses, printed as :mod:`.cmd_status`
prints them; ``check``: every file's stored reports, printed as :mod:`.cmd_check` prints them. Any
other call, or a cache entry that does not hold as it is, returns None and takes the full path
(which answers the same: ``tests/test_fast_status.py`` compares the two). And ``agilab-run FILE``
with the common flags, parsed without argparse (:func:`run_arguments`).
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False  # typing itself is not imported: start-up pays for every module
if TYPE_CHECKING:  # pragma: no cover
    from typing import Any

# the options of `status` and `check` that leave the cache's key as it is by default; no other
_FLAGS = {"--json"}


def _files_and_flags(rest: list[str]) -> tuple[list[str], list[str]] | None:
    flags = [a for a in rest if a.startswith("-")]
    files = [a for a in rest if not a.startswith("-")]
    if not files or not set(flags) <= _FLAGS or len(flags) != len(set(flags)):
        return None
    if os.environ.get("AGILAB_NO_CACHE", "") not in ("", "0"):
        return None
    return files, flags


# `agilab-run FILE`'s arguments as its argparse parser (parser.build_run_parser) gives them when no
# option is given, and the flags parsed here too: a run of a small lab spends ~10 ms importing
# argparse and building that parser. tests/test_fast_status.py compares both for every flag.
_RUN_DEFAULTS = {
    "dry_run": False,
    "watch": False,
    "serve": None,
    "only": [],
    "from_step": None,
    "force": False,
    "jobs": None,
    "keep_going": False,
    "verbose": False,
    "backend": None,
    "scheduler": None,
    "json": False,
    "events": None,
    "no_cache": False,
    "settings": None,
    "profile": None,
    "dataframe": None,
    "export_dir": None,
    "all_stages": False,
    "no_infer": False,
    "python": None,
    "agilab_python": None,
    "apps_path": None,
}
RUN_FLAGS = {
    "--dry-run": "dry_run",
    "--watch": "watch",
    "--force": "force",
    "--keep-going": "keep_going",
    "-v": "verbose",
    "--verbose": "verbose",
    "--json": "json",
    "--no-cache": "no_cache",
    "--all": "all_stages",
    "--no-infer": "no_infer",
}


def run_arguments(argv: list[str]) -> Any | None:
    """``FILE [FLAG...] [-j N]`` parsed without argparse (a namespace with the parser's attributes),
    or None: anything else (another option, a repeated one, ``-j`` with no plain number) is left
    to the parser, which also words every usage error."""
    values: dict[str, Any] = {"file": None, **_RUN_DEFAULTS, "only": []}
    words = iter(argv)
    seen = set()
    for word in words:
        if word in seen:
            return None
        seen.add(word)
        if word in RUN_FLAGS:
            values[RUN_FLAGS[word]] = True
        elif word in ("-j", "--jobs"):
            number = next(words, "")
            if not (number.isascii() and number.isdigit()):
                return None
            values["jobs"] = int(number)
        elif word.startswith("-") or values["file"] is not None:
            return None
        else:
            values["file"] = word
    if values["file"] is None or ("-j" in seen and "--jobs" in seen):
        return None
    import types

    return types.SimpleNamespace(**values)


def check_answer(argv: list[str]) -> int | None:
    """The exit code of ``check FILE... [--json]`` answered from the result cache, or None."""
    if argv[:1] != ["check"]:
        return None
    parsed = _files_and_flags(argv[1:])
    if parsed is None:
        return None
    files, flags = parsed
    from ..plan import cache

    named = {os.path.abspath(f) for f in files}
    options = {"kind": None, "settings": None, "named": sorted(named), "infer": True}  # cmd_check's
    reports = {}
    for path in files:
        found = reports.get(path) or cache.lookup(path, options)
        if found is None:
            return None
        reports[path] = found
    from .check_report import show_reports

    code = show_reports(files, reports.__getitem__, "json" if flags else "text", False, sys.stdout)
    sys.stdout.flush()
    return code


def status_answer(argv: list[str]) -> int | None:
    """The exit code of ``status FILE [--json]`` answered from the judgment cache, or None."""
    if len(argv) not in (2, 3) or argv[0] != "status":
        return None
    parsed = _files_and_flags(argv[1:])
    if parsed is None:
        return None
    files, flags = parsed
    if len(files) != 1 or not os.path.isfile(files[0]):
        return None
    from ..plan.longlived import long_lived

    with long_lived():  # 100,000 statuses and their states: nothing for the collector to find
        return _answer(files[0], "--json" in flags)


def _answer(file: str, as_json: bool) -> int | None:
    from ..plan import judgment

    key = judgment.request_key(file, interpreters={"python": None, "agilab_python": None, "apps_path": None})
    known = judgment.lookup_known(file, key)
    if known is None or known.changed:
        return None
    from ..plan.failures import failure_reasons, read_failures
    from ..plan.shared import shared_states, stored_upstream
    from .listing import show_statuses

    upstream = stored_upstream(known)
    if upstream is None:
        return None
    failed = failure_reasons(read_failures(os.path.dirname(os.path.abspath(file))))
    shared = shared_states(known.statuses, upstream, failed)
    show_statuses(known.statuses, as_json, shared)
    sys.stdout.flush()
    return 0
