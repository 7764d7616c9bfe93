"""app_settings.toml judged as AGILAB judges it (agi_env/project/app_settings_schema.py at 37a3333c0):
the same refusals and warnings on AGILAB's own test payloads, every corpus file clean under --strict,
and the values AGILAB coerces coerced the same way (the mode bitmask included)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from conftest import corpus_files, needs_corpus

from agilab_dsl.cli import main
from agilab_dsl.load.settings import load_settings
from agilab_dsl.load.settings_model import CLUSTER_KEYS, AppSettings


def judge(payload: dict[str, Any]) -> tuple[list[str], list[str]]:
    """(errors, warnings) as ``code key`` strings, for a payload written as TOML."""
    import tomlkit

    result = load_settings("app_settings.toml", tomlkit.dumps(payload))
    for d in result.diagnostics:
        assert d.line is not None, f"unlocated: {d.message}"
    errors = [f"{d.code} {d.key}" for d in result.diagnostics if d.is_error]
    warnings = [f"{d.code} {d.key}" for d in result.diagnostics if not d.is_error]
    assert (result.value is not None) == (not errors)
    return errors, warnings


# AGILAB's own test payloads (test_app_settings_schema.py) and what AGILAB says of each:
# (payload, errors AGILAB reports, warnings AGILAB reports). Our keys name the same places.
AGILAB_CASES: list[tuple[str, dict[str, Any], list[str], list[str]]] = [
    ("empty", {}, [], []),
    ("meta version 1", {"__meta__": {"version": 1}}, [], []),
    ("meta version '1'", {"__meta__": {"version": "1"}}, [], []),
    ("meta without version", {"__meta__": {"owner": "app"}}, [], []),
    ("meta version 2", {"__meta__": {"version": 2}}, ["metadata-version __meta__.version"], []),
    ("meta version 'next'", {"__meta__": {"version": "next"}}, ["metadata-version __meta__.version"], []),
    ("args and stages", {"args": {"args": [], "stages": []}}, ["key-conflict args.args"], []),
    ("legacy args.args", {"args": {"args": [{"name": "stage"}]}}, [], ["legacy-dialect args.args"]),
    ("empty args", {"args": {}}, [], []),
    ("verbose bool", {"cluster": {"verbose": True}}, [], ["wrong-type cluster.verbose"]),
    ("verbose 9", {"cluster": {"verbose": 9}}, [], ["invalid-value cluster.verbose"]),
    ("verbose 2", {"cluster": {"verbose": 2}}, [], []),
    (
        "loose flag and scheduler",
        {"cluster": {"cluster_enabled": "yes", "scheduler": 8786}},
        [],
        ["wrong-type cluster.cluster_enabled", "wrong-type cluster.scheduler"],
    ),
    (
        "int flags int() cannot read",
        {"cluster": {"pool": "true", "cython": "yes", "rapids": False}},
        ["wrong-type cluster.pool", "wrong-type cluster.cython"],
        [],
    ),
    ("pool '1'", {"cluster": {"pool": "1"}}, [], ["wrong-type cluster.pool"]),
    ("pool true, cython 0", {"cluster": {"pool": True, "cython": 0}}, [], []),
    ("pool 1", {"cluster": {"pool": 1}}, [], []),
    ("workers empty", {"cluster": {"workers": {}}}, [], []),
    ("workers 2", {"cluster": {"workers": {"127.0.0.1": 2}}}, [], []),
    (
        "bad worker counts",
        {"cluster": {"workers": {"a-host": -1, "b-host": True, "c-host": "2"}}},
        [
            "invalid-value cluster.workers.a-host",
            "wrong-type cluster.workers.b-host",
            "wrong-type cluster.workers.c-host",
        ],
        [],
    ),
    ("workers not a table", {"cluster": {"workers": "many"}}, ["wrong-type cluster.workers"], []),
    (
        "fractional worker count",
        {"cluster": {"workers": {"127.0.0.1": 2.5}}},
        [],
        ['wrong-type cluster.workers."127.0.0.1"'],
    ),
    ("service_health table", {"cluster": {"service_health": {}}}, [], []),
    ("service_health true", {"cluster": {"service_health": True}}, ["wrong-type cluster.service_health"], []),
    ("view_module empty", {"pages": {"view_module": []}}, [], []),
    ("view_module names", {"pages": {"view_module": ["app_ui"]}}, [], []),
    ("view_module string", {"pages": {"view_module": "view_maps"}}, ["wrong-type pages.view_module"], []),
    (
        "view_module item",
        {"pages": {"view_module": ["view_maps", 3]}},
        ["wrong-type pages.view_module[1]"],
        [],
    ),
    (
        "view_module blank",
        {"pages": {"view_module": ["view_maps", " "]}},
        [],
        ["invalid-value pages.view_module[1]"],
    ),
    ("default_view name", {"pages": {"default_view": "view_maps"}}, [], []),
    ("default_view 1", {"pages": {"default_view": 1}}, ["wrong-type pages.default_view"], []),
    (
        "app_surface dual default",
        {
            "app_surface": {
                "title": "Cockpit",
                "entrypoint": "app/app_surface.py",
                "default": "streamlit",
                "backends": {"streamlit": {"entrypoint": "app/app_surface.py", "default": True}},
            }
        },
        [],
        [],
    ),
    (
        "app_surface misused defaults",
        {
            "app_surface": {
                "entrypoint": "app/app_surface.py",
                "default": True,
                "backends": {"streamlit": {"entrypoint": "app/app_surface.py", "default": "true"}},
            }
        },
        [],
        ["wrong-type app_surface.default", "wrong-type app_surface.backends.streamlit.default"],
    ),
    ("app_surface without target", {"app_surface": {"title": "Cockpit"}}, [], ["key-missing app_surface"]),
    (
        "app_surface backend without target",
        {"app_surface": {"backends": {"streamlit": {"title": "Cockpit"}}}},
        [],
        ["key-missing app_surface.backends.streamlit", "key-missing app_surface"],
    ),
    (
        "app_surface backends a string",
        {"app_surface": {"backends": "streamlit"}},
        ["wrong-type app_surface.backends"],
        ["key-missing app_surface"],
    ),
    (
        "app_surface backend a string",
        {"app_surface": {"backends": {"streamlit": "app.py"}}},
        ["wrong-type app_surface.backends.streamlit"],
        ["key-missing app_surface"],
    ),
    (
        "app-owned territory",
        {
            "args": {"custom": {"nested": [1, 2, 3]}, "stages": [{"name": "run"}]},
            "pages": {"view_module": ["view_maps_network"], "view_maps_network": {"anything": True}},
            "view_maps_network": {"widget_state": ["a", "b"]},
            "connector_refs": {"weather": "connector-1"},
            "page_connector_refs": {"release_decision": {"role": "id"}},
            "app_surface": {
                "entrypoint": "app/app_surface.py",
                "policies": [{"label": "L", "directory": "d", "role": "r"}],
                "sidebar_controls": {"free": "form"},
            },
        },
        [],
        [],
    ),
    (
        "pass-through paths",
        {"connector_catalog": {"path": 5}, "legacy_paths": {"data_in": 5, "data_out": "ok"}},
        [],
        ["wrong-type connector_catalog.path", "wrong-type legacy_paths.data_in"],
    ),
]


@pytest.mark.parametrize(
    ("payload", "errors", "warnings"), [c[1:] for c in AGILAB_CASES], ids=[c[0] for c in AGILAB_CASES]
)
def test_agilab_test_payloads_get_agilab_severities(
    payload: dict[str, Any], errors: list[str], warnings: list[str]
) -> None:
    got_errors, got_warnings = judge(payload)
    assert sorted(got_errors) == sorted(errors)
    assert sorted(got_warnings) == sorted(warnings)


@pytest.mark.parametrize("section", ["__meta__", "args", "cluster", "pages", "app_surface"])
def test_core_sections_must_be_tables(section: str) -> None:
    assert judge({section: "oops"}) == ([f"wrong-type {section}"], [])


def test_keys_agilab_reads_are_known_and_others_warned() -> None:
    agilab_reads = {
        "user": "me",
        "auth_method": "ssh_key",
        "ssh_key_path": "~/.ssh/id",
        "pool_executor": "thread",
        "pool_item_timeout": 30.0,
        "pool_max_workers": 4,
        "workflow_id": "workflows",
        "workflow_session": "s1",
        "workflow_session_policy": "last",
    }
    assert set(agilab_reads) <= set(CLUSTER_KEYS)
    assert judge({"cluster": agilab_reads}) == ([], [])
    # read leniently by AGILAB, so kept as written and never refused
    assert judge({"cluster": {"pool_executor": "fast", "pool_max_workers": "x"}}) == ([], [])
    assert judge({"cluster": {"cluster_enable": True}}) == ([], ["unknown-key cluster.cluster_enable"])


@pytest.mark.parametrize(
    ("cluster", "mode"),
    [
        ({"pool": 1, "cython": 0, "rapids": 1, "cluster_enabled": True}, 13),
        ({"pool": "0", "cython": "1", "cluster_enabled": "no"}, 2),  # bool("0") would say on
        ({"pool": 1.0, "cluster_enabled": "YES", "rapids": False}, 5),
        ({"pool": 2, "cython": False}, 1),  # AGILAB's int(2) would set cython's bit; here: pool on
        ({"cluster_enabled": "maybe"}, 0),
    ],
)
def test_the_mode_bitmask_reads_coerced_flags(cluster: dict[str, Any], mode: int) -> None:
    settings = AppSettings.model_validate({"cluster": cluster})
    assert settings.cluster.mode == mode
    snapshot = settings.as_dict()["cluster"]
    # what the runner reads (execute/steps.py: int(bool(...)) per flag) agrees with the property
    assert (
        sum(w * int(bool(snapshot[k])) for k, w in (("pool", 1), ("cython", 2), ("rapids", 8)))
        + 4 * int(bool(snapshot["cluster_enabled"]))
        == mode
    )


def test_coerced_values_are_what_agilab_reads() -> None:
    settings = AppSettings.model_validate(
        {"cluster": {"workers": {"a": 2.9}, "verbose": True, "scheduler": 8786}, "pages": {"x": {"y": 1}}}
    )
    cluster = settings.as_dict()["cluster"]
    assert cluster["workers"] == {"a": 2} and cluster["verbose"] == 1 and cluster["scheduler"] == "8786"
    assert settings.as_dict()["pages"] == {"x": {"y": 1}}
    # a key the file does not write stays absent from the snapshot
    assert "user" not in cluster and "__meta__" not in settings.as_dict()
    assert settings.lookup(("cluster", "workers", "a")) == 2


def test_messages_say_how_agilab_reads_a_value(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "app_settings.toml"
    path.write_text(
        '[cluster]\ncluster_enabled = "yes"\n\n[cluster.workers]\n"127.0.0.1" = 2.5\n', encoding="utf-8"
    )
    assert main(["check", str(path)]) == 0
    assert main(["check", "--strict", str(path)]) == 1
    err = capsys.readouterr().out
    assert (
        'app_settings.toml:2:19: warning[wrong-type]: cluster.cluster_enabled should be true or false, not "yes": AGILAB reads it as true'
        in err
    )
    assert "AGILAB truncates it to 2" in err


@needs_corpus
@pytest.mark.parametrize(
    "path", [p for p in corpus_files() if "app_settings" in p.name], ids=lambda p: p.name[-60:]
)
def test_every_corpus_settings_file_passes_strict(path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "--strict", str(path)]) == 0, capsys.readouterr().out
    result = load_settings(path)
    assert result.diagnostics == [] and result.value is not None
