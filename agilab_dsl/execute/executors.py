"""The run loop's executors: how it hands a step over and waits for the first to finish.

``-j 1`` runs each step at once, in the loop's own thread (:class:`Inline`); ``-j N`` gives each
running step a thread that waits on its worker (:func:`threads`; a run's own workers are served by
:class:`~.dispatch.Dispatch` instead). All offer ``room``, ``submit``, ``wait_first``, ``halt`` and
``shutdown``, so the loop does not know which it has.
"""

from __future__ import annotations

from collections.abc import Callable

TYPE_CHECKING = False  # typing is not imported at run time: ~2 ms of every run's start-up
if TYPE_CHECKING:  # pragma: no cover
    from typing import Any

    from .outcome import StepOutcome


def executor(jobs: int) -> Any:
    """The executor for ``-j jobs``."""
    return Inline() if jobs == 1 else threads(jobs)


class Done:
    """A finished call, with the interface of a finished ``concurrent.futures.Future``."""

    def __init__(self, value: Any = None, error: Exception | None = None) -> None:
        self._value, self._error = value, error

    def result(self) -> Any:
        if self._error is not None:
            raise self._error
        return self._value


class Inline:
    """The executor of ``-j 1``: runs what it is given at once. Ctrl-C (KeyboardInterrupt)
    propagates from the running step to the run loop."""

    def room(self, running: int) -> bool:
        """Whether the loop may hand over one more step (``running``: handed over, not finished)."""
        return running < 1

    def submit(self, fn: Callable[..., StepOutcome], *args: Any) -> Done:
        try:
            return Done(fn(*args))
        except Exception as exc:  # a bug surfaces from .result(), as with a thread pool
            return Done(error=exc)

    def wait_first(self, running: list[Any]) -> list[Any]:
        return running

    def halt(self) -> None:
        """The run stops at a failure: nothing was handed over that has not started."""
        return None

    def shutdown(self, wait: bool = True, cancel_futures: bool = False) -> None:
        return None


def threads(jobs: int) -> Any:
    """The executor of ``-j N``: a thread per running step, each waiting on its worker."""
    from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait

    class Threads(ThreadPoolExecutor):
        def room(self, running: int) -> bool:
            return running < jobs

        def wait_first(self, running: list[Any]) -> list[Any]:
            return list(wait(running, return_when=FIRST_COMPLETED)[0])

        def halt(self) -> None:  # every step handed over has a thread: it has started
            return None

    return Threads(max_workers=jobs)
