"""The projections every inventory has, written with the public projection API.

All but two are declarative and merge incrementally. ``stockouts`` and ``top_movers`` are
summaries of ``daily_stock``, computed from that (small) table rather than the log:
``top_movers`` from its last days only (``updates="from_day"``), ``stockouts`` from all of it
(a run of zero stock may begin any day before a change, and "after having been positive"
looks at an item's whole history, so no bounded set of days decides it).
"""

from __future__ import annotations

import datetime as dt

import polars as pl

from eventlog.core.definitions import Agg, FunctionProjection, Projection
from eventlog.core.order import sorted_by

ADDED = "event_type = 'item_added'"
REMOVED = "event_type = 'item_removed'"
DAY = "CAST(occurred_at AS DATE)"

MOST_COLLECTED_ITEMS = Projection(
    "most_collected_items",
    keys={"item": "stream_id"},
    event_types=["item_added"],
    aggregates={"total_added": Agg.sum("quantity"), "times_added": Agg.count()},
    rank_by="total_added",
    description="Total quantity ever added per item (the original example's 'most collected').",
)

ITEM_ORIGINS = Projection(
    "item_origins",
    keys={"item": "stream_id"},
    event_types=["item_added"],
    aggregates={"origins": Agg.distinct("origin")},
    description="Each item's sorted distinct origins.",
)

DAILY_FLOWS = Projection(
    "daily_flows",
    keys={"day": DAY, "item": "stream_id", "rarity": "rarity", "origin": "origin"},
    aggregates={
        "added": Agg.sum("quantity", where=ADDED),
        "removed": Agg.sum("quantity", where=REMOVED),
        "events": Agg.count(),
    },
    derived={"net_change": "added - removed"},
    partition_by="day",
    description="Quantity added and removed per business day, item, rarity and origin.",
)

# Only the days on which an item changed are stored (sparse): a dense items × days table
# is mostly repeated values (thousands of items × hundreds of days), while the sparse one
# grows with activity and still answers "stock at the end of day d" with an as-of lookup
# (the last change day <= d); `dense_daily_stock` expands it when a chart wants every day.
DAILY_STOCK = Projection(
    "daily_stock",
    keys={"item": "stream_id", "day": DAY},
    aggregates={"added": Agg.sum("quantity", where=ADDED), "removed": Agg.sum("quantity", where=REMOVED)},
    derived={
        "net_change": "added - removed",
        # ROWS, not the default RANGE frame: (item, day) is unique, so both mean the same, and
        # Polars runs ROWS as a plain cumulative sum (RANGE gathers peers: about 2x slower).
        "stock": "SUM(added - removed) OVER (PARTITION BY item ORDER BY day ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)",
    },
    partition_by="day",
    description="Stock per item at the end of each business day on which it changed.",
)


def _stockouts(daily: pl.DataFrame) -> pl.DataFrame:
    """Runs of days ending at zero stock once some earlier day ended positive.

    In business time a backdated removal can take a day's stock below zero, so "not the
    item's first run" is not enough: a zero run after only negative days is no stockout.
    One sort (by item ranks: core/order.py), then only whole-column operations: a run starts where the item changes or
    zero-ness flips, and ends where the next run of the same item starts (no group-by).
    """
    rows = sorted_by(daily.select("item", "day", "stock"), ["item", "day"])
    item = pl.col("item")
    new_item = (item != item.shift(1)).fill_null(True)
    zero = pl.col("stock") == 0
    positive = (pl.col("stock") > 0).cast(pl.Int64)
    # Positive days before this one within the item: a running count, less its value where the item began.
    before = positive.cum_sum() - positive
    runs = (
        rows.with_columns(
            zero=zero,
            been_positive=(before - pl.when(new_item).then(before).forward_fill()) > 0,
            starts=new_item | (zero != zero.shift(1)).fill_null(True),
        )
        .filter(pl.col("starts"))
        .with_columns(end_day=pl.when(item.shift(-1) == item).then(pl.col("day").shift(-1)))
    )
    return (
        runs.filter(pl.col("zero") & pl.col("been_positive"))
        .select(
            "item",
            pl.col("day").alias("start_day"),
            "end_day",
            (pl.col("end_day") - pl.col("day")).dt.total_days().alias("days"),
            pl.col("end_day").is_null().alias("ongoing"),
        )
    )


STOCKOUTS = FunctionProjection(
    "stockouts",
    _stockouts,
    source="daily_stock",
    description="Intervals (by business day) in which an item's stock was 0 after having been positive.",
)

TOP_MOVERS_DAYS = 7


def top_movers(daily: pl.DataFrame, days: int = TOP_MOVERS_DAYS) -> pl.DataFrame:
    """Net change per item over the last ``days`` days of data, largest absolute change first."""
    if daily.height == 0:
        return daily.select("item", "added", "removed", "net_change", "day").with_columns(
            abs_change=pl.col("net_change").abs(), window_start=pl.col("day"), window_end=pl.col("day")).drop("day")
    end = daily.get_column("day").max()
    start = end - dt.timedelta(days=days - 1)  # type: ignore[operator]
    return (
        daily.filter(pl.col("day") >= start)
        .group_by("item")
        .agg(pl.col("added").sum(), pl.col("removed").sum(), pl.col("net_change").sum())
        .with_columns(abs_change=pl.col("net_change").abs(), window_start=pl.lit(start), window_end=pl.lit(end))
        .sort(["abs_change", "item"], descending=[True, False])
    )


# A trailing window: only the last TOP_MOVERS_DAYS days of daily_stock matter, so an update
# reads those days alone (finished on their own: the running stock is not among the columns
# read), and skips the function when only earlier days changed.
TOP_MOVERS = FunctionProjection(
    "top_movers",
    top_movers,
    source="daily_stock",
    updates="from_day",
    day="day",
    window_days=TOP_MOVERS_DAYS,
    columns=("item", "day", "added", "removed", "net_change"),
    rank_by="abs_change",
    description=f"Largest absolute net change per item over the last {TOP_MOVERS_DAYS} days of data.",
)

BUILTINS = (MOST_COLLECTED_ITEMS, ITEM_ORIGINS, DAILY_FLOWS, DAILY_STOCK, STOCKOUTS, TOP_MOVERS)


def dense_daily_stock(daily: pl.DataFrame) -> pl.DataFrame:
    """Expand sparse ``daily_stock`` to one row per item per day (stock carried forward)."""
    if daily.height == 0:
        return daily.select("item", "day", "stock")
    days = daily.select(pl.date_range(pl.col("day").min(), pl.col("day").max(), interval="1d").alias("day"))
    grid = daily.select(pl.col("item").unique()).join(days, how="cross")
    first = daily.group_by("item").agg(pl.col("day").min().alias("first_day"))
    return (
        grid.join(daily.select("item", "day", "stock"), on=["item", "day"], how="left")
        .join(first, on="item")
        .filter(pl.col("day") >= pl.col("first_day"))
        .sort("item", "day")
        .with_columns(pl.col("stock").forward_fill().over("item"))
        .select("item", "day", "stock")
    )
