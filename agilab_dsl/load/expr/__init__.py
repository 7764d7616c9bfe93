"""The expression language: AST, parser (Lark grammars in ``grammar/``), printer and safe evaluator.

``nodes`` holds the syntax tree, ``syntax`` the parser, ``printer`` the canonical source and the
walk over references, ``evaluate`` the evaluator (nothing is ever handed to Python's ``eval``).
This package re-exports their public API, so that callers write ``from ..load import expr`` and
``expr.parse_template(...)``. Lark is imported only when a parser is first built.
"""

from .evaluate import EvalError, evaluate, render, resolve
from .nodes import KEYWORDS, And, Compare, FuncRef, ListLit, Literal, Node, Not, Or, Ref, Template
from .printer import iter_refs, to_source
from .syntax import (
    ExprSyntaxError,
    is_template,
    mode_flags,
    parse_condition,
    parse_funcref,
    parse_mode,
    parse_reference,
    parse_template,
)

__all__ = [
    "KEYWORDS",
    "And",
    "Compare",
    "EvalError",
    "ExprSyntaxError",
    "FuncRef",
    "ListLit",
    "Literal",
    "Node",
    "Not",
    "Or",
    "Ref",
    "Template",
    "evaluate",
    "is_template",
    "iter_refs",
    "mode_flags",
    "parse_condition",
    "parse_funcref",
    "parse_mode",
    "parse_reference",
    "parse_template",
    "render",
    "resolve",
    "to_source",
]
