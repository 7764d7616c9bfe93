"""Calls in a stage's code that deserve a reviewer's eye: code built at run time (``eval``,
``exec``, ``compile``, ``__import__``) and shell commands or other programs (``os.system``,
``os.popen``, ``os.exec*``, ``os.spawn*``, anything from ``subprocess`` or ``pty.spawn``), as
AGILAB's own validator flags them. Found by reading the code's syntax tree, never by running it;
names imported under another name (``import subprocess as sp``, ``from os import system``) are
followed. Code that does not parse is left to the step (its SyntaxError is reported when it runs).
"""

from __future__ import annotations

import ast
from dataclasses import dataclass

BUILTINS = {"eval", "exec", "compile", "__import__"}
MODULES = {"subprocess": None, "os": ("system", "popen", "exec", "spawn", "posix_spawn"), "pty": ("spawn",)}
# the hint of every risky-call warning, in stage code and in a lab's function modules
RISKY_HINT = "review what it runs before running a lab you did not write"


@dataclass(frozen=True)
class RiskyCall:
    name: str  # as it reads in ``module.function`` form, e.g. "os.system"
    index: int  # where the call's name starts, as an index into the code text
    width: int  # the length of the callee as written


def _qualifies(module: str, attr: str) -> bool:
    allowed = MODULES[module]
    return allowed is None or any(
        attr == a or (a in ("exec", "spawn") and attr.startswith(a)) for a in allowed
    )


WORDS = ("eval", "exec", "compile", "__import__", "system", "popen", "spawn", "subprocess", "pty")


def find(code: str) -> list[RiskyCall]:
    if not any(word in code for word in WORDS):
        return []  # most code: no parse needed (check stays fast on a 1,000-step lab)
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError):
        return []
    modules: dict[str, str] = {}  # local name -> risky module
    functions: dict[str, str] = {}  # local name -> "module.function"
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                top = alias.name.split(".")[0]  # `import os.path` binds `os`
                if alias.asname is None and top in MODULES:
                    modules[top] = top
                elif alias.name in MODULES:
                    modules[alias.asname or alias.name] = alias.name
        elif isinstance(node, ast.ImportFrom) and node.module in MODULES and node.level == 0:
            for alias in node.names:
                if _qualifies(node.module, alias.name):
                    functions[alias.asname or alias.name] = f"{node.module}.{alias.name}"
    starts = _line_starts(code)
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        name = None
        if isinstance(func, ast.Name):
            name = func.id if func.id in BUILTINS else functions.get(func.id)
        elif isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name):
            module = modules.get(func.value.id)
            if module is not None and _qualifies(module, func.attr):
                name = f"{module}.{func.attr}"
        if name is not None:
            found.append(RiskyCall(name, *_span(code, starts, func)))
    return sorted(found, key=lambda c: c.index)


def _line_starts(code: str) -> list[int]:
    starts = [0]
    for i, ch in enumerate(code):
        if ch == "\n":
            starts.append(i + 1)
    return starts


def _span(code: str, starts: list[int], node: ast.expr) -> tuple[int, int]:
    """(index, width) of a node in the code text (ast counts columns in UTF-8 bytes)."""
    line_start = starts[node.lineno - 1]
    line = code[line_start : starts[node.lineno] - 1 if node.lineno < len(starts) else len(code)]
    encoded = line.encode("utf-8")
    col = len(encoded[: node.col_offset].decode("utf-8", errors="replace"))
    if node.end_lineno == node.lineno and node.end_col_offset is not None:
        end = len(encoded[: node.end_col_offset].decode("utf-8", errors="replace"))
    else:
        end = len(line)
    return line_start + col, max(1, end - col)


WHY = {
    "eval": "it runs code built at run time",
    "exec": "it runs code built at run time",
    "compile": "it compiles code built at run time",
    "__import__": "it imports a module named at run time",
}


def why(call: RiskyCall) -> str:
    if call.name in WHY:
        return WHY[call.name]
    if call.name in ("os.system", "os.popen"):
        return "it runs a shell command"
    return "it starts another program"


# Modules that reach the same callables under another name, for function references (``posix:system``
# is ``os.system``); a reference names its callable directly, so these are read as their public module.
ALIASES = {"posix": "os", "nt": "os", "_posixsubprocess": "subprocess", "_subprocess": "subprocess"}
CODE_RUNNERS = {
    "runpy": "it runs another module or file as a program",
    "code": "it runs code built at run time",
}


def risky_callable(module: str, function: str) -> str | None:
    """Why a function reference ``module:function`` to the standard library runs commands or code
    (``os:system``, ``subprocess:run``, ``builtins:eval``, ``pty:spawn``, ``runpy:run_path``…), or None."""
    if module == "builtins":
        return WHY[function] if function in BUILTINS else None
    if module in CODE_RUNNERS:
        return CODE_RUNNERS[module]
    public = ALIASES.get(module, module)
    if public in MODULES and _qualifies(public, function):
        return why(RiskyCall(f"{public}.{function}", 0, 0))
    return None
