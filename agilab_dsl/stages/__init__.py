"""Layer 4 (beside ``record``) — parallel stages. Plans a ``parallel_stage.toml`` contract's
partitions as AGILAB previews them, cuts the real inputs into partitions (files, line ranges, Parquet row
chunks, grids), runs the contract's function on each through a backend and streams the results, in
partition order, into one output file through a reducer (``spill``: large results travel from ``pool``
workers as files the reducer copies); ``doctor`` checks that a Dask cluster's workers see
the shared folder. It may import ``check``, ``plan`` and ``load``, never ``record``. A new backend is one
module in ``backends/`` registered in ``backends.get``; a new reducer is a function in ``reducers`` named in
its table; a new split rule goes in ``splits``.
"""
