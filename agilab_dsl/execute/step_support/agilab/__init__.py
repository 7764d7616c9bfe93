"""agilab-run's stand-in for AGILAB's ``agilab`` package, importable by a step only where AGILAB is
not installed in the step's interpreter. It holds one module, ``agilab.tracking``; everything else
of AGILAB is absent (importing it fails as it would without AGILAB).
"""
