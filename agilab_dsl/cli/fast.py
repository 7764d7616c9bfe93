"""``agilab-run status FILE [--json]`` answered from the judgment cache before anything else is
loaded: no argument parser, no lab request, no runner — the stored judgment's key, its files'
signatures and its statuses, printed as :mod:`.cmd_status` prints them. Any other call, or a
judgment that does not hold as it is, returns None and takes the full path (which answers the
same: ``tests/test_fast_status.py`` compares the two).
"""

from __future__ import annotations

import os
import sys

# the options of `status` that leave the judgment's key as it is by default; nothing else may appear
_FLAGS = {"--json"}


def status_answer(argv: list[str]) -> int | None:
    """The exit code of ``status FILE [--json]`` answered from the judgment cache, or None."""
    if len(argv) not in (2, 3) or argv[0] != "status":
        return None
    rest = argv[1:]
    flags = [a for a in rest if a.startswith("-")]
    files = [a for a in rest if not a.startswith("-")]
    if len(files) != 1 or not set(flags) <= _FLAGS or len(flags) != len(set(flags)):
        return None
    if os.environ.get("AGILAB_NO_CACHE", "") not in ("", "0") or not os.path.isfile(files[0]):
        return None
    from ..plan import judgment

    key = judgment.request_key(
        files[0], interpreters={"python": None, "agilab_python": None, "apps_path": None}
    )
    known = judgment.lookup_known(files[0], key)
    if known is None or known.changed:
        return None
    from ..plan.failures import failure_reasons, read_failures
    from ..plan.shared import shared_states
    from .listing import show_statuses

    statuses = known.statuses
    failed = failure_reasons(read_failures(os.path.dirname(os.path.abspath(files[0]))))
    shared = shared_states(statuses, {s.id: s.upstream for s in statuses}, failed)
    show_statuses(statuses, "--json" in flags, shared)
    sys.stdout.flush()
    return 0
