"""The DuckDB engine: a definition rendered as DuckDB SQL (``eventlog.core.sqlrender``) and run
over the Parquet files of a slice, after pruning the file list with the store's statistics
(seq range, day), so a tail read opens only the files that can hold tail events.

Results are cast to the Polars engine's schemas: DuckDB sums integers into HUGEINT, and
both engines must give the same values with the same types.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import polars as pl

from eventlog.core import sqlrender
from eventlog.core.definitions import columns_read
from eventlog.engines._polars import finish_lazy, stored_schema
from eventlog.engines.base import Events, EventSlice, slice_schema, unreadable_file_error

if TYPE_CHECKING:
    import duckdb

    from eventlog.core.definitions import Projection

#: Parquet files as the fold reads them; $files is bound at query time. A store that never
#: evolved has the same columns in the same order in every file: DuckDB then need not read
#: every footer to unify them by name (10-40% of a cold read).
_PARQUET = "read_parquet($files, hive_partitioning = false)"
_PARQUET_BY_NAME = "read_parquet($files, hive_partitioning = false, union_by_name = true)"


class DuckDBEngine:
    """Runs folds, merges and finishes on the process's in-memory DuckDB connection (a cursor per call).

    One connection per process, not per engine: connecting costs ~25 ms, a third of a warm
    read. A forked child makes its own (a DuckDB connection must not cross a fork).
    """

    name = "duckdb"
    dialect = "duckdb"

    def fold(self, definition: Projection, events: Events) -> pl.DataFrame:
        if isinstance(events, EventSlice):
            return self._fold_slice(definition, events)
        frame = events.collect() if isinstance(events, pl.LazyFrame) else events
        schema = stored_schema(definition, frame.schema)
        if frame.height == 0:
            return pl.DataFrame(schema=schema)
        with self._cursor() as cur:
            cur.register("__events", frame.to_arrow())
            out = cur.sql(sqlrender.fold(definition, "__events")).pl()
        return _cast(out, schema)

    def merge(self, definition: Projection, stored: pl.DataFrame, tail: pl.DataFrame) -> pl.DataFrame:
        if tail.height == 0:
            return stored
        if stored.height == 0:
            return tail
        with self._cursor() as cur:
            cur.register("__stored", stored.to_arrow())
            cur.register("__tail", tail.select(stored.columns).cast(stored.schema).to_arrow())
            out = cur.sql(sqlrender.merge(definition, ["__stored", "__tail"])).pl()
        return _cast(out, stored.schema)

    def finish(self, definition: Projection, stored: pl.DataFrame) -> pl.DataFrame:
        schema = finish_lazy(definition, pl.LazyFrame(schema=stored.schema)).collect_schema()
        if stored.height == 0:
            return pl.DataFrame(schema=schema)
        with self._cursor() as cur:
            cur.register("__stored", stored.to_arrow())
            out = cur.sql(sqlrender.finish(definition, "__stored")).pl()
        return _cast(out, schema)

    def sql(self, definition: Projection, source: str) -> str:
        return sqlrender.to_sql(definition, source, dialect=self.dialect)

    def _fold_slice(self, definition: Projection, events: EventSlice) -> pl.DataFrame:
        schema = stored_schema(definition, slice_schema(events))
        day_max = None if events.business is None else events.business.date()
        cover = events.storage.files_covering(after=events.after, cut=events.cut, day_max=day_max)
        if events.empty or not cover.paths:
            return pl.DataFrame(schema=schema)
        params: dict[str, Any] = {"files": cover.paths}
        where = []
        if not cover.inside:
            where.append("seq > $after AND seq <= $cut")
            params.update(after=events.after, cut=events.cut)
        if events.business is not None:
            where.append("occurred_at <= $business")
            params["business"] = events.business
        if events.streams is not None and len(events.streams) == 1:
            where.append("stream_id = $item")  # an equality DuckDB checks against row-group statistics
            params["item"] = events.streams[0]
        elif events.streams is not None:
            where.append("list_contains($items, stream_id)")
            params["items"] = list(events.streams)
        history = events.history
        if history.version == 1:
            source = _PARQUET
        else:
            columns, types = columns_read(definition)
            rules = history.rules_for(columns, types) if history.rules else []
            source = history.sql_source(_PARQUET_BY_NAME, rules)
        query = sqlrender.fold(definition, source, where=where)
        import duckdb  # imported on first use: a process whose reads all fold on Polars never loads it

        try:
            with self._cursor() as cur:
                out = cur.sql(query, params=params).pl()
        except duckdb.Error as exc:
            # DuckDB's errors on a damaged file range from IOException to a BinderException on
            # a mangled schema; only a file that really is damaged turns one into StorageError.
            damaged = unreadable_file_error(events, cover.paths)
            if damaged is None:
                raise
            raise damaged from exc
        return _cast(out, schema)

    @contextmanager
    def _cursor(self) -> Iterator[duckdb.DuckDBPyConnection]:
        cur = _shared_connection().cursor()
        try:
            cur.execute("SET TimeZone = 'UTC'")
            yield cur
        finally:
            cur.close()


_SHARED: tuple[int, duckdb.DuckDBPyConnection] | None = None
_SHARED_LOCK = threading.Lock()


def _shared_connection() -> duckdb.DuckDBPyConnection:
    global _SHARED
    import duckdb

    with _SHARED_LOCK:
        if _SHARED is None or _SHARED[0] != os.getpid():
            _SHARED = (os.getpid(), duckdb.connect())
        return _SHARED[1]


def _cast(frame: pl.DataFrame, schema: pl.Schema) -> pl.DataFrame:
    return frame.select(list(schema)).cast(dict(schema))  # type: ignore[arg-type]
