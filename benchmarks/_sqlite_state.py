"""The database that overwrites the row: the current state in a SQLite table (standard library).

Kept apart from ``benchmarks._peers`` so that a new process reading it (``benchmarks._fresh``)
imports only ``sqlite3`` and polars, as an application reading such a table would.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import polars as pl

_STATE_COLUMNS = ["item", "quantity", "rarity", "origin", "first_added_at", "last_changed_at", "stream_version"]
_TIMES = ("first_added_at", "last_changed_at")
_SCHEMA = {"item": pl.String, "quantity": pl.Int64, "rarity": pl.String, "origin": pl.String,
           "first_added_at": pl.Int64, "last_changed_at": pl.Int64, "stream_version": pl.Int64}


def write_state(db: Path, state: pl.DataFrame) -> None:
    """The current state as a SQLite table, times as microseconds (untimed setup)."""
    db.unlink(missing_ok=True)
    rows = state.select(_STATE_COLUMNS).with_columns(pl.col(c).dt.epoch("us") for c in _TIMES).rows()
    with sqlite3.connect(db) as con:
        con.execute("CREATE TABLE inventory (item TEXT PRIMARY KEY, quantity INTEGER, rarity TEXT, origin TEXT, "
                    "first_added_at INTEGER, last_changed_at INTEGER, stream_version INTEGER)")
        con.executemany("INSERT INTO inventory VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
    con.close()


def read_state(db: Path | str) -> pl.DataFrame:
    """``SELECT * FROM inventory`` into a DataFrame with the state's types: a new connection each time."""
    con = sqlite3.connect(db)
    try:
        rows = con.execute("SELECT * FROM inventory").fetchall()
    finally:
        con.close()
    frame = pl.DataFrame(rows, schema=_SCHEMA, orient="row")
    return frame.with_columns(pl.from_epoch(c, "us").dt.replace_time_zone("UTC") for c in _TIMES)
