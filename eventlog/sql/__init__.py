"""SQL for analysts: DuckDB views and table macros over one pinned version of a store.

See ``eventlog.sql.connection`` for the views and macros each connection defines.
"""

from __future__ import annotations

from eventlog.sql.connection import connect, definitions, export_duckdb, query, refresh

__all__ = ["connect", "definitions", "export_duckdb", "query", "refresh"]
