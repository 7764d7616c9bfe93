"""Printing and walking expressions: the canonical source of a node, and the references it holds.

``parse(to_source(n)) == n`` for every node: :func:`to_source` puts parentheses only where the
precedence needs them. :func:`iter_refs` yields every ``Ref`` of a condition or template, in order.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from .nodes import And, Compare, ListLit, Literal, Not, Or, Ref, Template

# ---------------------------------------------------------------------------------------------
# Printing: the canonical source of a node. parse(to_source(n)) == n for every node.

_PRECEDENCE = {Or: 1, And: 2, Not: 3, Compare: 4}


def _prec(node: Any) -> int:
    return _PRECEDENCE.get(type(node), 5)


def to_source(node: Any) -> str:
    if isinstance(node, Literal):
        v = node.value
        if v is None:
            return "null"
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, str):
            return json.dumps(v, ensure_ascii=False)
        return repr(v)
    if isinstance(node, ListLit):
        return "[" + ", ".join(to_source(i) for i in node.items) + "]"
    if isinstance(node, Ref):
        return node.dotted()
    if isinstance(node, Not):
        inner = to_source(node.operand)
        return f"not {inner}" if _prec(node.operand) >= 3 else f"not ({inner})"
    if isinstance(node, (And, Or)):
        word = " and " if isinstance(node, And) else " or "
        mine = _prec(node)
        return word.join(to_source(o) if _prec(o) > mine else f"({to_source(o)})" for o in node.operands)
    if isinstance(node, Compare):

        def side(n: Any) -> str:
            return to_source(n) if _prec(n) == 5 else f"({to_source(n)})"

        return f"{side(node.left)} {node.op} {side(node.right)}"
    if isinstance(node, Template):
        out = ""
        for part in node.parts:
            out += part.replace("$", "$$") if isinstance(part, str) else "${" + to_source(part) + "}"
        return out
    raise TypeError(f"not an expression node: {node!r}")


# ---------------------------------------------------------------------------------------------
# Walking: the references of a condition or template.


def iter_refs(node: Any) -> Iterator[Ref]:
    if isinstance(node, Ref):
        yield node
    elif isinstance(node, Not):
        yield from iter_refs(node.operand)
    elif isinstance(node, (And, Or)):
        for o in node.operands:
            yield from iter_refs(o)
    elif isinstance(node, Compare):
        yield from iter_refs(node.left)
        yield from iter_refs(node.right)
    elif isinstance(node, Template):
        for p in node.parts:
            if isinstance(p, Ref):
                yield p
