"""Fingerprints: what a step's result depends on, as named components that can be compared.

* code — ``C`` normalised with ``ast`` (comments, blank lines, docstrings, formatting and quote
  style do not count), or, for ``function`` steps, that function's own source, normalised alike;
* ``R``, ``E``, the declared backend/mode, the resolved params;
* the settings values the step depends on;
* the content of every input (hashes cached by path, size and mtime_ns, so unchanged files are
  not re-read);
* the fingerprints of its upstream steps.

``D``, ``Q``, ``M``, ``NB_*``, key order and TOML comments are not part of it.
"""

from __future__ import annotations

import _thread
import functools
import json
import os
import stat
from collections.abc import Iterable, Mapping, MutableMapping
from pathlib import Path

from ..load.locate import function_source
from .cache import file_sha256, sha256_hex
from .statmany import tree_files

TYPE_CHECKING = False  # typing is not imported at run time: ~2 ms of every run's start-up
if TYPE_CHECKING:  # pragma: no cover
    import ast
    from typing import Any

    from ..load.expr import FuncRef

_KNOWN: dict[str, str] = {}  # code text -> its code_hash, from the spec cache (no parse, no ast)


def digest(value: Any) -> str:
    """A stable hash of a JSON-able value (keys sorted). The text of a large one is kept a while
    (:func:`canonical_text`): a step gathering 100,000 inputs has its components written to the
    state right after they were hashed, and encoding them again took as long as the hashing."""
    stringified: list[Any] = []  # what was not JSON data (turned into text)

    def as_text(value: Any) -> str:
        stringified.append(value)
        return str(value)

    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=as_text)
    fingerprint = sha256_hex(text.encode("utf-8", "surrogatepass"))
    if len(text) >= KEEP_TEXT and not stringified and text.isascii():
        with _texts_lock:
            _texts.pop(fingerprint, None)
            _texts[fingerprint] = (value, text)
            while len(_texts) > KEPT_TEXTS:
                del _texts[next(iter(_texts))]  # the oldest
    return fingerprint


KEEP_TEXT = 1 << 18  # the digest text of a value this long (256 KiB) or longer is kept ...
KEPT_TEXTS = 4  # ... for the last few such values
_texts: dict[str, tuple[Any, str]] = {}  # fingerprint -> (the value, its digest text)
_texts_lock = _thread.allocate_lock()  # (threading's own import is not on every path)


def canonical_text(fingerprint: str, value: Any) -> str | None:
    """The JSON text :func:`digest` hashed into ``fingerprint`` when it was this very ``value``
    (the same object) and was long (keys sorted, no spaces, ASCII only, nothing stringified):
    the same data as ``json.dumps(value)``; else None."""
    kept = _texts.get(fingerprint)
    return kept[1] if kept is not None and kept[0] is value else None


def strip_docstrings(tree: ast.AST) -> ast.AST:
    """``tree`` with the docstrings of its module, classes and functions dropped (in place)."""
    import ast

    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            body = node.body
            first = body[0] if body else None
            if (
                isinstance(first, ast.Expr)
                and isinstance(first.value, ast.Constant)
                and isinstance(first.value.value, str)
            ):
                node.body = body[1:] or [ast.Pass()]
    return tree


@functools.lru_cache(maxsize=4096)
def _normalized(code: str) -> str:
    import ast  # here: ~3 ms of every run's start-up when the spec cache knows every code's hash

    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError):
        # Not Python (yet): compare it as text, ignoring trailing spaces and blank lines.
        return "text:" + "\n".join(line.rstrip() for line in code.strip().splitlines() if line.strip())
    return ast.dump(strip_docstrings(tree), annotate_fields=False, include_attributes=False)


def code_hash(code: str) -> str:
    """Hash of code with comments, blank lines, docstrings, formatting and quote style removed."""
    known = _KNOWN.get(code)
    if known is None:
        known = _KNOWN[code] = sha256_hex(_normalized(code).encode("utf-8", "surrogatepass"))
    return known


def know_code_hashes(hashes: Mapping[str, str]) -> None:
    """Take ``hashes`` (code text -> :func:`code_hash`, as a spec cache kept them) as known: a
    cached spec brings its steps' hashes, and judging them parses no code."""
    _KNOWN.update(hashes)


def function_hash(ref: FuncRef, base_dir: Path) -> str:
    """Hash of one function's own source (not the whole module), normalised like code_hash."""
    source_file = function_source(ref.module, ref.is_path, base_dir)
    if source_file is None:
        return f"missing:{ref}"
    if source_file.suffix != ".py":  # built in, or compiled: its file (if any) stands for its source
        return f"compiled:{ref}:" + (file_sha256(source_file) if source_file.is_file() else "builtin")
    import ast

    try:
        text = source_file.read_text(encoding="utf-8")
        tree = ast.parse(text)
    except (SyntaxError, UnicodeDecodeError, ValueError):
        return f"unreadable:{ref}:{file_sha256(source_file)}"
    except OSError as exc:
        return f"unreadable:{ref}:{type(exc).__name__}"
    for node in tree.body:
        if (
            isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
            and node.name == ref.function
        ):
            strip_docstrings(node)
            dumped = ast.dump(node, annotate_fields=False, include_attributes=False)
            return sha256_hex(dumped.encode("utf-8", "surrogatepass"))
    return f"undefined:{ref}:{file_sha256(source_file)}"


HASH_RATHER_THAN_READ = 1 << 20  # a file this small is hashed rather than read the cache for it


class FileHashes:
    """Content hashes of files, cached by (path, size, mtime_ns); folders hash their whole tree."""

    def __init__(self, cache: MutableMapping[str, list[Any]] | None = None) -> None:
        # a lazily read cache (plan.hashfile.HashCache) is shared as it is; a table is copied
        self.cache: MutableMapping[str, list[Any]] = (
            dict(cache or {}) if type(cache) in (dict, type(None)) else cache
        )  # type: ignore[arg-type]
        self.updated: set[str] = set()  # the entries added or changed
        self._assumed: Mapping[str, str] = {}  # size:mtime_ns of files looked at moments ago
        self._forgotten: set[str] = set()
        self._hints: dict[str, str] = {}  # the hash of an assumed file, as a fresh step's record has it

    @property
    def changed(self) -> bool:
        """Whether an entry was added or changed (the cache is to be saved)."""
        return bool(self.updated)

    def assume(self, signatures: Mapping[str, str], but: Iterable[str] = ()) -> None:
        """Take files' ``size:mtime_ns`` signatures as looked at moments ago (a stored judgment's
        lookup), ``but`` those found changed, instead of looking again, as ninja stats each file
        once per build. A file a step writes is :meth:`forget`-ten before it runs, and looked at
        afresh. ``signatures`` is kept as it is (not copied: the caller leaves it unchanged)."""
        self._assumed = signatures
        self._forgotten = set(but)

    def forget(self, path: str) -> None:
        if path in self._assumed:  # (a cold run assumes nothing: it keeps no set of 100,000 paths)
            self._forgotten.add(path)

    def hint(self, hashes: Mapping[str, str]) -> None:
        """Hashes of files (absolute paths) as the record of a step the stored judgment found fresh
        holds them: each is the hash of the file at the signature that judgment kept (it compared
        them), so while a file is assumed at that signature, it is its hash, and the cache need not
        be read for it. A step gathering 100,000 files is judged after one of them changed without
        reading the 26 MB cache."""
        self._hints.update(hashes)

    def carried(
        self, lab_dir: str, paths: Iterable[str], recorded: Mapping[str, Any]
    ) -> dict[str, str] | None:
        """The hashes of a step's inputs ``paths`` (relative to ``lab_dir``, or absolute), carried
        over from the record of a step the stored judgment found fresh (``recorded``: its inputs
        and their hashes): what :meth:`of` would answer after :meth:`hint` with that record, but
        with only the files looked at since the judgment (forgotten: changed, or written by this
        run) looked at again, and the rest copied in C. For a step gathering 100,000 inputs,
        judged after one of them changed: 0.09 s, where hinting and looking up each took
        0.25-0.35 s. None when the record does not hold exactly these paths or one of them is not
        assumed at the judgment's signature: then each is looked at (:meth:`of`)."""
        if not self._assumed or os.sep != "/":
            return None
        prefix = lab_dir if lab_dir.endswith("/") else lab_dir + "/"
        # os.path.join(lab_dir, p), as components() names each file, without a call per path
        keyed = {p if p.startswith("/") else prefix + p: p for p in paths}
        out = dict(recorded)
        if (
            len(keyed) != len(out)
            or out.keys() != set(keyed.values())
            or not self._assumed.keys() >= keyed.keys()
            or not all(type(h) is str for h in out.values())
        ):
            return None
        for key in self._forgotten.intersection(keyed):
            out[keyed[key]] = self.of(key)
        return out

    def signature(self, path: str) -> str | None:
        """``size:mtime_ns`` of ``path`` when the hash this run has for it was taken; None if none.
        A file assumed unchanged has the stored judgment's; one changed since, and not hashed in
        this run, none unless the cache is read already (it would only know an older one)."""
        if path not in self.updated:
            if path not in self._forgotten:
                assumed = self._assumed.get(path)
                if assumed is not None:
                    return assumed
            elif not getattr(self.cache, "loaded", True):
                return None
        entry = self.cache.get(path)
        return None if entry is None else f"{entry[0]}:{entry[1]}"

    def of(self, path: str | os.PathLike[str]) -> str:
        """``sha256`` hex of a file, a tree hash for a folder, or ``"missing"``."""
        key = os.fspath(path)
        assumed = self._assumed.get(key)
        if assumed is not None and key not in self._forgotten:
            hinted = self._hints.get(key)
            if hinted is not None:
                return hinted
            cached = self.cache.get(key)
            if cached and assumed == f"{cached[0]}:{cached[1]}":
                return str(cached[2])
        try:
            st = os.stat(key)
        except (FileNotFoundError, NotADirectoryError):
            return "missing"
        if stat.S_ISDIR(st.st_mode):
            return "tree:" + digest([[rel, self.of(full)] for rel, full in tree_files(key)])
        if (
            st.st_size > HASH_RATHER_THAN_READ
            or key not in self._forgotten
            or getattr(self.cache, "loaded", True)
        ):
            cached = self.cache.get(key)
            if cached and cached[0] == st.st_size and cached[1] == st.st_mtime_ns:
                return str(cached[2])
        # else a small file changed since the stored judgment, which the cache, still unread, would
        # hardly know at its new signature: hashing it is cheaper than reading the cache
        value = file_sha256(key)
        self.cache[key] = [st.st_size, st.st_mtime_ns, value]
        self.updated.add(key)
        return value
