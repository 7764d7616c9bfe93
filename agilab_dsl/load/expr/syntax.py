"""The expression language's parser: text → syntax tree (Lark grammars in ``grammar/``).

Four kinds of text are parsed here:

* templates — strings with ``${settings.args.x}``, ``${params.n}``, ``${env.HOME}`` or
  ``${steps.load.outputs[0]}`` holes;
* conditions — ``when = "settings.args.mode == 'fast' and not params.dry"``;
* modes — ``"dask | rapids | pool"`` → 13 (pool 1, cython 2, dask 4, rapids 8), or an int;
* function references — ``"module.sub:function"`` or ``"path/to/file.py:function"``.

Parse errors are :class:`ExprSyntaxError` values carrying the offset inside the expression text,
which the loader maps back to a line and column of the TOML file. Lark is imported when a parser
is first built, not before.
"""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import AgilabError, did_you_mean
from ..holes import is_template
from .nodes import KEYWORDS, And, Compare, FuncRef, ListLit, Literal, Node, Not, Or, Ref, Template

if TYPE_CHECKING:  # pragma: no cover
    from lark import Lark

ROOTS = ("settings", "params", "env", "steps")
MODE_FLAGS: dict[str, int] = {"pool": 1, "cython": 2, "dask": 4, "rapids": 8}
MODE_MAX = sum(MODE_FLAGS.values())
_FUNCREF = re.compile(r"^[A-Za-z0-9_./:-]+:[A-Za-z_][A-Za-z0-9_]*$")
_DOTTED = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")


class ExprSyntaxError(AgilabError):
    """An expression that does not parse, or refers to something that cannot exist."""

    def __init__(
        self,
        message: str,
        offset: int,
        *,
        hint: str | None = None,
        width: int = 1,
        code: str = "expression-syntax",
    ) -> None:
        super().__init__(message)
        self.message = message
        self.offset = offset
        self.hint = hint
        self.width = width
        self.code = code


# ---------------------------------------------------------------------------------------------
# Parsing


def grammar_dir() -> Path:
    """The folder of the ``.lark`` files: inside the installed package, or the source checkout."""
    package = Path(__file__).resolve().parents[2]  # agilab_dsl/, from agilab_dsl/load/expr/
    packaged = package / "grammar"
    if (packaged / "expressions.lark").is_file():
        return packaged
    return package.parent / "grammar"


@cache
def _parser(name: str) -> Lark:
    from lark import Lark

    text = (grammar_dir() / f"{name}.lark").read_text(encoding="utf-8")
    starts = ["template"] if name == "template" else ["condition", "reference", "mode", "funcref"]
    return Lark(text, parser="lalr", start=starts, propagate_positions=True, maybe_placeholders=False)


_TOKEN_WORDS = {
    "NAME": "a name",
    "STRING": "a string",
    "SQ_STRING": "a string",
    "SIGNED_INT": "a number",
    "SIGNED_FLOAT": "a number",
    "COMP_OP": "a comparison (==, !=, <, <=, >, >=)",
    "$END": "the end",
    "FUNCREF": "module:function",
    "BODY": "a reference",
}


def _describe_expected(grammar: str, expected: set[str]) -> str:
    """Readable names for the terminals a parser expected: words for classes, quotes for literals."""
    terminals = {t.name: t for t in _parser(grammar).terminals}
    words: set[str] = set()
    for name in expected:
        if name in _TOKEN_WORDS:
            words.add(_TOKEN_WORDS[name])
            continue
        term = terminals.get(name)
        literal = (
            getattr(term.pattern, "value", None) if term is not None and term.pattern.type == "str" else None
        )
        words.add(
            repr(literal.lower() if literal in ("True", "False", "None") else literal)
            if literal
            else name.lower()
        )
    if {"'true'", "'false'", "'none'", "'null'"} & words:
        words -= {"'true'", "'false'", "'none'", "'null'"}
        words.add("true/false/null")
    return ", ".join(sorted(words, key=lambda w: (not w.startswith("'"), w)))


def _lark_parse(grammar: str, text: str, start: str) -> Any:
    from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken

    try:
        return _parser(grammar).parse(text, start=start)
    except UnexpectedToken as exc:
        tok = exc.token
        if tok.type == "$END":
            raise ExprSyntaxError(
                f"unexpected end of expression; expected {_describe_expected(grammar, exc.expected)}",
                len(text),
            ) from None
        raise ExprSyntaxError(
            f"unexpected {str(tok)!r}; expected {_describe_expected(grammar, exc.expected)}",
            tok.start_pos or 0,
            width=len(str(tok)),
        ) from None
    except UnexpectedCharacters as exc:
        pos = exc.pos_in_stream or 0
        raise ExprSyntaxError(f"unexpected character {text[pos]!r}", pos) from None
    except UnexpectedEOF as exc:
        raise ExprSyntaxError(
            f"unexpected end of expression; expected {_describe_expected(grammar, set(exc.expected))}",
            len(text),
        ) from None
    except UnexpectedInput as exc:  # pragma: no cover - the three above cover LALR
        raise ExprSyntaxError(str(exc), getattr(exc, "pos_in_stream", 0) or 0) from None


def _decode_string(token: str) -> str:
    if token.startswith("'"):
        return token[1:-1]
    try:
        value = json.loads(token)
    except json.JSONDecodeError as exc:
        raise ExprSyntaxError(f"invalid escape in string: {exc.msg}", 0) from None
    assert isinstance(value, str)
    return value


def _build(tree: Any, base: int = 0) -> Any:
    """Turn a Lark tree into AST nodes (one branch per grammar rule, named after it)."""
    from lark import Token

    if isinstance(tree, Token):
        raise AssertionError(f"unexpected bare token {tree!r}")  # pragma: no cover
    rule = tree.data
    kids = tree.children
    if rule == "or_":
        return Or(tuple(_build(k, base) for k in kids))
    if rule == "and_":
        return And(tuple(_build(k, base) for k in kids))
    if rule == "not_":
        return Not(_build(kids[0], base))
    if rule == "compare":
        return Compare(str(kids[1]), _build(kids[0], base), _build(kids[2], base))
    if rule == "in_":
        return Compare("in", _build(kids[0], base), _build(kids[1], base))
    if rule == "not_in":
        return Compare("not in", _build(kids[0], base), _build(kids[1], base))
    if rule == "list":
        return ListLit(tuple(_build(k, base) for k in kids))
    if rule == "string":
        try:
            return Literal(_decode_string(str(kids[0])))
        except ExprSyntaxError as exc:
            raise ExprSyntaxError(exc.message, base + kids[0].start_pos, width=len(kids[0])) from None
    if rule == "sq_string":
        return Literal(str(kids[0])[1:-1])
    if rule == "int":
        return Literal(int(kids[0]))
    if rule == "float":
        return Literal(float(kids[0]))
    if rule == "true":
        return Literal(True)
    if rule == "false":
        return Literal(False)
    if rule == "null":
        return Literal(None)
    if rule == "reference":
        return _build_ref(tree, base)
    raise AssertionError(f"unhandled rule {rule}")  # pragma: no cover


def _build_ref(tree: Any, base: int) -> Ref:
    root_tok, *accessors = tree.children
    root = str(root_tok)
    start = base + root_tok.start_pos
    end = base + (tree.meta.end_pos if not tree.meta.empty else root_tok.end_pos)
    if root not in ROOTS:
        raise ExprSyntaxError(
            f"unknown reference root {root!r}: a reference starts with settings, params, env or steps",
            start,
            hint=did_you_mean(root, ROOTS),
            width=len(root),
            code="reference-invalid",
        )
    path: list[str | int] = []
    for acc in accessors:
        tok = acc.children[0]
        if acc.data == "attr":
            path.append(str(tok))
        elif acc.data == "index":
            path.append(int(tok))
        else:
            path.append(_decode_string(str(tok)))
    ref = Ref(root, tuple(path), start, end)
    if not path:
        raise ExprSyntaxError(
            f"{root!r} alone is not a value: name a key, e.g. {root}.name",
            start,
            width=len(root),
            code="reference-invalid",
        )
    if root == "steps":
        ok = (
            len(path) == 3
            and isinstance(path[0], str)
            and path[1] in ("outputs", "produces")
            and isinstance(path[2], int)
        )
        if not ok:
            raise ExprSyntaxError(
                "a step reference has the form steps.<id>.outputs[N]",
                start,
                width=end - start,
                code="reference-invalid",
            )
    return ref


def parse_condition(text: str) -> Node:
    """Parse a ``when`` condition."""
    return _build(_lark_parse("expressions", text, "condition"))  # type: ignore[no-any-return]


def parse_reference(text: str, *, base: int = 0) -> Ref:
    """Parse one reference, e.g. ``settings.args.data_in``; offsets are shifted by ``base``."""
    try:
        tree = _lark_parse("expressions", text, "reference")
    except ExprSyntaxError as exc:
        raise ExprSyntaxError(exc.message, exc.offset + base, hint=exc.hint, width=exc.width) from None
    return _build_ref(tree, base)


# The common hole, ${root.key.key[0]}: parsed by one regex instead of Lark (a big lab has thousands).
# It accepts a strict subset of what the grammar accepts and builds the same nodes; anything else —
# quoted keys, spaces, keywords, escapes, every error — goes through Lark.
_SIMPLE_HOLE = re.compile(r"\$\{((?:settings|params|env|steps)(?:\.[A-Za-z_][A-Za-z0-9_-]*|\[[0-9]+\])+)\}")
_SIMPLE_PART = re.compile(r"\.([A-Za-z_][A-Za-z0-9_-]*)|\[([0-9]+)\]")


def _parse_simple_template(text: str) -> Template | None:
    if "$$" in text:
        return None
    parts: list[str | Ref] = []
    pos = 0
    for m in _SIMPLE_HOLE.finditer(text):
        if "${" in text[pos : m.start()]:
            return None  # a hole the regex does not take
        if m.start() > pos:
            parts.append(text[pos : m.start()])
        body = m.group(1)
        root = body[: len(body) - len(body.lstrip("abcdefghijklmnopqrstuvwxyz"))]
        path: list[str | int] = []
        for attr, index in _SIMPLE_PART.findall(body, len(root)):
            if attr in KEYWORDS:
                return None
            path.append(attr if attr else int(index))
        if root == "steps" and not (
            len(path) == 3
            and isinstance(path[0], str)
            and path[1] in ("outputs", "produces")
            and isinstance(path[2], int)
        ):
            return None  # let the grammar path report it
        parts.append(Ref(root, tuple(path), m.start(1), m.end(1)))
        pos = m.end()
    if "${" in text[pos:]:
        return None
    if pos < len(text):
        parts.append(text[pos:])
    return Template(tuple(parts))


def parse_template(text: str, *, fast: bool = True) -> Template:
    """Split a string into text and ``${reference}`` holes. ``$$`` writes a literal ``$`` (so
    ``$${`` writes a literal ``${``)."""
    if not is_template(text):
        return Template((text,) if text else ())
    if fast:
        simple = _parse_simple_template(text)
        if simple is not None:
            return simple
    tree = _lark_parse("template", text, "template")
    parts: list[str | Ref] = []
    for child in tree.children:
        if hasattr(child, "data"):  # a hole
            body = child.children[0]
            inner = str(body)
            stripped = inner.strip()
            lead = len(inner) - len(inner.lstrip())
            parts.append(parse_reference(stripped, base=body.start_pos + lead))
        else:
            piece = "$" if child.type == "ESCAPE" else str(child)
            if parts and isinstance(parts[-1], str):
                parts[-1] += piece
            else:
                parts.append(piece)
    return Template(tuple(parts))


def parse_mode(value: int | str) -> int:
    """The AGILAB execution bitmask of ``13`` or ``"dask | rapids | pool"``."""
    if isinstance(value, bool):
        raise ExprSyntaxError("mode must be an int or a flags expression, not a boolean", 0)
    if isinstance(value, int):
        if not 0 <= value <= MODE_MAX:
            raise ExprSyntaxError(f"mode {value} is outside 0..{MODE_MAX}", 0, code="reference-invalid")
        return value
    tree = _lark_parse("expressions", value, "mode")
    bits = 0
    for term in tree.children:
        tok = term.children[0]
        if tok.type == "SIGNED_INT":
            n = int(tok)
            if not 0 <= n <= MODE_MAX:
                raise ExprSyntaxError(f"mode {n} is outside 0..{MODE_MAX}", tok.start_pos, width=len(tok))
            bits |= n
        else:
            name = str(tok)
            if name not in MODE_FLAGS:
                raise ExprSyntaxError(
                    f"unknown mode flag {name!r} (flags: pool, cython, dask, rapids)",
                    tok.start_pos,
                    hint=did_you_mean(name, MODE_FLAGS),
                    width=len(name),
                )
            bits |= MODE_FLAGS[name]
    return bits


def mode_flags(bits: int) -> tuple[str, ...]:
    """Names of the flags set in a mode bitmask, in AGILAB's order."""
    return tuple(name for name, bit in MODE_FLAGS.items() if bits & bit)


def parse_funcref(text: str) -> FuncRef:
    """``module.sub:function`` or ``path/to/file.py:function``."""
    if not _FUNCREF.match(text):
        pos = 0 if ":" in text else len(text)
        raise ExprSyntaxError(
            f"{text!r} is not a function reference",
            pos,
            hint="write module.sub:function or path/to/file.py:function",
            code="function-reference-invalid",
        )
    module, _, function = text.rpartition(":")
    ref = FuncRef(module, function)
    if not ref.is_path and not _DOTTED.match(module):
        raise ExprSyntaxError(
            f"{module!r} is neither a dotted module name nor a path to a .py file",
            0,
            width=len(module),
            code="function-reference-invalid",
        )
    return ref
