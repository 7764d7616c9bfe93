"""What a Python interpreter is: its ``sys.version`` and whether it can import ``agi_cluster``
(AGILAB's cluster package), asked once per interpreter and kept.

Asking starts the interpreter (``python -c …``, some tens of milliseconds), so the answer is kept in
this process and in ``interpreters.json`` in the tool's cache folder (:func:`.cache.cache_dir`),
keyed by the executable's path, its size and mtime (a venv's ``bin/python`` followed to the real
binary), ``PYTHONPATH``, and the mtimes of its ``site-packages`` folders (installing or removing a
package changes them). Any failure to read or write the cache is ignored. Standard library only.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import sys

from ..load.records import FrozenRecord

TYPE_CHECKING = False  # typing is not imported at run time: ~2 ms of every run's start-up
if TYPE_CHECKING:  # pragma: no cover
    from typing import Any

PROBE = (
    "import importlib.util, json, sys\n"
    "print(json.dumps({'version': sys.version,"
    " 'agi_cluster': importlib.util.find_spec('agi_cluster') is not None,"
    " 'sites': [p for p in sys.path if p.endswith(('site-packages', 'dist-packages'))]}))\n"
)
PROBE_TIMEOUT = 60.0
NAME = "interpreters.json"
FORMAT = 1


class Identity(FrozenRecord):
    """An interpreter as a step's fingerprint sees it (path and version) and what the choice of
    one needs to know (does it have agi_cluster). ``problem``: why it could not be asked."""

    _fields = ("path", "version", "agi_cluster", "problem")

    def __init__(
        self,
        path: str,
        version: str | None,
        agi_cluster: bool = False,
        problem: str | None = None,
    ) -> None:
        self.path = path
        self.version = version
        self.agi_cluster = agi_cluster
        self.problem = problem

    @property
    def short_version(self) -> str:
        return (self.version or "?").split()[0]

    def component(self) -> dict[str, Any]:
        """The fingerprint component: path and version (or why it has none)."""
        if self.version is None:
            return {"path": self.path, "problem": self.problem or "unknown"}
        return {"path": self.path, "version": self.version}


@functools.cache
def own() -> Identity:
    """agilab-run's own interpreter (nothing to ask; once per process: a lab asks it per step)."""
    return Identity(canonical(sys.executable), sys.version, _has("agi_cluster"))


def _has(module: str) -> bool:
    """Whether a top-level module can be imported here (found, not executed)."""
    import importlib.util

    return importlib.util.find_spec(module) is not None


@functools.lru_cache(maxsize=256)
def canonical(path: str) -> str:
    """One name for an executable whatever it was called by: ``bin/python`` for a ``bin/python3``
    that is the same file (``agilab-run``'s script and ``python -m`` then name one interpreter)."""
    full = os.path.abspath(path)
    real = os.path.realpath(full)
    for name in ("python", "python3"):
        candidate = os.path.join(os.path.dirname(full), name)
        if candidate == full or os.path.realpath(candidate) == real:
            return candidate
    return full


@functools.lru_cache(maxsize=256)
def same_environment(path: str, other: str = sys.executable) -> bool:
    """Whether two executables are one environment: the same file in the same ``bin`` folder (a venv's
    ``python`` and ``python3``, both links to one binary, are; another venv's link to it is not)."""
    a, b = os.path.abspath(path), os.path.abspath(other)
    if a == b:
        return True
    return os.path.realpath(os.path.dirname(a)) == os.path.realpath(os.path.dirname(b)) and (
        os.path.realpath(a) == os.path.realpath(b)
    )


_memo: dict[str, tuple[str, dict[str, int], Identity]] = {}


def identify(path: str) -> Identity:
    """The identity of the interpreter at ``path`` (asked, unless kept and still valid)."""
    if same_environment(path):
        return own()
    path = canonical(path)
    key = _key(path)
    if key is None:
        return Identity(path, None, problem=f"{path} does not exist")
    kept = _memo.get(path)
    if kept is not None and kept[0] == key and _sites_unchanged(kept[1]):
        return kept[2]
    stored = _load().get(path)
    if isinstance(stored, dict) and stored.get("key") == key and _sites_unchanged(stored.get("sites", {})):
        with contextlib.suppress(KeyError, TypeError):
            identity = Identity(path, str(stored["version"]), bool(stored["agi_cluster"]))
            _memo[path] = (key, dict(stored["sites"]), identity)
            return identity
    identity, sites = _ask(path)
    if identity.version is not None:
        _memo[path] = (key, sites, identity)
        _store(
            path,
            {"key": key, "sites": sites, "version": identity.version, "agi_cluster": identity.agi_cluster},
        )
    return identity


def _key(path: str) -> str | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return f"{st.st_size}:{st.st_mtime_ns}:{os.environ.get('PYTHONPATH', '')}"


def _mtime(folder: str) -> int:
    try:
        return os.stat(folder).st_mtime_ns
    except OSError:
        return -1


def _sites_unchanged(sites: Any) -> bool:
    return isinstance(sites, dict) and all(_mtime(folder) == m for folder, m in sites.items())


def _ask(path: str) -> tuple[Identity, dict[str, int]]:
    import subprocess

    try:
        done = subprocess.run(
            [path, "-c", PROBE],
            capture_output=True,
            text=True,
            timeout=PROBE_TIMEOUT,
            stdin=subprocess.DEVNULL,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return Identity(path, None, problem=f"{path} did not answer within {PROBE_TIMEOUT:.0f} s"), {}
    except OSError as exc:
        return Identity(path, None, problem=f"{path} cannot be started ({exc.strerror or exc})"), {}
    try:
        answer = json.loads(done.stdout.strip().splitlines()[-1])
        identity = Identity(path, str(answer["version"]), bool(answer["agi_cluster"]))
        sites = {str(folder): _mtime(str(folder)) for folder in answer.get("sites", [])}
    except (IndexError, ValueError, KeyError, TypeError):
        said = (done.stderr or done.stdout).strip().splitlines()
        detail = f": {said[-1]}" if said else ""
        return Identity(
            path, None, problem=f"{path} is not a working Python (status {done.returncode}{detail})"
        ), {}
    return identity, sites


def _file() -> str:
    from .cache import cache_dir

    return os.path.join(cache_dir(), NAME)


def _load() -> dict[str, Any]:
    try:
        with open(_file(), encoding="utf-8") as fh:
            data = json.load(fh)
        return data["interpreters"] if data.get("format") == FORMAT else {}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return {}


def _store(path: str, entry: dict[str, Any]) -> None:
    from .cache import enabled

    if not enabled():
        return
    known = _load()
    known[path] = entry
    target = _file()
    tmp = f"{target}.{os.getpid()}.tmp"
    try:
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(json.dumps({"format": FORMAT, "interpreters": known}))
        os.replace(tmp, target)
    except OSError:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
