"""Layer 4 (beside ``stages``) — the experiment history. Every real run is recorded as one Parquet
file per run, one row per step (fingerprints, timings, metrics, git revision), written off the run's
critical path; the history is listed, compared run against run, and exported to MLflow in AGILAB's layout.
It may import ``plan`` and ``load``, never ``stages``. A new column is a field of the step row (``rows``) and its
Parquet schema; a new export is a module of its own beside ``mlflow_export``.
"""
