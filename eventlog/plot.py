"""Charts for the demo and the notebooks. Each helper returns a matplotlib Figure.

They take tables the library already computes (projections, ``stock()``, the events), so
a chart never replays the log on its own. What an analyst should be able to trust in them:

- a period with no events is drawn as zero, never as a line straight across the gap;
- a period only partly covered by the data (the week still running, the first week that
  began before the log) is left out of rates, and the title says so;
- legends sit outside the plotted area; titles speak of days, weeks and months;
- a colour scale is set by the bulk of the values, not by one extreme cell;
- a character no installed font can draw (an emoji in an item name) is written by its name.
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from collections.abc import Sequence
from functools import cache
from typing import TYPE_CHECKING

import numpy as np
import polars as pl

try:
    import matplotlib
    import matplotlib.dates as mdates
    from matplotlib import font_manager
    from matplotlib.figure import Figure as _Figure
    from matplotlib.ft2font import FT2Font
except ImportError as exc:  # matplotlib is an extra: only the charts need it
    raise ImportError(
        "eventlog.plot draws with matplotlib, which is not installed: pip install 'eventlog[plot]'",
        name="matplotlib",
    ) from exc

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from eventlog.inventory.inventory import Inventory

from eventlog.model.builtins import dense_daily_stock

__all__ = ["daily_flows", "event_rate", "period_words", "stock_heatmap", "stock_history", "top_items"]

_UNITS = {"d": ("day", "days"), "w": ("week", "weeks"), "mo": ("month", "months"), "q": ("quarter", "quarters"),
          "y": ("year", "years"), "h": ("hour", "hours"), "m": ("minute", "minutes")}


def period_words(every: str) -> str:
    """A Polars duration (``"1w"``, ``"2d"``, ``"1mo"``) in words: ``"week"``, ``"2 days"``, ``"month"``.

    Example:
        >>> period_words("1w"), period_words("3d"), period_words("1mo")
        ('week', '3 days', 'month')
    """
    match = re.fullmatch(r"(\d+)(mo|d|w|q|y|h|m)", every)
    if match is None:
        return every
    n, unit = int(match[1]), _UNITS[match[2]]
    return unit[0] if n == 1 else f"{n} {unit[1]}"


def _figure(width: float = 9, height: float = 4.5) -> Figure:
    # A Figure not attached to pyplot: no global state, no GUI backend needed.
    return _Figure(figsize=(width, height), layout="constrained")


def _time_series_axes(fig: Figure, ax: Axes, *, title: str, xlabel: str, ylabel: str) -> None:
    """Title, labels, legend beside the plot, grid and a concise date axis: the same on every time chart."""
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    handles, labels = ax.get_legend_handles_labels()
    if handles:  # outside the axes, so it never hides a line
        fig.legend(handles, labels, loc="outside right upper", frameon=False, fontsize="small")
    ax.grid(alpha=0.3)
    locator = mdates.AutoDateLocator()
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))


@cache
def _drawable() -> frozenset[int]:
    """The code points the default font (and its fallbacks) can draw."""
    points: set[int] = set()
    families = matplotlib.rcParams["font.family"]
    for family in families if isinstance(families, list) else [families]:
        path = font_manager.findfont(font_manager.FontProperties(family=[family]), fallback_to_default=True)
        points |= set(FT2Font(path).get_charmap())
    return frozenset(points)


def _label(text: str) -> str:
    """``text`` with every character no font can draw replaced by its Unicode name: 'Ōkami Charm [wolf face]'."""
    drawable = _drawable()
    if all(ord(c) in drawable or c.isspace() for c in text):
        return text
    return "".join(
        c if ord(c) in drawable or c.isspace() else f"[{unicodedata.name(c, f'U+{ord(c):04X}').lower()}]"
        for c in text
    )


def _every_day(frame: pl.DataFrame, *, fill: Sequence[str]) -> pl.DataFrame:
    """``frame`` (one row per ``day``) with a row for every day between its first and last, ``fill`` columns 0."""
    if frame.height == 0:
        return frame
    days = frame.select(pl.date_range(pl.col("day").min(), pl.col("day").max(), interval="1d").alias("day"))
    return days.join(frame, on="day", how="left").with_columns(pl.col(list(fill)).fill_null(0)).sort("day")


def stock_history(inventory: Inventory, items: Sequence[str]) -> Figure:
    """Stock at the end of each business day for the chosen items."""
    daily = inventory.projection("daily_stock").read().filter(pl.col("item").is_in(list(items)))
    dense = dense_daily_stock(daily)
    fig = _figure()
    ax = fig.add_subplot()
    for item in items:
        rows = dense.filter(pl.col("item") == item)
        ax.step(rows["day"].to_list(), rows["stock"].to_list(), where="post", label=_label(item))
    _time_series_axes(fig, ax, title="Stock at the end of each day", xlabel="business day (UTC)", ylabel="units in stock")
    return fig


def daily_flows(inventory: Inventory, *, items: Sequence[str] | None = None) -> Figure:
    """Units added and removed per business day (all items, or the chosen ones); a day without events is zero."""
    flows = inventory.projection("daily_flows").read()
    if items is not None:
        flows = flows.filter(pl.col("item").is_in(list(items)))
    per_day = _every_day(
        flows.group_by("day").agg(pl.col("added").sum(), pl.col("removed").sum()), fill=("added", "removed"))
    fig = _figure()
    ax = fig.add_subplot()
    days = per_day["day"].to_list()
    ax.plot(days, per_day["added"].to_list(), label="added", color="tab:green", linewidth=1)
    ax.plot(days, (-per_day["removed"]).to_list(), label="removed (negative)", color="tab:red", linewidth=1)
    ax.axhline(0, color="black", linewidth=0.6)
    title = "Units added and removed per day" + ("" if items is None else f" for {', '.join(map(_label, items))}")
    _time_series_axes(fig, ax, title=title, xlabel="business day (UTC)", ylabel="units per day")
    return fig


def top_items(table: pl.DataFrame, *, value: str, label: str = "item", title: str | None = None) -> Figure:
    """Horizontal bars of a ranked table (e.g. ``projection('most_collected_items').top(10)``)."""
    rows = table.head(30)
    fig = _figure(8, max(2.5, 0.35 * rows.height + 1))
    ax = fig.add_subplot()
    ax.barh([_label(str(v)) for v in rows[label].to_list()[::-1]], rows[value].to_list()[::-1], color="tab:blue")
    ax.set_title(title or f"Top {rows.height} by {value.replace('_', ' ')}")
    ax.set_xlabel(value.replace("_", " "))
    ax.xaxis.set_major_formatter(matplotlib.ticker.StrMethodFormatter("{x:,.0f}"))
    ax.grid(axis="x", alpha=0.3)
    return fig


def stock_heatmap(inventory: Inventory, *, items: Sequence[str] | None = None, top: int = 20,
                  every: str = "1w") -> Figure:
    """Items × time: stock at the end of each period (default: weekly, the top items by stock).

    The colour scale spans the 1st to 99th percentile of the cells, so one extreme week or
    item does not wash out the rest; cells beyond it take the end colours (the colour bar's
    arrows say so).
    """
    daily = inventory.projection("daily_stock").read()
    if items is None:
        items = inventory.stock().sort(["quantity", "item"], descending=[True, False]).head(top)["item"].to_list()
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
    # Cell values, not interpolations: one extreme cell among many never becomes the scale's end.
    low, high = (float(np.percentile(grid, 1, method="higher")), float(np.percentile(grid, 99, method="lower"))) \
        if grid.size else (0.0, 1.0)
    high = max(high, low + 1)
    image = ax.imshow(grid, aspect="auto", cmap="viridis", interpolation="nearest", vmin=low, vmax=high)
    ax.set_yticks(range(len(names)), [_label(n) for n in names], fontsize="small")
    ticks = list(range(0, periods.height, max(1, periods.height // 8)))
    ax.set_xticks(ticks, [periods["day"][i].isoformat() for i in ticks], rotation=30, ha="right", fontsize="small")
    words = period_words(every)
    ax.set_xlabel(f"{words} starting (business time, UTC)")
    ax.set_title(f"Stock at the end of each {words}")
    fig.colorbar(image, ax=ax, label="units in stock", extend=_extend(grid, low, high))
    return fig


def _extend(grid: np.ndarray, low: float, high: float) -> str:
    below, above = bool((grid < low).any()), bool((grid > high).any())
    return {(False, False): "neither", (True, False): "min", (False, True): "max"}.get((below, above), "both")


def event_rate(inventory: Inventory, *, every: str = "1d") -> Figure:
    """Events per period in business time, split by event type.

    Only whole periods are drawn: one that began before the first event's day or ends after
    the last event's day would show a false dip. A period without events is zero.
    """
    events = inventory.log.scan(ordered=False).select("occurred_at", "event_type")
    rate = (
        events.with_columns(pl.col("occurred_at").dt.truncate(every).alias("period"))
        .group_by("period", "event_type")
        .agg(pl.len().alias("events"))
        .collect()
    )
    fig = _figure()
    ax = fig.add_subplot()
    words = period_words(every)
    if rate.height:
        first, last = events.select(pl.col("occurred_at").min().alias("first"),
                                    pl.col("occurred_at").max().alias("last")).collect().row(0)
        begin = dt.datetime.combine(first.date(), dt.time(), tzinfo=first.tzinfo)
        end = dt.datetime.combine(last.date() + dt.timedelta(days=1), dt.time(), tzinfo=last.tzinfo)
        periods = rate.select(pl.datetime_range(pl.col("period").min(), pl.col("period").max(), interval=every)
                              .alias("period"))
        whole = periods.filter((pl.col("period") >= begin) & (pl.col("period").dt.offset_by(every) <= end))
        dropped = periods.height - whole.height
        for event_type in sorted(rate["event_type"].unique().to_list()):
            rows = (whole.join(rate.filter(pl.col("event_type") == event_type), on="period", how="left")
                    .with_columns(pl.col("events").fill_null(0)).sort("period"))
            ax.plot(rows["period"].to_list(), rows["events"].to_list(), label=event_type, linewidth=1)
        note = f" ({_plural(dropped, 'partial ' + words)} at the ends left out)" if dropped else ""
    else:
        note = ""
    _time_series_axes(fig, ax, title=f"Events per {words} (business time){note}", xlabel="occurred at (UTC)",
                      ylabel=f"events per {words}")
    return fig


def _plural(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"
