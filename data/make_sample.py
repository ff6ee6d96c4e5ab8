"""Regenerate ``data/sample_events.parquet``: a seeded sample of synthetic inventory events.

Run from the repository root::

    .venv/bin/python data/make_sample.py

The notebooks load this file instead of generating data, so they run the same everywhere
and do not depend on the generator staying byte-for-byte stable. The events are in log
order and never take an item's stock below zero, neither in log order (so
``Inventory.record`` accepts them as they are, in one batch or in consecutive slices) nor
in business time (so stock ``as_of`` any date is never negative).

The generator backdates only additions (late-arriving history, what ``known_at`` is
about), so both orders stay non-negative; the script checks that before writing.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import polars as pl

from eventlog import datagen

OUT = Path(__file__).resolve().parent / "sample_events.parquet"
N_EVENTS = 100_000
#: Everything the events depend on; change one and the file changes.
PARAMS = {
    "seed": 2024,
    "n_items": 300,
    "start": dt.date(2024, 1, 1),
    "days": 365,
    "late_fraction": 0.01,
}


def sample() -> pl.DataFrame:
    events = datagen.generate_frame(N_EVENTS, **PARAMS)
    _check_never_negative(events)
    return events


def _check_never_negative(events: pl.DataFrame) -> None:
    signed = pl.when(pl.col("event_type") == "item_added").then("quantity").otherwise(-pl.col("quantity"))
    for order, frame in (("log order", events), ("business time", events.sort("occurred_at", maintain_order=True))):
        low = frame.select(signed.cum_sum().over("item").min()).item()
        if low < 0:
            raise SystemExit(f"generated sample goes below zero stock in {order} (min {low}); not written")


def main() -> None:
    events = sample()
    events.write_parquet(OUT, compression="zstd", statistics=True)
    print(f"wrote {OUT.name}: {events.height:,} events, {events['item'].n_unique()} items, "
          f"{events['occurred_at'].min():%Y-%m-%d} .. {events['occurred_at'].max():%Y-%m-%d}, "
          f"{OUT.stat().st_size / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
