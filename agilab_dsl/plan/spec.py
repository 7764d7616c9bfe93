"""What judging and running a lab read of it, as plain data: no pydantic, no TOML.

A validated :class:`~agilab_dsl.load.model.Lab` is turned into a :class:`LabSpec` once; the resolver,
the staleness judge and the runner read only these. Being plain data, a spec round-trips through
JSON, so a run whose lab and settings did not change can start from the stored spec without
importing pydantic or parsing the TOML again (see :mod:`agilab_dsl.execute.session`).

Attribute names mirror the models' (``placed.stage.code``, ``lab.stages``, ``lab.module_keys``)
so the graph builds from either.
"""

from __future__ import annotations

from ..load.records import FrozenRecord

TYPE_CHECKING = False  # typing is not imported at run time: ~2 ms of every run's start-up
if TYPE_CHECKING:  # pragma: no cover
    from collections.abc import Sequence
    from typing import Any

    from ..load.model import Lab, Stage


class StepSpec(FrozenRecord):
    """The keys of a stage that change what it does or when it runs (not D, Q, M, NB_*), and D, Q, M
    themselves: never judged (no fingerprint reads them), carried for the history and its export."""

    _fields = (
        "description",
        "question",
        "model",
        "code",
        "function",
        "engine",
        "env",
        "backend",
        "mode",
        "params",
        "produces",
        "consumes",
        "deps",
        "stage",
        "settings",
        "when",
        "retries",
        "timeout",
        "off",
        "skip_if_outputs_exist",
        "parallel_safe",
        "fallback",
        "allow_outside",
        "inferred",
    )
    __slots__ = _fields

    def __init__(
        self,
        description: str | None = None,  # D
        question: str | None = None,  # Q
        model: str | None = None,  # M
        code: str | None = None,
        function: str | None = None,
        engine: str | None = None,
        env: str | None = None,
        backend: str | None = None,
        mode: int | str | None = None,
        params: dict[str, Any] | None = None,
        produces: tuple[str, ...] = (),
        consumes: tuple[str, ...] = (),
        deps: tuple[str, ...] = (),
        stage: str | None = None,
        settings: tuple[str, ...] | str = (),
        when: str | None = None,
        retries: int = 0,
        timeout: float | None = None,
        off: str | None = None,  # why the stage is disabled (enabled = false, skip = true, …), or None
        skip_if_outputs_exist: bool = False,
        parallel_safe: bool = False,
        fallback: str | None = None,
        allow_outside: bool = False,
        # inferred artifacts (plan/infer.py): (direction, path, origin, how), apart from the declared ones
        inferred: tuple[tuple[str, str, str, str], ...] = (),
    ) -> None:
        self.description = description
        self.question = question
        self.model = model
        self.code = code
        self.function = function
        self.engine = engine
        self.env = env
        self.backend = backend
        self.mode = mode
        self.params = {} if params is None else params
        self.produces = produces
        self.consumes = consumes
        self.deps = deps
        self.stage = stage
        self.settings = settings
        self.when = when
        self.retries = retries
        self.timeout = timeout
        self.off = off
        self.skip_if_outputs_exist = skip_if_outputs_exist
        self.parallel_safe = parallel_safe
        self.fallback = fallback
        self.allow_outside = allow_outside
        self.inferred = inferred

    @property
    def disabled(self) -> bool:
        return self.off is not None

    @classmethod
    def of(cls, stage: Stage, inferred: tuple[tuple[str, str, str, str], ...] = ()) -> StepSpec:
        held = stage.__dict__  # a pydantic model keeps its fields there; the rest are properties
        values = {name: held[name] if name in held else getattr(stage, name) for name in _OF_STAGE}
        return cls(**values, inferred=inferred)


_STEP_FIELDS = StepSpec._fields
_OF_STAGE = tuple(name for name in _STEP_FIELDS if name != "inferred")
_TUPLES = ("produces", "consumes", "deps")


class PlacedSpec(FrozenRecord):
    _fields = ("module", "index", "id", "stage", "selected")
    __slots__ = _fields

    def __init__(
        self,
        module: str,
        index: int,
        id: str,
        stage: StepSpec,
        selected: bool = True,  # False: the saved __sequence does not list it
    ) -> None:
        self.module = module
        self.index = index
        self.id = id
        self.stage = stage
        self.selected = selected


class LabSpec(FrozenRecord):
    _fields = ("path", "module_keys", "stages", "max_workers", "profile")

    def __init__(
        self,
        path: str,
        module_keys: tuple[str, ...],
        stages: tuple[PlacedSpec, ...],
        max_workers: int | str | None = None,  # [__meta__]."<key>__automation".max_workers: the default -j
        profile: str = "balanced",  # [__meta__]."<key>__automation".profile, else AGILAB's default
    ) -> None:
        self.path = path
        self.module_keys = module_keys
        self.stages = stages
        self.max_workers = max_workers
        self.profile = profile

    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(s.id for s in self.stages)

    @classmethod
    def of(cls, lab: Lab, inferred: Sequence[tuple[tuple[str, str, str, str], ...]] = ()) -> LabSpec:
        """The lab as plain data; ``inferred``: each stage's inferred artifacts, in the lab's order
        (:func:`agilab_dsl.plan.infer.lab_spec` gives them)."""
        from ..load.lab import DEFAULT_PROFILE

        saved = [a.max_workers for m, a in lab.meta.automation.items() if a.max_workers is not None]
        profiles = [a.profile for a in lab.meta.automation.values() if a.profile]
        found = list(inferred) or [()] * len(lab.stages)
        return cls(
            lab.path,
            lab.module_keys,
            tuple(
                PlacedSpec(s.module, s.index, s.id, StepSpec.of(s.stage, found[n]), s.selected)
                for n, s in enumerate(lab.stages)
            ),
            saved[0] if saved else None,
            profiles[0] if profiles else DEFAULT_PROFILE,
        )

    def to_json(self) -> dict[str, Any]:
        defaults = StepSpec()
        return {
            "path": self.path,
            "module_keys": list(self.module_keys),
            "stages": [
                {
                    "module": s.module,
                    "index": s.index,
                    "id": s.id,
                    "selected": s.selected,
                    # only what differs from the defaults: a 1,000-step spec stays small
                    "stage": {
                        name: getattr(s.stage, name)
                        for name in _STEP_FIELDS
                        if getattr(s.stage, name) != getattr(defaults, name)
                    },
                }
                for s in self.stages
            ],
            "max_workers": self.max_workers,
            "profile": self.profile,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> LabSpec:
        stages = []
        for s in data["stages"]:
            values = dict(s["stage"])
            for name in _TUPLES:
                if name in values:
                    values[name] = tuple(values[name])
            if isinstance(values.get("settings"), list):
                values["settings"] = tuple(values["settings"])
            if "inferred" in values:
                values["inferred"] = tuple(tuple(a) for a in values["inferred"])
            stages.append(PlacedSpec(s["module"], s["index"], s["id"], StepSpec(**values), s["selected"]))
        return cls(
            data["path"], tuple(data["module_keys"]), tuple(stages), data["max_workers"], data["profile"]
        )
