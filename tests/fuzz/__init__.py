"""Fuzz harness for hostile input (issue #10): mutated models, artifacts, inputs and output paths, run through the
command line in sandboxes by long-lived worker processes.

* ``seeds.py``: the seed corpus (the bundled models and small onnx.helper models) and the base artifacts.
* ``mutators.py``: seeded, reproducible mutators; each turns ``(seed, sandbox root)`` into a :class:`Case`.
* ``sandbox.py``: materializing a case, canaries, snapshots, the audit hook that watches file access.
* ``worker.py``: the worker process (rlimits, in-process ``neurodeploy.cli.main``, classification).
* ``harness.py``: the pool, the campaign, the summary, saved failures, replay; ``python -m tests.fuzz.harness``.
* ``test_fuzz.py``: the short run in the pytest suite.
"""
