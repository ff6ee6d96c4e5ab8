"""Charts: each helper returns a Figure with a title, labelled axes and the data it was asked for."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from matplotlib.figure import Figure

from eventlog import Inventory, plot

UTC = dt.timezone.utc


@pytest.fixture
def inventory(tmp_path: Path) -> Inventory:
    inv = Inventory.open(tmp_path / "store")
    for day, (item, added, removed) in enumerate([("sword", 3, 1), ("bow", 2, 0), ("sword", 1, 3)], start=1):
        when = dt.datetime(2024, 1, day, 12, tzinfo=UTC)
        inv.add_item(item, added, occurred_at=when)
        if removed:
            inv.remove_item(item, removed, occurred_at=when)
    return inv


def test_stock_history_draws_one_line_per_item_ending_at_the_current_stock(inventory: Inventory) -> None:
    fig = plot.stock_history(inventory, ["sword", "bow"])
    (ax,) = fig.axes
    assert ax.get_title() and ax.get_xlabel() and ax.get_ylabel()
    last = {line.get_label(): line.get_ydata()[-1] for line in ax.get_lines()}
    assert last == {"sword": inventory.get_count("sword"), "bow": inventory.get_count("bow")}


def test_daily_flows_sums_added_and_removed_per_day(inventory: Inventory) -> None:
    (ax,) = plot.daily_flows(inventory).axes
    lines = {line.get_label(): list(line.get_ydata()) for line in ax.get_lines() if not line.get_label().startswith("_")}
    assert lines == {"added": [3, 2, 1], "removed (negative)": [-1, 0, -3]}


def test_every_chart_renders_to_png(inventory: Inventory, tmp_path: Path) -> None:
    figures = [
        plot.stock_history(inventory, ["sword"]),
        plot.daily_flows(inventory, items=["bow"]),
        plot.top_items(inventory.projection("most_collected_items").top(5), value="total_added"),
        plot.stock_heatmap(inventory, every="1d"),
        plot.event_rate(inventory),
    ]
    for i, fig in enumerate(figures):
        assert isinstance(fig, Figure)
        fig.savefig(tmp_path / f"{i}.png")
        assert (tmp_path / f"{i}.png").stat().st_size > 1000


# --- charts an analyst can trust ---------------------------------------------------------


def _inventory_with_gap(tmp_path: Path) -> Inventory:
    """Ten days of activity, eleven months of nothing, ten more days; the last week runs Monday-Wednesday."""
    inv = Inventory.open(tmp_path / "gap")
    rows = []
    for day in [*range(0, 10), *range(340, 352)]:  # 2024-01-01 is a Monday; day 351 is a Wednesday
        when = dt.datetime(2024, 1, 1, 12, tzinfo=UTC) + dt.timedelta(days=day)
        rows += [{"event_type": "item_added", "item": "Ōkami Charm 🐺", "quantity": 3, "occurred_at": when},
                 {"event_type": "item_removed", "item": "Ōkami Charm 🐺", "quantity": 1, "occurred_at": when}]
    inv.record(rows)
    return inv


def test_time_charts_put_the_legend_outside_the_plotted_area(inventory: Inventory) -> None:
    for fig in (plot.stock_history(inventory, ["sword", "bow"]), plot.daily_flows(inventory), plot.event_rate(inventory)):
        (ax,) = fig.axes
        assert ax.get_legend() is None
        assert len(fig.legends) == 1


def test_a_gap_without_events_is_drawn_as_zero_not_as_a_straight_line(tmp_path: Path) -> None:
    (ax,) = plot.daily_flows(_inventory_with_gap(tmp_path)).axes
    added = next(line for line in ax.get_lines() if line.get_label() == "added")
    days = list(added.get_xdata())
    assert days == [dt.date(2024, 1, 1) + dt.timedelta(days=d) for d in range(352)]  # every day drawn
    assert list(added.get_ydata()).count(0) == 352 - 22


def test_the_event_rate_leaves_out_a_partial_last_week_and_says_so(tmp_path: Path) -> None:
    (ax,) = plot.event_rate(_inventory_with_gap(tmp_path), every="1w").axes
    line = ax.get_lines()[0]
    last_week = max(line.get_xdata())
    assert last_week.date() + dt.timedelta(days=7) <= dt.date(2024, 12, 18)  # the week of Monday 16 Dec is partial
    assert list(line.get_ydata())[-1] == 7  # the last whole week: seven days of one add each
    assert "1 partial week" in ax.get_title()


def test_titles_speak_of_weeks_not_polars_durations(inventory: Inventory) -> None:
    assert plot.period_words("1w") == "week" and plot.period_words("2mo") == "2 months"
    titles = [plot.stock_heatmap(inventory, every="1w").axes[0].get_title(),
              plot.event_rate(inventory, every="1w").axes[0].get_title()]
    assert all("week" in t and "1w" not in t for t in titles), titles


def test_one_extreme_cell_does_not_set_the_heatmap_colour_scale(tmp_path: Path) -> None:
    inv = Inventory.open(tmp_path / "store")
    start = dt.datetime(2024, 1, 1, 12, tzinfo=UTC)
    inv.record([{"event_type": "item_added", "item": f"item {i}", "quantity": 10 + d % 5,
                 "occurred_at": start + dt.timedelta(days=d)} for i in range(10) for d in range(0, 60, 3)])
    inv.add_item("item 0", 100_000, occurred_at=start + dt.timedelta(days=61))
    fig = plot.stock_heatmap(inv, every="1w")
    low, high = fig.axes[0].get_images()[0].get_clim()
    assert high < 10_000
    assert fig.axes[1].get_label() == "<colorbar>"


def test_a_character_no_font_can_draw_is_written_by_its_name(tmp_path: Path) -> None:
    inv = _inventory_with_gap(tmp_path)
    (ax,) = plot.top_items(inv.projection("most_collected_items").top(5), value="total_added").axes
    assert [t.get_text() for t in ax.get_yticklabels()] == ["Ōkami Charm [wolf face]"]
    (ax,) = plot.stock_history(inv, ["Ōkami Charm 🐺"]).axes
    assert [line.get_label() for line in ax.get_lines()] == ["Ōkami Charm [wolf face]"]
