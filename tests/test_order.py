"""Sorting by keys through integer ranks (core/order.py) gives exactly Polars' own key order."""

from __future__ import annotations

import datetime as dt

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st
from support import AWKWARD_STREAMS

from eventlog.core.order import sorted_by

UTC = dt.timezone.utc
COLUMNS = {
    "item": (pl.String, st.sampled_from([*AWKWARD_STREAMS, "", "a", "B", "é", "a\x00"])),
    "text": (pl.String, st.text(max_size=6)),
    "day": (pl.Date, st.dates(dt.date(1990, 1, 1), dt.date(2060, 1, 1))),
    "at": (pl.Datetime("us", "UTC"), st.datetimes(dt.datetime(2000, 1, 1), dt.datetime(2040, 1, 1), timezones=st.just(UTC))),
    "n": (pl.Int64, st.integers(-(2**63), 2**63 - 1)),
    "small": (pl.Int32, st.integers(-3, 3)),
    "flag": (pl.Boolean, st.booleans()),
    "x": (pl.Float64, st.floats(allow_nan=False)),
}


@st.composite
def frames(draw: st.DrawFn) -> tuple[pl.DataFrame, list[str]]:
    keys = draw(st.lists(st.sampled_from(sorted(COLUMNS)), min_size=1, max_size=4, unique=True))
    rows = draw(st.integers(0, 60))
    data = {k: draw(st.lists(COLUMNS[k][1] | st.none(), min_size=rows, max_size=rows)) for k in keys}
    return pl.DataFrame(data, schema={k: COLUMNS[k][0] for k in keys}), keys


@settings(max_examples=400, deadline=None)
@given(frames())
def test_sorted_by_orders_rows_as_a_sort_by_the_keys_with_nulls_last(case: tuple[pl.DataFrame, list[str]]) -> None:
    frame, keys = case
    got = sorted_by(frame, keys)
    assert got.equals(frame.sort(keys, nulls_last=True, maintain_order=True)) or (
        # rows equal in every key may come in any order: compare the keys, and the rows as a set
        got.select(keys).equals(frame.sort(keys, nulls_last=True).select(keys))
        and sorted(got.rows(), key=repr) == sorted(frame.rows(), key=repr)
    )


def test_a_table_already_in_key_order_is_returned_as_it_is() -> None:
    frame = pl.DataFrame({"item": ["a", "a", "b"], "day": [dt.date(2024, 1, d) for d in (1, 2, 1)]})
    assert sorted_by(frame, ["item", "day"]) is frame
    assert sorted_by(frame, ["day", "item"]).rows() == frame.sort("day", "item").rows()


def test_many_text_keys_with_few_distinct_values_sort_by_their_ranks() -> None:
    items = [f"item {i:04d}" for i in range(1000)][::-1]
    frame = pl.DataFrame({"item": items * 50, "day": [dt.date(2024, 1, 1) + dt.timedelta(days=d // 1000)
                                                       for d in range(50_000)]})
    assert sorted_by(frame, ["item", "day"]).equals(frame.sort("item", "day"))
