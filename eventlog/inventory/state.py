"""The inventory state as a vectorised fold of the log, and the merge that makes snapshots work.

State per item: quantity (adds minus removes), latest non-null rarity and origin by seq,
first add and last change in business time, stream version and the last seq folded.
Every column merges: ``state(≤ b) = merge(state(≤ a), fold(a < seq ≤ b))``, which is what
lets a snapshot (or an in-memory state) stand in for the prefix of the log.

The fold runs in DuckDB over the Parquet files of the Delta table, after pruning the file
list with the Delta statistics (seq range, partition date), so a tail read opens only the
files that can hold tail events.

Schema evolution: when upcasters (or read defaults) of the store's schema change what the
fold reads (quantity, rarity, origin), the fold reads the Parquet files through the same
rules in SQL (``SchemaHistory.sql_source``), so old events count as ``EventLog.scan`` shows
them; the rules also enter the state's fingerprint, so snapshots made under other rules
are not used. (The Inventory refuses a store whose inventory fields were renamed or
retyped: ``_check_schema`` requires them under their names and types.)
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

import duckdb
import polars as pl

from eventlog.store.delta import first_unreadable
from eventlog.errors import StorageError
from eventlog.core.schema import PARTITION_COLUMN

if TYPE_CHECKING:
    from pathlib import Path

    from eventlog.core.evolution import SchemaHistory
    from eventlog.log import EventLog

#: Bump when the state's definition changes: snapshots of another version are not used.
STATE_VERSION = 2  # 2: events of other types no longer count as removals
#: The payload fields the fold reads: upcasters of these change the state's definition.
STATE_FIELDS = ("quantity", "rarity", "origin")

STATE_SCHEMA: dict[str, pl.DataType] = {
    "item": pl.String(),
    "quantity": pl.Int64(),
    "rarity": pl.String(),
    "origin": pl.String(),
    "first_added_at": pl.Datetime("us", "UTC"),
    "last_changed_at": pl.Datetime("us", "UTC"),
    "stream_version": pl.Int64(),
}

_FOLD_SQL = """
SELECT
    stream_id AS item,
    SUM(CASE event_type WHEN 'item_added' THEN quantity WHEN 'item_removed' THEN -quantity ELSE 0 END)::BIGINT
        AS quantity,
    -- Within one stream, stream_version orders events as seq does, and is read anyway.
    arg_max(rarity, stream_version) FILTER (WHERE rarity IS NOT NULL) AS rarity,
    arg_max(origin, stream_version) FILTER (WHERE origin IS NOT NULL) AS origin,
    MIN(occurred_at) FILTER (WHERE event_type = 'item_added') AS first_added_at,
    MAX(occurred_at) AS last_changed_at,
    MAX(stream_version) AS stream_version
FROM {source}
WHERE {where}
GROUP BY stream_id
"""
#: The events table as the fold reads it from Parquet; $files is bound at query time.
PARQUET_SOURCE = "read_parquet($files, hive_partitioning = false, union_by_name = true)"
#: The same for a store that never evolved: every file has the same columns in the same
#: order, so DuckDB need not read every footer to unify them by name (10-40% of a cold read).
UNIFORM_PARQUET_SOURCE = "read_parquet($files, hive_partitioning = false)"


def fold_sql(source: str = PARQUET_SOURCE, where: str = "TRUE") -> str:
    """The state fold as one SQL query over ``source`` (a table, view or table function)."""
    return _FOLD_SQL.format(source=source, where=where)


def state_fingerprint(log: EventLog) -> str:
    """The state's definition: ``v<STATE_VERSION>``, plus a hash of the read rules it goes through."""
    rules = log.schema_history.fingerprint(STATE_FIELDS)
    return f"v{STATE_VERSION}" if rules is None else f"v{STATE_VERSION}-{rules}"


def state_source(history: SchemaHistory, source: str = PARQUET_SOURCE) -> str:
    """``source`` with the read rules that touch the state's fields applied (as it is when there are none)."""
    rules = history.rules_for(STATE_FIELDS) if history.rules else []
    return history.sql_source(source, rules) if rules else source


def signed_quantity() -> pl.Expr:
    """+quantity for an addition, -quantity for a removal, 0 for any other event type."""
    q = pl.col("quantity")
    event = pl.col("event_type")
    return pl.when(event == "item_added").then(q).when(event == "item_removed").then(-q).otherwise(0)


def empty_state() -> pl.DataFrame:
    return pl.DataFrame(schema=STATE_SCHEMA)


def files_for(
    log: EventLog, *, after: int, cut: int, business: dt.datetime | None = None
) -> tuple[list[str], bool]:
    """Data files that can hold events with after < seq <= cut (and occurred_at <= business).

    Also says whether every chosen file lies wholly inside the seq range: then the
    query needs no seq predicate, which saves reading the seq column at all.
    """
    files = log.storage.files()
    if files.height == 0 or cut <= after:
        return [], True
    keep = (pl.col("max.seq") > after) & (pl.col("min.seq") <= cut)
    if business is not None:
        keep &= pl.col(f"partition.{PARTITION_COLUMN}") <= business.date()
    chosen = files.filter(keep.fill_null(True))
    # A file without statistics may hold any seq: it is not known to be inside the range.
    inside = chosen.select(((pl.col("min.seq") > after) & (pl.col("max.seq") <= cut)).fill_null(False).all()).item()
    root = str(log.storage.path)
    return [f"{root}/{p}" for p in chosen.get_column("path").to_list()], bool(inside)


def fold(
    log: EventLog,
    con: duckdb.DuckDBPyConnection,
    *,
    after: int,
    cut: int,
    business: dt.datetime | None = None,
    items: list[str] | None = None,
) -> pl.DataFrame:
    """Partial state of the events with after < seq <= cut, optionally cut in business time too."""
    files, inside = files_for(log, after=after, cut=cut, business=business)
    if not files:
        return empty_state()
    params: dict[str, object] = {"files": files}
    where = ["TRUE"]
    if not inside:
        where.append("seq > $after AND seq <= $cut")
        params.update(after=after, cut=cut)
    if business is not None:
        where.append("occurred_at <= $business")
        params["business"] = business
    if items is not None:
        where.append("list_contains($items, stream_id)")
        params["items"] = items
    cur = con.cursor()
    try:
        source = UNIFORM_PARQUET_SOURCE if log.schema_version == 1 else state_source(log.schema_history)
        out = cur.sql(fold_sql(source, where=" AND ".join(where)), params=params).pl()
    except duckdb.Error as exc:
        # DuckDB's errors on a damaged file range from IOException to a BinderException on
        # a mangled schema; only a file that really is damaged turns one into StorageError.
        damaged = first_unreadable(files)
        if damaged is None:
            raise
        raise damaged_data_error(log.path, *damaged) from exc
    finally:
        cur.close()
    return out.cast(STATE_SCHEMA).select(list(STATE_SCHEMA))  # type: ignore[arg-type]


def damaged_data_error(store: Path, file: str, why: str) -> StorageError:
    """A data file the Delta log lists is gone or unreadable: say which, and what to do."""
    return StorageError(
        f"reading the events of the store at {store} failed: the data file {file} is damaged ({why}). "
        "Run `eventlog verify` to check the store, then restore the file from a backup",
        store=str(store), file=file,
    )


def fold_frame(con: duckdb.DuckDBPyConnection, events: pl.DataFrame) -> pl.DataFrame:
    """Partial state of events already in memory (a batch just appended), by the same SQL."""
    if events.height == 0:
        return empty_state()
    cur = con.cursor()
    try:
        cur.register("__batch", events.to_arrow())
        out = cur.sql(fold_sql("__batch")).pl()
    finally:
        cur.close()
    return out.cast(STATE_SCHEMA).select(list(STATE_SCHEMA))  # type: ignore[arg-type]


def merge(base: pl.DataFrame, tail: pl.DataFrame) -> pl.DataFrame:
    """State of base's prefix followed by tail's events (both in STATE_SCHEMA)."""
    if tail.height == 0:
        return base
    if base.height == 0:
        return tail.sort("item")
    joined = base.join(tail, on="item", how="full", coalesce=True, suffix="_t")
    return joined.select(
        pl.col("item"),
        (pl.col("quantity").fill_null(0) + pl.col("quantity_t").fill_null(0)).alias("quantity"),
        pl.coalesce("rarity_t", "rarity").alias("rarity"),
        pl.coalesce("origin_t", "origin").alias("origin"),
        pl.min_horizontal("first_added_at", "first_added_at_t").alias("first_added_at"),
        pl.max_horizontal("last_changed_at", "last_changed_at_t").alias("last_changed_at"),
        pl.max_horizontal("stream_version", "stream_version_t").alias("stream_version"),
    ).sort("item")
