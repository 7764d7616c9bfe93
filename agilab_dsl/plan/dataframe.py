"""AGILAB's dataframe hand-over (``df``), planned: which steps use the name ``df``, whose saved
frame each one reads, and where each one's frame is saved.

AGILAB runs a ``runpy`` stage's code with ``df`` bound to the selected dataframe and, afterwards,
saves a non-empty ``df`` to ``lab_out.csv`` in the app's export folder (``~/export/<app>/lab_out.csv``,
``df.to_csv(index=False)``); that file is what the next stage's ``df`` is read from (it becomes
``df_file_in``). Generated ("safe action") stages are written against that contract:
``df = df.copy()`` ….

Here the same contract, made explicit so that staleness can follow it:

* a **df step** is a step with code, run by ``runpy`` or with ``R`` blank (never ``agi.*``: AGILAB
  runs those in a subprocess without ``df``), whose code uses the name ``df`` at module level
  (decided from its syntax tree, never by running it);
* it **reads** ``df`` when the code loads that name before binding it (``df = df.copy()`` reads;
  ``df = pd.read_csv(…)`` only binds). A reader's frame is the one saved by the df step before it
  in its module's order (the saved ``__sequence`` order); the first reader's is ``--dataframe``;
* every df step saves its frame to a file **of its own**, ``<export>/<step id>/lab_out.csv``
  (``<export>`` = ``.agilab/export`` beside the lab, or ``--export-dir``), which is its output for
  staleness and the next reader's input: the graph orders them (``dataframe`` edges). AGILAB
  overwrites one shared file instead, so two stages' frames cannot be told apart there.
"""

from __future__ import annotations

import ast
import functools
import os
import re
from collections.abc import Iterable, Mapping
from typing import Any

from ..load.records import FrozenRecord

FRAME_FILE = "lab_out.csv"  # AGILAB's DEFAULT_DF
EXPORT_DIR = os.path.join(".agilab", "export")

_MENTION = re.compile(r"\bdf\b")


class FrameUse(FrozenRecord):
    """How a step's code uses ``df``: ``reads`` when it loads the name before binding it."""

    _fields = ("reads",)

    def __init__(
        self,
        reads: bool,
    ) -> None:
        self.reads = reads


class FrameLink(FrozenRecord):
    """A df step's place in its module's chain: whether it reads ``df`` and, if so, the df step
    whose saved frame it reads (None: the first reader, which reads ``--dataframe``)."""

    _fields = ("reads", "source")

    def __init__(
        self,
        reads: bool,
        source: str | None = None,
    ) -> None:
        self.reads = reads
        self.source = source


class FramePaths(FrozenRecord):
    """Where a df step's frame comes from and goes: paths relative to the lab's folder when they
    lie inside it, else absolute. ``input`` is None when the step does not read ``df`` or has no
    frame to read (a first reader without ``--dataframe``: its ``df`` is None, as in AGILAB with
    no dataframe selected)."""

    _fields = ("reads", "input", "output", "source")

    def __init__(
        self,
        reads: bool,
        input: str | None,
        output: str,
        source: str | None = None,  # the df step whose frame ``input`` is, if any
    ) -> None:
        self.reads = reads
        self.input = input
        self.output = output
        self.source = source


def frame_use(code: str | None) -> FrameUse | None:
    """How ``code`` uses the name ``df`` at module level, or None when it does not."""
    if not code or "df" not in code or not _MENTION.search(code):
        return None  # most code never mentions it: no parse
    return _frame_use(code)


@functools.lru_cache(maxsize=1024)
def _frame_use(code: str) -> FrameUse | None:
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError):
        return None  # check reports it; the step will fail on it
    scan = _Scan()
    for statement in tree.body:
        scan.visit(statement, shadowed=False)
    return FrameUse(scan.read) if scan.used else None


def is_df_candidate(stage: Any) -> bool:
    """A step that AGILAB would run in-process with ``df`` (code, ``runpy`` or no ``R``)."""
    return (
        bool(stage.code) and not stage.function and not stage.stage and (stage.engine or "runpy") == "runpy"
    )


def frame_links(stages: Iterable[Any]) -> dict[str, FrameLink]:
    """Every df step's link, by step id. ``stages`` are placed stages (``.id``, ``.module``,
    ``.selected``, ``.stage``) in each module's order. A selected reader reads the frame of the
    selected df step before it (AGILAB runs only the saved selection); a step the selection leaves
    out (run with ``--all``) reads that of the df step before it, selected or not. A disabled step
    saves nothing and is passed over."""
    links: dict[str, FrameLink] = {}
    before: dict[str, list[Any]] = {}  # module -> its df steps so far
    for placed in stages:
        stage = placed.stage
        use = frame_use(stage.code) if is_df_candidate(stage) else None
        if use is None:
            continue
        earlier = before.setdefault(placed.module, [])
        source = None
        if use.reads:
            source = next(
                (p.id for p in reversed(earlier) if p.selected or not placed.selected),
                None,
            )
        links[placed.id] = FrameLink(use.reads, source)
        if stage.off is None:
            earlier.append(placed)
    return links


def frame_paths(
    links: Mapping[str, FrameLink],
    lab_dir: str,
    dataframe: str | None = None,
    export_dir: str | None = None,
) -> dict[str, FramePaths]:
    """Each df step's input and output paths. ``dataframe`` (``--dataframe``) and ``export_dir``
    (``--export-dir``) are absolute, or relative to ``lab_dir``."""
    root = os.path.join(lab_dir, export_dir) if export_dir else os.path.join(lab_dir, EXPORT_DIR)
    outputs = {sid: _lab_path(os.path.join(root, folder_name(sid), FRAME_FILE), lab_dir) for sid in links}
    first = _lab_path(os.path.join(lab_dir, dataframe), lab_dir) if dataframe else None
    out = {}
    for sid, link in links.items():
        source = outputs[link.source] if link.source is not None else first
        out[sid] = FramePaths(link.reads, source if link.reads else None, outputs[sid], link.source)
    return out


def folder_name(step_id: str) -> str:
    """A step id as one folder name (ids may hold ``/`` or ``:``)."""
    name = re.sub(r"[^A-Za-z0-9._-]", "_", step_id).strip(".")
    return name or "_"


def _lab_path(path: str, lab_dir: str) -> str:
    """``path`` relative to the lab's folder when inside it (posix separators), else absolute."""
    full = os.path.normpath(path)
    rel = os.path.relpath(full, lab_dir)
    if rel == os.pardir or rel.startswith(os.pardir + os.sep) or os.path.isabs(rel):
        return full
    return rel.replace(os.sep, "/")


# -- reading ``df`` off the syntax tree --------------------------------------------------------
_SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)
_COMPREHENSIONS = (ast.ListComp, ast.SetComp, ast.GeneratorExp, ast.DictComp)


class _Scan:
    """Walks module-level code in evaluation order, noting whether the module's ``df`` is used
    and whether it is loaded before it is bound. Code in a function body counts where the
    function is defined (it may run from there on), unless ``df`` is a local name of it."""

    def __init__(self) -> None:
        self.used = False
        self.read = False
        self.bound = False

    def name(self, ctx: ast.expr_context) -> None:
        self.used = True
        if isinstance(ctx, ast.Store):
            self.bound = True
        elif not self.bound:  # Load, Del
            self.read = True

    def visit(self, node: ast.AST, shadowed: bool) -> None:
        if isinstance(node, ast.Name):
            if node.id == "df" and not shadowed:
                self.name(node.ctx)
        elif isinstance(node, ast.Assign):
            self.visit(node.value, shadowed)
            for target in node.targets:
                self.visit(target, shadowed)
        elif isinstance(node, ast.AugAssign):
            if isinstance(node.target, ast.Name):
                self.visit(ast.Name(node.target.id, ast.Load()), shadowed)
            self.visit(node.target, shadowed)
            self.visit(node.value, shadowed)
        elif isinstance(node, ast.AnnAssign):
            self.visit(node.annotation, shadowed)
            if node.value is not None:
                self.visit(node.value, shadowed)
                self.visit(node.target, shadowed)
        elif isinstance(node, ast.NamedExpr):
            self.visit(node.value, shadowed)
            self.visit(node.target, shadowed)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            if any((a.asname or a.name.split(".")[0]) == "df" for a in node.names) and not shadowed:
                self.name(ast.Store())
        elif isinstance(node, ast.ExceptHandler):
            if node.type is not None:
                self.visit(node.type, shadowed)
            if node.name == "df" and not shadowed:
                self.name(ast.Store())
            for child in node.body:
                self.visit(child, shadowed)
        elif isinstance(node, _COMPREHENSIONS):
            self._comprehension(node, shadowed)
        elif isinstance(node, _SCOPES):
            self._scope(node, shadowed)
        else:
            for child in ast.iter_child_nodes(node):
                self.visit(child, shadowed)

    def _comprehension(self, node: Any, shadowed: bool) -> None:
        inner = shadowed or any(_binds_df(g.target) for g in node.generators)
        for n, generator in enumerate(node.generators):
            self.visit(generator.iter, shadowed if n == 0 else inner)  # the first runs outside
            for condition in generator.ifs:
                self.visit(condition, inner)
        for part in (node.key, node.value) if isinstance(node, ast.DictComp) else (node.elt,):
            self.visit(part, inner)

    def _scope(self, node: Any, shadowed: bool) -> None:
        # what is evaluated where it is defined: decorators, defaults, annotations, bases
        outside: list[ast.AST] = list(getattr(node, "decorator_list", []))
        if isinstance(node, ast.ClassDef):
            outside += [*node.bases, *(k.value for k in node.keywords)]
        else:
            args = node.args
            outside += [*args.defaults, *(d for d in args.kw_defaults if d is not None)]
        for part in outside:
            self.visit(part, shadowed)
        body = node.body if isinstance(node.body, list) else [node.body]
        local = _local_df(node)
        inner = False if local is None else shadowed or local  # None: `global df`, the module's
        for statement in body:
            self.visit(statement, inner)
        if getattr(node, "name", None) == "df" and not shadowed:
            self.name(ast.Store())


def _binds_df(target: ast.AST) -> bool:
    return any(isinstance(n, ast.Name) and n.id == "df" for n in ast.walk(target))


def _local_df(scope: Any) -> bool | None:
    """Whether ``df`` is a local name of a function (or class) body: a parameter, or bound in it
    outside nested scopes. None when the body declares it ``global``."""
    if not isinstance(scope, ast.ClassDef):
        args = scope.args
        params = [*args.posonlyargs, *args.args, *args.kwonlyargs, args.vararg, args.kwarg]
        if any(a is not None and a.arg == "df" for a in params):
            return True
    body = scope.body if isinstance(scope.body, list) else [scope.body]
    stack: list[ast.AST] = list(body)
    local = False
    while stack:
        node = stack.pop()
        if isinstance(node, ast.Global | ast.Nonlocal) and "df" in node.names:
            return None if isinstance(node, ast.Global) else True
        if isinstance(node, ast.Name) and node.id == "df" and not isinstance(node.ctx, ast.Load):
            local = True
        elif isinstance(node, ast.Import | ast.ImportFrom):
            local = local or any((a.asname or a.name.split(".")[0]) == "df" for a in node.names)
        elif isinstance(node, ast.ExceptHandler) and node.name == "df":
            local = True
        if isinstance(node, _SCOPES):
            local = local or getattr(node, "name", None) == "df"
            continue  # a nested scope's names are its own
        if isinstance(node, _COMPREHENSIONS):
            continue
        stack.extend(ast.iter_child_nodes(node))
    return local
