"""The expression language: AST, parser (Lark grammars in ``grammar/``), printer and safe evaluator.

This package's public API, re-exported from the modules that hold it, so that callers write
``from ..load import expr`` and ``expr.parse_template(...)``. Lark is imported only when a parser
is first built.
"""

from .syntax import (
    KEYWORDS,
    And,
    Compare,
    EvalError,
    ExprSyntaxError,
    FuncRef,
    ListLit,
    Literal,
    Node,
    Not,
    Or,
    Ref,
    Template,
    evaluate,
    is_template,
    iter_refs,
    mode_flags,
    parse_condition,
    parse_funcref,
    parse_mode,
    parse_reference,
    parse_template,
    render,
    resolve,
    to_source,
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
