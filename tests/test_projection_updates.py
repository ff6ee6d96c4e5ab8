"""How projections are brought up to date: one fold for many, and the update modes of functions.

Whatever an update saves — the declarative projections folded together from one read of the
events (``core/foldplan.py``), a ``from_day`` function recomputed from its trailing window
only, or not at all when only earlier days changed — its tables must equal a rebuild of each
projection on its own, and the functions' tables the function run on the whole source.
"""

from __future__ import annotations

import datetime as dt
import tempfile
from pathlib import Path
from typing import Any

import polars as pl
import pytest
import reference
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from inventory_helpers import T0, batches_of, events_of, item_events, store, write

from eventlog import Inventory
from eventlog.core.definitions import Agg, FunctionProjection, Projection
from eventlog.core.foldplan import plan
from eventlog.errors import ProjectionError
from eventlog.model.builtins import BUILTINS, DAILY_FLOWS, DAILY_STOCK, ITEM_ORIGINS, MOST_COLLECTED_ITEMS, top_movers

PROPERTY = settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
DAY = "CAST(occurred_at AS DATE)"

#: Filters, a where, first/last with a where, min/max, a distinct set of a fine key: all folded
#: from the daily tables' fine fold.
REMOVALS = Projection(
    "removals",
    keys={"item": "stream_id", "on": DAY},
    event_types=["item_removed"],
    where="quantity > 1",
    aggregates={
        "n": Agg.count(),
        "last_origin": Agg.last("origin", where="rarity IS NOT NULL"),
        "first_origin": Agg.first("origin"),
        "smallest": Agg.min("quantity"),
        "origins": Agg.distinct("origin"),
    },
)
#: Keys that are no subset of another's, and a distinct set of a value no projection groups by.
PER_RARITY = Projection(
    "per_rarity",
    keys={"rarity": "rarity", "type": "event_type"},
    aggregates={"items": Agg.distinct("stream_id"), "largest": Agg.max("quantity")},
)
USER = (REMOVALS, PER_RARITY)


def _calls(name: str, calls: list[int]) -> FunctionProjection:
    """A from_day function over daily_stock that counts its calls (no running stock read)."""

    def latest_days(daily: pl.DataFrame) -> pl.DataFrame:
        calls.append(daily.height)
        return top_movers(daily, days=3)

    return FunctionProjection(name, latest_days, source="daily_stock", updates="from_day", day="day", window_days=3,
                              columns=("item", "day", "added", "removed", "net_change"))


# --- one fold for many ---------------------------------------------------------------------------


def test_the_built_ins_are_folded_from_one_read_of_the_events() -> None:
    groups = plan([MOST_COLLECTED_ITEMS, ITEM_ORIGINS, DAILY_FLOWS, DAILY_STOCK])
    assert [[p.projection.name for p in g.parts] for g in groups] == [
        ["daily_flows", "daily_stock", "most_collected_items", "item_origins"]]
    assert groups[0].parts[0].rename is not None  # the finest is the fine fold itself, renamed


def test_keys_that_nest_in_no_other_projections_keys_are_folded_on_their_own() -> None:
    groups = plan([DAILY_FLOWS, PER_RARITY, REMOVALS])
    assert [[p.projection.name for p in g.parts] for g in groups] == [["daily_flows", "removals"], ["per_rarity"]]
    assert groups[1].fine is None


@settings(PROPERTY, max_examples=5)
@given(batches=item_events(max_size=20, days=40).flatmap(lambda e: batches_of(e, max_batches=3)))
def test_projections_folded_together_equal_each_rebuilt_alone(engine: str, batches: list[list[dict]]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        inv = Inventory.open(store(tmp), engine=engine)
        for projection in USER:
            inv.register(projection)
        write(inv, batches[0])
        inv.update_projections()  # every table built in one plan
        for batch in batches[1:]:
            write(inv, batch)
        inv.update_projections()  # every tail folded in one plan
        together = {name: inv.projection(name).read() for name in inv.projector.registry}
        for name in inv.projector.registry:
            inv.projection(name).rebuild()  # alone: a plan of one
            assert inv.projection(name).read().equals(together[name]), name
        assert together["daily_stock"].rows() == reference.daily_stock(events_of(inv))


# --- update modes of function projections ---------------------------------------------------------


@settings(PROPERTY, max_examples=5)
@given(log=item_events(max_size=16, days=30).flatmap(lambda e: batches_of(e, max_batches=3)))
def test_function_tables_updated_round_by_round_equal_the_function_on_the_whole_source(
    engine: str, log: list[list[dict]]
) -> None:
    """After each append and update, a from_day function (top_movers, and one that reads the
    running stock) and a rebuild-mode one (stockouts) equal the function on the whole source."""
    with tempfile.TemporaryDirectory() as tmp:
        inv = Inventory.open(store(tmp), engine=engine)
        whole = FunctionProjection("recent_stock", _recent_stock, source="daily_stock", updates="from_day", day="day",
                                   window_days=2)  # no columns given: the running stock needs every day
        inv.register(whole)
        for batch in log:
            write(inv, batch)
            inv.update_projections()
            daily = inv.projection("daily_stock").read()
            events = events_of(inv)
            assert inv.projection("top_movers").read().rows() == reference.top_movers(events)
            assert inv.projection("stockouts").read().rows() == reference.stockouts(events)
            assert inv.projection("recent_stock").read().equals(_recent_stock(daily))
        incremental = {n: inv.projection(n).read() for n in ("top_movers", "stockouts", "recent_stock")}
        inv.update_projections(rebuild=True)
        for name, table in incremental.items():
            assert inv.projection(name).read().equals(table), name


def _recent_stock(daily: pl.DataFrame) -> pl.DataFrame:
    """The stock of each item on the last two days of data."""
    if daily.height == 0:
        return daily.select("item", "day", "stock")
    return daily.filter(pl.col("day") >= pl.col("day").max() - dt.timedelta(days=1)).select("item", "day", "stock")


def _add(inv: Inventory, item: str, day: dt.date) -> None:
    inv.add_item(item, 1, occurred_at=dt.datetime.combine(day, dt.time(12), tzinfo=dt.timezone.utc))


def test_a_from_day_function_is_not_run_when_only_days_before_its_window_changed(inventory: Inventory) -> None:
    calls: list[int] = []
    inventory.register(_calls("recent", calls))
    for day in range(10):
        _add(inventory, "sword", T0.date() + dt.timedelta(days=day))
    inventory.update_projections()
    assert calls == [3]  # the three days of its window, not all ten
    _add(inventory, "shield", T0.date() + dt.timedelta(days=2))  # long before the window
    status = inventory.update_projections()["recent"]
    assert calls == [3] and status.checkpoint == inventory.log.head()
    _add(inventory, "shield", T0.date() + dt.timedelta(days=8))  # inside it
    inventory.update_projections()
    assert len(calls) == 2
    _add(inventory, "bow", T0.date() + dt.timedelta(days=12))  # the window moves
    inventory.update_projections()
    assert len(calls) == 3
    assert inventory.projection("recent").read().equals(top_movers(inventory.projection("daily_stock").read(), days=3))


def test_a_from_day_function_reading_a_running_total_runs_whenever_an_earlier_day_changed(
    inventory: Inventory,
) -> None:
    calls: list[int] = []
    inventory.register(FunctionProjection("recent_stock", lambda d: calls.append(d.height) or _recent_stock(d),
                                          source="daily_stock", updates="from_day", day="day", window_days=2))
    for day in range(5):
        _add(inventory, "sword", T0.date() + dt.timedelta(days=day))
    inventory.update_projections()
    _add(inventory, "sword", T0.date())  # every later day's stock moves
    inventory.update_projections()
    assert len(calls) == 2
    assert inventory.projection("recent_stock").read().equals(_recent_stock(inventory.projection("daily_stock").read()))


def test_a_from_day_function_runs_again_on_a_rebuild(inventory: Inventory) -> None:
    calls: list[int] = []
    inventory.register(_calls("recent", calls))
    _add(inventory, "sword", T0.date())
    inventory.update_projections()
    inventory.update_projections()  # nothing new: nothing runs
    inventory.update_projections(rebuild=True)
    assert len(calls) == 2


@pytest.mark.parametrize(("options", "message"), [
    ({"updates": "sometimes"}, "updates is 'rebuild' or 'from_day'"),
    ({"updates": "from_day", "window_days": 3}, "needs a source projection"),
    ({"updates": "from_day", "day": "day"}, "needs window_days"),
    ({"updates": "from_day", "day": "day", "window_days": 0}, "needs window_days"),
    ({"updates": "from_day", "day": "day", "window_days": 2, "columns": ["item"]}, "must include the day column"),
])
def test_a_from_day_definition_without_what_it_needs_is_refused(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ProjectionError, match=message):
        FunctionProjection("f", top_movers, source="daily_stock", **options)


@pytest.mark.parametrize("source", ["most_collected_items", "daily_flows"])
def test_a_from_day_function_needs_a_source_partitioned_by_its_day(inventory: Inventory, source: str) -> None:
    day = "day" if source == "daily_flows" else "item"
    function = FunctionProjection("f", top_movers, source=source, updates="from_day", day=day, window_days=2)
    if source == "daily_flows":
        inventory.register(function)  # partitioned by day: accepted
        return
    with pytest.raises(ProjectionError, match="partition_by='item'"):
        inventory.register(function)


def test_the_update_mode_is_in_the_status_and_the_fingerprint() -> None:
    by_mode = {p.name: p.mode for p in BUILTINS}
    assert by_mode["top_movers"] == "from_day" and by_mode["stockouts"] == "rebuild"
    plain = FunctionProjection("f", top_movers, source="daily_stock")
    windowed = FunctionProjection("f", top_movers, source="daily_stock", updates="from_day", day="day", window_days=7)
    assert plain.fingerprint() != windowed.fingerprint()


@pytest.fixture
def inventory(tmp_path: Path) -> Inventory:
    return Inventory.open(store(tmp_path))
