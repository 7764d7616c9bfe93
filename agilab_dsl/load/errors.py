"""Diagnostics: the one currency of every user-facing problem.

A :class:`Diagnostic` is a value (code, severity, message, location, hint). Loaders return them;
only the CLI prints them. :class:`LoadError` carries a batch of them across an API boundary for
callers that prefer exceptions. Nothing here imports anything else from the package.
"""

from __future__ import annotations

import json
from enum import Enum

TYPE_CHECKING = False  # typing itself is not imported: `check` answered from its cache loads this

if TYPE_CHECKING:  # pragma: no cover
    from collections.abc import Iterable, Sequence

__all__ = [
    "CODES",
    "AgilabError",
    "Diagnostic",
    "LoadError",
    "Severity",
    "did_you_mean",
    "render_github",
    "render_text",
]


class Severity(str, Enum):
    ERROR = "error"
    WARNING = "warning"
    INFO = "info"  # facts, not problems: AGILAB's validator (``check --agilab``), stage-no-inputs


# Every diagnostic code the tool can emit, with its default severity and what it means.
# Codes are stable: tools and golden files depend on them. AGILAB's own codes are reused where
# AGILAB has one (metadata-schema, dependency-missing, dependency-cycle, stage-id-duplicate,
# artifact-produced-twice).
CODES: dict[str, tuple[Severity, str]] = {
    # phase 0: the file itself
    "file-missing": (Severity.ERROR, "a file that was named or referenced does not exist"),
    "file-unreadable": (Severity.ERROR, "a file exists but cannot be read"),
    "file-kind-unknown": (Severity.ERROR, "the file is not recognisably a lab, contract or settings file"),
    "encoding-invalid": (Severity.ERROR, "the file is not valid UTF-8"),
    # phase 1: syntax
    "toml-syntax": (Severity.ERROR, "the file is not valid TOML"),
    "expression-syntax": (Severity.ERROR, "an expression inside a string does not parse"),
    # phase 2: schema
    "metadata-schema": (Severity.ERROR, "the schema stamp is not one this tool reads"),
    "metadata-version": (Severity.ERROR, "the format version is not supported"),
    "schema-legacy": (
        Severity.WARNING,
        "the lab is stamped agilab.lab_steps.v1, which AGILAB now refuses to save (migrate it)",
    ),
    "unknown-key": (
        Severity.ERROR,
        "a key that this format does not define (a warning in labs: kept, unused)",
    ),
    "key-missing": (Severity.ERROR, "a required key is absent"),
    "key-conflict": (Severity.ERROR, "a key is given twice under two aliases, or two exclusive keys are set"),
    "wrong-type": (Severity.ERROR, "a value has the wrong type"),
    "invalid-value": (Severity.ERROR, "a value is outside the allowed set or range"),
    "legacy-dialect": (Severity.WARNING, "a legacy name: a [[steps]]/[[stages]] array, settings args.args"),
    "lab-empty": (Severity.WARNING, "the lab file defines no stage at all"),
    "sequence-invalid": (Severity.ERROR, "a __sequence entry does not match the stages of its module"),
    "engine-unknown": (Severity.WARNING, "R names an engine this tool does not know"),
    "stage-empty": (Severity.WARNING, "a stage has no code, function or parallel contract to run"),
    "function-reference-invalid": (Severity.ERROR, "a function reference is not module_or_path:function"),
    "function-not-found": (
        Severity.ERROR,
        "a function reference names a module, file or function that is absent",
    ),
    "reference-invalid": (
        Severity.ERROR,
        "an interpolation or condition refers to something that cannot exist",
    ),
    # phase 3: semantics
    "stage-id-duplicate": (Severity.ERROR, "two stages share one id"),
    "dependency-missing": (Severity.ERROR, "a stage depends on an id no stage has"),
    "dependency-cycle": (Severity.ERROR, "stages depend on each other in a cycle"),
    "artifact-produced-twice": (Severity.WARNING, "two stages produce the same artifact (AGILAB's severity)"),
    "stage-code-syntax": (
        Severity.ERROR,
        "a stage's C is not valid Python (AGILAB's validator fails it too)",
    ),
    "function-module-invalid": (Severity.ERROR, "the module a function reference names is not valid Python"),
    "input-empty": (
        Severity.ERROR,
        "a parallel contract's input matches no file when it runs (allow_empty = true accepts that)",
    ),
    "function-unimportable": (
        Severity.ERROR,
        "a parallel contract's function module cannot be imported when the stage runs",
    ),
    "parallel-outputs-overlap": (
        Severity.ERROR,
        "two parallel_safe stages that may run at once declare overlapping outputs (AGILAB blocks them)",
    ),
    "parallel-safe-incomplete": (
        Severity.WARNING,
        "parallel_safe without a complete list of literal automation.outputs (AGILAB serializes it)",
    ),
    "risky-call": (
        Severity.WARNING,
        "stage code calls eval, exec, os.system, subprocess or the like (as AGILAB's validator flags)",
    ),
    "output-outside-lab": (
        Severity.ERROR,
        "an output path leads out of the lab's folder (../, absolute) without allow_outside = true",
    ),
    "output-invalid": (Severity.ERROR, 'an output is empty, names the folder itself (".") or holds a NUL'),
    "output-protected": (
        Severity.ERROR,
        "an output lies under .agilab/ or is the lab, a contract or the settings file (never allowed)",
    ),
    "stage-id-invalid": (
        Severity.ERROR,
        "a stage id is not a plain name (/, \\, .., a control character): its log would land elsewhere",
    ),
    "function-outside-lab": (
        Severity.WARNING,
        "a function reference names a file outside the lab's folder: a run refuses it without allow_outside",
    ),
    "function-risky": (
        Severity.WARNING,
        "a function reference names a callable that runs commands or code (os:system, subprocess:*, "
        "builtins:eval…): a run refuses it",
    ),
    "settings-reference-unknown": (
        Severity.ERROR,
        "a settings key referenced by a stage is not in the snapshot",
    ),
    "scheduler-invalid": (
        Severity.ERROR,
        "[cluster] scheduler is not a Dask scheduler address (host:port, tcp://host:port, …)",
    ),
    "settings-not-found": (Severity.WARNING, "stages reference settings but no app_settings.toml was found"),
    "stage-file-missing": (Severity.ERROR, "a stage's parallel contract file does not exist"),
    "stage-no-inputs": (
        Severity.INFO,
        "a step reads no declared or inferred input: only its code and settings can make it stale",
    ),
    # parallel_stage.toml warnings, as AGILAB gives them
    "workers-single": (Severity.WARNING, "workers = 1 does not parallelise"),
    "reducer-custom-without-notes": (Severity.WARNING, "a custom reducer without notes explaining it"),
    "reducer-function-missing": (
        Severity.WARNING,
        "a custom reducer without reducer_function cannot run here",
    ),
    "dask-single-worker": (Severity.WARNING, "the dask backend with a single worker"),
    "file-chunks-auto-partitions": (Severity.WARNING, "file-chunks with target_partitions = 0"),
}


class Diagnostic:
    """One problem found in one file, located to the character when possible. Immutable.

    (A small slotted class rather than a dataclass: ``check`` answers from its cache without
    importing ``dataclasses``/``inspect``, which would cost a third of its start-up budget.)"""

    __slots__ = (
        "code",
        "column",
        "hint",
        "key",
        "line",
        "message",
        "path",
        "severity",
        "source_line",
        "width",
    )
    _COMPARED = ("code", "message", "path", "line", "column", "severity", "key", "hint")

    code: str
    message: str
    path: str
    line: int | None  # 1-based
    column: int | None  # 1-based, in characters
    severity: Severity
    key: str | None  # dotted key path, e.g. "flight[2].deps"
    hint: str | None
    source_line: str | None  # the offending line, for the caret display
    width: int  # characters the caret run covers

    def __init__(
        self,
        code: str,
        message: str,
        path: str,
        line: int | None = None,
        column: int | None = None,
        severity: Severity = Severity.ERROR,
        key: str | None = None,
        hint: str | None = None,
        source_line: str | None = None,
        width: int = 1,
    ) -> None:
        for name, value in (
            ("code", code),
            ("message", message),
            ("path", path),
            ("line", line),
            ("column", column),
            ("severity", severity),
            ("key", key),
            ("hint", hint),
            ("source_line", source_line),
            ("width", width),
        ):
            object.__setattr__(self, name, value)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"Diagnostic is immutable (cannot set {name})")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Diagnostic):
            return NotImplemented
        return all(getattr(self, f) == getattr(other, f) for f in self._COMPARED)

    def __hash__(self) -> int:
        return hash(tuple(getattr(self, f) for f in self._COMPARED))

    def __repr__(self) -> str:
        return f"Diagnostic({self.location()}: {self.severity.value}[{self.code}] {self.message!r})"

    @property
    def is_error(self) -> bool:
        return self.severity is Severity.ERROR

    def location(self) -> str:
        if self.line is None:
            return self.path
        return f"{self.path}:{self.line}:{self.column or 1}"

    def to_json(self) -> dict[str, object]:
        return {
            "severity": self.severity.value,
            "code": self.code,
            "message": self.message,
            "line": self.line,
            "column": self.column,
            "key": self.key,
            "hint": self.hint,
        }


def make(
    code: str,
    message: str,
    path: str,
    line: int | None = None,
    column: int | None = None,
    *,
    severity: Severity | None = None,
    key: str | None = None,
    hint: str | None = None,
    source_line: str | None = None,
    width: int = 1,
) -> Diagnostic:
    """Build a diagnostic whose severity defaults to the one registered for its code."""
    if code not in CODES:
        raise KeyError(f"unregistered diagnostic code {code!r}")
    return Diagnostic(
        code=code,
        message=message,
        path=path,
        line=line,
        column=column,
        severity=severity or CODES[code][0],
        key=key,
        hint=hint,
        source_line=source_line,
        width=max(1, width),
    )


class AgilabError(Exception):
    """Base class of every exception this package raises on purpose."""


class EvalError(AgilabError):
    """An expression that parsed but cannot be evaluated in the given context (raised by
    :mod:`agilab_dsl.load.expr`; defined here, so that catching it does not import that package)."""


class LoadError(AgilabError):
    """A file could not be loaded; ``diagnostics`` holds every problem found in it."""

    def __init__(self, diagnostics: Sequence[Diagnostic]) -> None:
        self.diagnostics = tuple(diagnostics)
        first = next((d for d in self.diagnostics if d.is_error), None)
        summary = f"{first.location()}: {first.message}" if first else "load failed"
        more = len([d for d in self.diagnostics if d.is_error]) - 1
        super().__init__(summary + (f" (and {more} more)" if more > 0 else ""))


def did_you_mean(word: str, candidates: Iterable[str], *, cutoff: float = 0.6) -> str | None:
    """A ``did you mean 'x'?`` hint, or None when nothing is close enough."""
    import difflib

    pool = sorted({c for c in candidates if c != word})
    matches = difflib.get_close_matches(word, pool, n=1, cutoff=cutoff)
    if not matches:
        lowered = {c.lower(): c for c in pool}
        if word.lower() in lowered:
            matches = [lowered[word.lower()]]
    return f"did you mean {matches[0]!r}?" if matches else None


def nearest_key(word: str, candidates: Iterable[str]) -> str | None:
    """The ``unknown-key`` hint: ``did you mean 'x'?`` when a known key is close, else the nearest
    known key all the same (``the nearest known key is 'x'``), so that the hint always names one;
    None only when there is no known key at all."""
    import difflib

    close = did_you_mean(word, candidates)
    if close:
        return close
    if word[:3].upper() == "NB_" and not word.startswith("NB_"):  # provenance is NB_* in capitals
        return f"did you mean {'NB_' + word[3:]!r}? (notebook provenance keys start with NB_)"
    pool = sorted({c for c in candidates if c != word})
    if not pool:
        return None
    lowered = word.lower()
    best = max(pool, key=lambda c: (difflib.SequenceMatcher(None, lowered, c.lower()).ratio(), -len(c)))
    return f"the nearest known key is {best!r}"


def render_text(diag: Diagnostic, *, color: bool = False) -> str:
    """Compiler-style text: ``path:line:col: error[code]: message``, the source line, a caret, a hint."""
    sev = diag.severity.value
    if color:
        tint = {Severity.ERROR: "\x1b[1;31m", Severity.WARNING: "\x1b[1;33m"}.get(diag.severity, "\x1b[1;36m")
        sev = f"{tint}{sev}\x1b[0m"
    out = [f"{diag.location()}: {sev}[{diag.code}]: {diag.message}"]
    if diag.source_line is not None and diag.line is not None:
        number = str(diag.line)
        gutter = " " * len(number)
        text = diag.source_line.rstrip("\n").expandtabs(1)
        out.append(f" {number} | {text}")
        col = max(1, diag.column or 1)
        width = max(1, min(diag.width, max(1, len(text) - col + 1)))
        out.append(f" {gutter} | {' ' * (col - 1)}{'^' * width}")
    if diag.hint:
        out.append(f"  hint: {diag.hint}")
    return "\n".join(out)


def render_github(diag: Diagnostic) -> str:
    """A GitHub Actions workflow command, shown as an annotation on the pull request's diff."""

    def esc_data(s: str) -> str:
        return s.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")

    def esc_prop(s: str) -> str:
        return esc_data(s).replace(":", "%3A").replace(",", "%2C")

    kind = {Severity.ERROR: "error", Severity.WARNING: "warning"}.get(diag.severity, "notice")
    props = [f"file={esc_prop(diag.path)}"]
    if diag.line is not None:
        props.append(f"line={diag.line}")
        props.append(f"col={diag.column or 1}")
    props.append(f"title={esc_prop(diag.code)}")
    message = diag.message + (f" ({diag.hint})" if diag.hint else "")
    return f"::{kind} {','.join(props)}::{esc_data(message)}"


def to_json_text(payload: object) -> str:
    return json.dumps(payload, indent=2, ensure_ascii=False)


def os_error(exc: OSError) -> str:
    """``/lab/out: Read-only file system``: the path first, then what the OS said."""
    where = f"{exc.filename}: " if exc.filename else ""
    return f"{where}{exc.strerror or exc}"
