"""What a stage's code spells about the files it reads and writes: the AST walk behind
:mod:`.infer` (which adds ``NB_ARTIFACT_REFERENCES``, declared keys and the lab's graph).

:func:`from_code` finds, with the line of ``C`` each path is written on: AGILAB's assignments
(``data_in = "…"`` …), ``AGI.run/AGI.install(data_in=…, data_out=…)``, ``open`` by mode,
``Path(…).read_*/write_*``, pandas / dask / pyarrow ``read_*`` and ``to_*``, ``write_table(t, p)``,
``savefig(p)``. A path counts only when the code spells it (a literal, an f-string without holes,
``Path("a") / "b"``, ``os.path.join("a", "b")``, or a name bound once to one of those). Never runs code.
"""

from __future__ import annotations

import ast
import functools
import posixpath
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from .graph import normalize_artifact

Direction = Literal["input", "output"]

INPUT_NAMES = frozenset({"data_in", "input_path", "source_path"})
OUTPUT_NAMES = frozenset({"data_out", "output_path", "artifact_path", "model_path"})
AGI_CALLS = frozenset({"AGI.run", "AGI.install"})
READERS = frozenset(  # pandas, dask.dataframe, pyarrow (csv, json, parquet, feather, orc), polars
    {
        "read_csv",
        "read_parquet",
        "read_json",
        "read_excel",
        "read_table",
        "read_feather",
        "read_orc",
        "read_pickle",
        "read_hdf",
        "read_fwf",
        "read_xml",
        "read_stata",
        "read_sas",
        "read_spss",
    }
)
READ_KEYWORDS = ("filepath_or_buffer", "path", "path_or_buf", "io", "source", "urlpath", "file")
WRITERS = frozenset(  # a frame's own writers: df.to_csv(path)
    {
        "to_csv",
        "to_parquet",
        "to_json",
        "to_excel",
        "to_feather",
        "to_orc",
        "to_pickle",
        "to_hdf",
        "to_xml",
        "to_stata",
        "to_html",
    }
)
WRITE_KEYWORDS = ("path_or_buf", "path", "excel_writer", "buf", "fname")
TABLE_WRITERS = frozenset({"write_table", "write_csv", "write_feather", "write_to_dataset", "write_dataset"})
TABLE_KEYWORDS = ("where", "output_file", "dest", "root_path", "base_dir")
PATH_TYPES = frozenset({"Path", "PurePath", "PosixPath", "PurePosixPath"})


@dataclass(frozen=True, slots=True)
class Artifact:
    """One inferred artifact: its direction, its path (normalised), where it was found (``C line 4``
    or ``NB_ARTIFACT_REFERENCES``) and how (``pd.read_csv``, ``data_in = …``, ``open(…, 'w')``)."""

    direction: Direction
    path: str
    origin: str
    how: str
    line: int | None = None  # the line of C the path is written on

    def as_tuple(self) -> tuple[str, str, str, str]:
        return (self.direction, self.path, self.origin, self.how)

    def to_json(self) -> dict[str, Any]:
        return {
            "direction": self.direction,
            "path": self.path,
            "origin": self.origin,
            "how": self.how,
            "line": self.line,
        }


# -- the code --------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=1024)
def from_code(code: str) -> tuple[Artifact, ...]:
    """Every artifact the code spells, in the order of its lines; an input it also writes is an
    output only. Code that does not parse gives none (``check`` reports it). Kept per code text: a
    command asks twice (its check, then its spec), and labs repeat snippets."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # SyntaxWarning for odd escapes: not ours to print
            tree = ast.parse(code)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return ()
    walker = _Walker(tree)
    try:
        walker.walk(tree)
    except RecursionError:
        return ()
    found = sorted(walker.found, key=lambda f: (f[2] or 0, f[0] == "output"))
    outputs = {path for direction, path, _line, _how in found if direction == "output"}
    out: list[Artifact] = []
    seen: set[tuple[str, str]] = set()
    for direction, path, line, how in found:
        if (direction, path) in seen or (direction == "input" and path in outputs):
            continue
        seen.add((direction, path))
        out.append(Artifact(direction, path, f"C line {line}", how, line))
    return tuple(out)


def clean(text: str) -> str | None:
    """A path as artifacts are spelled, or None for what is not a file path of the lab's."""
    text = text.strip()
    if not text or "://" in text or text.startswith("~") or "${" in text or text == "-":
        return None
    if any(ch in text for ch in "*?[") or "\n" in text or "\x00" in text:
        return None  # a glob (or not a path at all): not guessed
    norm = normalize_artifact(text)
    return None if norm in (".", "/") else norm


def _dotted(node: ast.AST) -> str:
    """A callee's dotted name as written (``pd.read_csv``); "" unless it is all names (``f().x``)."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        prefix = _dotted(node.value)
        return f"{prefix}.{node.attr}" if prefix else ""
    return ""


class _Walker:
    """Finds (direction, path, line, how) in a parsed module."""

    def __init__(self, tree: ast.AST) -> None:
        self.found: list[tuple[str, str, int | None, str]] = []
        self.bound = _literal_bindings(tree)

    def walk(self, tree: ast.AST) -> None:
        for node in ast.walk(tree):
            if isinstance(node, (ast.Assign, ast.AnnAssign)):
                self._assignment(node)
            elif isinstance(node, ast.Call):
                self._call(node)

    def _add(self, direction: str, node: ast.AST | None, how: str) -> None:
        if node is None:
            return
        value = self.literal(node, 0)
        if value is None:
            return
        path = clean(value[0])
        if path is not None:
            self.found.append((direction, path, value[1], how))

    def _assignment(self, node: ast.Assign | ast.AnnAssign) -> None:
        targets = node.targets if isinstance(node, ast.Assign) else [node.target]
        for target in targets:
            if isinstance(target, ast.Name) and node.value is not None:
                if target.id in INPUT_NAMES:
                    self._add("input", node.value, f"{target.id} = …")
                elif target.id in OUTPUT_NAMES:
                    self._add("output", node.value, f"{target.id} = …")

    def _call(self, node: ast.Call) -> None:
        callee = _dotted(node.func)
        attr = node.func.attr if isinstance(node.func, ast.Attribute) else callee
        shown = callee or f".{attr}"
        if callee in AGI_CALLS:
            for kw in node.keywords:
                if kw.arg in ("data_in", "data_out"):
                    direction = "input" if kw.arg == "data_in" else "output"
                    self._add(direction, kw.value, f"{callee}({kw.arg}=…)")
        elif callee in ("open", "io.open", "builtins.open"):
            self._open(_arg(node, 0, ("file",)), _arg(node, 1, ("mode",)), "open")
        elif isinstance(node.func, ast.Attribute) and self.literal(node.func.value, 0) is not None:
            receiver = node.func.value  # a literal path's own methods: Path("a.txt").read_text()
            if attr in ("read_text", "read_bytes"):
                self._add("input", receiver, f"Path.{attr}")
            elif attr in ("write_text", "write_bytes"):
                self._add("output", receiver, f"Path.{attr}")
            elif attr == "open":
                self._open(receiver, _arg(node, 0, ("mode",)), "Path.open")
        if attr in READERS:
            self._add("input", _arg(node, 0, READ_KEYWORDS), shown)
        elif attr in WRITERS:
            self._add("output", _arg(node, 0, WRITE_KEYWORDS), shown)
        elif attr in TABLE_WRITERS:
            self._add("output", _arg(node, 1, TABLE_KEYWORDS), shown)
        elif attr == "savefig":
            self._add("output", _arg(node, 0, ("fname",)), shown)

    def _open(self, path: ast.AST | None, mode_node: ast.AST | None, name: str) -> None:
        mode = ("r", None) if mode_node is None else self.literal(mode_node, 0)
        if mode is None:
            return  # a mode chosen at run time: not guessed
        writes = any(ch in mode[0] for ch in "wax+")
        self._add("output" if writes else "input", path, f"{name}(…, {mode[0]!r})")

    def literal(self, node: ast.AST, depth: int) -> tuple[str, int | None] | None:
        """The text a node always has, and the line it is written on; None when built at run time."""
        if depth > 20:
            return None
        line = getattr(node, "lineno", None)
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            return node.value, line
        if isinstance(node, ast.JoinedStr):  # an f-string without holes
            if all(isinstance(v, ast.Constant) and isinstance(v.value, str) for v in node.values):
                return "".join(v.value for v in node.values), line  # type: ignore[attr-defined]
            return None
        if isinstance(node, ast.Name):
            bound = self.bound.get(node.id)
            return self.literal(bound, depth + 1) if bound is not None else None
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div):  # Path("a") / "b"
            left, right = self.literal(node.left, depth + 1), self.literal(node.right, depth + 1)
            if left is None or right is None or not _is_path_expr(node.left, self.bound):
                return None
            return posixpath.join(left[0], right[0]), left[1]
        if isinstance(node, ast.Call) and not node.keywords:
            callee = _dotted(node.func)
            if callee.split(".")[-1] in PATH_TYPES or callee in ("os.path.join", "posixpath.join"):
                parts = [self.literal(a, depth + 1) for a in node.args]
                texts = [p for p in parts if p is not None]
                if not texts or len(texts) != len(parts):
                    return None
                return posixpath.join(*(text for text, _ in texts)), texts[0][1]
        return None


def _is_path_expr(node: ast.AST, bound: dict[str, ast.AST]) -> bool:
    """Whether ``node / …`` joins paths (``str / str`` is a TypeError, not a path)."""
    while isinstance(node, ast.Name) and node.id in bound:
        node = bound[node.id]
    if isinstance(node, ast.BinOp):
        return _is_path_expr(node.left, bound)
    return isinstance(node, ast.Call) and _dotted(node.func).split(".")[-1] in PATH_TYPES


def _arg(node: ast.Call, position: int, keywords: Sequence[str]) -> ast.AST | None:
    if len(node.args) > position and not any(isinstance(a, ast.Starred) for a in node.args[: position + 1]):
        return node.args[position]
    for kw in node.keywords:
        if kw.arg in keywords:
            return kw.value
    return None


def _literal_bindings(tree: ast.AST) -> dict[str, ast.AST]:
    """Names bound exactly once in the whole code, by a plain ``name = value``: their values."""
    counts: dict[str, int] = {}
    values: dict[str, ast.AST] = {}

    def bump(name: str, n: int = 1) -> None:
        counts[name] = counts.get(name, 0) + n

    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and not isinstance(node.ctx, ast.Load):
            bump(node.id)  # stores and dels anywhere: assignments, for targets, with … as, :=
        elif isinstance(node, ast.arg):
            bump(node.arg)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            bump(node.name)
        elif isinstance(node, ast.alias):
            bump((node.asname or node.name).split(".")[0])
        elif isinstance(node, (ast.Global, ast.Nonlocal)):
            for name in node.names:
                bump(name, 2)
        elif isinstance(node, (ast.ExceptHandler, ast.MatchAs, ast.MatchStar)) and node.name:
            bump(node.name)  # except … as name, case … as name / *name
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            values.setdefault(node.targets[0].id, node.value)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value:
            values.setdefault(node.target.id, node.value)
    return {name: value for name, value in values.items() if counts.get(name) == 1}
