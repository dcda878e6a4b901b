"""Benchmark of the local pipeline against an independent DuckDB reference implementation (``make bench``).

- :mod:`bench.duckdb_reference`: the same bronze -> silver -> gold work and the four report queries in DuckDB SQL;
- :mod:`bench.run`: generates data per size, times both engines in subprocesses (wall time, rows/s, peak RSS of
  the whole process tree), compares their reports and writes ``bench/results/``.
"""
