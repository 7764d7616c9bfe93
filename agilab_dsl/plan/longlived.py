"""Large structures built without the cyclic garbage collector watching.

Loading a big lab's spec, its state or its stored judgment creates hundreds of thousands of dicts,
lists and records that live until the process ends and hold no reference cycles. While they are
built, CPython's collector runs again and again over the growing heap and finds nothing: at 10,000
steps that was ~0.25 s of a 0.9 s run after one change; at 100,000 steps the spec cache loads 3x
faster without it. :func:`long_lived` turns the collector off while such a structure is built and
then freezes what exists (``gc.freeze``): later collections skip it. Frozen objects are still
freed by reference counting; only cycles that were already garbage at that moment stay (a one-shot
command ends soon after; the CLI's ``main`` hands everything back to the collector when a command
returns). :func:`parsed` is for a build that does leave cyclic garbage (parsing and validating a
lab file: ~500 objects at any size): that is collected once, at its end, before the rest is frozen.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager


def long_lived() -> AbstractContextManager[None]:
    """Build what the block builds with the collector off; freeze it afterwards. Nested blocks
    freeze once, when the outermost ends; a collector the caller turned off stays off."""
    return _paused(freeze=True)


def parsed() -> AbstractContextManager[None]:
    """:func:`long_lived` for a build that leaves some cyclic garbage: one collection of what the
    block allocated (the youngest generation, where all of it still is) before the freeze. At
    100,000 steps a lab's uncached load took 18.4 s with the collector on, 14.0 s so (0.25 s of it
    that one collection)."""
    return _paused(freeze=True, collect=True)


def collected_once() -> AbstractContextManager[None]:
    """The collector off while the block builds what dies soon after it (a lab file checked and
    reported), then one collection of what the block allocated, freezing nothing."""
    return _paused(freeze=False, collect=True)


def transient() -> AbstractContextManager[None]:
    """The collector off while the block builds many objects that die with it (a run's history
    rows, say), without freezing anything. Also a decorator: ``@transient()``."""
    return _paused(freeze=False)


@contextmanager
def _paused(*, freeze: bool, collect: bool = False) -> Iterator[None]:
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        if collect:
            gc.collect(0)  # with the collector off, everything allocated since is in generation 0
        if freeze:
            gc.freeze()
        gc.enable()
