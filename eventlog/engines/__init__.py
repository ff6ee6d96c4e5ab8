"""Engines: one definition (``eventlog.core.definitions``) folded, merged and finished by each
engine behind one protocol (``eventlog.engines.base.Engine``); ``eventlog.engines.choose``
gives an engine by name."""

#: The engines that run in this process; every state and projection test runs on each.
LOCAL_ENGINES = ("duckdb", "polars")
