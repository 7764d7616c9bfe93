"""Layer 6 — reviewing changes to the files: a semantic ``diff`` of labs, contracts and settings
(between files or git revisions, and as git's diff driver and textconv), ``fmt`` (one canonical layout)
and ``migrate`` (between AGILAB's two stage-list forms: stamp, module key). Every rewrite keeps comments, line endings and
the bytes outside its edit. It may import ``execute`` (to say what a change makes stale) and everything
below it. A new kind of change to report is a comparison in the diff module of its file kind.
"""
