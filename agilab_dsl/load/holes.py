"""Whether a string holds anything of the expression language, told without loading it: a run of a
lab whose strings hold no hole never imports :mod:`agilab_dsl.load.expr` (its parser and syntax
tree), which re-exports this test."""

from __future__ import annotations


def is_template(text: str) -> bool:
    """Whether a string holds a hole or an escape (anything else is taken literally)."""
    return "${" in text or "$$" in text
