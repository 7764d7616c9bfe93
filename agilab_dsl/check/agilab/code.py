"""What AGILAB's validator reads in a stage's code (``workflow_validation._code_facts``), with where
each fact sits: the ``APP`` it names, the artifacts it consumes (``data_in``, ``input_path``,
``source_path`` assignments, ``AGI.run/AGI.install(data_in=…)``) and produces (``data_out``,
``output_path``, ``artifact_path``, ``AGI.*(data_out=…)``), its runtime role, its risky calls
(AGILAB's list: ``eval``, ``exec``, ``os.system``, ``subprocess.call/Popen/run``, by the dotted name
as written) and, when it does not parse, the syntax error.

Positions are indexes into the code as AGILAB parses it (the stage's ``C``, stripped); the caller adds
the stripped prefix back to place them in the TOML string. The code is parsed, never run.
"""

from __future__ import annotations

import ast
import warnings
from dataclasses import dataclass, field

ROLE_KEYS = ("NB_RUNTIME_ROLE", "AGILAB_RUNTIME_ROLE", "runtime_role", "role")
DANGEROUS_CALL_NAMES = {"eval", "exec", "os.system", "subprocess.call", "subprocess.Popen", "subprocess.run"}
CONSUMING_NAMES = {"data_in", "input_path", "source_path"}
PRODUCING_NAMES = {"data_out", "output_path", "artifact_path"}
AGI_CALLS = {"AGI.run", "AGI.install"}


@dataclass(frozen=True)
class Spot:
    """A stretch of the code: its start index and width in characters."""

    index: int
    width: int = 1


@dataclass
class CodeFacts:
    app: str = ""
    app_at: Spot | None = None
    role: str = ""
    consumes: list[tuple[str, Spot]] = field(default_factory=list)  # unique texts, first spot
    produces: list[tuple[str, Spot]] = field(default_factory=list)
    risky: list[tuple[str, Spot]] = field(default_factory=list)  # in AGILAB's (ast.walk) order
    syntax: tuple[str, Spot] | None = None  # (message, where) when the code does not parse


def code_facts(code: str) -> CodeFacts:
    facts = CodeFacts()
    if not code.strip():
        return facts
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # SyntaxWarning for odd escapes: not ours to print
            tree = ast.parse(code)
    except SyntaxError as exc:
        facts.syntax = (f"Stage code is not valid Python: {exc.msg}", error_spot(code, exc))
        return facts
    except (ValueError, RecursionError, MemoryError) as exc:  # AGILAB would crash here
        facts.syntax = (f"Stage code is not valid Python: {exc}", Spot(0))
        return facts
    lines = _Lines(code)
    consumes: list[tuple[str, Spot]] = []
    produces: list[tuple[str, Spot]] = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.Assign, ast.AnnAssign)):
            name, target, value = _assignment(node)
            if name == "APP":
                facts.app = expr_text(value)
                facts.app_at = lines.spot(target)
            elif name in CONSUMING_NAMES:
                consumes.append((expr_text(value), lines.spot(target)))
            elif name in PRODUCING_NAMES:
                produces.append((expr_text(value), lines.spot(target)))
            elif name in ROLE_KEYS:
                facts.role = expr_text(value).lower()
        elif isinstance(node, ast.Call):
            call = call_name(node)
            if call in DANGEROUS_CALL_NAMES:
                facts.risky.append((call, lines.spot(node.func)))
            if call not in AGI_CALLS:
                continue
            for keyword in node.keywords:
                if not keyword.arg:
                    continue
                text = expr_text(keyword.value)
                if keyword.arg == "data_in":
                    consumes.append((text, lines.spot(keyword)))
                elif keyword.arg == "data_out":
                    produces.append((text, lines.spot(keyword)))
                elif keyword.arg in ROLE_KEYS:
                    facts.role = text.lower()
    facts.consumes = unique_spots(consumes)
    facts.produces = unique_spots(produces)
    return facts


def unique_spots(values: list[tuple[str, Spot]]) -> list[tuple[str, Spot]]:
    """AGILAB's ``_unique_texts``: stripped, non-empty, first occurrence kept."""
    seen: set[str] = set()
    out = []
    for value, spot in values:
        text = value.strip()
        if text and text not in seen:
            seen.add(text)
            out.append((text, spot))
    return out


def _assignment(node: ast.Assign | ast.AnnAssign) -> tuple[str, ast.AST, ast.AST]:
    """AGILAB's ``_assignment_name_value``: the first plain-name target (none for ``a[0] = …`` or
    ``obj.x: T = …``), and the value (``""`` for a bare annotation)."""
    if isinstance(node, ast.AnnAssign):
        name = node.target.id if isinstance(node.target, ast.Name) else ""
        return name, node.target, node.value or ast.Constant("")
    for target in node.targets:
        if isinstance(target, ast.Name):
            return target.id, target, node.value
    return "", node, node.value


def expr_text(node: ast.AST) -> str:
    """AGILAB's ``_expr_to_text``: constants as ``str``, ``a / b`` joined with " / ", lists and
    tuples joined with ",", anything else as source."""
    try:
        if isinstance(node, ast.Constant):
            return str(node.value if node.value is not None else "")
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div):
            parts = (expr_text(node.left), expr_text(node.right))
            return " / ".join(part for part in parts if part)
        if isinstance(node, (ast.List, ast.Tuple)):
            return ",".join(text for text in (expr_text(item) for item in node.elts) if text)
        return ast.unparse(node).strip()
    except (AttributeError, RuntimeError, TypeError, ValueError):
        return ""


def call_name(node: ast.Call) -> str:
    """AGILAB's ``_call_name``: the callee's dotted name as written (``os.system``); the attribute
    alone when what it hangs on is not a name chain (``f().exec`` → ``exec``)."""
    return _prefix(node.func)


def _prefix(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        prefix = _prefix(node.value)
        return f"{prefix}.{node.attr}" if prefix else node.attr
    return ""


class _Lines:
    """Character indexes of the code's lines (``ast`` gives columns in UTF-8 bytes)."""

    def __init__(self, code: str) -> None:
        self.code = code
        self.starts = [0]
        for i, ch in enumerate(code):
            if ch == "\n":
                self.starts.append(i + 1)

    def line(self, number: int) -> tuple[int, str]:
        start = self.starts[min(max(number, 1), len(self.starts)) - 1]
        end = self.code.find("\n", start)
        return start, self.code[start : end if end >= 0 else len(self.code)]

    def spot(self, node: ast.AST) -> Spot:
        lineno = getattr(node, "lineno", None)
        col = getattr(node, "col_offset", None)
        if lineno is None or col is None:
            return Spot(0)
        start, text = self.line(lineno)
        encoded = text.encode("utf-8")
        begin = len(encoded[:col].decode("utf-8", errors="replace"))
        width = 1
        end_col = getattr(node, "end_col_offset", None)
        if getattr(node, "end_lineno", None) == lineno and end_col is not None:
            width = max(1, len(encoded[:end_col].decode("utf-8", errors="replace")) - begin)
        else:
            width = max(1, len(text) - begin)
        return Spot(start + begin, width)


def error_spot(code: str, exc: SyntaxError) -> Spot:
    """Where a syntax error points (``offset`` counts characters, 1-based), clamped into the code."""
    lines = _Lines(code)
    if not exc.lineno:
        return Spot(len(code))
    if exc.lineno > len(lines.starts):
        return Spot(len(code))
    start, text = lines.line(exc.lineno)
    column = min(max((exc.offset or 1) - 1, 0), len(text))
    width = 1
    if exc.end_lineno == exc.lineno and exc.end_offset and exc.end_offset > (exc.offset or 0):
        width = exc.end_offset - (exc.offset or 0)
    return Spot(start + column, width)
