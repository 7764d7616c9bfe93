"""Git integration: the drivers git calls for lab files. ``git diff`` hands the external diff
driver (``agilab-run git-diff-driver``) two temporary blobs, which :func:`beside` puts back beside
their lab's neighbours so the semantic diff (:mod:`agilab_dsl.review.diff`) can read them in place;
``git log -p`` shows each version through :func:`textconv` (a canonical text of its steps or keys).
:data:`ATTRIBUTES` names the files ``agilab-run git-setup`` routes to the drivers.
"""

from __future__ import annotations

from pathlib import Path

from ..load.locate import SETTINGS_NAMES
from ..plan.changes import show
from .diff import STEP_KEYS, flatten, normalised_code

ATTRIBUTES = ("lab_steps.toml", "lab_stages.toml", "parallel_stage.toml", "app_settings.toml")


def beside(blob: Path, real: Path, into: Path) -> Path:
    """``blob`` (a temporary file git hands a driver) copied under ``real``'s name into ``into``,
    with what lies beside ``real`` in the working tree (settings, modules, contracts): a lab is
    read in its place."""
    if real.parent.is_dir():
        for item in real.parent.iterdir():
            if item.name != real.name and item.is_file() and item.suffix in (".toml", ".py"):
                (into / item.name).write_bytes(item.read_bytes())
        for name in SETTINGS_NAMES:  # the settings snapshot may be in a subfolder (src/)
            found = real.parent / name
            if found.is_file() and not (into / name).exists():
                (into / name).parent.mkdir(parents=True, exist_ok=True)
                (into / name).write_bytes(found.read_bytes())
    target = into / real.name
    target.write_bytes(blob.read_bytes())
    return target


def textconv(path: Path) -> str:
    """One file as the semantic diff sees it — a canonical text of its steps (normalised code,
    keys sorted) or of its keys — for ``git log -p`` through a textconv driver."""
    import tomllib

    from ..load.parse import detect_kind
    from ..load.reading import read_regular

    text = read_regular(path).decode("utf-8", errors="replace")
    try:
        data = tomllib.loads(text)
    except (tomllib.TOMLDecodeError, RecursionError) as exc:
        return f"(not valid TOML: {exc})\n{text}"
    if detect_kind(path, data) != "lab":
        return "".join(f"{k} = {show(v)}\n" for k, v in sorted(flatten(data).items()))
    from ..load.errors import LoadError
    from ..load.lab import require_lab

    try:
        lab = require_lab(path)
    except LoadError:
        return text  # invalid: its own text is the best view
    from ..plan.spec import StepSpec
    from .agilab_keys import STAGE_TABLES, flat

    defaults = StepSpec()
    meta = data.get("__meta__")
    out = (
        [f"[__meta__] {k} = {show(v)}" for k, v in sorted(flat(meta).items())]
        if isinstance(meta, dict)
        else []
    )
    for placed in lab.stages:
        spec = StepSpec.of(placed.stage)
        out.append(f"[{placed.id}]")
        if not placed.selected:
            out.append("  selected = false (not in the saved sequence)")
        for key in ("mode", *STEP_KEYS):
            value = getattr(spec, key)
            if value != getattr(defaults, key):
                out.append(f"  {key} = {show(value)}")
        written = data[placed.module][placed.index]
        tables = flat({k: written[k] for k in STAGE_TABLES if k in written})
        out += [f"  {k} = {show(v)}" for k, v in sorted(tables.items())]
        if spec.code:
            out += ["  code:"] + [f"    {line}" for line in normalised_code(spec.code).splitlines()]
    return "\n".join(out) + "\n"
