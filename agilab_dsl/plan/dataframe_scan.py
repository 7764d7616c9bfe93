"""Reading ``df`` off a step's syntax tree (:func:`agilab_dsl.plan.dataframe.frame_use` imports
this, and with it :mod:`ast`, only for code that mentions the name)."""

from __future__ import annotations

import ast
import functools
from typing import Any


@functools.lru_cache(maxsize=1024)
def frame_use(code: str) -> bool | None:
    """Whether ``code`` (which mentions ``df``) reads ``df`` at module level before binding it;
    None when it does not use the name there (or does not parse)."""
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError):
        return None  # check reports it; the step will fail on it
    scan = _Scan()
    for statement in tree.body:
        scan.visit(statement, shadowed=False)
    return scan.read if scan.used else None


_SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)
_COMPREHENSIONS = (ast.ListComp, ast.SetComp, ast.GeneratorExp, ast.DictComp)


class _Scan:
    """Walks module-level code in evaluation order, noting whether the module's ``df`` is used
    and whether it is loaded before it is bound. Code in a function body counts where the
    function is defined (it may run from there on), unless ``df`` is a local name of it."""

    def __init__(self) -> None:
        self.used = False
        self.read = False
        self.bound = False

    def name(self, ctx: ast.expr_context) -> None:
        self.used = True
        if isinstance(ctx, ast.Store):
            self.bound = True
        elif not self.bound:  # Load, Del
            self.read = True

    def visit(self, node: ast.AST, shadowed: bool) -> None:
        if isinstance(node, ast.Name):
            if node.id == "df" and not shadowed:
                self.name(node.ctx)
        elif isinstance(node, ast.Assign):
            self.visit(node.value, shadowed)
            for target in node.targets:
                self.visit(target, shadowed)
        elif isinstance(node, ast.AugAssign):
            if isinstance(node.target, ast.Name):
                self.visit(ast.Name(node.target.id, ast.Load()), shadowed)
            self.visit(node.target, shadowed)
            self.visit(node.value, shadowed)
        elif isinstance(node, ast.AnnAssign):
            self.visit(node.annotation, shadowed)
            if node.value is not None:
                self.visit(node.value, shadowed)
                self.visit(node.target, shadowed)
        elif isinstance(node, ast.NamedExpr):
            self.visit(node.value, shadowed)
            self.visit(node.target, shadowed)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            if any((a.asname or a.name.split(".")[0]) == "df" for a in node.names) and not shadowed:
                self.name(ast.Store())
        elif isinstance(node, ast.ExceptHandler):
            if node.type is not None:
                self.visit(node.type, shadowed)
            if node.name == "df" and not shadowed:
                self.name(ast.Store())
            for child in node.body:
                self.visit(child, shadowed)
        elif isinstance(node, _COMPREHENSIONS):
            self._comprehension(node, shadowed)
        elif isinstance(node, _SCOPES):
            self._scope(node, shadowed)
        else:
            for child in ast.iter_child_nodes(node):
                self.visit(child, shadowed)

    def _comprehension(self, node: Any, shadowed: bool) -> None:
        inner = shadowed or any(_binds_df(g.target) for g in node.generators)
        for n, generator in enumerate(node.generators):
            self.visit(generator.iter, shadowed if n == 0 else inner)  # the first runs outside
            for condition in generator.ifs:
                self.visit(condition, inner)
        for part in (node.key, node.value) if isinstance(node, ast.DictComp) else (node.elt,):
            self.visit(part, inner)

    def _scope(self, node: Any, shadowed: bool) -> None:
        # what is evaluated where it is defined: decorators, defaults, annotations, bases
        outside: list[ast.AST] = list(getattr(node, "decorator_list", []))
        if isinstance(node, ast.ClassDef):
            outside += [*node.bases, *(k.value for k in node.keywords)]
        else:
            args = node.args
            outside += [*args.defaults, *(d for d in args.kw_defaults if d is not None)]
        for part in outside:
            self.visit(part, shadowed)
        body = node.body if isinstance(node.body, list) else [node.body]
        local = _local_df(node)
        inner = False if local is None else shadowed or local  # None: `global df`, the module's
        for statement in body:
            self.visit(statement, inner)
        if getattr(node, "name", None) == "df" and not shadowed:
            self.name(ast.Store())


def _binds_df(target: ast.AST) -> bool:
    return any(isinstance(n, ast.Name) and n.id == "df" for n in ast.walk(target))


def _local_df(scope: Any) -> bool | None:
    """Whether ``df`` is a local name of a function (or class) body: a parameter, or bound in it
    outside nested scopes. None when the body declares it ``global``."""
    if not isinstance(scope, ast.ClassDef):
        args = scope.args
        params = [*args.posonlyargs, *args.args, *args.kwonlyargs, args.vararg, args.kwarg]
        if any(a is not None and a.arg == "df" for a in params):
            return True
    body = scope.body if isinstance(scope.body, list) else [scope.body]
    stack: list[ast.AST] = list(body)
    local = False
    while stack:
        node = stack.pop()
        if isinstance(node, ast.Global | ast.Nonlocal) and "df" in node.names:
            return None if isinstance(node, ast.Global) else True
        if isinstance(node, ast.Name) and node.id == "df" and not isinstance(node.ctx, ast.Load):
            local = True
        elif isinstance(node, ast.Import | ast.ImportFrom):
            local = local or any((a.asname or a.name.split(".")[0]) == "df" for a in node.names)
        elif isinstance(node, ast.ExceptHandler) and node.name == "df":
            local = True
        if isinstance(node, _SCOPES):
            local = local or getattr(node, "name", None) == "df"
            continue  # a nested scope's names are its own
        if isinstance(node, _COMPREHENSIONS):
            continue
        stack.extend(ast.iter_child_nodes(node))
    return local
