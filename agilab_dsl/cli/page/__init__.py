"""The live page (``agilab-run LAB --watch --serve`` and ``agilab-run serve LAB``): a small web
server on loopback showing the step graph coloured by AGILAB's states, updated live from the run's
events, each step's reasons, backend, partitions, duration and log tail, and the recorded history.

- :mod:`.state`: the server-side state the events move (no web library);
- :mod:`.feed`: where it starts from (a judgment) and where events come from (a followed
  ``events.jsonl``; in watch mode the session's event hub);
- :mod:`.history`: the history panel's data, through :mod:`agilab_dsl.record.query`;
- :mod:`.server`: the starlette app, the socket and the uvicorn thread;
- ``static/``: the page itself (HTML, JS, CSS; no CDN: it works offline).

:func:`start_page` is what the commands call; starlette and uvicorn load only then.
"""

from __future__ import annotations

import ipaddress
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from .server import AddressProblem, bind, parse_address
from .state import LiveState

if TYPE_CHECKING:  # pragma: no cover
    from .server import Serving

__all__ = ["AddressProblem", "LiveState", "loopback", "start_page"]


def loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def start_page(lab_file: str, address: str | None, state: LiveState) -> Serving:
    """Bind ``address`` (default 127.0.0.1, port 8765 when free, else any free port), start serving
    ``state`` in a thread, and say the URL on stderr (with a warning off loopback).
    :class:`AddressProblem` when the address cannot be served."""
    from ...plan.vocabulary import COLORS
    from .history import History
    from .server import Serving, make_app

    host, port = parse_address(address)
    sock = bind(host, port)
    lab_dir = Path(lab_file).resolve().parent
    app = make_app(state, History(lab_dir), lab_dir, dict(COLORS))
    serving = Serving(app, sock, state)
    serving.start()
    if not loopback(host):
        print(
            f"agilab-run: warning: serving on {host}, not loopback: whoever reaches this machine sees "
            "the lab's steps, logs and history",
            file=sys.stderr,
        )
    print(f"agilab-run: live page at {serving.url}", file=sys.stderr, flush=True)
    return serving
