"""Loading an app's settings (``app_settings.toml``), judged as AGILAB judges it.

AGILAB's structural validator (``agi_env/project/app_settings_schema.py``, since 4cc433e1d) is
warning-first: it refuses only the shapes its code would crash on or silently discard, and warns
about values its code reads loosely. Every one of its rules is here, with its severity, located at
the key or value: the core sections must be tables; ``[__meta__] version`` must read as 1;
``args.args`` is the legacy name of ``args.stages`` (both: an error); in ``[cluster]``,
``pool``/``cython``/``rapids`` must be what ``int()`` reads, ``cluster_enabled`` should be a bool,
``verbose`` an int 0-3, ``scheduler`` a string, ``workers`` a table of non-negative integer counts
(a fraction is truncated), ``service_health`` a table; ``[pages]`` and ``[app_surface]`` shapes.
Beyond AGILAB, a few warnings where its code misreads a value silently (``pool = 2``, a string
``verbose``) and about ``[cluster]`` keys that AGILAB does not read (a typo, usually).

The model (:class:`~agilab_dsl.load.model.AppSettings`) then holds the values as AGILAB reads them.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .address import scheduler_problem
from .coercion import int_flag, loose_bool, settings_version, verbose_level, worker_count
from .errors import Severity, nearest_key
from .parse import LoadResult, Locator, key_text, read_source, toml_repr
from .validation import report_validation

CORE_TABLES = ("__meta__", "args", "cluster", "pages", "app_surface")
INT_FLAGS = ("pool", "cython", "rapids")
W = Severity.WARNING


def load_settings(path: str | Path, text: str | None = None) -> LoadResult[Any]:
    """Load an ``app_settings.toml``: ``[args]``, ``[cluster]``, and other tables kept as written."""
    result, loc = read_source(path, text, "settings")
    if result.data is not None:
        build_settings(result, loc)
    return result


def build_settings(result: LoadResult[Any], loc: Locator) -> None:
    """Judge a parsed ``app_settings.toml`` by AGILAB's rules; on no error, build the model."""
    from pydantic import ValidationError

    from .settings_model import AppSettings

    data = result.data
    assert data is not None
    before = len(loc.diagnostics)
    for section in CORE_TABLES:
        if section in data and not isinstance(data[section], Mapping):
            loc.at_value(
                "wrong-type",
                f"{section} must be a table, not {toml_repr(data[section])}",
                (section,),
                hint=f"write [{section}] as a table",
            )
    _meta(_table(data, "__meta__"), loc)
    _args(_table(data, "args"), loc)
    _cluster(_table(data, "cluster"), loc)
    _pages(_table(data, "pages"), loc)
    _app_surface(_table(data, "app_surface"), loc)
    _paths(data, loc)
    if any(d.is_error for d in loc.diagnostics[before:]):
        return
    try:
        settings = AppSettings.model_validate(data)
    except ValidationError as exc:  # a shape the rules above let through: still located, never raised
        report_validation(loc, exc, (), data, known_keys=CORE_TABLES)
        return
    if not any(d.is_error for d in loc.diagnostics):
        result.value = settings


def _table(data: Mapping[str, Any], key: str) -> Mapping[str, Any] | None:
    value = data.get(key)
    return value if isinstance(value, Mapping) else None


def _meta(meta: Mapping[str, Any] | None, loc: Locator) -> None:
    if meta is None or "version" not in meta:
        return
    try:
        settings_version(meta["version"])
    except ValueError:
        loc.at_value(
            "metadata-version",
            f"unsupported app_settings format version {toml_repr(meta['version'])}",
            ("__meta__", "version"),
            hint="AGILAB reads version = 1; a newer file needs a newer AGILAB",
        )


def _args(args: Mapping[str, Any] | None, loc: Locator) -> None:
    if args is None or "args" not in args:
        return
    if "stages" in args:
        loc.at_key(
            "key-conflict",
            "args.args and args.stages are both set: AGILAB refuses the file "
            "(args.args is the legacy name of args.stages)",
            ("args", "args"),
            hint="keep only args.stages",
        )
    else:
        loc.at_key(
            "legacy-dialect",
            "args.args is the legacy name of args.stages (AGILAB renames it on its next write)",
            ("args", "args"),
            hint="rename it args.stages",
        )


def _cluster(cluster: Mapping[str, Any] | None, loc: Locator) -> None:
    from .settings_model import CLUSTER_KEYS

    if cluster is None:
        return
    for key in cluster:
        if key not in CLUSTER_KEYS:
            loc.at_key(
                "unknown-key",
                f"unknown [cluster] key {key!r}",
                ("cluster", key),
                severity=W,
                hint=nearest_key(key, CLUSTER_KEYS),
            )
    for flag in INT_FLAGS:
        if flag in cluster:
            _int_flag(flag, cluster[flag], loc)
    if "cluster_enabled" in cluster and not isinstance(cluster["cluster_enabled"], bool):
        value = cluster["cluster_enabled"]
        read = loose_bool(value)
        how = (
            f"AGILAB reads it as {str(read).lower()}"
            if read is not None
            else "AGILAB cannot read it (it falls back to AGI_CLUSTER_ENABLED, else false); read here as false"
        )
        loc.at_value(
            "wrong-type",
            f"cluster.cluster_enabled should be true or false, not {toml_repr(value)}: {how}",
            ("cluster", "cluster_enabled"),
            severity=W,
        )
    if "verbose" in cluster:
        _verbose(cluster["verbose"], loc)
    for key, what in (("scheduler", 'an address "host:port"'), ("workers_data_path", "a path")):
        value = cluster.get(key)
        if value is not None and not isinstance(value, str):
            loc.at_value(
                "wrong-type",
                f"cluster.{key} should be a string ({what}), not {toml_repr(value)}",
                ("cluster", key),
                severity=W,
                hint=f'write {key} = "{value}"',
            )
    scheduler = cluster.get("scheduler")
    if isinstance(scheduler, str) and scheduler.strip():  # "" is AGILAB's default: no scheduler
        problem = scheduler_problem(scheduler)
        if problem:
            loc.at_value("scheduler-invalid", problem, ("cluster", "scheduler"))
    if "workers" in cluster:
        _workers(cluster["workers"], loc)
    if "service_health" in cluster and not isinstance(cluster["service_health"], Mapping):
        loc.at_value(
            "wrong-type",
            f"cluster.service_health must be a table, not {toml_repr(cluster['service_health'])}",
            ("cluster", "service_health"),
            hint="write [cluster.service_health] as a table",
        )


def _int_flag(flag: str, value: Any, loc: Locator) -> None:
    path = ("cluster", flag)
    if isinstance(value, bool):
        return
    try:
        on = int_flag(value)
    except ValueError:
        loc.at_value(
            "wrong-type",
            f"cluster.{flag} must be true, false or an integer, not {toml_repr(value)}: "
            "AGILAB reads it with int(), which raises",
            path,
            hint=f"write {flag} = true or {flag} = false",
        )
        return
    if not isinstance(value, int):
        loc.at_value(
            "wrong-type",
            f"cluster.{flag} should be true or false, not {toml_repr(value)}: "
            f"AGILAB reads it as int({toml_repr(value)}) = {int(value)}",
            path,
            severity=W,
            hint=f"write {flag} = {str(on).lower()}",
        )
    elif value not in (0, 1):
        loc.at_value(
            "invalid-value",
            f"cluster.{flag} = {value}: AGILAB adds int({flag}) to its mode bitmask, so a value "
            "other than 0 or 1 sets other flags' bits (read here as on)",
            path,
            severity=W,
            hint=f"write {flag} = true",
        )


def _verbose(value: Any, loc: Locator) -> None:
    path = ("cluster", "verbose")
    read = verbose_level(value)
    if isinstance(value, bool):
        message = (
            f"cluster.verbose should be an integer 0-3, not {toml_repr(value)}: AGILAB reads it as {read}"
        )
        loc.at_value("wrong-type", message, path, severity=W, hint=f"write verbose = {read}")
    elif isinstance(value, int):
        if value != read:
            message = f"cluster.verbose must be 0-3, not {value}: AGILAB reads it as {read}"
            loc.at_value(
                "invalid-value", message, path, severity=W, hint="0 quiet, 1 standard, 2 detailed, 3 debug"
            )
    else:
        message = (
            f"cluster.verbose should be an integer 0-3, not {toml_repr(value)}: AGILAB reads it as {read}"
        )
        loc.at_value("wrong-type", message, path, severity=W, hint=f"write verbose = {read}")


def _workers(workers: Any, loc: Locator) -> None:
    if not isinstance(workers, Mapping):
        loc.at_value(
            "wrong-type",
            f"cluster.workers must be a table of host = count, not {toml_repr(workers)}",
            ("cluster", "workers"),
            hint='write [cluster.workers] with lines such as "127.0.0.1" = 2',
        )
        return
    for host, count in workers.items():
        path = ("cluster", "workers", host)
        name = key_text(path)
        try:
            read = worker_count(count)
        except ValueError:
            if isinstance(count, bool) or not isinstance(count, (int, float)):
                loc.at_value("wrong-type", f"{name} must be an integer, not {toml_repr(count)}", path)
            else:
                loc.at_value("invalid-value", f"{name} must be ≥ 0, not {toml_repr(count)}", path)
            continue
        if isinstance(count, float):
            loc.at_value(
                "wrong-type",
                f"{name} should be an integer, not {count}: AGILAB truncates it to {read}",
                path,
                severity=W,
                hint=f"write {read}",
            )


def _pages(pages: Mapping[str, Any] | None, loc: Locator) -> None:
    if pages is None:
        return
    default = pages.get("default_view")
    if default is not None and not isinstance(default, str):
        loc.at_value(
            "wrong-type",
            f"pages.default_view must be a string (a page module name), not {toml_repr(default)}",
            ("pages", "default_view"),
        )
    if "view_module" not in pages:
        return
    modules = pages["view_module"]
    if not isinstance(modules, list):
        loc.at_value(
            "wrong-type",
            f"pages.view_module must be an array of page module names, not {toml_repr(modules)}: "
            "AGILAB ignores any other shape",
            ("pages", "view_module"),
            hint=f'write view_module = ["{modules}"]' if isinstance(modules, str) else None,
        )
        return
    for i, item in enumerate(modules):
        path = ("pages", "view_module", i)
        if not isinstance(item, str):
            loc.at_value(
                "wrong-type", f"pages.view_module[{i}] must be a string, not {toml_repr(item)}", path
            )
        elif not item.strip():
            loc.at_value(
                "invalid-value", f"pages.view_module[{i}] is blank: AGILAB skips it", path, severity=W
            )


def _declares_target(entry: Mapping[str, Any]) -> bool:
    """AGILAB's test: a non-blank ``entrypoint`` or ``url``."""
    return any(str(entry.get(key) or "").strip() for key in ("entrypoint", "url"))


def _app_surface(surface: Mapping[str, Any] | None, loc: Locator) -> None:
    if surface is None:
        return
    if isinstance(surface.get("default"), bool):
        loc.at_value(
            "wrong-type",
            "app_surface.default names the default surface: a string, not a boolean",
            ("app_surface", "default"),
            severity=W,
        )
    backends = surface.get("backends")
    targeted = _declares_target(surface)
    if backends is not None and not isinstance(backends, Mapping):
        loc.at_value(
            "wrong-type",
            f"app_surface.backends must be a table of backend tables, not {toml_repr(backends)}",
            ("app_surface", "backends"),
        )
    elif backends is not None:
        for name, entry in backends.items():
            path = ("app_surface", "backends", name)
            if not isinstance(entry, Mapping):
                loc.at_value(
                    "wrong-type", f"app_surface.backends.{name} must be a table, not {toml_repr(entry)}", path
                )
                continue
            if _declares_target(entry):
                targeted = True
            else:
                loc.at_key(
                    "key-missing",
                    f"app_surface.backends.{name} has neither entrypoint nor url: AGILAB skips this backend",
                    path,
                    severity=W,
                )
            if entry.get("default") is not None and not isinstance(entry["default"], bool):
                loc.at_value(
                    "wrong-type",
                    f"app_surface.backends.{name}.default: only true marks the default backend; "
                    f"AGILAB ignores {toml_repr(entry['default'])}",
                    (*path, "default"),
                    severity=W,
                )
    if not targeted:
        loc.at_key(
            "key-missing",
            "app_surface has no entrypoint or url (directly or in a backend): AGILAB drops the surface",
            ("app_surface",),
            severity=W,
        )


def _paths(data: Mapping[str, Any], loc: Locator) -> None:
    """``connector_catalog.path`` and ``legacy_paths.data_in/data_out``: strings, or a warning."""
    for table, keys in (("connector_catalog", ("path",)), ("legacy_paths", ("data_in", "data_out"))):
        section = _table(data, table)
        for key in keys if section is not None else ():
            value = section.get(key)  # type: ignore[union-attr]
            if value is not None and not isinstance(value, str):
                loc.at_value(
                    "wrong-type",
                    f"{table}.{key} should be a string path, not {toml_repr(value)}",
                    (table, key),
                    severity=W,
                )
