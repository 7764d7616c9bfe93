"""AGILAB's graph rules over the stages (``workflow_validation._graph_issues``): duplicate ids,
unknown and forward ``depends_on`` references, cycles (AGILAB's depth-first walk, made iterative so
that a long chain cannot exhaust Python's recursion), artifacts produced twice; and the report's
``dependency_edges``, ``artifact_edges`` and ``external_inputs``.
"""

from __future__ import annotations

from collections.abc import Sequence

from .finding import Finding, Places, Where
from .stage import Stage


def graph_findings(stages: Sequence[Stage], places: Places) -> list[Finding]:
    findings: list[Finding] = []
    seen: set[str] = set()
    for stage in stages:
        if stage.stage_id in seen:
            findings.append(
                places.finding(
                    "stage-id-duplicate",
                    f"Duplicate stage id: {stage.stage_id}",
                    stage.id_at,
                    stage_id=stage.stage_id,
                    hint="Stage ids must be unique for dependency and evidence graph references.",
                )
            )
        seen.add(stage.stage_id)

    ids = {stage.stage_id for stage in stages}
    position = {stage.stage_id: i for i, stage in enumerate(stages)}  # the last stage of an id wins
    for stage in stages:
        for dependency, where in stage.depends_on:
            if dependency not in ids:
                findings.append(
                    places.finding(
                        "dependency-missing",
                        f"Stage depends on unknown stage: {dependency}",
                        where,
                        stage_id=stage.stage_id,
                    )
                )
            elif position[dependency] > position[stage.stage_id]:
                findings.append(
                    places.finding(
                        "dependency-forward-reference",
                        f"Stage depends on a later stage: {dependency}",
                        where,
                        stage_id=stage.stage_id,
                        hint="Keep dependency producers before consumers for readable workflow reviews.",
                    )
                )
    findings.extend(_cycles(stages, places))
    findings.extend(_produced_twice(stages, places))
    return findings


def _cycles(stages: Sequence[Stage], places: Places) -> list[Finding]:
    """AGILAB's ``_cycle_issues``: a depth-first walk from each stage in file order; reaching a stage
    still on the walk reports the path ``a -> b -> a`` (located at the dependency that closes it)."""
    by_id = {stage.stage_id: stage for stage in stages}
    visiting: set[str] = set()
    visited: set[str] = set()
    findings: list[Finding] = []

    def deps_of(stage_id: str) -> list[tuple[str, Where | None]]:
        stage = by_id.get(stage_id)
        return [(d, w) for d, w in stage.depends_on if d in by_id] if stage else []

    for root in stages:
        if root.stage_id in visited:
            continue
        visiting.add(root.stage_id)
        path = [root.stage_id]
        frames = [iter(deps_of(root.stage_id))]
        while frames:
            step = next(frames[-1], None)
            if step is None:
                frames.pop()
                done = path.pop()
                visiting.discard(done)
                visited.add(done)
                continue
            dependency, where = step
            if dependency in visited:
                continue
            if dependency in visiting:
                cycle = " -> ".join((*path, dependency))
                findings.append(
                    places.finding("dependency-cycle", f"Workflow dependency cycle detected: {cycle}", where)
                )
                continue
            visiting.add(dependency)
            path.append(dependency)
            frames.append(iter(deps_of(dependency)))
    return findings


def _produced_twice(stages: Sequence[Stage], places: Places) -> list[Finding]:
    producers: dict[str, str] = {}
    findings: list[Finding] = []
    for stage in stages:
        for artifact, where in stage.produces:
            previous = producers.get(artifact)
            if previous:
                findings.append(
                    places.finding(
                        "artifact-produced-twice",
                        f"Artifact {artifact!r} is produced by both {previous} and {stage.stage_id}.",
                        where,
                        stage_id=stage.stage_id,
                        hint="Use distinct artifact ids or make overwrite semantics explicit.",
                    )
                )
            producers[artifact] = stage.stage_id
    return findings


def dependency_edges(stages: Sequence[Stage]) -> list[dict[str, str]]:
    edges = [
        {"source": dependency, "target": stage.stage_id, "kind": "depends_on"}
        for stage in stages
        for dependency, _ in stage.depends_on
    ]
    return sorted(edges, key=lambda row: (row["source"], row["target"], row["kind"]))


def artifact_edges(stages: Sequence[Stage]) -> list[dict[str, str]]:
    producers: dict[str, str] = {}
    for stage in stages:
        for artifact, _ in stage.produces:
            producers.setdefault(artifact, stage.stage_id)
    edges = [
        {
            "source": producers[artifact],
            "target": stage.stage_id,
            "artifact": artifact,
            "kind": "artifact_flow",
        }
        for stage in stages
        for artifact, _ in stage.consumes
        if artifact in producers and producers[artifact] != stage.stage_id
    ]
    return sorted(edges, key=lambda row: (row["source"], row["target"], row["artifact"]))


def external_inputs(stages: Sequence[Stage]) -> list[dict[str, str]]:
    produced = {artifact for stage in stages for artifact, _ in stage.produces}
    rows = [
        {"stage_id": stage.stage_id, "artifact": artifact, "kind": "external_input"}
        for stage in stages
        for artifact, _ in stage.consumes
        if artifact and artifact not in produced
    ]
    return sorted(rows, key=lambda row: (row["stage_id"], row["artifact"]))
