"""Layer 3 — the semantic rules over a loaded lab, contract or settings snapshot: what one file's
builder cannot see alone (references between stages, settings keys used by templates, function references
that must resolve, the step graph's cycles and duplicate outputs, risky calls in stage code; ``inferred``:
the artifacts inferred from stage code and the steps nothing but their code can make stale). Each rule
family has its own module; ``load``/``check_file`` are the entry points the other layers use. It may import
``plan`` and ``load``. A new rule goes in the module of its family (or a new module for a new family),
emits a :class:`~agilab_dsl.load.errors.Diagnostic` with a code, and gets a conformance case under
``lab_steps/conformance/``. The sub-package ``agilab`` is a second, separate verdict: AGILAB's own
validators mirrored rule for rule on the raw TOML (``check --agilab``), with AGILAB's check ids.
"""
