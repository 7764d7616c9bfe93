"""``agilab-run FILE --watch``: run the lab, then re-run the affected steps whenever a file they
depend on changes, until Ctrl-C (the loop itself is :mod:`agilab_dsl.execute.watch`).
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

from .common import EXIT_INVALID, EXIT_OK, report_refusal, run_options
from .progress import Reporting, close_events, events_hub, no_interrupts, sigterm_interrupts

if TYPE_CHECKING:  # pragma: no cover
    import argparse

    from ..execute.run import Runner
    from ..execute.session import LabRequest
    from ..execute.watch import ChangeSource
    from .page.watching import WatchEvents


def run_watch(args: argparse.Namespace, request: LabRequest, source: ChangeSource | None = None) -> int:
    """``--watch``: see :mod:`agilab_dsl.execute.watch`. ``source`` replaces watchfiles (tests script it)."""
    from ..execute import session
    from ..execute.machine import Warm
    from ..execute.watch import Watcher, watchfiles_source

    options = run_options(args)
    reporting = Reporting(args)
    live = _live(args)  # the run events of the session (--events, the live page of --serve)
    if isinstance(live, int):
        return live
    warm = Warm()

    def reporter_for(runner: Runner) -> Any:
        if live is not None:
            live.opened(runner)
        return reporting.reporter_for(runner)

    def run_once(first: bool, last_good: Runner | None = None) -> Runner | None:
        ran = session.run(
            request,
            options if first else options.replace(force=False),
            reporter_for,
            sys.stderr,
            warm,
            opened=last_good,
            events=live.hub if live is not None else None,
        )
        if isinstance(ran, session.Refusal):
            if ran.kind == "contract":
                raise _NotALab
            if live is not None and ran.kind != session.BUSY:
                live.refused(ran)
            report_refusal(ran)
            if ran.kind == session.BUSY:  # the lab is fine: AGILAB runs it now
                if first:
                    raise _Busy
                say("  not run while AGILAB runs this app; the next change tries again")
                return ran.value  # the definition is valid: the watcher keeps following it
            return None
        runner, result = ran
        reporting.finished(result)
        if live is not None:
            live.ran()
        return runner

    def say(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    def rerun(last_good: Runner) -> Runner | None:
        return run_once(False, last_good)

    watcher = Watcher(
        run_once, args.settings, source or watchfiles_source(), say, rerun, live.seen if live else None
    )
    try:
        with sigterm_interrupts():
            return watcher.loop(args.file)
    except KeyboardInterrupt:
        say("watch: stopped")
        return EXIT_OK
    except _Busy:
        return EXIT_INVALID  # as a run refuses to start (the refusal was said)
    except _NotALab:
        print(
            f"agilab-run: error: {args.file} is a parallel contract; --watch follows a lab file",
            file=sys.stderr,
        )
        return EXIT_INVALID
    finally:
        with no_interrupts():
            warm.close()
            if live is not None:
                live.close()
                close_events(live.hub)


def _live(args: argparse.Namespace) -> WatchEvents | int | None:
    """The session's event hub and, with ``--serve``, its live page (started now: a port in use is
    said before anything runs); None without ``--events`` or ``--serve``; an exit code on error."""
    serve = getattr(args, "serve", None)
    hub = events_hub(getattr(args, "events", None))
    if isinstance(hub, int):
        return hub
    if hub is None and serve is None:
        return None
    from ..execute.events import EventHub
    from .page.watching import WatchEvents

    if serve is None:
        return WatchEvents(args.file, hub or EventHub())
    from .page import AddressProblem, LiveState

    live = WatchEvents(args.file, hub or EventHub(), LiveState(args.file))
    try:
        live.serve(serve)
    except AddressProblem as exc:
        print(f"agilab-run: error: {exc}", file=sys.stderr)
        close_events(live.hub)
        return EXIT_INVALID
    return live


class _Busy(Exception):
    """--watch started while AGILAB holds this app's run lock."""


class _NotALab(Exception):
    """--watch was given a parallel contract."""
