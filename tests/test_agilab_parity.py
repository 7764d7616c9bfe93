"""`check --agilab` gives AGILAB's own verdict on every lab and contract of the AGILAB corpus.

``../shared/corpus/agilab/agilab-verdicts.json`` records what AGILAB's validators (at the commit it
names) said about each file: for a lab, ``workflow validate`` with the file's module key — its
status and each issue's severity, check id and stage id, with ``app-reference-missing`` left out
(it depends on the checkout's apps tree); for a contract, ``tools/parallel_stage.py``'s ok, issues
and warnings. The CLI runs here as a user runs it, with ``--json`` and the verdict's module key.
The status is compared as recorded: AGILAB looks for a stage's app beside the lab, under
``--apps-root`` and in an AGILAB checkout above the file, and none of those hold the apps from the
corpus folder, so ``app-reference-missing`` warns here as it did when the verdicts were taken.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from conftest import CORPUS, needs_corpus

from agilab_dsl.cli import main

VERDICTS = CORPUS / "agilab-verdicts.json"


def verdicts(kind: str) -> list[dict[str, Any]]:
    if not VERDICTS.is_file():
        return []
    every = json.loads(VERDICTS.read_text(encoding="utf-8"))["verdicts"]
    return [v for v in every if (v["kind"] == "lab") == (kind == "lab")]


def agilab_json(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict[str, Any]]:
    code = main(["check", "--agilab", "--json", *argv])
    return code, json.loads(capsys.readouterr().out)


def issue_keys(issues: list[dict[str, Any]]) -> Counter[tuple[str, str, str]]:
    return Counter(
        (i["severity"], i["check_id"], i.get("stage_id", ""))
        for i in issues
        if i["check_id"] != "app-reference-missing"
    )


@needs_corpus
def test_the_corpus_has_labs_and_a_contract_with_verdicts() -> None:
    assert VERDICTS.is_file(), f"{VERDICTS} is absent"
    assert len(verdicts("lab")) >= 10
    assert len(verdicts("contract")) >= 1
    assert {v["status"] for v in verdicts("lab")} == {"pass", "warn", "fail"}


@needs_corpus
@pytest.mark.parametrize("verdict", verdicts("lab"), ids=lambda v: v["file"])
def test_lab_verdict_matches_agilab(verdict: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    path = CORPUS / verdict["file"]
    code, report = agilab_json(capsys, str(path), "--module-key", verdict["module_key"])
    assert report["schema"] == "agilab.workflow_dry_run_report.v1"
    assert report["module_key"] == verdict["module_key"]
    assert report["status"] == verdict["status"]
    assert report["summary"]["stage_count"] == verdict["stage_count"]
    assert issue_keys(report["issues"]) == issue_keys(verdict["issues"])
    assert code == {"fail": 2, "warn": 0, "pass": 0}[verdict["status"]]
    for issue in report["issues"]:
        assert issue["file"] == str(path)
        assert isinstance(issue["line"], int) and isinstance(issue["column"], int), issue


@needs_corpus
@pytest.mark.parametrize("verdict", verdicts("contract"), ids=lambda v: v["file"])
def test_contract_verdict_matches_agilab(verdict: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    path = CORPUS / verdict["file"]
    code, report = agilab_json(capsys, str(path))
    assert (report["ok"], report["issues"], report["warnings"]) == (
        verdict["ok"],
        verdict["issues"],
        verdict["warnings"],
    )
    assert report["path"] == str(path)
    assert code == (0 if verdict["ok"] else 2)


@needs_corpus
def test_several_files_give_a_list_in_order(capsys: pytest.CaptureFixture[str]) -> None:
    labs = [CORPUS / v["file"] for v in verdicts("lab")[:2]]
    contract = CORPUS / verdicts("contract")[0]["file"]
    files = [*labs, contract]
    _, reports = agilab_json(capsys, *map(str, files))
    assert [Path(r["path"]) for r in reports] == files
    assert [r["kind"] for r in reports] == ["lab", "lab", "contract"]
