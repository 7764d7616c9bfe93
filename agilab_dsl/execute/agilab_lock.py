"""AGILAB's own run lock: a run refuses to start while AGILAB runs the same app's workflow.

AGILAB's WORKFLOW page (``pipeline_run_controls._acquire_pipeline_run_lock``) holds
``<share>/.control/pipeline/<target>/pipeline_run.lock`` while it runs a lab: an OS lock
(``flock``) on the file, and in it a JSON payload (schema ``agilab.pipeline.lock.v1``: ``host``,
``pid``, ``app``, ``target``, ``created_at``, ``heartbeat_at``, ``log_file_path``) rewritten by a
heartbeat; released, the payload is ``{}``. AGILAB counts a lock as stale when its file was not
rewritten for the TTL (``AGILAB_PIPELINE_LOCK_TTL_SEC``, default 6 h) or when its owner, on this
host, is gone. This module only reads: it never takes, clears or creates AGILAB's lock.

``<share>`` is AGILAB's data root: ``AGILAB_WORKFLOW_DATA_ROOT`` when set, else
``AGI_CLUSTER_SHARE`` (default ``~/clustershare/<user>``) when the settings' ``[cluster]
cluster_enabled``, else ``AGI_LOCAL_SHARE`` (default ``~/localshare/<user>``); relative paths are
under the home folder; each is read from ``~/.agilab/.env`` first, then the environment, as AGILAB
does. ``<target>`` is the app's runtime target: ``[tool.agilab] runtime_target`` or the project's
name of the ``*_project`` folder holding the lab, else its folder's name, else the lab's module key,
without ``_project`` / ``_worker``.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Mapping
from pathlib import Path

from ..load.records import FrozenRecord

TYPE_CHECKING = False  # typing is not imported at run time: ~2 ms of every run's start-up
if TYPE_CHECKING:  # pragma: no cover
    from typing import Any

SCHEMA = "agilab.pipeline.lock.v1"
FILENAME = "pipeline_run.lock"
DEFAULT_TTL = 6 * 3600.0


class LockState(FrozenRecord):
    """What AGILAB's lock for a target says: ``held`` (refuse to run) or ``stale`` (ignored, with
    ``why``); no lock, or a released one, is None from :func:`inspect`."""

    _fields = ("path", "held", "payload", "age", "why")

    def __init__(
        self,
        path: Path,
        held: bool,
        payload: dict[str, Any],
        age: float | None,
        why: str = "",
    ) -> None:
        self.path = path
        self.held = held
        self.payload = payload
        self.age = age
        self.why = why

    def holder(self) -> str:
        """``host …, pid …, started …, log …`` — what the payload names."""
        p = self.payload
        parts = [f"host {p.get('host', '?')}", f"pid {p.get('pid', '?')}"]
        started = p.get("created_at")
        if isinstance(started, int | float):
            parts.append("started " + time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(started)))
        if self.age is not None:
            parts.append(f"last heartbeat {self.age:.0f} s ago")
        if p.get("log_file_path"):
            parts.append(f"log {p['log_file_path']}")
        return ", ".join(parts)


def dotenv(path: Path) -> dict[str, str]:
    """``KEY=value`` lines of an env file (``export``, quotes and ``#`` comments allowed); {} if unreadable."""
    out: dict[str, str] = {}
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return out
    for line in text.splitlines():
        m = re.match(r"\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*)$", line)
        if not m:
            continue
        value = m.group(2).strip()
        if value[:1] in ("'", '"') and value.endswith(value[0]) and len(value) > 1:
            value = value[1:-1]
        else:
            value = value.split(" #", 1)[0].strip()
        out[m.group(1)] = value
    return out


def share_root(settings: Mapping[str, Any], environ: Mapping[str, str], home: Path) -> Path:
    """AGILAB's active data root (see the module's docstring)."""
    envars = dotenv(home / ".agilab" / ".env")

    def get(name: str) -> str:
        return envars.get(name) or environ.get(name) or ""

    raw_user = environ.get("AGILAB_SHARE_USER") or environ.get("USER") or environ.get("USERNAME") or "user"
    user = re.sub(r"[^A-Za-z0-9_.-]+", "_", raw_user).strip("_") or "user"
    cluster = settings.get("cluster") if isinstance(settings.get("cluster"), Mapping) else {}
    raw = get("AGILAB_WORKFLOW_DATA_ROOT")
    if not raw:
        if cluster.get("cluster_enabled") is True:
            raw = get("AGI_CLUSTER_SHARE") or f"clustershare/{user}"
        else:
            raw = get("AGI_LOCAL_SHARE") or f"localshare/{user}"
    path = Path(raw).expanduser()
    return path if path.is_absolute() else home / path


def runtime_target(lab_file: Path, module_key: str) -> str:
    """The app's runtime target (see the module's docstring)."""

    def bare(name: str) -> str:
        name = name.strip().replace("-", "_")
        return name.removesuffix("_project") if name.endswith("_project") else name.removesuffix("_worker")

    project = next((p for p in lab_file.resolve().parents if p.name.endswith("_project")), None)
    if project is None:
        return bare(module_key) or "agilab"
    import tomllib  # only for a lab inside an AGILAB project (a run pays for every import)

    try:
        data = tomllib.loads((project / "pyproject.toml").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        data = {}
    agilab = data.get("tool", {}).get("agilab", {}) if isinstance(data.get("tool"), dict) else {}
    named = agilab.get("runtime_target") if isinstance(agilab, dict) else None
    if not isinstance(named, str) or not named:
        named = data.get("project", {}).get("name") if isinstance(data.get("project"), dict) else None
    return bare(named if isinstance(named, str) and named else project.name)


def lock_path(
    lab_file: Path, module_key: str, settings: Mapping[str, Any], environ: Mapping[str, str]
) -> Path:
    root = share_root(settings, environ, Path.home())
    return root / ".control" / "pipeline" / runtime_target(lab_file, module_key) / FILENAME


def ttl(environ: Mapping[str, str]) -> float:
    """``AGILAB_PIPELINE_LOCK_TTL_SEC`` (seconds, > 0), else 6 h — as AGILAB reads it."""
    try:
        value = float(environ.get("AGILAB_PIPELINE_LOCK_TTL_SEC", "").strip() or DEFAULT_TTL)
    except ValueError:
        return DEFAULT_TTL
    return value if value > 0 else DEFAULT_TTL


def inspect(path: Path, environ: Mapping[str, str]) -> LockState | None:
    """The lock at ``path``: None when there is none or it is released (an empty payload)."""
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
        age: float | None = max(time.time() - path.stat().st_mtime, 0.0)
    except (OSError, ValueError):
        return None
    if not isinstance(payload, dict) or not payload:
        return None
    limit = ttl(environ)
    if age is not None and age > limit:
        return LockState(path, False, payload, age, f"its heartbeat expired ({age:.0f} s > {limit:.0f} s)")
    if _owner_alive(payload) is False:
        return LockState(path, False, payload, age, "its owner process is no longer running on this host")
    if _os_lock_free(path):
        return LockState(
            path, False, payload, age, "no process holds it (its run ended without releasing it)"
        )
    return LockState(path, True, payload, age)


def _owner_alive(payload: Mapping[str, Any]) -> bool | None:
    """AGILAB's ``_pipeline_lock_owner_alive``: is the owner's pid alive, when it is on this host."""
    import socket

    if str(payload.get("host") or "") != socket.gethostname():
        return None
    try:
        pid = int(payload.get("pid"))  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError):
        return None
    if pid <= 0:
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, someone else's
        return True
    except OSError:
        return None
    return True


def _os_lock_free(path: Path) -> bool:
    """True when no process holds the OS lock on the file (taken and let go at once); False when
    one does, or when the file system cannot say (the payload's word stands then)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows: the payload's word stands
        return False
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return True
    finally:
        os.close(fd)


def before_run(
    lab_file: Path, module_keys: tuple[str, ...], settings: Mapping[str, Any], environ: Mapping[str, str]
) -> tuple[str | None, str | None]:
    """(why the run must not start, a note to say) for AGILAB's lock of the lab's app."""
    path = lock_path(lab_file, module_keys[0] if module_keys else lab_file.parent.name, settings, environ)
    state = inspect(path, environ)
    if state is None:
        return None, None
    if not state.held:
        return None, f"AGILAB's run lock {path} is ignored: {state.why} ({state.holder()})"
    hours = ttl(environ) / 3600
    return (
        f"AGILAB is running this app's workflow: its run lock {path} is held ({state.holder()}); "
        "wait for that run to end, or stop it in AGILAB. If it was interrupted, AGILAB's "
        f"'Force unlock and run' clears the lock, and it expires {hours:g} h after its last heartbeat "
        "(AGILAB_PIPELINE_LOCK_TTL_SEC)",
        None,
    )
