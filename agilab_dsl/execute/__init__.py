"""Layer 5 — running a lab. ``session`` opens a lab for judging or running (through the caches),
holds its lock and hands the stale steps to the runner: one scheduling loop over the step graph that sends
each step to a forked, pre-started worker process (a worker started under another interpreter when the
step's is not ours, with AGILAB's ``df``, tracker and variables: ``agilab_env``; or to a parallel
stage's backend), records its outcome
in the state and the history, and reports progress as values to a reporter it is given; ``watch`` re-runs
exactly the steps a file change affected. It may import ``stages``, ``record``, ``check``, ``plan`` and
``load``; it never prints (the reporter it is handed does). A new way of executing a step belongs beside
the runner's step machinery; a new run event is a reporter method. What running steps print and how far
a parallel stage is reach the reporter as they happen through ``follow`` (their logs and progress files).
"""
