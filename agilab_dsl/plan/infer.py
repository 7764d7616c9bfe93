"""Inferred artifacts: what a stage reads and writes, found in what it says, never by running it.

AGILAB users rarely declare ``consumes``/``produces``; the data flow is in the code. A stage's ``C``
is walked with :mod:`ast` (:mod:`.infer_code`), which finds, with the line each path comes from:

* assignments ``data_in | input_path | source_path = "…"`` (inputs) and ``data_out | output_path |
  artifact_path | model_path = "…"`` (outputs), the names AGILAB's own validator and preflight read;
* ``AGI.run(…)`` / ``AGI.install(…)`` keywords ``data_in=`` (input) and ``data_out=`` (output);
* well-known reads and writes: ``open(p)`` / ``open(p, "r"|"rb")`` (input), ``open(p, "w"|"a"|"x"…)``
  (output, so ``json.dump(obj, open(p, "w"))`` too), ``Path(p).read_text/read_bytes/open`` and
  ``write_text/write_bytes``, pandas / dask / pyarrow ``read_csv``, ``read_parquet``, ``read_json``,
  ``read_excel``, ``read_table`` … (input), ``.to_csv``, ``.to_parquet``, ``.to_json`` … (output),
  ``pq.write_table(t, p)`` and the other ``write_*(data, p)`` (output), ``savefig(p)`` (output);
* ``NB_ARTIFACT_REFERENCES`` (a notebook import's list, with no direction): a listed path the code
  does not already say is read the way AGILAB's importer reads it (``_infer_artifact_role``): a read
  or write marker on a line of ``C`` naming it, else its folder (``data/``, ``input/`` … read;
  ``artifacts/``, ``output/``, ``results/`` … written); a path neither says is left out.

A path is taken only when the code spells it: a string literal, an f-string without holes,
``Path("a") / "b"``, ``os.path.join("a", "b")``, or a name bound once, in the same code, to one of those.
A path built at run time is not guessed; nor are URLs, ``~`` paths, globs or ``${…}`` templates.
Paths are relative to the lab's folder, as declared artifacts are.

Declared keys win, direction by direction: a stage that declares inputs (``consumes``, ``inputs``,
``automation.inputs`` …) gets no inferred input, one that declares outputs no inferred output, and an
inferred path is never one the stage declares. A path the same stage both reads and writes is an
output only (reading its own output must not make it stale forever); a path several stages write is
nobody's inferred output (:func:`of_lab`). An output outside the lab's folder is left out (unless
the stage says ``allow_outside = true``); an input outside it is hashed.
``infer = false`` on a stage, or ``--no-infer``, turns it off.

Inferred artifacts are then taken as declared ones are: inputs hashed, outputs recorded and checked,
producer → consumer edges (:func:`with_edges`); but an inferred output the run did not write is no
failure (the write may sit on a branch not taken), its folder is not made beforehand (the code makes
its own, as under AGILAB), and AGILAB's ``skip_if_outputs_exist`` reads declared outputs only.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from .graph import Edge, StepGraph, escapes, normalize_artifact
from .infer_code import Artifact, Direction, clean, from_code
from .spec import LabSpec

if TYPE_CHECKING:  # pragma: no cover
    from ..load.model import Lab
    from .spec import PlacedSpec

__all__ = ["Artifact", "from_code", "lab_spec", "of_lab", "of_stage", "with_edges"]

# AGILAB's notebook importer (notebooks/notebook_pipeline_import.py at 37a3333c0)
READ_MARKERS = ("read_csv", "read_parquet", "read_json", "read_table", "read_excel", ".read_text",
                ".read_bytes", "json.load", "tomllib.load", "open(")  # fmt: skip
WRITE_MARKERS = (".to_csv", ".to_parquet", ".to_json", ".to_excel", ".write_text", ".write_bytes",
                 "json.dump", "tomli_w.dump", "savefig", ".save(")  # fmt: skip
ROLE_PREFIXES: tuple[tuple[Direction, tuple[str, ...]], ...] = (
    ("input", ("data/", "input/", "inputs/", "raw/")),
    ("output", ("artifact", "artifacts/", "output/", "outputs/", "result", "results/")),
)
NB_KEY = "NB_ARTIFACT_REFERENCES"


# -- the stage -------------------------------------------------------------------------------------
def lab_spec(lab: Lab, infer: bool = True) -> LabSpec:
    """The lab as plain data, each stage with its inferred artifacts (none with ``infer=False``)."""
    found = of_lab(lab) if infer else [() for _ in lab.stages]
    return LabSpec.of(lab, [tuple(a.as_tuple() for a in arts) for arts in found])


def of_lab(lab: Lab) -> list[tuple[Artifact, ...]]:
    """Each stage's inferred artifacts, in the lab's order. A path several stages write (a shared
    log, a file one stage writes and the next rewrites) is no inferred output of any of them: each
    write would make the others' output "changed since it was written", for ever."""
    found = [of_stage(s.stage) for s in lab.stages]
    if not any(a.direction == "output" for arts in found for a in arts):
        return found  # (most labs of many steps declare their paths: nothing inferred to weigh)
    writers: dict[str, set[int]] = {}
    for n, (s, arts) in enumerate(zip(lab.stages, found, strict=True)):
        written = [normalize_artifact(p) for p in s.stage.produces]
        for path in [*written, *(a.path for a in arts if a.direction == "output")]:
            writers.setdefault(path, set()).add(n)
    return [tuple(a for a in arts if a.direction == "input" or len(writers[a.path]) == 1) for arts in found]


def of_stage(stage: Any) -> tuple[Artifact, ...]:
    """A stage's inferred artifacts (a :class:`~agilab_dsl.load.model.Stage`), declared keys winning."""
    if not getattr(stage, "infer", True) or not stage.code:
        return ()
    found = list(from_code(stage.code))  # a copy: from_code's answers are shared
    refs = stage.notebook.get(NB_KEY) if isinstance(stage.notebook, dict) else None
    if isinstance(refs, list):
        known = {a.path for a in found}
        for ref in refs:
            path = clean(ref) if isinstance(ref, str) else None
            if path is None or path in known:
                continue
            listed = _from_reference(path, ref.strip(), stage.code)
            if listed is not None:
                found.append(listed)
                known.add(listed.path)
    if not found:
        return ()
    declared_in = {normalize_artifact(p) for p in stage.consumes}
    declared_out = {normalize_artifact(p) for p in stage.produces}
    declared = declared_in | declared_out
    return tuple(
        a
        for a in found
        if a.path not in declared
        and not (declared_in if a.direction == "input" else declared_out)
        and not (a.direction == "output" and escapes(a.path) and not stage.allow_outside)
    )


def _from_reference(path: str, written: str, code: str) -> Artifact | None:
    """A listed path the code's calls did not place: AGILAB's importer's reading (markers on the
    lines naming it, else its folder)."""
    reads = writes = None
    for number, line in enumerate(code.splitlines(), start=1):
        if written not in line:
            continue
        lowered = line.lower()
        if writes is None and any(m in lowered for m in WRITE_MARKERS):
            writes = number
        if reads is None and any(m in lowered for m in READ_MARKERS):
            reads = number
    if writes is not None:
        return Artifact("output", path, NB_KEY, f"a write on C line {writes}", writes)
    if reads is not None:
        return Artifact("input", path, NB_KEY, f"a read on C line {reads}", reads)
    lowered = path.lower()
    for direction, prefixes in ROLE_PREFIXES:
        matched = max((p for p in prefixes if lowered.startswith(p)), key=len, default=None)
        if matched is not None:
            return Artifact(direction, path, NB_KEY, f"AGILAB's {direction} prefix {matched!r}")
    return None


# -- the graph -------------------------------------------------------------------------------------
def with_edges(graph: StepGraph, stages: Iterable[PlacedSpec]) -> StepGraph:
    """``graph`` plus producer → consumer edges through inferred artifacts (an inferred or declared
    output read, declared or inferred, by a later step). A consumer links to the nearest producer
    before it in the graph's order, so the edges added never make a cycle; a lab without declared
    dependencies keeps the order it runs in (AGILAB runs it in sequence)."""
    placed = {s.id: s for s in stages}
    if not any(s.stage.inferred for s in placed.values()):
        return graph
    have = {(e.upstream, e.downstream) for e in graph.edges}
    latest: dict[str, tuple[str, bool]] = {}  # path -> (its producer so far, whether inferred)
    added: list[Edge] = []
    for sid in graph.order():
        stage = placed[sid].stage
        inferred_in = {p for d, p, *_ in stage.inferred if d == "input"}
        inferred_out = {p for d, p, *_ in stage.inferred if d == "output"}
        needed = [(normalize_artifact(p), False) for p in stage.consumes if "${" not in p]
        for path, from_inference in [*needed, *((p, True) for p in sorted(inferred_in))]:
            producer = latest.get(path)
            if producer is None or producer[0] == sid or not (from_inference or producer[1]):
                continue  # two declared ends: the graph has that edge already
            if (producer[0], sid) not in have:
                have.add((producer[0], sid))
                added.append(Edge(producer[0], sid, "artifact", path))
        for path in stage.produces:
            if "${" not in path:
                latest[normalize_artifact(path)] = (sid, False)
        for path in inferred_out:
            latest[path] = (sid, True)
    return StepGraph(graph.ids, graph.edges + tuple(added)) if added else graph
