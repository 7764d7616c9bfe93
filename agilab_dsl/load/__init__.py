"""Layer 1, the bottom — files into the typed model. Reads AGILAB's TOML files (``lab_steps.toml`` /
``lab_stages.toml``, ``parallel_stage.toml``, ``app_settings.toml``) through a source map that knows the line and
column of every key and value, builds the frozen pydantic model per file kind, parses the expression language
(``${…}`` templates, ``when`` conditions, ``module:function`` references) with the Lark grammars in
``grammar/``, and turns every problem into a located :class:`~agilab_dsl.load.errors.Diagnostic`; it also
generates the JSON Schemas and knows where AGILAB's conventions put a settings file or a function's source.
``records`` holds the plain value classes the layers above use on a run's path (no dataclasses: start-up).
It imports nothing else from ``agilab_dsl`` (the standard library, pydantic, lark, tomlkit only; heavy imports
stay inside the functions that use them). A new key or a new file-kind rule that one file alone can decide
belongs in that file kind's builder; a new expression form in ``grammar/`` and the expression package.
"""
