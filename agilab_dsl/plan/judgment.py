"""The judgment cache: ``status`` (and a run with nothing to do) answered without loading the models.

Judging a lab needs pydantic and the models, whose import alone costs more than the rest of a
no-op ``status``. After a full judgment, the answer is kept in ``.agilab/judgment.json`` with
what it depended on:

* the tool itself and the call (command, ``--settings``, ``--profile``, ``--only``, ``--from``,
  ``sys.path``);
* every file the judgment read or looked for — the lab, the settings candidates, function sources,
  inputs, outputs, parallel contracts, ``state.json`` and the journal — by size and mtime_ns
  (the signature the input-hash cache already trusts); folders by the same of everything in them;
* the values of the environment variables the lab's ``${env.…}`` holes read.

The answer is used only while every one of those is unchanged, but for the files that belong to
steps: when only they changed, :func:`lookup_known` names them and the steps that read them (kept
apart in ``judgment-graph.json``, :class:`StoredGraph`), and a file only touched — its content the
hash cache's for the signature judged — is no change at all. A stored judgment whose steps are
all fresh also answers a run (nothing to do), unless a selected step has a ``when`` condition,
which a run evaluates and ``status`` does not. This module imports only the standard library, and
of it not ``typing`` or ``hashlib`` unless needed: ``status`` from here pays for every module.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections import namedtuple

from .statmany import signature, signatures_of
from .storedgraph import GRAPH, StoredGraph, graph_json

TYPE_CHECKING = False  # typing itself is not imported: `status` from this cache pays for every module
if TYPE_CHECKING:  # pragma: no cover
    from collections.abc import Iterable, Mapping
    from typing import Any

FORMAT = 6  # 2: each status keeps its upstream steps; 3: they and the readers in GRAPH;
# 4: the statuses as columns (:func:`_columns`); 5: the files' signatures as columns (:func:`_write`);
# 6: GRAPH's readers as columns (:meth:`StoredGraph.readers`)
NAME = "judgment.json"
HASHES = "hashes.json"  # the file-hash cache plan.state keeps beside it (plan.hashfile)
HASHES_NEW = "hashes-new.json"  # and the entries runs added since it was written (they win)
NEW = "judgment-new.json"  # what runs judged from the judgment changed since it was written
_NEW_KEY = "new"  # where a looked-up entry keeps that (never written into judgment.json)


class CachedStatus(namedtuple("CachedStatus", "id state reasons")):
    """A step's stored status: ``id``, ``state``, ``reasons`` (a tuple)."""

    __slots__ = ()

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "state": self.state, "reasons": list(self.reasons)}


def _file(lab_path: str) -> str:
    return os.path.join(os.path.dirname(os.path.abspath(lab_path)), ".agilab", NAME)


def _key(options: Mapping[str, Any]) -> str:
    """What the judgment is keyed by, as text: compared whole (a hash would cost hashlib's import)."""
    from .toolsig import tool_signature

    material = {"format": FORMAT, "tool": tool_signature(), "options": options, "sys_path": sys.path}
    return json.dumps(material, sort_keys=True)


class Known(namedtuple("Known", "statuses conditional changed affected entry now graph")):
    """A stored judgment that still holds except for some steps' own files (inputs, outputs,
    function sources, contracts): only the steps reading them (and what is downstream) need judging.

    ``statuses`` (list of :class:`CachedStatus`) and ``conditional`` (step ids) as stored;
    ``changed``: the step files whose signature changed (absolute paths); ``affected``: the steps
    that read them; ``entry``: the stored judgment, to update after a run; ``now``: the changed
    files' signatures when looked up; ``graph``: its :class:`StoredGraph`."""

    __slots__ = ()


def request_key(
    file: str,
    *,
    settings: str | None = None,
    profile: str | None = None,
    only: Iterable[str] = (),
    from_step: str | None = None,
    all_stages: bool = False,
    dataframe: str | None = None,
    export_dir: str | None = None,
    interpreters: Mapping[str, Any] | None = None,
    infer: bool = True,
) -> dict[str, Any]:
    """What a call on a lab is keyed by (the options :func:`lookup_known` and :func:`store` take)."""
    return {
        "file": os.path.abspath(file),
        "settings": settings,
        "profile": profile,
        "only": sorted(only),
        "from": from_step,
        "all": all_stages,
        "dataframe": dataframe and os.path.abspath(dataframe),
        "export_dir": export_dir and os.path.abspath(export_dir),
        "interpreters": dict(interpreters) if interpreters is not None else None,
        "infer": infer,
    }


def lookup_known(lab_path: str, options: Mapping[str, Any]) -> Known | None:
    """The stored judgment and what changed since, when only files that belong to steps changed
    (a change to the lab, the settings, the state, an interpreter or the environment: None)."""
    from .longlived import long_lived

    with long_lived():
        return _lookup_known(lab_path, options)


def _lookup_known(lab_path: str, options: Mapping[str, Any]) -> Known | None:
    try:
        with open(_file(lab_path), encoding="utf-8") as fh:
            entry = json.load(fh)
        if entry["key"] != _key(options):
            return None
        paths, stored = entry["paths"], entry["signatures"]
        if type(paths) is not list or type(stored) is not list or len(paths) != len(stored):
            return None
        _merge_new(lab_path, entry)
        if any(os.environ.get(name) != value for name, value in entry["env"].items()):
            return None
        if "files" in entry:  # changed by _merge_new
            paths, stored = list(entry["files"]), list(entry["files"].values())
        now = {p: sig for p, sig, was in zip(paths, signatures_of(paths), stored, strict=True) if sig != was}
        graph = StoredGraph(os.path.join(os.path.dirname(_file(lab_path)), GRAPH), entry["token"])
        readers: dict[str, list[str]] = {}
        if now:
            readers = graph.readers(now) or {}
            if any(path not in readers for path in now):
                return None  # not only steps' own files changed (or what reads them is unrecorded)
            _same_content(lab_path, entry, now)
        affected = {sid for path in now for sid in readers[path]}
        return Known(
            _cached(entry["statuses"]), list(entry["conditional"]), set(now), affected, entry, now, graph
        )
    except (OSError, ValueError, KeyError, TypeError, AttributeError, RecursionError):
        return None  # damaged or foreign: judged afresh, and the next full judgment replaces it


def _same_content(lab_path: str, entry: dict[str, Any], now: dict[str, str]) -> None:
    """Drop from ``now`` the files only touched: same size, a new mtime, and the content they had
    when judged (the hash cache's entry for the stored signature, against a hash taken now). The
    judgment holds for them as it is; it and the hash cache are kept with their new signatures, so
    the next call does not hash them again."""
    hashes_path = os.path.join(os.path.dirname(_file(lab_path)), HASHES)
    files = files_of(entry)
    touched = [p for p, sig in now.items() if _same_size(files[p], sig)]
    if not touched:
        return
    from .hashfile import entries_of, to_columns
    from .safe_read import read_json

    shared, why = read_json(hashes_path, share=True)  # shared with the state's load that follows
    hashes = entries_of(shared)[0]  # a new table: the shared value stays as read
    if why is not None or not hashes:
        return
    added, why = read_json(os.path.join(os.path.dirname(hashes_path), HASHES_NEW), share=True)
    if why is None:
        hashes.update(entries_of(added)[0])  # what later runs added (plan.state keeps it apart)
    from .cache import file_sha256  # as plan.fingerprint hashes a file (hashlib only if large)

    same = []
    for path in touched:
        size, mtime = (int(part) for part in files[path].split(":"))
        cached = hashes.get(path)
        if not (isinstance(cached, list) and len(cached) == 3 and cached[:2] == [size, mtime]):
            continue  # no hash of the content as judged
        try:
            digest = file_sha256(path)
        except OSError:
            continue
        if digest == cached[2] and signature(path) == now[path]:  # and not changed while hashed
            new_size, new_mtime = (int(part) for part in now[path].split(":"))
            hashes[path] = [new_size, new_mtime, digest]
            same.append(path)
    if not same:
        return
    for path in same:
        files[path] = now.pop(path)
    _write_json(hashes_path, to_columns(hashes), sort_keys=True)  # as plan.state writes it: every entry
    with contextlib.suppress(OSError):
        os.unlink(os.path.join(os.path.dirname(hashes_path), HASHES_NEW))  # in hashes.json now
    _write(lab_path, entry)


def _same_size(before: str, after: str) -> bool:
    """Whether two file signatures (``size:mtime_ns``) differ in their mtime only."""
    old, _, old_time = before.partition(":")
    new, _, new_time = after.partition(":")
    return old == new and old.isdigit() and old_time.isdigit() and new_time.isdigit()


def store(
    lab_path: str,
    options: Mapping[str, Any],
    files: Iterable[str],
    env_names: Iterable[str],
    statuses: Iterable[Any],
    conditional: Iterable[str],
    before: Mapping[str, str] | None = None,
    readers: Mapping[str, Iterable[str]] | None = None,
    upstream: Mapping[str, Iterable[str]] | None = None,
) -> None:
    """Keep a full judgment. ``before`` holds the signatures taken when the judgment started: if a
    file changed while it was computed, nothing is stored. ``readers``: the steps each step file
    (input, output, function source, contract) belongs to; a later change to only such files
    re-judges only those steps (:func:`lookup_known`). ``upstream``: each step's upstream steps
    (kept so that the fast answer's AGILAB states are the full judgment's)."""
    now = signatures(files)
    if before is not None and any(now.get(p) != sig for p, sig in before.items()):
        return
    token = os.urandom(8).hex()
    graph = graph_json(token, readers or {}, upstream or {})
    _write_json(os.path.join(os.path.dirname(_file(lab_path)), GRAPH), graph)  # first: see StoredGraph
    entry = {
        "key": _key(options),
        "token": token,
        "env": {name: os.environ.get(name) for name in sorted(set(env_names))},
        "files": now,
        "statuses": _columns(statuses),
        "conditional": sorted(conditional),
    }
    _write(lab_path, entry)


def update(
    lab_path: str,
    known: Known,
    signed: Mapping[str, str],
    statuses: Iterable[Any],
) -> None:
    """Keep a judgment made from ``known``: the files in ``signed`` with their new signatures (the
    others keep theirs: a file changed meanwhile is still seen as changed) and the new statuses of
    the steps judged again (only the steps: the files, key and graph are the stored ones)."""
    entry = dict(known.entry)
    files = dict(files_of(entry))
    moved = {p: sig for p, sig in signed.items() if p in files and files[p] != sig}
    files.update(moved)
    entry["files"] = files
    new = {s.id: s for s in statuses}
    # the graph is the lab's: unchanged when only files changed
    entry["statuses"] = _restated(
        entry["statuses"], {sid: (s.state, list(s.reasons)) for sid, s in new.items()}
    )
    # what changed since judgment.json was written, apart while it is small (an eighth of the files)
    earlier = entry.get(_NEW_KEY) or {"files": {}, "statuses": {}}
    apart = {
        "token": entry["token"],
        "files": {**earlier["files"], **moved},
        "statuses": {
            **earlier["statuses"],
            **{sid: {"state": s.state, "reasons": list(s.reasons)} for sid, s in new.items()},
        },
    }
    if len(apart["files"]) + len(apart["statuses"]) <= max(64, len(files) // 8) and os.path.isfile(
        _file(lab_path)
    ):
        _write_json(os.path.join(os.path.dirname(_file(lab_path)), NEW), apart)
        return
    _write(lab_path, entry)


def files_of(entry: dict[str, Any]) -> dict[str, str]:
    """A stored judgment's files: path → signature. It keeps them as two lists, ``paths`` and
    ``signatures``, which parse in a third of the time of a table (0.07 against 0.23 s for the
    200,000 files of 100,000 steps) and are compared as they are: the table is built only when
    asked for (a run, a judgment kept again), not for a no-op ``status``."""
    files = entry.get("files")
    if files is None:
        files = entry["files"] = dict(zip(entry.pop("paths"), entry.pop("signatures"), strict=True))
    return files


def _write(lab_path: str, entry: dict[str, Any]) -> None:
    """Write a judgment whole (what runs changed since, kept apart until now, included)."""
    files = files_of(entry)
    kept = {k: v for k, v in entry.items() if k not in (_NEW_KEY, "files")}
    _write_json(_file(lab_path), {**kept, "paths": list(files), "signatures": list(files.values())})
    with contextlib.suppress(OSError):
        os.unlink(os.path.join(os.path.dirname(_file(lab_path)), NEW))


def _merge_new(lab_path: str, entry: dict[str, Any]) -> None:
    """Apply to ``entry`` what runs judged from it changed since it was written (judgment-new.json,
    when its token is the entry's: one left by an older judgment is ignored); keep it there for
    :func:`update`."""
    try:
        with open(os.path.join(os.path.dirname(_file(lab_path)), NEW), encoding="utf-8") as fh:
            apart = json.load(fh)
    except (OSError, ValueError):
        return
    if not (
        isinstance(apart, dict)
        and apart.get("token") == entry["token"]
        and isinstance(apart.get("files"), dict)
        and isinstance(apart.get("statuses"), dict)
        and all(isinstance(v, str) for v in apart["files"].values())
        and all(
            isinstance(v, dict) and isinstance(v.get("state"), str) and isinstance(v.get("reasons"), list)
            for v in apart["statuses"].values()
        )
    ):
        return
    if apart["files"]:
        files_of(entry).update(apart["files"])
    statuses = apart["statuses"]
    entry["statuses"] = _restated(
        entry["statuses"], {sid: (s["state"], s["reasons"]) for sid, s in statuses.items()}
    )
    entry[_NEW_KEY] = {"files": apart["files"], "statuses": statuses}


def _columns(statuses: Iterable[Any]) -> dict[str, Any]:
    """Statuses as judgment.json keeps them: ``{"ids": […], "states": […], "reasons": {id: […]}}``,
    the reasons of the steps that have any. Two lists of strings parse ten times faster than a
    record per step (0.01 against 0.15 s at 100,000 steps), and every ``status`` parses them."""
    ids: list[str] = []
    states: list[str] = []
    reasons: dict[str, list[str]] = {}
    for s in statuses:
        ids.append(s.id)
        states.append(s.state)
        if s.reasons:
            reasons[s.id] = list(s.reasons)
    return {"ids": ids, "states": states, "reasons": reasons}


def _cached(columns: Mapping[str, Any]) -> list[CachedStatus]:
    """The statuses :func:`_columns` keeps, checked (a damaged file raises: judged afresh)."""
    ids, states, reasons = columns["ids"], columns["states"], columns["reasons"]
    if not (
        type(ids) is list
        and type(states) is list
        and len(ids) == len(states)
        and type(reasons) is dict
        and all(type(i) is str for i in ids)
        and all(type(s) is str for s in states)
        and all(type(r) is list and all(type(x) is str for x in r) for r in reasons.values())
    ):
        raise ValueError("damaged statuses")
    make, none = tuple.__new__, ()
    return [
        make(CachedStatus, (i, s, tuple(reasons[i]) if i in reasons else none))
        for i, s in zip(ids, states, strict=True)
    ]


def _restated(columns: Mapping[str, Any], new: Mapping[str, tuple[str, list[str]]]) -> dict[str, Any]:
    """``columns`` (:func:`_columns`) with the steps in ``new`` given a new state and reasons."""
    states = list(columns["states"])
    reasons = dict(columns["reasons"])
    if new:
        position = {sid: n for n, sid in enumerate(columns["ids"])}
        for sid, (state, why) in new.items():
            n = position.get(sid)
            if n is None:
                continue  # a step the stored judgment does not hold: nothing to restate
            states[n] = state
            if why:
                reasons[sid] = list(why)
            else:
                reasons.pop(sid, None)
    return {"ids": columns["ids"], "states": states, "reasons": reasons}


def _write_json(target: str, entry: Any, *, sort_keys: bool = False) -> None:
    """Replace ``target`` (a cache) atomically, or leave it as it was."""
    from .tempfiles import temp_path

    tmp = temp_path(target)
    try:
        os.makedirs(os.path.dirname(target), exist_ok=True)
        text = json.dumps(entry, sort_keys=sort_keys)  # json.dump would take the pure-Python encoder
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, target)
    except OSError:
        with contextlib.suppress(OSError):
            os.unlink(tmp)


def signatures(files: Iterable[str]) -> dict[str, str]:
    """``size:mtime_ns`` (or a folder's listing hash) of each path, by absolute path."""
    keys = list(dict.fromkeys(path if os.path.isabs(path) else os.path.abspath(path) for path in files))
    return dict(zip(keys, signatures_of(keys), strict=True))
