"""Every check id ``check --agilab`` can report, with its severity and what it means.

The lab ids and severities are AGILAB's own (``workflow_validation.py`` and
``lab_stages_contract.py``); AGILAB's contract checker (``tools/parallel_stage.py``) has messages but
no ids, so the ``contract-*`` ids are this tool's names for them (stable: tests and scripts depend on
them). These ids live apart from the plain ``check`` codes (``load.errors.CODES``): the two verdicts
are different programs, and a few names (``metadata-schema``, ``dependency-missing`` …) mean slightly
different things in each.
"""

from __future__ import annotations

ERROR, WARNING, INFO = "error", "warning", "info"

# check id -> (default severity, meaning)
LAB_CHECKS: dict[str, tuple[str, str]] = {
    "stages-file-missing": (ERROR, "the lab file does not exist"),
    "stages-file-unreadable": (ERROR, "the lab file cannot be read, is not UTF-8, or is not TOML"),
    "metadata-missing": (INFO, "no [__meta__] table (an error with --require-metadata)"),
    "metadata-shape": (ERROR, "__meta__ is not a table"),
    "metadata-schema": (
        ERROR,
        "__meta__.schema is not agilab.lab_stages.v1 (or absent with --require-metadata)",
    ),
    "metadata-version": (ERROR, "__meta__.version is not the integer 1 (or absent with --require-metadata)"),
    "unexpected-stage-lists": (ERROR, "a top-level list other than the module key's: WORKFLOW ignores it"),
    "undisplayable-stages": (
        ERROR,
        "an entry under the module key has no non-blank Q or C: WORKFLOW prunes it",
    ),
    "module-key-missing": (ERROR, "no stage list under the module key, though the file has other keys"),
    "no-stages": (ERROR, "the file holds no stages at all"),
    "no-displayable-stages": (ERROR, "the module key's list has no displayable stage"),
    "stage-code-syntax": (ERROR, "a stage's C is not valid Python"),
    "stage-code-risky-call": (WARNING, "C calls eval, exec, os.system or subprocess.call/Popen/run"),
    "stage-id-missing": (WARNING, "a stage without id under the module key 'stages'"),
    "stage-engine-unknown": (WARNING, "R is not runpy, agi.run or agi.install"),
    "runtime-role-missing": (INFO, "a stage with code but no manager/worker role"),
    "app-reference-missing": (WARNING, "the app a stage names is not found"),
    "stage-id-duplicate": (ERROR, "two stages share one id"),
    "dependency-missing": (ERROR, "depends_on names an unknown stage id"),
    "dependency-forward-reference": (WARNING, "a stage depends on a later stage"),
    "dependency-cycle": (ERROR, "depends_on edges form a cycle"),
    "artifact-produced-twice": (WARNING, "two stages produce the same artifact"),
}

CONTRACT_CHECKS: dict[str, tuple[str, str]] = {
    "contract-file-missing": (ERROR, "the contract file does not exist"),
    "contract-file-unreadable": (ERROR, "the contract file cannot be read, is not UTF-8, or is not TOML"),
    "contract-key-missing": (ERROR, "missing required key: X"),
    "contract-schema": (ERROR, "schema must be 'agilab.parallel_stage.v1'"),
    "contract-name": (ERROR, "name must be a non-empty string"),
    "contract-function": (ERROR, "function must use 'module_or_path:function_name' format"),
    "contract-split": (ERROR, "split must be one of: files, data-partitions, parameter-sweep"),
    "contract-input": (ERROR, "input must be a non-empty string"),
    "contract-workers": (ERROR, "workers must be a positive integer or 'auto'"),
    "contract-partition-strategy": (ERROR, "partition_strategy must be one of the four strategies"),
    "contract-target-partitions": (ERROR, "target_partitions must be a non-negative integer"),
    "contract-min-partitions-per-worker": (ERROR, "min_partitions_per_worker must be a positive integer"),
    "contract-reducer": (ERROR, "reducer must be one of: collect-json, concat-jsonl, concat-csv, custom"),
    "contract-backend": (ERROR, "backend must be one of: local, pool, dask"),
    "contract-output": (ERROR, "output must be a non-empty string"),
    "contract-workers-single": (WARNING, "workers = 1 does not parallelise"),
    "contract-one-file-per-partition": (WARNING, "one-file-per-partition caps parallelism at the file count"),
    "contract-file-chunks-target": (WARNING, "file-chunks with target_partitions = 0"),
    "contract-custom-reducer-notes": (WARNING, "a custom reducer without a notes key"),
    "contract-dask-single-worker": (WARNING, "the dask backend with one worker"),
    "contract-backend-extension": (
        WARNING,
        "backend = 'gpu', this tool's extension, which AGILAB does not accept",
    ),
}

# a file that is neither a lab nor a contract (an app_settings.toml): AGILAB's settings schema has
# messages, no check ids, and is not mirrored here
OTHER_CHECKS: dict[str, tuple[str, str]] = {
    "agilab-kind-unsupported": (ERROR, "check --agilab covers labs and parallel contracts only"),
}

CHECKS: dict[str, tuple[str, str]] = {**LAB_CHECKS, **CONTRACT_CHECKS, **OTHER_CHECKS}
