"""Value classes without :mod:`dataclasses`, for the modules every ``agilab-run`` imports.

A record lists its fields, in ``__init__``'s order, in ``_fields`` and writes its own ``__init__``;
:class:`Record` gives it equality, a ``repr`` and :meth:`~Record.replace` over those fields (less
those named in ``_uncompared``), and :class:`FrozenRecord` a hash too: what ``@dataclass`` and
``@dataclass(frozen=True)`` generate, bar the run-time refusal to assign. ``dataclasses`` generates
them with ``exec`` as each class is defined (~0.3 ms a class) and imports ``inspect`` (~3 ms): for
the ~25 classes on a run's path, ~15 ms of every run of a small lab (issue 18). Only the standard
library's ``__init_subclass__`` runs here, once per class, with no code generated.
"""

from __future__ import annotations

from operator import attrgetter  # already imported by collections, which every run imports

TYPE_CHECKING = False  # typing itself is not imported: start-up pays for every module
if TYPE_CHECKING:  # pragma: no cover
    from typing import Any, ClassVar, Self


class Record:  # noqa: PLW1641 - mutable: unhashable, as a dataclass with eq
    """Equality (same class, same compared fields), ``repr`` and ``replace`` from ``_fields``; no
    hash (defining ``__eq__`` leaves it out), as a mutable dataclass."""

    __slots__ = ()
    _fields: ClassVar[tuple[str, ...]] = ()
    _uncompared: ClassVar[frozenset[str]] = frozenset()  # left out of equality, hash and repr
    _compared: ClassVar[tuple[str, ...]] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._compared = tuple(n for n in cls._fields if n not in cls._uncompared)
        if len(cls._compared) > 1:  # the fields' tuple made in C: a graph hashes 100,000 edges
            cls._key = _getter(attrgetter(*cls._compared))  # type: ignore[method-assign]

    def _key(self) -> tuple[Any, ...]:
        return tuple(getattr(self, name) for name in self._compared)

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return self._key() == other._key()  # type: ignore[attr-defined]

    def __repr__(self) -> str:
        shown = ", ".join(f"{name}={getattr(self, name)!r}" for name in self._compared)
        return f"{type(self).__qualname__}({shown})"

    def replace(self, **changes: Any) -> Self:
        """A copy with ``changes`` (``dataclasses.replace``: made by ``__init__`` again)."""
        values = {name: getattr(self, name) for name in self._fields}
        values.update(changes)
        return type(self)(**values)


class FrozenRecord(Record):
    """A record that is not changed once made (by convention: nothing enforces it), hashable."""

    __slots__ = ()

    def __hash__(self) -> int:
        return hash(self._key())


def _getter(get: Any) -> Any:
    """A method returning ``get(self)``: an ``attrgetter`` of two or more names gives the tuple."""

    def _key(self: Record) -> tuple[Any, ...]:
        return get(self)  # type: ignore[no-any-return]

    return _key
