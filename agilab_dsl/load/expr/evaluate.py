"""Evaluating expressions: a pure function of a node and a context {settings, params, env, steps}.

Nothing is ever handed to Python's ``eval``: :func:`evaluate` walks the tree, :func:`resolve`
looks a reference up and :func:`render` fills a template's holes. What cannot be computed raises
:class:`EvalError`, saying which part is missing.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from ..errors import EvalError
from .nodes import And, Compare, ListLit, Literal, Node, Not, Or, Ref, Template
from .printer import to_source

__all__ = ["EvalError", "evaluate", "render", "resolve"]

_MISSING = object()


def resolve(ref: Ref, context: Mapping[str, Any]) -> Any:
    """The value a reference names, or :class:`EvalError` saying which part is missing."""
    value: Any = context.get(ref.root, _MISSING)
    if value is _MISSING:
        raise EvalError(f"{ref.root} is not available here")
    walked = ref.root
    path = ref.path
    if ref.root == "steps" and len(path) == 3 and path[1] == "produces":
        path = (path[0], "outputs", path[2])
    for part in path:
        try:
            value = value[part]
        except (KeyError, IndexError, TypeError):
            raise EvalError(
                f"{to_source(Ref(ref.root, ref.path))} is not defined ({walked} has no {part!r})"
            ) from None
        walked = to_source(Ref(ref.root, tuple(ref.path[: ref.path.index(part) + 1])))
    return value


def evaluate(node: Node, context: Mapping[str, Any]) -> Any:
    if isinstance(node, Literal):
        return node.value
    if isinstance(node, ListLit):
        return [i.value for i in node.items]
    if isinstance(node, Ref):
        return resolve(node, context)
    if isinstance(node, Not):
        return not evaluate(node.operand, context)
    if isinstance(node, And):
        return all(evaluate(o, context) for o in node.operands)
    if isinstance(node, Or):
        return any(evaluate(o, context) for o in node.operands)
    if isinstance(node, Compare):
        left, right = evaluate(node.left, context), evaluate(node.right, context)
        op = node.op
        if op == "==":
            return left == right
        if op == "!=":
            return left != right
        if op in ("in", "not in"):
            if not isinstance(right, (list, tuple, str, dict)):
                raise EvalError(
                    f"'{op}' needs a list, string or table on its right, not {type(right).__name__}"
                )
            try:
                found = left in right
            except TypeError as exc:
                raise EvalError(str(exc)) from None
            return found if op == "in" else not found
        numbers = (int, float)
        comparable = (
            isinstance(left, numbers)
            and isinstance(right, numbers)
            and not isinstance(left, bool)
            and not isinstance(right, bool)
        ) or (isinstance(left, str) and isinstance(right, str))
        if not comparable:
            raise EvalError(f"cannot compare {type(left).__name__} {op} {type(right).__name__}")
        return {"<": left < right, "<=": left <= right, ">": left > right, ">=": left >= right}[op]
    raise TypeError(f"not an expression node: {node!r}")


def _as_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)


def render(template: Template, context: Mapping[str, Any]) -> str:
    """Fill a template's holes from the context."""
    return "".join(p if isinstance(p, str) else _as_text(resolve(p, context)) for p in template.parts)
