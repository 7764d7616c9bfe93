"""The step graph: an immutable value built from a lab; filters return new graphs.

Edges come from explicit deps, from artifacts (a stage consuming a path another produces), from
``${steps.<id>.outputs[N]}`` references, and from AGILAB's ``df`` hand-over (a step reading ``df``
after the df step whose saved frame it reads: :mod:`.dataframe`). A module whose stages declare no dependency at all
runs in sequence order (``__sequence`` if saved, else file order): each stage depends on the one
before it.
"""

from __future__ import annotations

import graphlib
import itertools
import os
import posixpath
import stat
from collections.abc import Iterable, Mapping

from ..load.records import FrozenRecord

TYPE_CHECKING = False  # typing is not imported at run time: ~2 ms of every run's start-up
if TYPE_CHECKING:  # pragma: no cover - the graph builds from a model or from a plain spec
    from typing import Any, Literal

    EdgeKind = Literal["deps", "artifact", "reference", "sequence", "dataframe"]

    from ..load.model import Lab
    from .spec import LabSpec


class Edge(FrozenRecord):
    _fields = ("upstream", "downstream", "kind", "detail")

    def __init__(
        self,
        upstream: str,
        downstream: str,
        kind: EdgeKind,
        detail: str = "",  # the artifact path, for artifact edges
    ) -> None:
        self.upstream = upstream
        self.downstream = downstream
        self.kind = kind
        self.detail = detail


_NONE: frozenset[str] = frozenset()


def _frozen(ids: Iterable[str], links: dict[str, set[str]]) -> dict[str, frozenset[str]]:
    """Each id's linked steps, frozen: one empty set shared by the steps without any, and one set
    for each step that is the only link of others (the steps gathered by one step). At 100,000
    steps, 0.26 s of a run from the stored spec was spent making a set per step and direction."""
    out = dict.fromkeys(ids, _NONE)
    alone: dict[str, frozenset[str]] = {}
    for sid, linked in links.items():
        if len(linked) == 1:
            (only,) = linked
            shared = alone.get(only)
            if shared is None:
                shared = alone[only] = frozenset(linked)
            out[sid] = shared
        else:
            out[sid] = frozenset(linked)
    return out


def dataframe_edges(stages: Iterable[Any]) -> list[Edge]:
    """A df step that reads ``df`` runs after the df step whose saved frame it reads."""
    from .dataframe import FRAME_FILE, frame_links

    links = frame_links(stages)
    return [Edge(link.source, sid, "dataframe", FRAME_FILE) for sid, link in links.items() if link.source]


def normalize_artifact(path: str) -> str:
    """One spelling per artifact path, so ``./a/b.csv`` and ``a//b.csv`` meet."""
    if (  # most paths are written in that spelling already: told without normpath's work
        path
        and path[-1] != "/"
        and "//" not in path
        and "./" not in path
        and "\\" not in path
        and not path.endswith(("/.", "/.."))
    ):
        return path
    return posixpath.normpath(path.replace("\\", "/"))


def escapes(path: str) -> bool:
    """Whether a path written relative to a folder leads out of it: absolute, ``~``, or climbing
    above it with ``..`` (judged on the text, as written: a symlink the user made is theirs)."""
    norm = normalize_artifact(path)
    return norm.startswith(("/", "~", "../")) or norm == ".." or norm[1:3] == ":/"


# The files a step or a contract may never write over, beside the lab (whatever allow_outside says).
PROTECTED_NAMES = ("lab_steps.toml", "lab_stages.toml", "app_settings.toml", "parallel_stage.toml")
STATE_FOLDER = ".agilab"


def _real_below(root: str, path: str, seen: dict[str, Any] | None = None) -> str:
    """``os.path.realpath(os.path.join(root, path))`` for a ``root`` that is a real path already:
    only the components of ``path`` are looked at (realpath looks at every component of the
    whole path, the lab folder's own included, for each output of each step). ``seen``: what the
    folders above ``path`` turned out to be, kept across calls ("d": a real folder, "-": not
    there, "l": a symlink), so that 10,000 outputs in one folder look at that folder once — and,
    past :data:`LIST_AFTER` outputs in one folder, which of its entries are symlinks (one listing
    instead of an ``lstat`` per output)."""
    parts = path.split(os.sep)
    if os.path.isabs(path) or ".." in parts or os.altsep:
        return os.path.realpath(os.path.join(root, path))
    parts = [p for p in parts if p and p != "."]
    current = root
    last = len(parts) - 1
    for n, part in enumerate(parts):
        folder = current
        current = current + part if current.endswith(os.sep) else current + os.sep + part
        if seen is None:
            kind = _kind(current)
        elif n < last:
            kind = seen.get(current)
            if kind is None:
                kind = seen[current] = _kind(current)
        else:
            kind = _last_kind(folder, part, current, seen)
        if kind == "-":
            return os.path.join(current, *parts[n + 1 :])
        if kind == "l":
            return os.path.realpath(os.path.join(root, path))
    return current


LIST_AFTER = 64  # outputs looked at in one folder before its listing is read instead


def _kind(path: str) -> str:
    try:
        return "l" if stat.S_ISLNK(os.lstat(path).st_mode) else "d"
    except OSError:  # not there (yet): realpath leaves the rest as it is written
        return "-"


def _last_kind(folder: str, name: str, path: str, seen: dict[str, Any]) -> str:
    """What the last component of an output is ("l" or not), through ``seen``'s listing of its
    folder (kept under ``folder + "\\0"``: no path holds NUL) once the folder has had enough
    outputs; before that, and when the folder cannot be listed, by ``lstat``."""
    links = seen.get(folder + "\0")
    if links is None:
        asked = seen[folder + "\0n"] = seen.get(folder + "\0n", 0) + 1
        if asked < LIST_AFTER:
            return _kind(path)
        try:
            with os.scandir(folder) as entries:  # d_type says what a symlink is: no stat each
                links = seen[folder + "\0"] = frozenset(e.name for e in entries if e.is_symlink())
        except OSError:
            links = seen[folder + "\0"] = False
    if links is False:
        return _kind(path)
    return "l" if name in links else "d"


def output_problem(
    path: str,
    base_dir: str | os.PathLike[str],
    *,
    allow_outside: bool,
    protected: Iterable[Any] = (),
) -> tuple[str, str] | None:
    """``(code, why)`` when an output written relative to ``base_dir`` may not be written, else None
    (:meth:`OutputRules.problem`), for a caller with one output to judge."""
    return OutputRules(base_dir, protected).problem(path, allow_outside=allow_outside)


class OutputRules:
    """Which outputs of a lab (or a contract) relative to ``base_dir`` may be written; built once
    for a caller that checks many (the lab check: 100,000 outputs).

    ``protected``: the files no output may be (the lab, its contracts, its settings), each
    resolved once, when first needed; ``folders``: what the folders above the outputs are, for a caller checking every output at
    one moment (the lab check), not one checking each just before its step writes it (a step may
    make a symlink)."""

    def __init__(
        self,
        base_dir: str | os.PathLike[str],
        protected: Iterable[Any] = (),
        *,
        folders: dict[str, Any] | None = None,
    ) -> None:
        self._protected = list(protected)
        self._protected_real: frozenset[str] | None = None  # resolved when first needed
        self._folders = folders
        self.root = root = os.path.realpath(base_dir)
        self._root_prefix = root.rstrip(os.sep) + os.sep
        state = os.path.join(root, STATE_FOLDER)
        self._state, self._state_prefix = state, state + os.sep
        export = os.path.join(state, "export")  # AGILAB's export area (df frames): not state
        self._export, self._export_prefix = export, export + os.sep

    def problem(self, path: str, *, allow_outside: bool) -> tuple[str, str] | None:
        """``(code, why)`` when the output may not be written, else None: empty or the folder
        itself (``output-invalid``); this tool's ``.agilab/`` state (not ``.agilab/export/``,
        where AGILAB's df steps save their frames), or one of the ``protected`` files or a file
        of a pipeline file's name beside the folder (``output-protected``, whatever
        ``allow_outside`` says); a path that leads out of the folder as written or once its
        symlinks are followed, without ``allow_outside`` (``output-outside-lab``). Reads the file
        system (symlinks) but writes nothing."""
        norm = normalize_artifact(path)
        if not path.strip() or norm == ".":
            return "output-invalid", "names the folder itself, not a file or folder in it"
        if "\0" in path:
            return "output-invalid", "holds a NUL character, which no file name can"
        root = self.root
        target = _real_below(root, os.path.expanduser(path) if path[0] == "~" else path, self._folders)
        if (target == self._state or target.startswith(self._state_prefix)) and not (
            target != self._export and target.startswith(self._export_prefix)
        ):
            return "output-protected", f"lies under {STATE_FOLDER}/, where this tool keeps its state"
        name = os.path.basename(target)
        if self._protected_real is None:
            self._protected_real = frozenset(os.path.realpath(file) for file in self._protected)
        if (name in PROTECTED_NAMES and os.path.dirname(target) == root) or target in self._protected_real:
            return "output-protected", f"is {name}, a pipeline file this tool reads"
        if not allow_outside:
            if norm.startswith(("/", "~", "../")) or norm == ".." or norm[1:3] == ":/":  # escapes()
                return "output-outside-lab", ""
            if not (target == root or target.startswith(self._root_prefix)):
                return "output-outside-lab", f" through a symlink (it leads to {target})"
        return None


class StepGraph(FrozenRecord):
    """Step ids in lab order and the edges between them."""

    _fields = ("ids", "edges")

    def __init__(self, ids: tuple[str, ...], edges: tuple[Edge, ...]) -> None:
        self.ids = ids
        self.edges = edges
        known = set(ids)
        up: dict[str, set[str]] = {}
        down: dict[str, set[str]] = {}
        for e in edges:
            a, b = e.upstream, e.downstream
            if a in known and b in known:
                linked = up.get(b)
                if linked is None:
                    up[b] = {a}
                else:
                    linked.add(a)
                linked = down.get(a)
                if linked is None:
                    down[a] = {b}
                else:
                    linked.add(b)
        self._up: Mapping[str, frozenset[str]] = _frozen(ids, up)
        self._down: Mapping[str, frozenset[str]] = _frozen(ids, down)

    # -- construction -----------------------------------------------------------------------
    @classmethod
    def from_lab(cls, lab: Lab | LabSpec, extra_edges: Iterable[Edge] = ()) -> StepGraph:
        ids = list(dict.fromkeys(s.id for s in lab.stages))
        known = set(ids)
        edges: list[Edge] = []
        producers: dict[str, str] = {}
        for s in lab.stages:
            for dep in s.stage.deps:
                if dep in known and dep != s.id:  # a self-dependency is reported by check, not a cycle
                    edges.append(Edge(dep, s.id, "deps"))
            for out in s.stage.produces:
                producers.setdefault(normalize_artifact(out), s.id)
        for s in lab.stages:
            for needed in s.stage.consumes:
                src = producers.get(normalize_artifact(needed))
                if src is not None and src != s.id:
                    edges.append(Edge(src, s.id, "artifact", needed))
        edges.extend(e for e in extra_edges if e.upstream in known and e.downstream in known)
        for module in lab.module_keys:
            members = [s for s in lab.stages if s.module == module]
            declared = any(m.stage.deps or m.stage.consumes for m in members)
            member_ids = list(dict.fromkeys(m.id for m in members))
            if not declared and not any(e.downstream in member_ids for e in edges):
                edges.extend(Edge(a, b, "sequence") for a, b in itertools.pairwise(member_ids))
        edges.extend(dataframe_edges(lab.stages))  # after: they order, they declare nothing
        unique = tuple(dict.fromkeys(edges))
        return cls(tuple(ids), unique)

    def to_json(self) -> dict[str, Any]:
        return {
            "ids": list(self.ids),
            "edges": [[e.upstream, e.downstream, e.kind, e.detail] for e in self.edges],
            "order": list(self.order()),  # a stored spec's run order is not worked out again
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> StepGraph:
        graph = cls(tuple(data["ids"]), tuple(Edge(*e) for e in data["edges"]))
        order = data.get("order")
        if order is not None:
            if len(order) != len(graph.ids) or set(order) != set(graph.ids):
                raise ValueError("the stored order is not of these steps")
            object.__setattr__(graph, "_order", tuple(order))
        return graph

    # -- queries ----------------------------------------------------------------------------
    def upstream(self, step: str) -> frozenset[str]:
        return self._up[step]

    def downstream(self, step: str) -> frozenset[str]:
        return self._down[step]

    def cycle(self) -> list[str] | None:
        """One dependency cycle as a path ``[a, b, c, a]``, or None. A sound graph is told by
        working out its run order (kept for later); graphlib finds the path of a cycle."""
        try:
            self.order()
        except graphlib.CycleError as exc:
            return list(exc.args[1])
        return None

    def _cycle_path(self) -> list[str] | None:
        sorter = graphlib.TopologicalSorter({i: self._up[i] for i in self.ids})
        try:
            sorter.prepare()
        except graphlib.CycleError as exc:
            # graphlib lists the cycle in run order: each node must run before the next
            return list(exc.args[1])
        return None

    def waves(self) -> list[tuple[str, ...]]:
        """Topological generations: each wave only needs steps of earlier waves (Kahn's algorithm,
        wave by wave; graphlib's sorter would also search the whole graph for a cycle first, ~20 ms
        of every run at 10,000 steps). A graph with a cycle (refused when the lab is checked)
        raises graphlib.CycleError, as the sorter did."""
        order = {sid: n for n, sid in enumerate(self.ids)}
        waiting = {sid: len(self._up[sid]) for sid in self.ids}
        ready = [sid for sid in self.ids if not waiting[sid]]  # in lab order
        out: list[tuple[str, ...]] = []
        placed = 0
        while ready:
            wave = tuple(sorted(ready, key=order.__getitem__))
            out.append(wave)
            placed += len(wave)
            ready = []
            for sid in wave:
                for nxt in self._down[sid]:
                    waiting[nxt] -= 1
                    if not waiting[nxt]:
                        ready.append(nxt)
        if placed < len(self.ids):
            raise graphlib.CycleError("nodes are in a cycle", self._cycle_path())
        return out

    def order(self) -> tuple[str, ...]:
        """A topological order (wave by wave, lab order within a wave); computed once."""
        cached = self.__dict__.get("_order")
        if cached is None:
            cached = tuple(i for wave in self.waves() for i in wave)
            object.__setattr__(self, "_order", cached)
        return cached

    def descendants(self, step: str) -> frozenset[str]:
        seen: set[str] = set()
        stack = [step]
        while stack:
            for nxt in self._down[stack.pop()]:
                if nxt not in seen:
                    seen.add(nxt)
                    stack.append(nxt)
        return frozenset(seen)

    def ancestors(self, step: str) -> frozenset[str]:
        seen: set[str] = set()
        stack = [step]
        while stack:
            for nxt in self._up[stack.pop()]:
                if nxt not in seen:
                    seen.add(nxt)
                    stack.append(nxt)
        return frozenset(seen)

    # -- filters: each returns a new graph ----------------------------------------------------
    def subgraph(self, keep: Iterable[str]) -> StepGraph:
        kept = set(keep)
        unknown = kept - set(self.ids)
        if unknown:
            raise KeyError(", ".join(sorted(unknown)))
        return StepGraph(
            tuple(i for i in self.ids if i in kept),
            tuple(e for e in self.edges if e.upstream in kept and e.downstream in kept),
        )

    def only(self, *steps: str) -> StepGraph:
        return self.subgraph(steps)

    def from_step(self, step: str) -> StepGraph:
        """The step and everything downstream of it (``--from``)."""
        return self.subgraph({step} | self.descendants(step))

    def downstream_of(self, step: str) -> StepGraph:
        return self.subgraph(self.descendants(step))
