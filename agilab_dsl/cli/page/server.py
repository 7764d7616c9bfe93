"""The live page's web server: a starlette app served by uvicorn in a thread, on a socket this
module binds itself (so a port in use or an address that is not ours is a plain error before
anything starts). GET only; nothing here runs or edits anything, and no file is served but the
package's ``static/`` files and the step logs under the lab's ``.agilab/runs/``.

Endpoints: ``/`` the page; ``/static/<file>``; ``/api/graph``; ``/api/state``; ``/api/events``
(server-sent events: a ``snapshot``, then each run event as ``data: {json}`` followed by an
``update`` with what it changed); ``/api/log/<step>?lines=N``; ``/api/history``;
``/api/runs/<a>/<b>``. starlette and uvicorn are imported only when a server starts.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .feed import RUNS

if TYPE_CHECKING:  # pragma: no cover
    from .history import History
    from .state import LiveState, Message

STATIC = Path(__file__).resolve().parent / "static"
DEFAULT_PORT = 8765  # taken when free; else a free port (an explicit port must be free)
MAX_LINES = 2000


class AddressProblem(Exception):
    """The address cannot be served: malformed, in use, or not this machine's (said in words)."""


def parse_address(text: str | None) -> tuple[str, int | None]:
    """``HOST:PORT``, ``HOST``, ``:PORT`` or ``PORT`` (IPv6 in brackets); None: the default port."""
    if not text:
        return "127.0.0.1", None
    host, port = text, ""
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port = rest.removeprefix(":")
    elif text.isdigit():
        host, port = "127.0.0.1", text
    elif text.count(":") == 1:
        host, port = text.split(":")
    host = host or "127.0.0.1"
    if port and (not port.isdigit() or int(port) > 65535):
        raise AddressProblem(f"--serve {text}: the port must be a number from 0 to 65535")
    return host, int(port) if port else None


def bind(host: str, port: int | None) -> socket.socket:
    """A listening socket on ``host:port`` (``port`` None: :data:`DEFAULT_PORT`, else any free one)."""
    try:
        infos = socket.getaddrinfo(host, port or 0, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise AddressProblem(f"cannot serve on {host}: {exc.strerror}") from None
    family, _, _, _, address = infos[0]
    for candidate in [DEFAULT_PORT, 0] if port is None else [port]:
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((address[0], candidate, *address[2:]))
            sock.listen(64)
        except OSError as exc:
            sock.close()
            if port is None and candidate == DEFAULT_PORT:
                continue
            why = "in use" if exc.errno in (98, 48) else (exc.strerror or str(exc))
            raise AddressProblem(f"cannot serve on {host}:{candidate}: {why}") from None
        return sock
    raise AddressProblem(f"cannot serve on {host}")  # pragma: no cover - port 0 always binds


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}/"


# -- files ---------------------------------------------------------------------------------------
def static_file(name: str) -> Path | None:
    """A file of the package's static folder, or None for anything else (``..``, absolute, folders)."""
    if not name or "\\" in name or "\x00" in name or name.startswith("/"):
        return None
    if any(part in ("", ".", "..") for part in name.split("/")):
        return None
    path = (STATIC / name).resolve()
    return path if path.is_file() and path.is_relative_to(STATIC) else None


def log_file(lab_dir: Path, step_id: str, known: str | None) -> Path | None:
    """The step's running or last log: the path its events gave, else the newest run folder's
    ``<step>.log`` (or an attempt's ``<step>.<n>.log``); only a real file under ``.agilab/``."""
    runs = (lab_dir / RUNS).resolve()
    candidates: list[Path] = []
    if known:
        candidates.append(Path(known) if os.path.isabs(known) else lab_dir / known)
    try:
        folders = sorted((n for n in os.listdir(runs) if not n.startswith(".")), reverse=True)
    except OSError:
        folders = []
    for folder in folders[:50]:
        logs = sorted((runs / folder).glob(f"{step_id}*.log"))
        logs = [p for p in logs if p.name == f"{step_id}.log" or p.name[len(step_id)] == "."]
        if logs:
            candidates.append(max(logs, key=lambda p: p.stat().st_mtime))
            break
    agilab = (lab_dir / ".agilab").resolve()
    for path in candidates:
        real = path.resolve()
        if real.is_file() and real.is_relative_to(agilab):
            return real
    return None


def tail(path: Path, lines: int) -> list[str]:
    size = path.stat().st_size
    with path.open("rb") as fh:
        fh.seek(max(0, size - 256 * lines - 4096))
        text = fh.read().decode("utf-8", errors="replace")
    return text.rstrip("\n").splitlines()[-lines:] if text.strip() else []


# -- the app -------------------------------------------------------------------------------------
def make_app(state: LiveState, history: History, lab_dir: Path, colors: dict[str, str]) -> Any:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import FileResponse, JSONResponse, Response, StreamingResponse
    from starlette.routing import Route

    types = {".html": "text/html", ".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml"}
    headers = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}

    def not_found() -> Response:
        return JSONResponse({"error": "not found"}, status_code=404)

    def serve(path: Path) -> Response:
        return FileResponse(
            path, media_type=types.get(path.suffix, "application/octet-stream"), headers=headers
        )

    async def index(request: Request) -> Response:
        return serve(STATIC / "index.html")

    async def static(request: Request) -> Response:
        path = static_file(request.path_params["name"])
        return serve(path) if path is not None else not_found()

    async def graph(request: Request) -> Response:
        return JSONResponse({**state.graph(), "colors": colors}, headers=headers)

    async def current(request: Request) -> Response:
        return JSONResponse({**state.snapshot(), "colors": colors}, headers=headers)

    async def log(request: Request) -> Response:
        step = request.path_params["step"]
        if step not in state.graph_ids():
            return not_found()
        try:
            lines = max(1, min(MAX_LINES, int(request.query_params.get("lines", "100"))))
        except ValueError:
            return JSONResponse({"error": "lines must be a number"}, status_code=400)
        path = log_file(lab_dir, step, state.log_of(step))
        if path is None:
            return JSONResponse({"step": step, "path": None, "lines": []}, headers=headers)
        shown = str(path.relative_to(lab_dir.resolve()))
        return JSONResponse({"step": step, "path": shown, "lines": tail(path, lines)}, headers=headers)

    async def runs_history(request: Request) -> Response:
        data = await asyncio.to_thread(history.series)
        return JSONResponse(data, headers=headers)

    async def two_runs(request: Request) -> Response:
        data = await asyncio.to_thread(
            history.side_by_side, request.path_params["a"], request.path_params["b"]
        )
        if isinstance(data, str):
            return JSONResponse({"error": data}, status_code=404)
        return JSONResponse(json.loads(json.dumps(data, default=str)), headers=headers)

    async def events(request: Request) -> Response:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Message | None] = asyncio.Queue()

        def listener(message: Message) -> None:
            loop.call_soon_threadsafe(queue.put_nowait, message)

        async def stream() -> Any:
            state.subscribe(listener)
            try:
                while True:
                    try:
                        message = await asyncio.wait_for(queue.get(), timeout=15)
                    except TimeoutError:
                        yield ": keep-alive\n\n"
                        continue
                    if message is None or message[0] == "close":
                        return
                    name, data = message
                    head = "" if name == "message" else f"event: {name}\n"
                    yield f"{head}data: {json.dumps(data, default=str)}\n\n"
            finally:
                state.unsubscribe(listener)

        return StreamingResponse(stream(), media_type="text/event-stream", headers=headers)

    routes = [
        Route("/", index),
        Route("/static/{name:path}", static),
        Route("/api/graph", graph),
        Route("/api/state", current),
        Route("/api/events", events),
        Route("/api/log/{step:path}", log),
        Route("/api/history", runs_history),
        Route("/api/runs/{a}/{b}", two_runs),
    ]
    return Starlette(routes=routes)


class Serving:
    """The server running in a thread, on a socket already bound."""

    def __init__(self, app: Any, sock: socket.socket, state: LiveState) -> None:
        import uvicorn

        self.sock = sock
        self.state = state
        config = uvicorn.Config(
            app, log_level="warning", lifespan="off", access_log=False, timeout_graceful_shutdown=1
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [sock]}, name="agilab-page", daemon=True
        )

    @property
    def url(self) -> str:
        return url_of(self.sock)

    def start(self) -> None:
        self.thread.start()

    def close(self) -> None:
        self.state.close()  # ends every event stream
        self.server.should_exit = True
        self.thread.join(timeout=3)
        self.sock.close()
