"""Charts for the demo and the notebooks. Each helper returns a matplotlib Figure.

They take tables the library already computes (projections, ``stock()``, the events), so
a chart never replays the log on its own.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import polars as pl

try:
    import matplotlib
    import matplotlib.dates as mdates
    from matplotlib.figure import Figure as _Figure
except ImportError as exc:  # matplotlib is an extra: only the charts need it
    raise ImportError(
        "eventlog.plot draws with matplotlib, which is not installed: pip install 'eventlog[plot]'",
        name="matplotlib",
    ) from exc

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from eventlog.inventory.inventory import Inventory

from eventlog.model.builtins import dense_daily_stock

__all__ = ["daily_flows", "event_rate", "stock_heatmap", "stock_history", "top_items"]


def _figure(width: float = 9, height: float = 4.5) -> Figure:
    # A Figure not attached to pyplot: no global state, no GUI backend needed.
    return _Figure(figsize=(width, height), layout="constrained")


def _time_series_axes(ax: matplotlib.axes.Axes, *, title: str, xlabel: str, ylabel: str) -> None:
    """Title, labels, legend, grid and a concise date axis: the same on every time chart."""
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.legend(loc="upper left", fontsize="small")
    ax.grid(alpha=0.3)
    locator = mdates.AutoDateLocator()
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))


def stock_history(inventory: Inventory, items: Sequence[str]) -> Figure:
    """Stock at the end of each business day for the chosen items."""
    daily = inventory.projection("daily_stock").read().filter(pl.col("item").is_in(list(items)))
    dense = dense_daily_stock(daily)
    fig = _figure()
    ax = fig.add_subplot()
    for item in items:
        rows = dense.filter(pl.col("item") == item)
        ax.step(rows["day"].to_list(), rows["stock"].to_list(), where="post", label=item)
    _time_series_axes(ax, title="Stock at the end of each day", xlabel="business day (UTC)", ylabel="units in stock")
    return fig


def daily_flows(inventory: Inventory, *, items: Sequence[str] | None = None) -> Figure:
    """Units added and removed per business day (all items, or the chosen ones)."""
    flows = inventory.projection("daily_flows").read()
    if items is not None:
        flows = flows.filter(pl.col("item").is_in(list(items)))
    per_day = flows.group_by("day").agg(pl.col("added").sum(), pl.col("removed").sum()).sort("day")
    fig = _figure()
    ax = fig.add_subplot()
    days = per_day["day"].to_list()
    ax.plot(days, per_day["added"].to_list(), label="added", color="tab:green", linewidth=1)
    ax.plot(days, (-per_day["removed"]).to_list(), label="removed (negative)", color="tab:red", linewidth=1)
    ax.axhline(0, color="black", linewidth=0.6)
    title = "Daily flows" + ("" if items is None else f" for {', '.join(items)}")
    _time_series_axes(ax, title=title, xlabel="business day (UTC)", ylabel="units per day")
    return fig


def top_items(table: pl.DataFrame, *, value: str, label: str = "item", title: str | None = None) -> Figure:
    """Horizontal bars of a ranked table (e.g. ``projection('most_collected_items').top(10)``)."""
    rows = table.head(30)
    fig = _figure(8, max(2.5, 0.35 * rows.height + 1))
    ax = fig.add_subplot()
    ax.barh(rows[label].to_list()[::-1], rows[value].to_list()[::-1], color="tab:blue")
    ax.set_title(title or f"Top {rows.height} by {value}")
    ax.set_xlabel(value.replace("_", " "))
    ax.grid(axis="x", alpha=0.3)
    return fig


def stock_heatmap(inventory: Inventory, *, items: Sequence[str] | None = None, top: int = 20,
                  every: str = "1w") -> Figure:
    """Items × time: stock at the end of each period (default: weekly, the top items by stock)."""
    daily = inventory.projection("daily_stock").read()
    if items is None:
        items = inventory.stock().sort("quantity", descending=True).head(top)["item"].to_list()
    dense = dense_daily_stock(daily.filter(pl.col("item").is_in(list(items))))
    periods = (
        dense.sort("day")
        .group_by_dynamic("day", every=every, group_by="item")
        .agg(pl.col("stock").last())
        .pivot(on="item", index="day", values="stock")
        .sort("day")
    )
    names = [i for i in items if i in periods.columns]
    grid = periods.select(names).fill_null(0).to_numpy().T
    fig = _figure(10, max(3, 0.3 * len(names) + 1.5))
    ax = fig.add_subplot()
    image = ax.imshow(grid, aspect="auto", cmap="viridis", interpolation="nearest")
    ax.set_yticks(range(len(names)), names, fontsize="small")
    ticks = list(range(0, periods.height, max(1, periods.height // 8)))
    ax.set_xticks(ticks, [periods["day"][i].isoformat() for i in ticks], rotation=30, ha="right", fontsize="small")
    ax.set_title(f"Stock at the end of each period ({every})")
    fig.colorbar(image, ax=ax, label="units in stock")
    return fig


def event_rate(inventory: Inventory, *, every: str = "1d") -> Figure:
    """Events per period in business time, split by event type."""
    rate = (
        inventory.log.scan(ordered=False)
        .select("occurred_at", "event_type")
        .with_columns(pl.col("occurred_at").dt.truncate(every).alias("period"))
        .group_by("period", "event_type")
        .agg(pl.len().alias("events"))
        .collect()
        .sort("period")
    )
    fig = _figure()
    ax = fig.add_subplot()
    for event_type in sorted(rate["event_type"].unique().to_list()):
        rows = rate.filter(pl.col("event_type") == event_type)
        ax.plot(rows["period"].to_list(), rows["events"].to_list(), label=event_type, linewidth=1)
    _time_series_axes(ax, title=f"Events per {every} (business time)", xlabel="occurred at (UTC)", ylabel="events")
    return fig
