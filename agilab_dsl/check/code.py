"""Rules over a stage's Python code (``C``): it must parse (AGILAB's ``stage-code-syntax``, an error
in its validator too), and calls a reviewer should see (``eval``, ``os.system``, ``subprocess``…)
are warnings. The error is located at the line and column of the Python syntax error inside the
TOML string, so an editor jumps to the offending character of the code.
"""

from __future__ import annotations

import ast
import warnings
from collections.abc import Callable
from typing import Any

from ..load.parse import Locator
from . import risky
from .agilab.code import error_spot
from .risky import RISKY_HINT

SYNTAX_HINT = (
    "AGILAB's validator fails the lab on it too; a stage that only holds a prompt keeps its text in Q"
)


def syntax_error(code: str) -> tuple[int, int, str] | None:
    """The first Python syntax error in ``code`` as this tool's worker compiles it (unstripped):
    (index into ``code``, width, message), or None."""
    try:
        ast.parse(code)  # (the caller silences SyntaxWarnings: see check_code)
    except SyntaxError as exc:
        spot = error_spot(code, exc)
        return spot.index, spot.width, f"{exc.msg} (line {exc.lineno or 1} of the code)"
    except (ValueError, RecursionError, MemoryError) as exc:  # a NUL character, absurd nesting
        return 0, 1, str(exc) or type(exc).__name__
    return None


def check_code(loc: Locator, stages: Any, written: Callable[[Any, str], str | None]) -> None:
    """``stage-code-syntax`` errors and ``risky-call`` warnings for every stage with code."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # SyntaxWarning for odd escapes: not ours to print
        _check_code(loc, stages, written)


def _check_code(loc: Locator, stages: Any, written: Callable[[Any, str], str | None]) -> None:
    # each distinct code text is parsed once: stages made from one template (a sweep over params)
    # repeat it, and parsing is most of the check (~20 µs a snippet, 2 s at 100,000 stages)
    parsed: dict[str, tuple[tuple[int, int, str] | None, list[risky.RiskyCall]]] = {}
    for s in stages:
        code = s.stage.code
        if not code:
            continue
        if code not in parsed:
            problem = syntax_error(code)
            parsed[code] = problem, risky.find(code) if problem is None else []
        problem, calls = parsed[code]
        if problem is None and not calls:
            continue
        code_path = (s.module, s.index, written(s, "code") or "C")
        if problem is not None:
            index, width, message = problem
            loc.in_string(
                "stage-code-syntax",
                f"stage {s.id!r}: C is not valid Python: {message}",
                code_path,
                index,
                width=width,
                hint=SYNTAX_HINT,
            )
            continue
        for call in calls:
            loc.in_string(
                "risky-call",
                f"stage {s.id!r} calls {call.name}: {risky.why(call)}",
                code_path,
                call.index,
                width=call.width,
                hint=RISKY_HINT,
            )
