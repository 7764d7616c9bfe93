"""Resolve a step against the settings snapshot: render its ``${…}`` holes, evaluate ``when``,
and list the settings values it depends on. Pure: the environment is passed in.

A param whose whole value is one hole keeps the referenced value's type
(``alert_m = "${settings.args.alert_m}"`` gives the int, not its text); holes inside a longer
string are rendered as text.
"""

from __future__ import annotations

from collections.abc import Mapping

from ..load.errors import EvalError
from ..load.holes import is_template
from ..load.records import FrozenRecord
from .graph import escapes
from .spec import PlacedSpec

TYPE_CHECKING = False  # typing is not imported at run time: ~2 ms of every run's start-up
if TYPE_CHECKING:  # pragma: no cover
    from typing import Any

    from ..load import expr


def _expr() -> Any:
    """The expression package, imported when a step has a hole, a ``when`` or a settings list:
    a lab without them does not load its parser and syntax tree (~3 ms of a run's start-up)."""
    from ..load import expr

    return expr


AGI_SETTINGS = ("args", "cluster")  # what an agi.* engine's generated snippet depends on


class ResolvedStep(FrozenRecord):
    _fields = (
        "id",
        "placed",
        "params",
        "inputs",
        "outputs",
        "env",
        "contract",
        "settings_used",
        "when",
        "problem",
        "env_names",
        "inferred",
    )

    def __init__(
        self,
        id: str,
        placed: PlacedSpec,
        params: dict[str, Any],
        inputs: list[str],
        outputs: list[str],
        env: str | None,
        contract: str | None,
        settings_used: dict[str, Any],
        when: bool | None,  # None: the step has no condition
        problem: str | None = None,  # why it could not be resolved (a missing setting, say)
        env_names: tuple[str, ...] = (),  # the environment variables its ${env.…} holes read
        # inferred inputs and outputs (in ``inputs``/``outputs`` too) -> where each was found ("C line 4")
        inferred: dict[str, str] | None = None,
    ) -> None:
        self.id = id
        self.placed = placed
        self.params = params
        self.inputs = inputs
        self.outputs = outputs
        self.env = env
        self.contract = contract
        self.settings_used = settings_used
        self.when = when
        self.problem = problem
        self.env_names = env_names
        self.inferred = {} if inferred is None else inferred


def _render(value: Any, context: Mapping[str, Any], keep_type: bool) -> Any:
    if isinstance(value, str):
        if not is_template(value):
            return value
        expr = _expr()
        template = expr.parse_template(value)
        if keep_type and len(template.parts) == 1 and isinstance(template.parts[0], expr.Ref):
            return expr.resolve(template.parts[0], context)
        return expr.render(template, context)
    if isinstance(value, dict):
        return {k: _render(v, context, keep_type) for k, v in value.items()}
    if isinstance(value, list):
        return [_render(v, context, keep_type) for v in value]
    return value


def refs_in(value: Any, root: str | None = "settings") -> list[expr.Ref]:
    """The ``${root.…}`` references in a value's strings (every reference when ``root`` is None)."""
    out: list[expr.Ref] = []
    if isinstance(value, str) and "${" in value:
        expr = _expr()
        out += [r for r in expr.iter_refs(expr.parse_template(value)) if root is None or r.root == root]
    elif isinstance(value, dict):
        for v in value.values():
            out += refs_in(v, root)
    elif isinstance(value, list):
        for v in value:
            out += refs_in(v, root)
    return out


def dotted(path: tuple[str | int, ...]) -> str:
    expr = _expr()
    return expr.to_source(expr.Ref("settings", path)).removeprefix("settings.")


def resolve_step(
    placed: PlacedSpec,
    settings: Mapping[str, Any],
    steps: Mapping[str, Mapping[str, list[str]]],
    environ: Mapping[str, str],
) -> ResolvedStep:
    """Render one step. ``steps`` maps the ids of the steps before it to ``{"outputs": [...]}``
    (shared, not copied: resolving a whole lab stays linear)."""
    stage = placed.stage
    context = {"settings": settings, "params": stage.params, "env": environ, "steps": steps}
    used: dict[str, Any] = {}
    every: list[expr.Ref] = []
    for value in (stage.params, list(stage.produces), list(stage.consumes), stage.env, stage.stage):
        every += refs_in(value, None)
    condition = None
    if stage.when is not None:
        condition = _expr().parse_condition(stage.when)
        every += _expr().iter_refs(condition)
    refs = [r for r in every if r.root == "settings"]
    env_names = tuple(sorted({str(r.path[0]) for r in every if r.root == "env"}))
    try:
        for ref in refs:
            used[dotted(ref.path)] = _expr().resolve(ref, context)
        if stage.settings == "*":
            used["*"] = dict(settings)
        else:
            for key in stage.settings:
                ref = _expr().parse_reference("settings." + key)
                used[dotted(ref.path)] = _expr().resolve(ref, context)
        if (stage.engine or "").startswith("agi."):
            for table in AGI_SETTINGS:
                used[table] = settings.get(table, {})
        params = _render(stage.params, context, keep_type=True)
        inputs = [str(_render(p, context, False)) for p in stage.consumes]
        outputs = [str(_render(p, context, False)) for p in stage.produces]
        env = _render(stage.env, context, False) if stage.env is not None else None
        contract = _render(stage.stage, context, False) if stage.stage is not None else None
        when = bool(_expr().evaluate(condition, context)) if condition is not None else None
    except EvalError as exc:
        return ResolvedStep(
            placed.id, placed, {}, [], list(stage.produces), None, None, used, None, str(exc), env_names
        )
    problem = None
    outside = [n for n, p in enumerate(outputs) if escapes(p)] if not stage.allow_outside else []
    if outside:  # a rendered path (a literal one is refused by check, with its line)
        problem = (
            f"output {outputs[outside[0]]!r} (from {stage.produces[outside[0]]!r}) is outside the "
            "lab's folder; set allow_outside = true on the stage to let it write there"
        )
    inferred: dict[str, str] = {}
    for direction, path, origin, _how in stage.inferred:  # taken as declared ones are (plan/infer.py)
        paths = inputs if direction == "input" else outputs
        if path not in paths:
            paths.append(path)
            inferred[path] = origin
    return ResolvedStep(
        placed.id, placed, params, inputs, outputs, env, contract, used, when, problem, env_names, inferred
    )
