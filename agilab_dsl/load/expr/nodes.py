"""The expression language's syntax tree: small frozen dataclasses, one per construct.

Templates, conditions, references and function references parse (in :mod:`.syntax`) into these
values; :mod:`.printer` writes them back as source and :mod:`.evaluate` computes them. A reference
knows how it is written (:meth:`Ref.dotted`), which is why the words that cannot be bare keys
(:data:`KEYWORDS`) live here too.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

KEYWORDS = frozenset({"and", "or", "not", "in", "true", "false", "null", "True", "False", "None"})
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*\Z")


# ---------------------------------------------------------------------------------------------
# AST: small frozen values. Positions are offsets into the parsed text and do not take part in
# equality, so that print → parse round-trips compare structure only.


@dataclass(frozen=True, slots=True)
class Literal:
    value: str | int | float | bool | None


@dataclass(frozen=True, slots=True)
class ListLit:
    items: tuple[Literal, ...]


@dataclass(frozen=True, slots=True)
class Ref:
    root: str
    path: tuple[str | int, ...]
    pos: int = field(default=0, compare=False)
    end: int = field(default=0, compare=False)

    def dotted(self) -> str:
        """``settings.args.x`` / ``steps.load.outputs[0]`` — the reference as a person writes it."""
        out = self.root
        for p in self.path:
            if isinstance(p, int):
                out += f"[{p}]"
            elif _NAME.match(p) and p not in KEYWORDS:
                out += f".{p}"
            else:
                out += f"[{json.dumps(p, ensure_ascii=False)}]"
        return out


@dataclass(frozen=True, slots=True)
class Not:
    operand: Node


@dataclass(frozen=True, slots=True)
class And:
    operands: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Or:
    operands: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Compare:
    op: str  # == != < <= > >= in "not in"
    left: Node
    right: Node


@dataclass(frozen=True, slots=True)
class Template:
    parts: tuple[str | Ref, ...]

    @property
    def is_plain(self) -> bool:
        return all(isinstance(p, str) for p in self.parts)


@dataclass(frozen=True, slots=True)
class FuncRef:
    module: str  # dotted module name, or a path to a .py file
    function: str

    @property
    def is_path(self) -> bool:
        return self.module.endswith(".py") or "/" in self.module

    def __str__(self) -> str:
        return f"{self.module}:{self.function}"


Node = Literal | ListLit | Ref | Not | And | Or | Compare
