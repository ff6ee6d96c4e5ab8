"""Benchmarks of eventlog against the practical limit (hand-written DuckDB and Polars over the
same Parquet files) and against peers (Python objects replayed into a Counter; the
``eventsourcing`` library on SQLite).

Run ``python -m benchmarks.run --quick`` (about a minute) or ``--full`` (1M and 10M events).
Every figure is reported only after the implementations agreed on the result.
"""
