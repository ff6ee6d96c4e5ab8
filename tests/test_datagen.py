"""The synthetic event generator: the stock invariant, reproducibility, and realistic shape."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from eventlog import datagen
from eventlog.errors import ValidationError

N = 200_000
SEED = 7
START = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)


@pytest.fixture(scope="module")
def events() -> pl.DataFrame:
    return datagen.generate_frame(N, seed=SEED)


@pytest.fixture(scope="module")
def long_events() -> pl.DataFrame:
    """Long enough for several internal chunks (2**19 candidates each), few items so stock builds up."""
    return datagen.generate_frame(1_500_000, seed=8, n_items=30, late_fraction=0.0)


def with_stock(frame: pl.DataFrame) -> pl.DataFrame:
    """Adds seq, the signed change and each item's running stock in log order (vectorised)."""
    change = pl.when(pl.col("event_type") == "item_added").then(pl.col("quantity")).otherwise(-pl.col("quantity"))
    return (
        frame.with_row_index("seq")
        .with_columns(change=change)
        .with_columns(stock=pl.col("change").cum_sum().over("item", order_by="seq"))
    )


def replay(rows: list[dict]) -> dict[str, int]:
    """The reference model: the naive loop the generator must agree with."""
    stock: dict[str, int] = {}
    for i, row in enumerate(rows):
        sign = 1 if row["event_type"] == "item_added" else -1
        stock[row["item"]] = stock.get(row["item"], 0) + sign * row["quantity"]
        if stock[row["item"]] < 0:
            raise AssertionError(f"row {i}: {row['item']!r} went to {stock[row['item']]}")
    return stock


def late_mask(frame: pl.DataFrame) -> pl.Series:
    return frame["occurred_at"] < frame["occurred_at"].shift(1)


# --- the stock invariant ------------------------------------------------------------------


def test_running_stock_never_goes_below_zero(events: pl.DataFrame) -> None:
    assert with_stock(events)["stock"].min() >= 0


def test_reference_loop_agrees_with_vectorised_stock() -> None:
    frame = datagen.generate_frame(20_000, seed=3, n_items=50)
    final = with_stock(frame).group_by("item").agg(pl.col("stock").sort_by("seq").last())
    assert replay(frame.to_dicts()) == dict(final.iter_rows())


@settings(max_examples=20, deadline=None)
@given(
    n_events=st.integers(0, 3_000),
    seed=st.integers(0, 2**32 - 1),
    n_items=st.integers(1, 40),
    days=st.integers(1, 60),
    batch_size=st.integers(1, 5_000),
)
def test_any_seed_and_size_keeps_stock_non_negative_in_log_and_business_time(
    n_events: int, seed: int, n_items: int, days: int, batch_size: int
) -> None:
    frame = datagen.generate_frame(n_events, seed=seed, n_items=n_items, days=days, batch_size=batch_size)
    assert frame.height == n_events
    replay(frame.to_dicts())
    replay(frame.with_row_index("seq").sort("occurred_at", "seq").to_dicts())  # business time


def test_stock_as_of_any_business_time_is_never_negative(events: pl.DataFrame) -> None:
    by_time = events.with_row_index("seq").sort("occurred_at", "seq").drop("seq")
    assert with_stock(by_time)["stock"].min() >= 0


def test_quantities_are_positive(events: pl.DataFrame) -> None:
    assert events["quantity"].min() >= 1


def test_stockouts_reach_exactly_zero_and_are_restocked_later(events: pl.DataFrame) -> None:
    stocked = with_stock(events)
    emptied = stocked.filter(pl.col("stock") == 0).group_by("item").agg(pl.col("seq").min().alias("emptied"))
    refilled = stocked.join(emptied, on="item").filter(
        (pl.col("seq") > pl.col("emptied")) & (pl.col("event_type") == "item_added")
    )
    assert emptied.height >= 20
    assert refilled["item"].n_unique() >= 20


def test_adds_at_low_stock_are_bigger_restocks(events: pl.DataFrame) -> None:
    adds = with_stock(events).filter(pl.col("event_type") == "item_added")
    low = (pl.col("stock") - pl.col("change")) < 5
    mean_low = adds.filter(low)["quantity"].mean()
    mean_rest = adds.filter(~low)["quantity"].mean()
    assert mean_low > 1.3 * mean_rest


def test_adds_are_55_to_65_percent_of_events(events: pl.DataFrame) -> None:
    share = (events["event_type"] == "item_added").mean()
    assert 0.55 <= share <= 0.65


# --- reproducibility and batches ----------------------------------------------------------


def test_same_seed_gives_identical_events() -> None:
    assert datagen.generate_frame(30_000, seed=11).equals(datagen.generate_frame(30_000, seed=11))


def test_different_seeds_give_different_events() -> None:
    assert not datagen.generate_frame(30_000, seed=11).equals(datagen.generate_frame(30_000, seed=12))


def test_batch_size_does_not_change_the_events() -> None:
    one = datagen.generate_frame(30_000, seed=5)
    assert datagen.generate_frame(30_000, seed=5, batch_size=777).equals(one)


def test_batches_are_full_except_the_last() -> None:
    heights = [b.height for b in datagen.generate(25_000, seed=2, batch_size=4_000)]
    assert heights == [4_000] * 6 + [1_000]


def test_stock_carries_across_batches() -> None:
    batches = list(datagen.generate(40_000, seed=4, n_items=20, batch_size=10_000))
    later = with_stock(batches[1])
    # Alone, the second batch removes stock it never added: it continues the first one.
    assert later["stock"].min() < 0
    assert with_stock(pl.concat(batches))["stock"].min() >= 0


def test_stock_and_time_stay_valid_across_internal_chunks(long_events: pl.DataFrame) -> None:
    assert with_stock(long_events)["stock"].min() >= 0
    assert long_events["occurred_at"].is_sorted()


def test_stock_hovers_around_restock_level_after_many_chunks(long_events: pl.DataFrame) -> None:
    # Were stock not carried from chunk to chunk, leftovers would pile up to 2-3x the level.
    levels = datagen.catalog(30, seed=8).select("item", "restock_level")
    late = with_stock(long_events).join(levels, on="item").filter(pl.col("seq") >= 1_000_000)
    ratio = (late["stock"] / late["restock_level"]).median()
    assert 0.6 <= ratio <= 1.5


def test_time_continues_across_batches() -> None:
    batches = list(datagen.generate(40_000, seed=4, batch_size=10_000, late_fraction=0.0))
    for before, after in zip(batches, batches[1:]):
        assert after["occurred_at"].first() >= before["occurred_at"].last()


def test_zero_events_yield_no_batches_and_an_empty_typed_frame() -> None:
    assert list(datagen.generate(0)) == []
    assert datagen.generate_frame(0).schema == pl.Schema(datagen.SCHEMA)


@pytest.mark.parametrize(
    "kwargs", [{"n_events": -1}, {"n_items": 0}, {"days": 0}, {"late_fraction": 1.5}, {"batch_size": 0}]
)
def test_bad_arguments_are_rejected_at_the_call(kwargs: dict) -> None:
    options = {"n_events": 10, **kwargs}
    with pytest.raises(ValidationError, match=next(iter(kwargs))):
        datagen.generate(**options)


# --- columns ------------------------------------------------------------------------------


def test_columns_and_dtypes_are_exactly_the_schema(events: pl.DataFrame) -> None:
    assert events.schema == pl.Schema(
        {
            "event_type": pl.String(),
            "item": pl.String(),
            "quantity": pl.Int64(),
            "rarity": pl.String(),
            "origin": pl.String(),
            "occurred_at": pl.Datetime("us", "UTC"),
        }
    )


def test_rarity_and_origin_only_on_adds(events: pl.DataFrame) -> None:
    added = events["event_type"] == "item_added"
    assert set(events["event_type"].unique()) == {"item_added", "item_removed"}
    assert events.filter(added).select(pl.col("rarity", "origin").null_count()).row(0) == (0, 0)
    assert events.filter(~added).select(pl.col("rarity", "origin").is_not_null().sum()).row(0) == (0, 0)


def test_each_item_has_one_rarity_and_origins_from_its_catalogue_entry(events: pl.DataFrame) -> None:
    cat = datagen.catalog(1000, seed=SEED).explode("origins")
    adds = events.filter(pl.col("event_type") == "item_added")
    assert adds.group_by("item").agg(pl.col("rarity").n_unique())["rarity"].max() == 1
    unknown = adds.join(cat, left_on=["item", "rarity", "origin"], right_on=["item", "rarity", "origins"], how="anti")
    assert unknown.height == 0


def test_awkward_names_are_present(events: pl.DataFrame) -> None:
    assert set(datagen.AWKWARD_NAMES) <= set(events["item"].unique())
    assert any(not name.isascii() for name in datagen.AWKWARD_NAMES)
    assert any(c in name for name in datagen.AWKWARD_NAMES for c in "'\";,")


def test_item_names_are_unique_with_suffixes_only_when_pairs_run_out() -> None:
    names = datagen.catalog(1000)["item"]
    assert names.n_unique() == 1000
    assert not datagen.catalog(100)["item"].str.contains(r" \d+$").any()
    assert names.str.contains(r" 2$").any()


# --- shape: popularity and time -----------------------------------------------------------


def test_top_tenth_of_items_get_most_events(events: pl.DataFrame) -> None:
    counts = events["item"].value_counts(sort=True)["count"]
    assert counts.head(100).sum() / N > 0.4


def test_about_one_percent_of_events_arrive_late(events: pl.DataFrame) -> None:
    assert 0.007 <= late_mask(events).mean() <= 0.013


def test_only_adds_arrive_late(events: pl.DataFrame) -> None:
    assert set(events.filter(late_mask(events))["event_type"]) == {"item_added"}


def test_late_events_are_backdated_1_to_30_days(events: pl.DataFrame) -> None:
    latest_before = events["occurred_at"].cum_max().shift(1)  # the on-time time reached so far
    gap = (events["occurred_at"] - latest_before).filter(late_mask(events))
    assert gap.max() < dt.timedelta(hours=-23)
    assert gap.min() > dt.timedelta(days=-31)


def test_on_time_events_are_in_order_and_within_the_span() -> None:
    frame = datagen.generate_frame(50_000, seed=1, days=30, late_fraction=0.0)
    assert frame["occurred_at"].is_sorted()
    assert frame["occurred_at"].min() >= START
    assert frame["occurred_at"].max() < START + dt.timedelta(days=30)


def test_weekends_are_busier_than_weekdays(events: pl.DataFrame) -> None:
    daily = events.group_by(pl.col("occurred_at").dt.date().alias("day")).len()
    weekend = pl.col("day").dt.weekday() >= 6
    per_day = daily.group_by(weekend.alias("weekend")).agg(pl.col("len").mean())
    rate = dict(per_day.iter_rows())
    assert rate[True] > 1.3 * rate[False]


def test_december_is_busier_than_june(events: pl.DataFrame) -> None:
    month = events["occurred_at"].dt.month()
    assert (month == 12).sum() > 1.5 * (month == 6).sum()


# --- files and the original example ---------------------------------------------------------


def test_parquet_file_holds_the_same_events(tmp_path: Path) -> None:
    path = datagen.write_parquet(tmp_path / "events.parquet", 12_000, seed=9, batch_size=5_000)
    assert pl.read_parquet(path).equals(datagen.generate_frame(12_000, seed=9))


def test_csv_file_holds_the_same_events(tmp_path: Path) -> None:
    path = datagen.write_csv(tmp_path / "events.csv", 12_000, seed=9, batch_size=5_000)
    assert pl.read_csv(path, schema=datagen.SCHEMA).equals(datagen.generate_frame(12_000, seed=9))


def test_original_example_items_are_the_example_adds() -> None:
    rows = datagen.original_example_items()
    assert {(r["item"], r["origin"]) for r in rows} == {
        ("sword", "castle"),
        ("sword", "dungeon"),
        ("potion", "village"),
        ("bow", "forest"),
        ("torch", "dungeon"),
        ("scroll", "tower"),
    }
    assert all(r["event_type"] == "item_added" for r in rows)
    assert sum(r["quantity"] for r in rows if r["item"] == "potion") == 2
