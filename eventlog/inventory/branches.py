"""An inventory's side of branches: what a branch takes along (snapshots), and compare tables.

Compare reads "from this side to the other", as ``git diff A B`` does: ``change`` is the
other side's quantity minus this side's, and a row's ``status`` is ``added`` (only on the
other side), ``removed`` (only on this side), ``changed`` or ``same``. Everything is one
vectorised join of two finished tables.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import asdict, replace
from pathlib import Path

import polars as pl

from eventlog.errors import StorePathWarning
from eventlog.store.atomic import write_json_atomically
from eventlog.store.fork import share_file
from eventlog.store.paths import folder_outside, outside
from eventlog.store.snapshots import SnapshotStore

#: Columns of ``Inventory.compare``.
COMPARE_COLUMNS = ("item", "quantity", "other_quantity", "change")


def take_snapshots(snapshots: SnapshotStore, root: Path, fork_seq: int) -> int:
    """Share the origin's snapshots at or before the fork with the branch at ``root``; how many.

    A snapshot at seq s <= the fork holds the state of events the branch has too, so its file
    is hard-linked (snapshots are immutable) and its manifest written anew in the branch.
    Only entries whose files lie inside the origin's snapshot folder are taken.
    """
    target = root / "snapshots"
    taken = 0
    for info in snapshots.list():
        if info.seq > fork_seq or not snapshots.exists(info):
            continue
        why = outside(snapshots.root, info.file)
        if why is not None:
            warnings.warn(f"snapshot {snapshots.root / info.file} is not taken into the branch: {why}",
                          StorePathWarning, stacklevel=3)
            continue
        target.mkdir(exist_ok=True)
        if folder_outside(root, target) is not None:
            return taken
        share_file(snapshots.root / info.file, target / info.file)
        write_json_atomically(target / f"{Path(info.file).stem}.json", asdict(replace(info, delta_version=0)))
        taken += 1
    return taken


def compare_stock(this: pl.DataFrame, other: pl.DataFrame) -> pl.DataFrame:
    """Item, the quantity on each side (0 where out of stock) and the change, by item."""
    joined = this.select("item", "quantity").join(
        other.select("item", pl.col("quantity").alias("other_quantity")), on="item", how="full", coalesce=True)
    return (
        joined.with_columns(pl.col("quantity", "other_quantity").fill_null(0).cast(pl.Int64))
        .with_columns(change=pl.col("other_quantity") - pl.col("quantity"))
        .select(COMPARE_COLUMNS)
        .sort("item")
    )


def compare_tables(this: pl.DataFrame, other: pl.DataFrame, keys: Sequence[str]) -> pl.DataFrame:
    """Two reads of one projection, row by row: by its keys, or by whole rows when it has none.

    With keys: the keys, then each value column and ``other_<column>``, then ``status``.
    Without: every column, then ``status`` (``added`` or ``removed``; rows on both sides are ``same``).
    """
    keys = [k for k in keys if k in this.columns]
    if not keys:
        return _compare_rows(this, other)
    values = [c for c in this.columns if c not in keys]
    mark = "__eventlog_side"
    joined = this.with_columns(pl.lit(True).alias(mark)).join(
        other.select(*keys, *(pl.col(c).alias(f"other_{c}") for c in values)).with_columns(
            pl.lit(True).alias(f"other_{mark}")),
        on=keys, how="full", coalesce=True, nulls_equal=True)
    differs = pl.any_horizontal(*(pl.col(c).ne_missing(pl.col(f"other_{c}")) for c in values)) if values else pl.lit(False)
    status = (pl.when(pl.col(mark).is_null()).then(pl.lit("added"))
              .when(pl.col(f"other_{mark}").is_null()).then(pl.lit("removed"))
              .when(differs).then(pl.lit("changed")).otherwise(pl.lit("same")))
    columns = [*keys, *(name for c in values for name in (c, f"other_{c}"))]
    return joined.with_columns(status=status).select(*columns, "status").sort(keys, nulls_last=True)


def _compare_rows(this: pl.DataFrame, other: pl.DataFrame) -> pl.DataFrame:
    columns = this.columns
    left = this.with_columns(pl.lit(True).alias("__this"))
    right = other.select(columns).with_columns(pl.lit(True).alias("__other"))
    joined = left.join(right, on=columns, how="full", coalesce=True, nulls_equal=True)
    status = (pl.when(pl.col("__this").is_null()).then(pl.lit("added"))
              .when(pl.col("__other").is_null()).then(pl.lit("removed")).otherwise(pl.lit("same")))
    return joined.with_columns(status=status).select(*columns, "status").sort(columns, nulls_last=True)
