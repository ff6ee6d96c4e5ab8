"""The main job (`make demo`): build or refresh the default store, report on it, draw charts.

First run: generate the embedded default dataset (``data/demo.json`` says how many events,
which seed, how many items and days) into ``data/store``, with the original example's
game items on top. Later runs append the next business day, drawn as the history was
(``datagen.next_day``: that day's share of the traffic, the same catalogue and mix, removals
from the stock the store holds), and update everything incrementally, so a rerun takes
seconds and looks like any other day.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import time
from pathlib import Path

import polars as pl

from eventlog import datagen, plot
from eventlog.inventory.inventory import Inventory

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG = ROOT / "data" / "demo.json"
DEFAULT_STORE = ROOT / "data" / "store"
DEFAULT_OUT = ROOT / "out"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m eventlog.demo", description=__doc__)
    parser.add_argument("--store", type=Path, default=DEFAULT_STORE)
    parser.add_argument("--config", type=Path, default=DEFAULT_CONFIG)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--events", type=int, default=None, help="override the number of events of a first run")
    args = parser.parse_args(argv)
    config = json.loads(args.config.read_text())
    if args.events is not None:
        config["events"] = args.events
    started = time.perf_counter()
    inventory = Inventory.open(args.store)
    fresh = inventory.log.head() == 0
    steps = _build(inventory, config) if fresh else _refresh(inventory, config)
    _maintain(inventory, steps)
    _report(inventory, config)
    charts = _charts(inventory, args.out)
    print("\nCharts:")
    for path in charts:
        print(f"  {path}")
    print(f"\n{'Built' if fresh else 'Refreshed'} in {time.perf_counter() - started:.1f} s "
          f"({', '.join(f'{k} {v:.1f} s' for k, v in steps.items())}).")
    return 0


def _build(inventory: Inventory, config: dict) -> dict[str, float]:
    t0 = time.perf_counter()
    print(f"Building the default store at {inventory.path} ({config['events']:,} events)...")
    start = dt.datetime.fromisoformat(config["start"]).replace(tzinfo=dt.timezone.utc)
    # The original example's items open the story, on the first business day.
    inventory.record(pl.DataFrame(datagen.original_example_items()).with_columns(occurred_at=pl.lit(start)))
    for batch in datagen.generate(
        config["events"], seed=config["seed"], n_items=config["items"], days=config["days"],
        start=start, progress=sys.stderr.isatty(),
    ):
        inventory.record(batch)
    return {"ingest": time.perf_counter() - t0}


def _refresh(inventory: Inventory, config: dict) -> dict[str, float]:
    """Append the business day after the latest one in the store, drawn like the history."""
    t0 = time.perf_counter()
    first, last, events = (
        inventory.log.scan(ordered=False)
        .select(pl.col("occurred_at").min().alias("first"), pl.col("occurred_at").max().alias("last"), pl.len())
        .collect().row(0)
    )
    day = (last + dt.timedelta(days=1)).date()
    span = (last.date() - first.date()).days + 1  # the store's own pace, whatever --events built it
    batch = datagen.next_day(
        day, stock=inventory.stock(), events_per_day=events / span,
        seed=config["seed"], n_items=config["items"], start=dt.date.fromisoformat(config["start"]),
    )
    inventory.record(batch)
    print(f"Refreshing {inventory.path}: appended {batch.height:,} events for {day} "
          f"(a day like the {span:,} before it).")
    return {"ingest": time.perf_counter() - t0}


def _maintain(inventory: Inventory, steps: dict[str, float]) -> None:
    t0 = time.perf_counter()
    inventory.log.compact()
    steps["compact"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    inventory.snapshot()
    steps["snapshot"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    inventory.update_projections()
    steps["projections"] = time.perf_counter() - t0


def _report(inventory: Inventory, config: dict) -> None:
    with pl.Config(tbl_rows=12, tbl_cols=10, fmt_str_lengths=40, tbl_hide_dataframe_shape=True):
        head = inventory.log.head()
        stock = inventory.stock()
        print(f"\nThe log: {head:,} events, Delta version {inventory.log.version}; "
              f"{stock.height:,} items in stock, {int(stock['quantity'].sum()):,} units.")
        print("\nStock leaders:")
        print(stock.sort(["quantity", "item"], descending=[True, False]).select("item", "quantity", "rarity", "origin").head(5))
        print("\nStock laggards (in stock, fewest units):")
        print(stock.sort(["quantity", "item"]).select("item", "quantity", "rarity", "last_changed_at").head(5))
        print("\nMost collected items:")
        print(inventory.projection("most_collected_items").top(5))
        print("\nOrigins of the most collected items:")
        top = inventory.projection("most_collected_items").top(5)["item"]
        origins = inventory.projection("item_origins").read().filter(pl.col("item").is_in(top.implode()))
        print(origins.with_columns(pl.col("origins").list.join(", ")))
        outs = inventory.projection("stockouts").read()
        print(f"\nStockouts: {outs.height:,} intervals, {outs['ongoing'].sum()} ongoing; longest:")
        print(outs.sort("days", descending=True, nulls_last=True).head(5))
        _time_travel(inventory, config)


def _time_travel(inventory: Inventory, config: dict) -> None:
    then = dt.date.fromisoformat(config["start"]) + dt.timedelta(days=config["days"] // 2)
    now = inventory.stock().select("item", pl.col("quantity").alias("now"))
    past = inventory.stock(as_of=then).select("item", pl.col("quantity").alias(f"on {then}"))
    compare = (
        past.join(now, on="item", how="full", coalesce=True)
        .fill_null(0)
        .with_columns(change=pl.col("now") - pl.col(f"on {then}"))
        .sort(pl.col("change").abs(), descending=True)
        .head(8)
    )
    print(f"\nTime travel — stock on {then} (end of day, business time) vs now, biggest changes:")
    print(compare)


def _charts(inventory: Inventory, out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    leaders = inventory.projection("most_collected_items").top(3)["item"].to_list()
    figures = {
        "stock_history.png": plot.stock_history(inventory, leaders),
        "daily_flows.png": plot.daily_flows(inventory),
        "most_collected.png": plot.top_items(
            inventory.projection("most_collected_items").top(15), value="total_added", title="Most collected items"),
        "stock_heatmap.png": plot.stock_heatmap(inventory, top=20),
        "event_rate.png": plot.event_rate(inventory, every="1w"),
    }
    paths = []
    for name, fig in figures.items():
        path = out / name
        fig.savefig(path, dpi=110)
        paths.append(path)
    return paths


if __name__ == "__main__":
    raise SystemExit(main())
