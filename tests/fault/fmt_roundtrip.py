"""fmt and migrate on odd but valid lab files (issue 16, failure 1).

    python tests/fault/fmt_roundtrip.py [--cases 60] [--seed N]

Generates lab files from every combination of odd-but-valid choices (comments everywhere, inline
arrays with and without comments, tables, interleaved ``[[m1]] / [[m2]] / [[m1]]`` tables, CRLF,
no final newline, ``nan``/``inf``, unicode, control characters escaped in strings, multi-line
strings of each quoting, stamped, unstamped and inline ``[__meta__]``), plus the corpus labs of
../shared/corpus/agilab when present. On each: ``fmt`` (must exit 0, keep the data — tomllib
equality, ``nan`` equal to ``nan`` —, every comment and the line ending style, and be idempotent)
and ``migrate --to lab_stages`` then ``--to lab_steps`` (must give the original bytes, a
lab_stages stamp coming back as lab_steps). Prints the figures;
exits 1 if any is not 0.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import itertools
import random
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CORPUS = ROOT.parent / "shared" / "corpus" / "agilab"

CODES = [
    '"print(1)"',
    "\"import json\\nx = json.loads('{}')\\nprint(x)\"",
    "'''\nx = 1 # not a comment\ny = \"#\"\n'''",
    "'''x = 1\ny = 2'''",
    "\"\"\"\ns = '''quoted'''\nprint(s)\"\"\"",
    '"""first\\\n  continued\nt = \'#\' """',
    "\"x = 1\\ny = '\\u0001\\u007f\\b\\t'\"",
    "\"a = 'é ✈ \\u2028 😀'\\nprint(a)\"",
    '"x = 1\\r\\ny = 2"',
    "\"t = 1 # ends in a quote: '\\nu = ''\"",
]
PARAMS = [
    "",
    "params = { n = nan, m = -inf, p = +inf }",
    "params = { when = 1979-05-27T07:32:00Z, day = 1979-05-27, t = 07:32:00 }",
    'params = { "quoted key" = "v#1", nested = { a = [1, 2.5, "x"] } }',
    "params = { n = -nan, big = 1_000, hex = 0xff, e = 6.02e23 }",
]


def _stage(rng: random.Random, i: int, comments: bool) -> dict[str, str]:
    pairs = {"D": f'"stage {i} — ü"', "C": rng.choice(CODES)}
    extra = rng.choice(PARAMS)
    if extra:
        pairs["params"] = extra.split(" = ", 1)[1]
    if comments and rng.random() < 0.5:
        pairs["D"] += f"  # about stage {i}"
    return pairs


def _table(name: str, pairs: dict[str, str], comments: bool, i: int) -> str:
    head = f"[[{name}]]" + (f"  # stage {i} # with a hash" if comments else "") + "\n"
    return head + "".join(f"{k} = {v}\n" for k, v in pairs.items())


def _inline(pairs: dict[str, str]) -> str | None:
    body = ", ".join(f"{k} = {v.split('  #')[0]}" for k, v in pairs.items())
    return None if "\n" in body else "{ " + body + " }"


@dataclass
class Case:
    name: str
    text: str
    folder: str  # the lab folder's name: its module key
    file: str = "lab_steps.toml"


def generate(count: int, seed: int) -> list[Case]:
    """``count`` odd but valid lab files, each choice combined with every other in turn."""
    rng = random.Random(seed)
    forms = ["tables", "inline", "inline-commented", "one-line", "interleaved"]
    metas = ["none", "stages", "steps", "inline", "dotted"]
    lists = ["steps", "uav", "stages"]
    combos = list(itertools.product(forms, metas, lists, ["\n", "\r\n"], [True, False], [True, False]))
    rng.shuffle(combos)
    out = []
    for n, (form, meta, lst, nl, comments, final_nl) in enumerate(combos[:count]):
        stages = [_stage(rng, i, comments) for i in range(rng.randint(1, 3))]
        top = "# a lab\n# with a second comment line\n\n" if comments else ""
        if form in ("tables", "interleaved"):
            body = ""
            for i, s in enumerate(stages):
                body += _table(lst, s, comments, i) + "\n"
                if form == "interleaved":
                    other = {"D": '"other"', "C": '"print(0)"'}
                    body += _table("m2" if lst != "m2" else "m3", other, comments, i) + "\n"
        else:
            inline = [_inline(s) for s in stages]
            if any(x is None for x in inline):
                inline = ['{ D = "x", C = "print(1)" }']
            if form == "one-line":
                body = f"{lst} = [{', '.join(inline)}]" + (" # after the list\n" if comments else "\n")
            elif form == "inline-commented":
                items = "".join(f"  {x}, # stage {i}\n" for i, x in enumerate(inline))
                body = f"{lst} = [ # first\n{items}] # after\n"
            else:
                body = f"{lst} = [\n" + "".join(f"  {x},\n" for x in inline) + "]\n"
        if meta == "stages":
            body += '\n[__meta__]  # stamp\nschema = "agilab.lab_stages.v1"\nversion = 1\n'
        elif meta == "steps":
            body += "\n[__meta__]\nschema = 'agilab.lab_steps.v1'\n"
        elif meta == "inline":
            body = f'__meta__ = {{ note = "ünïcode" }}\n{body}'
        elif meta == "dotted":
            body = f'__meta__.note = "x"  # dotted\n{body}'
        text = top + body
        if comments:
            text += "# the end\n"
        if not final_nl:
            text = text.rstrip("\n")
        folder = "m1" if form == "interleaved" and lst != "uav" else "uav"
        if form == "interleaved" and lst != "uav":
            text = text.replace(f"[[{lst}]]", "[[m1]]").replace(f"{lst} = [", "m1 = [")
        out.append(Case(f"gen{n:03d}-{form}-{meta}-{lst}", text.replace("\n", nl), folder))
    return out


def corpus_cases() -> list[Case]:
    if not CORPUS.is_dir():
        return []
    return [
        Case(
            f"corpus{i:03d}-{p.name[-40:]}",
            p.read_bytes().decode("utf-8"),
            "uav",
            "lab_stages.toml" if "lab_stages" in p.name else "lab_steps.toml",
        )
        for i, p in enumerate(sorted(q for q in CORPUS.rglob("*.toml") if "lab_st" in q.name))
    ]


@dataclass
class Figures:
    tried: int = 0
    invalid: list[str] = field(default_factory=list)  # generator bugs: not a valid lab
    reformatted: int = 0
    refused: list[str] = field(default_factory=list)
    data_changed: list[str] = field(default_factory=list)
    comments_lost: list[str] = field(default_factory=list)
    endings_changed: list[str] = field(default_factory=list)
    not_idempotent: list[str] = field(default_factory=list)
    round_trips: int = 0
    migrate_refused: list[str] = field(default_factory=list)
    bytes_changed: list[str] = field(default_factory=list)

    def failures(self) -> int:
        return sum(
            len(x)
            for x in (self.invalid, self.refused, self.data_changed, self.comments_lost)
            + (self.endings_changed, self.not_idempotent, self.migrate_refused, self.bytes_changed)
        )


def _quiet(args: list[str]) -> int:
    from agilab_dsl.cli import main

    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        return main(args)


def _endings(data: bytes) -> str:
    crlf = data.count(b"\r\n")
    return (
        "none"
        if not data.count(b"\n")
        else "crlf"
        if crlf == data.count(b"\n")
        else "lf"
        if not crlf
        else "mixed"
    )


def try_case(case: Case, work: Path, fig: Figures) -> None:
    from agilab_dsl.load.errors import LoadError
    from agilab_dsl.load.lab import require_lab
    from agilab_dsl.review.fmt import comments, same_data

    folder = work / case.name / case.folder
    folder.mkdir(parents=True)
    path = folder / case.file
    original = case.text.encode("utf-8")
    path.write_bytes(original)
    fig.tried += 1
    try:
        require_lab(path)
    except LoadError:
        fig.invalid.append(case.name)
        return
    # fmt
    if _quiet(["fmt", str(path)]) != 0:
        fig.refused.append(case.name)
    else:
        new = path.read_bytes()
        fig.reformatted += new != original
        if not same_data(case.text, new.decode("utf-8")):
            fig.data_changed.append(case.name)
        if sorted(comments(new.decode("utf-8"))) != sorted(comments(case.text)):
            fig.comments_lost.append(case.name)
        if _endings(new) != _endings(original) and _endings(original) != "none":
            fig.endings_changed.append(case.name)
        if _quiet(["fmt", "--check", str(path)]) != 0:
            fig.not_idempotent.append(case.name)
    # migrate to lab_stages and back, from the original bytes: the original again, except that a
    # file stamped lab_stages comes back stamped lab_steps (what --to lab_steps does)
    path.write_bytes(original)
    expected = original.replace(b"agilab.lab_stages.v1", b"agilab.lab_steps.v1", 1)
    there, again = folder / "there_lab_stages.toml", folder / "again_lab_steps.toml"
    fig.round_trips += 1
    if _quiet(["migrate", "--to", "lab_stages", "-o", str(there), str(path)]) != 0:
        fig.migrate_refused.append(case.name)
        return
    if sorted(set(comments(case.text)) - set(comments(there.read_bytes().decode("utf-8")))):
        fig.comments_lost.append(case.name + " (migrate)")
    if _quiet(["migrate", "--to", "lab_steps", "-o", str(again), str(there)]) != 0:
        fig.migrate_refused.append(case.name + " (back)")
        return
    if again.read_bytes() != expected:
        fig.bytes_changed.append(case.name)


def run(cases: list[Case]) -> Figures:
    fig = Figures()
    with tempfile.TemporaryDirectory(prefix="fmt-roundtrip-") as tmp:
        for case in cases:
            try_case(case, Path(tmp), fig)
    return fig


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cases", type=int, default=60)
    parser.add_argument("--seed", type=int, default=16)
    args = parser.parse_args()
    cases = generate(args.cases, args.seed) + corpus_cases()
    fig = run(cases)
    print(f"files tried: {fig.tried} ({args.cases} generated, {fig.tried - args.cases} corpus labs)")
    print(f"not valid labs (generator bugs): {len(fig.invalid)}")
    print(
        f"fmt: {fig.reformatted} reformatted; refused {len(fig.refused)}, data changed {len(fig.data_changed)}, "
        f"comments lost {len(fig.comments_lost)}, line endings changed {len(fig.endings_changed)}, "
        f"not idempotent {len(fig.not_idempotent)}"
    )
    print(
        f"migrate round trips: {fig.round_trips}; refused {len(fig.migrate_refused)}, "
        f"bytes changed by a round trip {len(fig.bytes_changed)}"
    )
    for label in (
        "invalid",
        "refused",
        "data_changed",
        "comments_lost",
        "endings_changed",
        "not_idempotent",
        "migrate_refused",
        "bytes_changed",
    ):
        for name in getattr(fig, label):
            print(f"  {label}: {name}")
    return 1 if fig.failures() else 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    raise SystemExit(main())
