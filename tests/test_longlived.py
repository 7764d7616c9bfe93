"""plan.longlived: the cyclic collector paused while large structures are built (issue 18)."""

from __future__ import annotations

import gc

from agilab_dsl.plan.longlived import long_lived, transient


def test_long_lived_freezes_what_was_built_and_turns_the_collector_back_on() -> None:
    gc.unfreeze()
    assert gc.isenabled()
    with long_lived():
        assert not gc.isenabled()
        built = [{"n": i} for i in range(1000)]
        with long_lived():  # nested: the outer block freezes, once
            assert not gc.isenabled()
        assert gc.get_freeze_count() == 0
    assert gc.isenabled() and gc.get_freeze_count() >= len(built)
    gc.unfreeze()


def test_transient_freezes_nothing_and_works_as_a_decorator() -> None:
    gc.unfreeze()

    @transient()
    def build() -> bool:
        return gc.isenabled()

    assert build() is False and build() is False  # a fresh context each call
    assert gc.isenabled() and gc.get_freeze_count() == 0


def test_a_collector_turned_off_by_the_caller_stays_off() -> None:
    gc.disable()
    try:
        with long_lived():
            pass
        assert not gc.isenabled() and gc.get_freeze_count() == 0
    finally:
        gc.enable()


class _Node:
    def __init__(self) -> None:
        self.me = self  # a reference cycle: only the cyclic collector frees it


def test_parsed_collects_the_garbage_cycles_of_its_block_once_then_freezes() -> None:
    import weakref

    from agilab_dsl.plan.longlived import parsed

    gc.unfreeze()
    with parsed():
        assert not gc.isenabled()
        gone = weakref.ref(_Node())  # garbage at once, but a cycle: still alive here
        kept = [{"n": i} for i in range(1000)]
        assert gone() is not None
    assert gone() is None  # collected when the block ended, not frozen with what it built
    assert gc.isenabled() and gc.get_freeze_count() >= len(kept)
    gc.unfreeze()


def test_collected_once_collects_without_freezing() -> None:
    import weakref

    from agilab_dsl.plan.longlived import collected_once

    gc.unfreeze()
    with collected_once():
        gone = weakref.ref(_Node())
        assert not gc.isenabled() and gone() is not None
    assert gone() is None and gc.isenabled() and gc.get_freeze_count() == 0
