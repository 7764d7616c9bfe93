"""``agilab-run serve LAB [--serve HOST:PORT]``: the live page of a lab, view only: it runs
nothing, and follows the runs other commands make (``.agilab/runs/<newest>/events.jsonl``).
``agilab-run LAB --watch --serve`` serves the same page from the watch session itself
(:mod:`.cmd_watch`). The page is in :mod:`.page`.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

from .common import EXIT_INVALID, EXIT_OK, lab_request, report_refusal

if TYPE_CHECKING:  # pragma: no cover
    import argparse
    from typing import TextIO


def cmd_serve(args: argparse.Namespace, out: TextIO) -> int:
    import time

    from .page import AddressProblem, LiveState, start_page
    from .page.feed import FileFeed, judged_graph, lab_graph
    from .progress import sigterm_interrupts

    if not Path(args.file).is_file():
        print(f"agilab-run serve: error: {args.file}: no such lab file", file=sys.stderr)
        return EXIT_INVALID
    request = lab_request(args)
    state = LiveState(args.file)
    refusal = judged_graph(request, state)
    if refusal is not None:
        if refusal.kind is not None:  # a valid file of another kind: there is no lab to show
            print(f"agilab-run serve: error: {refusal.message}", file=sys.stderr)
            return EXIT_INVALID
        report_refusal(refusal)  # the page shows the lab invalid; runs made after a fix still show

    def reshape(_unknown: list[str]) -> None:  # a run names steps the page does not know
        from ..execute.session import Refusal, open_lab

        runner = open_lab(request)
        if not isinstance(runner, Refusal):
            lab_graph(runner, state)

    state.on_unknown = reshape
    try:
        serving = start_page(args.file, args.serve, state)
    except AddressProblem as exc:
        print(f"agilab-run serve: error: {exc}", file=sys.stderr)
        return EXIT_INVALID
    feed = FileFeed(Path(args.file).resolve().parent, state)
    feed.start()
    try:
        with sigterm_interrupts():
            while serving.thread.is_alive():
                time.sleep(0.25)
    except KeyboardInterrupt:
        pass
    finally:
        feed.close()
        serving.close()
    print("agilab-run: live page stopped", file=sys.stderr)
    return EXIT_OK
