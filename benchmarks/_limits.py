"""The practical limit: hand-written DuckDB and Polars queries over the store's Parquet files.

Each function opens the Delta table, lists its live files (``DeltaTable.file_uris()``) and
runs one query over exactly those files, so it does the same work a cold eventlog read
must do (open the table, find the files, aggregate) and nothing more. No eventlog code is
used here: these are what a capable analyst would write by hand.

Shapes:
- "qty"   — quantity per item only (items in stock), the least any stock answer needs;
- "state" — the same columns as ``Inventory.stock()``: quantity, latest non-null rarity and
            origin (by seq), first add, last change, stream version.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from urllib.parse import unquote

import duckdb
import polars as pl
from deltalake import DeltaTable

ADDED = "item_added"

_SIGNED_SQL = "CASE WHEN event_type = 'item_added' THEN quantity ELSE -quantity END"
_QTY_SQL = f"""
SELECT stream_id AS item, SUM({_SIGNED_SQL})::BIGINT AS quantity
FROM {{source}} {{where}}
GROUP BY stream_id HAVING SUM({_SIGNED_SQL}) > 0
"""
_STATE_SQL = f"""
SELECT
    stream_id AS item,
    SUM({_SIGNED_SQL})::BIGINT AS quantity,
    arg_max(rarity, seq) FILTER (WHERE rarity IS NOT NULL) AS rarity,
    arg_max(origin, seq) FILTER (WHERE origin IS NOT NULL) AS origin,
    MIN(occurred_at) FILTER (WHERE event_type = 'item_added') AS first_added_at,
    MAX(occurred_at) AS last_changed_at,
    MAX(stream_version) AS stream_version
FROM {{source}} {{where}}
GROUP BY stream_id HAVING SUM({_SIGNED_SQL}) > 0
"""
_COUNT_SQL = f"SELECT COALESCE(SUM({_SIGNED_SQL}), 0)::BIGINT FROM read_parquet($files) WHERE stream_id = $item"


def delta_files(events_dir: Path) -> list[str]:
    """The live Parquet files of the Delta table at ``events_dir`` (local paths)."""
    return [unquote(uri.removeprefix("file://")) for uri in DeltaTable(str(events_dir)).file_uris()]


def _duck() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    return con


def duckdb_stock(events_dir: Path, *, shape: str = "state", seq: int | None = None,
                 until: dt.datetime | None = None) -> pl.DataFrame:
    """Stock per item from DuckDB, optionally cut at ``seq`` or at business time ``until``."""
    files = delta_files(events_dir)
    params: dict[str, object] = {"files": files}
    source = "read_parquet($files)"
    where = ""
    if seq is not None:
        where = "WHERE seq <= $seq"
        params["seq"] = seq
    elif until is not None:
        # The partition column is the UTC date of occurred_at: whole days after the cut are skipped.
        source = "read_parquet($files, hive_partitioning = true)"
        where = "WHERE occurred_on <= $day AND occurred_at <= $until"
        params.update(day=until.date(), until=until)
    sql = (_STATE_SQL if shape == "state" else _QTY_SQL).format(source=source, where=where)
    con = _duck()
    try:
        return con.sql(sql, params=params).pl()
    finally:
        con.close()


def duckdb_count(events_dir: Path, item: str) -> int:
    con = _duck()
    try:
        return int(con.sql(_COUNT_SQL, params={"files": delta_files(events_dir), "item": item}).fetchall()[0][0])
    finally:
        con.close()


_SIGNED = pl.when(pl.col("event_type") == ADDED).then(pl.col("quantity")).otherwise(-pl.col("quantity"))


def _latest(column: str) -> pl.Expr:
    """The column's value on the highest-seq event where it is not null (max_by was the
    fastest of four formulations tried: sort_by/last, filter/get, arg_max/get)."""
    return pl.col(column).max_by(pl.when(pl.col(column).is_not_null()).then(pl.col("seq"))).alias(column)


def polars_stock(events_dir: Path, *, shape: str = "state", seq: int | None = None,
                 until: dt.datetime | None = None) -> pl.DataFrame:
    """Stock per item from Polars' lazy engine over the same files."""
    files = delta_files(events_dir)
    if until is not None:
        lf = pl.scan_parquet(files, hive_partitioning=True).filter(
            (pl.col("occurred_on") <= until.date()) & (pl.col("occurred_at") <= until)
        )
    else:
        lf = pl.scan_parquet(files)
    if seq is not None:
        lf = lf.filter(pl.col("seq") <= seq)
    aggs = [_SIGNED.sum().alias("quantity")]
    if shape == "state":
        aggs += [
            _latest("rarity"),
            _latest("origin"),
            pl.when(pl.col("event_type") == ADDED).then(pl.col("occurred_at")).min().alias("first_added_at"),
            pl.col("occurred_at").max().alias("last_changed_at"),
            pl.col("stream_version").max(),
        ]
    return lf.group_by(pl.col("stream_id").alias("item")).agg(aggs).filter(pl.col("quantity") > 0).collect()


def polars_count(events_dir: Path, item: str) -> int:
    out = pl.scan_parquet(delta_files(events_dir)).filter(pl.col("stream_id") == item).select(_SIGNED.sum()).collect()
    return int(out.item() or 0)


def duckdb_projections(events_dir: Path, sql_by_name: dict[str, str]) -> dict[str, pl.DataFrame]:
    """Each projection's own SQL (``Projection.to_sql``) run by DuckDB over the same files.

    ``sql_by_name`` holds queries written against a source called ``events``; the source
    is replaced by ``read_parquet($files)``, one query per projection, run one after another.
    """
    files = delta_files(events_dir)
    con = _duck()
    try:
        return {name: con.sql(sql, params={"files": files}).pl() for name, sql in sql_by_name.items()}
    finally:
        con.close()
