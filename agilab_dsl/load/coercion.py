"""How AGILAB reads the loosely typed values of ``app_settings.toml`` (standard library only).

AGILAB's structural validator (``agi_env/project/app_settings_schema.py``) lets some values through
with a warning because the code that consumes them coerces them: ``int(pool)`` for the mode
bitmask, a tolerant yes/no parser for ``cluster_enabled``, ``int()`` for a worker count. These
functions do the same, so that the settings model (:mod:`.model`) holds the values AGILAB would
use and the settings builder (:mod:`.settings`) can say what a value is read as.
"""

from __future__ import annotations

from typing import Any

APP_SETTINGS_VERSION = 1
VERBOSE_LEVELS = range(0, 4)
VERBOSE_DEFAULT = 1  # AGILAB's DEFAULT_DIAGNOSTICS_VERBOSE, what a bad verbose value becomes
LOOSE_TRUE = ("1", "true", "yes", "y", "on")
LOOSE_FALSE = ("0", "false", "no", "n", "off", "")


def int_flag(value: Any) -> bool:
    """``pool``/``cython``/``rapids``: AGILAB computes its mode with ``int(value)``; a bool or anything
    ``int()`` reads is accepted (nonzero = on), anything else raises there and here."""
    if isinstance(value, bool):
        return value
    try:
        return int(value) != 0
    except (TypeError, ValueError, OverflowError):
        raise ValueError(f"must be true, false or an integer; AGILAB's int() cannot read {value!r}") from None


def loose_bool(value: Any) -> bool | None:
    """``cluster_enabled`` as AGILAB's tolerant parser reads it (``share_mount_support._parse_bool``):
    numbers by truth, the strings yes/no/on/off/1/0/true/false (any case), anything else None."""
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        return bool(value)
    if isinstance(value, str):
        word = value.strip().lower()
        if word in LOOSE_TRUE:
            return True
        if word in LOOSE_FALSE:
            return False
    return None


def verbose_level(value: Any) -> int:
    """``verbose`` as AGILAB's ``coerce_diagnostics_verbose`` reads it: an int 0-3 (``int()`` of the
    value), else 1 — a bool too."""
    if isinstance(value, bool):
        return VERBOSE_DEFAULT
    try:
        level = int(value)
    except (TypeError, ValueError, OverflowError):
        return VERBOSE_DEFAULT
    return level if level in VERBOSE_LEVELS else VERBOSE_DEFAULT


def worker_count(value: Any) -> int:
    """A ``[cluster.workers]`` count: a non-negative int; a float is truncated, as AGILAB does
    (``-0.5`` is 0; ``-1.5``, ``inf`` and ``nan`` are refused)."""
    if isinstance(value, float):
        try:
            value = int(value)
        except (ValueError, OverflowError):
            raise ValueError("must be a non-negative integer") from None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError("must be a non-negative integer")
    return value


def settings_version(value: Any) -> Any:
    """``[__meta__] version``: absent or blank, else what ``int()`` reads must be 1 (AGILAB's
    ``app_settings_contract_error``, which also lets ``"1"`` and ``true`` through)."""
    if value is None or value == "":
        return value
    try:
        number = int(value)
    except (TypeError, ValueError, OverflowError):
        raise ValueError(f"must be {APP_SETTINGS_VERSION}") from None
    if number != APP_SETTINGS_VERSION:
        raise ValueError(f"must be {APP_SETTINGS_VERSION}")
    return value


def as_str(value: Any) -> str:
    """``str(value or "")``, as AGILAB reads ``scheduler`` and ``workers_data_path``."""
    return str(value) if value else ""
