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
