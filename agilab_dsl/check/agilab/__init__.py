"""AGILAB's own verdict, rule for rule (``agilab-run check --agilab``).

This sub-package mirrors AGILAB's static validators at commit 37a3333c0
(github.com/ThalesGroup/agilab): ``agilab workflow validate``
(``src/agilab/workflow/workflow_validation.py`` with the renderability and metadata contract of
``src/agilab/workflow/lab_stages_contract.py``) for labs, and ``tools/parallel_stage.py``'s
``validate_mapping`` for ``parallel_stage.toml`` contracts — same check ids, severities, conditions
and messages, on the raw TOML (``tomllib``), so that it judges files this tool's own loader rejects
too. What it adds is a location (file:line:col, from :class:`~agilab_dsl.load.source.SourceMap`) for
every issue, and ``contract-*`` ids for the contract checker's messages.

Modules: :mod:`.ids` (every check id), :mod:`.finding` (a located issue), :mod:`.read` (reading a
file as AGILAB does), :mod:`.lab`, :mod:`.stage`, :mod:`.code` and :mod:`.graph` (the lab
validator), :mod:`.contract` (the contract checker), :mod:`.report` (several files: exit code, JSON,
text). It imports ``load`` only; nothing here prints.
"""
