"""Benchmarks of the extender: ``python -m benchmarks run`` (every scenario, results in the git-ignored
``benchmarks/out/``; the published figures are ``benchmarks/results/``), ``python -m benchmarks plot``;
each scenario module also runs alone
(``python -m benchmarks.matcher``, ``.http``, ``.throughput``, ``.churn``, ``.memory``, ``.cold``).

They live outside the ``extender`` package on purpose: they are never installed, and their numbers are
reported, not asserted, because wall-clock times depend on the machine.
"""
