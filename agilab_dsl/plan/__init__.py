"""Layer 2 — what must run, and why. Turns a loaded lab into plain data (the step graph and the lab
spec), infers the artifacts a stage's code reads and writes (``infer``), resolves each step against the
settings snapshot, chooses the interpreter that runs each step (``interpreter``), fingerprints what a
step's result depends on (code, inputs, settings values, functions, the interpreter's identity),
compares that with the state recorded beside the lab
(``.agilab/``) and says, in words, why a step is stale; it also holds the caches that let ``status`` and a
cached ``check`` answer without loading the models. It may import ``load`` only. A new reason for staleness
is a new fingerprint component (``fingerprint``/``stale``); a new cache belongs here.
"""
