"""The lab's steps rendered (``${…}`` holes filled, AGILAB's frame added) when first asked for: a
run or a status that judges a few steps of a large lab renders those and the steps their holes
name, not the whole lab. Iterating renders every step, in graph order."""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from ..plan.resolve import ResolvedStep, resolve_step
from ..plan.spec import PlacedSpec
from .agilab_env import FramePaths, with_frame

TYPE_CHECKING = False  # typing is not imported at run time: ~2 ms of every run's start-up
if TYPE_CHECKING:  # pragma: no cover
    from typing import Any


class Rendered(Mapping[str, ResolvedStep]):
    def __init__(
        self,
        order: list[str],
        placed: Mapping[str, PlacedSpec],
        settings: Mapping[str, Any],
        environ: Mapping[str, str],
        frames: Mapping[str, FramePaths],
    ) -> None:
        self._order = order
        self._position = {sid: n for n, sid in enumerate(order)}
        self._placed = placed
        self._settings = settings
        self._environ = environ
        self._frames = frames
        self._raw: dict[str, ResolvedStep] = {}  # as rendered: what a later step's holes see
        self._done: dict[str, ResolvedStep] = {}

    def __getitem__(self, sid: str) -> ResolvedStep:
        step = self._done.get(sid)
        if step is None:
            if sid not in self._position:
                raise KeyError(sid)
            raw = resolve_step(
                self._placed[sid], self._settings, _Before(self, self._position[sid]), self._environ
            )
            self._raw[sid] = raw
            step = self._done[sid] = with_frame(raw, self._frames.get(sid))
        return step

    def raw_outputs(self, sid: str) -> list[str]:
        if sid not in self._raw:
            self[sid]
        return self._raw[sid].outputs

    def __iter__(self) -> Iterator[str]:
        return iter(self._order)

    def __len__(self) -> int:
        return len(self._order)

    def __contains__(self, sid: object) -> bool:
        return sid in self._position


class _Before(Mapping[str, Mapping[str, list[str]]]):
    """What a step's ``${steps.<id>.outputs[…]}`` holes see: the steps before it in graph order."""

    def __init__(self, steps: Rendered, limit: int) -> None:
        self._steps = steps
        self._limit = limit

    def _visible(self, sid: object) -> bool:
        position = self._steps._position.get(sid)  # type: ignore[arg-type]
        return position is not None and position < self._limit

    def __getitem__(self, sid: str) -> Mapping[str, list[str]]:
        if not self._visible(sid):
            raise KeyError(sid)
        return {"outputs": self._steps.raw_outputs(sid)}

    def __contains__(self, sid: object) -> bool:
        return self._visible(sid)

    def __iter__(self) -> Iterator[str]:
        return iter(self._steps._order[: self._limit])

    def __len__(self) -> int:
        return self._limit
