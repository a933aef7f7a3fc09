"""Benchmarks for the matcher (run them as modules, e.g. ``python -m benchmarks.matcher``).

They live outside the ``extender`` package on purpose: they are never installed, and their numbers are
reported, not asserted, because wall-clock times depend on the machine.
"""
