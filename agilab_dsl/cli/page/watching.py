"""The live page of a watch session (``agilab-run LAB --watch --serve``): the page's state is a
sink of the session's event hub, so every run's events reach it in-process; between runs the
watch loop's own events (a change seen, the definition invalid or valid again) go through the
same hub, hence to ``--events`` too.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from ...execute.events import EventHub
    from ...execute.run import Runner
    from ...execute.session import Refusal
    from .server import Serving
    from .state import LiveState


class WatchEvents:
    """What the watch loop adds to the run events, and the page fed by them (when served)."""

    def __init__(self, lab_file: str, hub: EventHub, state: LiveState | None = None) -> None:
        self.lab_file = lab_file
        self.hub = hub
        self.state = state
        self.serving: Serving | None = None
        self.shaped = False  # the page has the lab's graph and judged states
        self.invalid = False
        self.runner: Runner | None = None  # the last good definition (for the steps a change affects)
        if state is not None:
            hub.add(state.apply)

    def serve(self, address: str | None) -> None:
        """Start the page (:class:`~.server.AddressProblem` when the address cannot be served)."""
        from . import start_page

        assert self.state is not None
        self.serving = start_page(self.lab_file, address, self.state)

    def opened(self, runner: Runner) -> None:
        """A run is about to start on ``runner``: the page takes its graph (the lab may have gained
        or lost steps); the first time, with every step's judged state."""
        self.runner = runner
        if self.state is None:
            return
        from .feed import agilab_states, lab_graph

        lab_graph(runner, self.state, None if self.shaped else agilab_states(runner, runner.statuses()))
        self.shaped = True

    def seen(self, changed: list[str]) -> None:
        affected: list[str] = []
        if self.runner is not None:
            lab_dir = str(self.runner.lab_dir)
            for sid, step in self.runner.resolved.items():
                if any(os.path.join(lab_dir, p) in changed for p in step.inputs):
                    affected.append(sid)
        shown = [os.path.relpath(p, os.path.dirname(os.path.abspath(self.lab_file))) for p in changed]
        self.hub.emit(
            "watch_change_seen",
            "lab",
            self.lab_file,
            "running",
            f"{', '.join(shown[:5])} changed",
            {"paths": shown, "affected": affected},
        )

    def refused(self, refusal: Refusal) -> None:
        lines = [f"{d.path}:{d.line or 0}:{d.column or 0}: {d.message}" for d in refusal.diagnostics]
        lines += [refusal.message] if refusal.message else []
        self.invalid = True
        self.hub.emit(
            "definition_invalid", "lab", self.lab_file, "failed", "the lab is invalid", {"diagnostics": lines}
        )

    def ran(self) -> None:
        if self.invalid:
            self.invalid = False
            self.hub.emit("definition_valid", "lab", self.lab_file, "ready", "the lab is valid again")

    def close(self) -> None:
        if self.serving is not None:
            self.serving.close()
            self.serving = None
