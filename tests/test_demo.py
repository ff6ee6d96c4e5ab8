"""The main job: ``make demo`` builds a store, and each rerun appends a day like the ones before."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import polars as pl
import pytest

from eventlog import Inventory, datagen, demo

CONFIG = {"events": 60_000, "seed": 7, "items": 120, "days": 60, "start": "2024-03-04"}
SIGNED = pl.when(pl.col("event_type") == "item_added").then("quantity").otherwise(-pl.col("quantity"))


def _daily(inventory: Inventory) -> pl.DataFrame:
    return (
        inventory.log.scan(ordered=False)
        .group_by(day=pl.col("occurred_at").dt.date())
        .agg(events=pl.len(), net=SIGNED.sum())
        .sort("day")
        .collect()
    )


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[pl.DataFrame]]:
    """A first run and two reruns of the demo on a small configuration; the daily totals after each."""
    base = tmp_path_factory.mktemp("demo")
    config = base / "demo.json"
    config.write_text(json.dumps(CONFIG))
    args = ["--store", str(base / "store"), "--config", str(config), "--out", str(base / "out")]
    after = []
    for _ in range(3):
        assert demo.main(args) == 0
        after.append(_daily(Inventory.open(base / "store")))
    return base, after


def test_the_first_run_draws_every_chart(runs: tuple[Path, list[pl.DataFrame]]) -> None:
    base, _ = runs
    charts = sorted(p.name for p in (base / "out").glob("*.png"))
    assert charts == ["daily_flows.png", "event_rate.png", "most_collected.png", "stock_heatmap.png", "stock_history.png"]


def test_a_rerun_appends_the_next_day_only(runs: tuple[Path, list[pl.DataFrame]]) -> None:
    _, (first, second, third) = runs
    last = first["day"].max()
    assert second.filter(pl.col("day") > last)["day"].to_list() == [last + dt.timedelta(days=1)]
    assert third.filter(pl.col("day") > last)["day"].to_list() == [last + dt.timedelta(days=d) for d in (1, 2)]
    assert second.filter(pl.col("day") <= last).equals(first)  # the history is untouched


def test_a_rerun_day_looks_like_the_history(runs: tuple[Path, list[pl.DataFrame]]) -> None:
    """Volume within the history's range for that kind of day, net units within its usual swing."""
    _, (first, _second, third) = runs
    history = first.filter(pl.col("day") > first["day"].min())  # day one also holds the original example
    weekend = pl.col("day").dt.weekday() >= 6
    for row in third.filter(pl.col("day") > first["day"].max()).iter_rows(named=True):
        same_kind = history.filter(weekend if row["day"].isoweekday() >= 6 else ~weekend)
        assert 0.7 * same_kind["events"].min() <= row["events"] <= 1.3 * same_kind["events"].max(), row
        swing = history["net"].abs().quantile(0.99)
        assert abs(row["net"]) <= 1.5 * swing, (row, swing)


def test_next_day_is_reproducible_and_never_removes_more_than_the_stock() -> None:
    history = datagen.generate_frame(20_000, seed=3, n_items=40, days=20)
    stock = history.group_by("item").agg(quantity=SIGNED.sum())
    args = {"stock": stock, "events_per_day": 1000.0, "seed": 3, "n_items": 40}
    day = datagen.next_day(dt.date(2024, 1, 21), **args)
    assert day.equals(datagen.next_day(dt.date(2024, 1, 21), **args))
    after = pl.concat([stock, day.group_by("item").agg(quantity=SIGNED.sum())]).group_by("item").agg(pl.col("quantity").sum())
    assert after["quantity"].min() >= 0
    running = (
        pl.concat([stock.with_columns(pl.lit(-1).alias("n")), day.with_row_index("n").select("item", "n", quantity=SIGNED)
                   .with_columns(pl.col("n").cast(pl.Int32))], how="diagonal_relaxed")
        .sort("n")
        .with_columns(running=pl.col("quantity").cum_sum().over("item", order_by="n"))
    )
    assert running["running"].min() >= 0


def test_next_day_follows_the_weekly_rhythm() -> None:
    stock = pl.DataFrame({"item": [], "quantity": []}, schema={"item": pl.String, "quantity": pl.Int64})
    saturday, monday = (datagen.next_day(d, stock=stock, events_per_day=2000.0).height
                        for d in (dt.date(2024, 6, 1), dt.date(2024, 6, 3)))
    assert 1.4 < saturday / monday < 1.8
