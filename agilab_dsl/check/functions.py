"""Function references (``module:function`` or ``file.py:function``), located and read without
importing user code: :func:`locate_function` finds the module's source and the function among its
top-level names; :func:`check_function` reports a reference that names nothing, and risky calls in
a module that belongs to the lab, as warnings. :func:`siblings` lists a folder for "did you mean".
"""

from __future__ import annotations

import ast
from pathlib import Path

from ..load import expr
from ..load.errors import Severity, did_you_mean
from ..load.locate import function_source
from ..load.parse import Locator, key_text
from ..plan.cache import Observations
from . import risky
from .risky import RISKY_HINT

MAX_RISKY_PER_MODULE = 5


def siblings(target: Path, obs: Observations) -> list[str]:
    obs.note(target.parent)
    try:
        return [p.name for p in target.parent.iterdir()] if target.parent.is_dir() else []
    except OSError:
        return []


def check_function(
    loc: Locator,
    text: str,
    base_dir: Path,
    key: tuple[str | int, ...],
    obs: Observations,
    allow_outside: bool = False,
) -> None:
    try:
        ref = expr.parse_funcref(text)
    except expr.ExprSyntaxError:
        return  # reported by the loader
    if _refused(loc, ref, base_dir, key, allow_outside):
        return
    problem, source, code = _locate(ref, base_dir, obs)
    if isinstance(problem, SyntaxError) and source is not None:
        _invalid_module(loc, source, problem, f"{ref}, named at {key_text(key)}")
        return
    if problem is not None:
        loc.at_value("function-not-found", problem[0], key, hint=problem[1], severity=Severity.WARNING)
        return
    if source is None or code is None or not source.resolve().is_relative_to(base_dir.resolve()):
        return  # no Python source, or an installed library's: not the lab's code to review
    calls = risky.find(code)
    shown = calls[:MAX_RISKY_PER_MODULE]
    for n, call in enumerate(shown, 1):
        line = code.count("\n", 0, call.index) + 1
        rest = len(calls) - len(shown) if n == len(shown) else 0
        loc.at_value(
            "risky-call",
            f"{source.name}, the module of {ref}, calls {call.name} at line {line}: {risky.why(call)}"
            + (f" (and {rest} more such calls)" if rest else ""),
            key,
            hint=RISKY_HINT,
        )


# what a run refuses before its first step (session.py): these warnings are given only when it must
REFUSED_AT_RUN = ("function-outside-lab", "function-risky")


def _refused(
    loc: Locator, ref: expr.FuncRef, base_dir: Path, key: tuple[str | int, ...], allow: bool
) -> bool:
    """A reference to a file outside the folder (without ``allow_outside``) or to a standard-library
    callable that runs commands or code: a warning at its key, which a run refuses. True when given."""
    if ref.is_path:
        try:
            inside = (base_dir / ref.module).resolve().is_relative_to(base_dir.resolve())
        except (OSError, ValueError, RuntimeError):  # a NUL, a symlink loop
            inside = False
        if inside or allow:
            return False
        loc.at_value(
            "function-outside-lab",
            f"{ref} names a file outside the folder of the file that names it: a run refuses to import it",
            key,
            hint="move the module beside the lab, or set allow_outside = true to run it from there",
            severity=Severity.WARNING,
        )
        return True
    why = risky.risky_callable(ref.module.strip(), ref.function)
    if why is None:
        return False
    loc.at_value(
        "function-risky",
        f"{ref} is a standard-library callable: {why}; a run refuses to call it as a step",
        key,
        hint="name a function of your own that calls it (reviewed as a risky-call warning)",
        severity=Severity.WARNING,
    )
    return True


def _invalid_module(loc: Locator, source: Path, exc: SyntaxError, named: str) -> None:
    """A function's module that does not parse: an error located in that module's own file."""
    from ..load.errors import make

    loc.diagnostics.append(
        make(
            "function-module-invalid",
            f"{source.name} is not valid Python: {exc.msg}",
            str(source),
            exc.lineno,
            exc.offset,
            source_line=(exc.text or "").rstrip("\r\n") or None,
            hint=f"the module of {named}: the step would fail on import",
        )
    )


def locate_function(
    ref: expr.FuncRef, base_dir: Path, obs: Observations | None = None
) -> tuple[str, str | None] | None:
    """Find a function's source without importing anything: None when found, else (message, hint).

    A module that exists but has no Python source (an extension) is accepted unread."""
    problem = _locate(ref, base_dir, obs or Observations())[0]
    if isinstance(problem, SyntaxError):
        return f"{problem.filename}:{problem.lineno}: {problem.msg}", None
    return problem


def _locate(
    ref: expr.FuncRef, base_dir: Path, obs: Observations
) -> tuple[tuple[str, str | None] | SyntaxError | None, Path | None, str | None]:
    """(the problem or None, the module's file, its Python source when it was read); a module that
    does not parse gives its SyntaxError as the problem."""
    source_file = function_source(ref.module, ref.is_path, base_dir, obs.is_file, obs.note)
    if source_file is None and ref.is_path:
        file = (base_dir / ref.module).resolve()
        return (
            (
                f"file {ref.module!r} does not exist beside the file that names it",
                did_you_mean(Path(ref.module).name, siblings(file, obs)),
            ),
            None,
            None,
        )
    if source_file is None:
        return (
            (
                f"module {ref.module!r} is not found beside the file or on the Python path",
                "run check in the environment the lab runs in, or use a path: file.py:function",
            ),
            None,
            None,
        )
    if source_file.suffix != ".py":
        return None, source_file, None  # no Python source (built in, or compiled): accepted unread
    try:
        code = source_file.read_text(encoding="utf-8")
        tree = ast.parse(code, filename=str(source_file))
    except SyntaxError as exc:
        return exc, source_file, None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        return (f"cannot read {source_file}: {exc}", None), source_file, None
    names = _top_level_names(tree)
    if ref.function not in names:
        return (
            (f"{ref.module!r} defines no {ref.function!r}", did_you_mean(ref.function, names)),
            source_file,
            code,
        )
    return None, source_file, code


def _top_level_names(tree: ast.Module) -> list[str]:
    names: list[str] = []
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.append(node.name)
        elif isinstance(node, ast.Assign):
            names += [t.id for t in node.targets if isinstance(t, ast.Name)]
        elif isinstance(node, (ast.AnnAssign,)) and isinstance(node.target, ast.Name):
            names.append(node.target.id)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names += [(a.asname or a.name).split(".")[0] for a in node.names]
    return names
