"""Local stand-ins (servers, sinks, sample data) for tests, the demo and the benchmarks.

Not used by the product at run time; lives in the package so tests, ``benchmarks/`` and
the demo share one implementation.
"""
