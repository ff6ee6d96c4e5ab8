"""Projections: analytic tables kept up to date from the log's tail.

The specification is the naive replay in ``reference.py``: whatever path built a table
(a full build, an incremental merge of the stored table with a fold of the tail, an
``as_of`` read, the compiled SQL in DuckDB) must give the reference's rows, also when the
log holds events of types that move no stock, on every local engine (the ``engine``
fixture; hypothesis tests run about half their examples on each).
"""

from __future__ import annotations

import datetime as dt
import json
import tempfile
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
from deltalake import DeltaTable
import pytest
import reference
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from inventory_helpers import batches_of, events_of, item_events, store, write

from eventlog import EventLog, Inventory
from eventlog.model.builtins import (
    BUILTINS,
    DAILY_FLOWS,
    DAILY_STOCK,
    ITEM_ORIGINS,
    MOST_COLLECTED_ITEMS,
    dense_daily_stock,
)
from eventlog.errors import ProjectionError, ValidationError
from eventlog.errors import StaleProjectionWarning
from eventlog.core.definitions import Agg, FunctionProjection, Projection

UTC = dt.timezone.utc
T = dt.datetime(2024, 3, 1, 8, 0, tzinfo=UTC)
PROPERTY = settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
NAMES = [p.name for p in BUILTINS]
DECLARATIVE = [MOST_COLLECTED_ITEMS, ITEM_ORIGINS, DAILY_FLOWS, DAILY_STOCK]

#: A user-defined projection using every aggregate kind, grouped by a nullable key.
PER_ORIGIN = Projection(
    "per_origin",
    keys={"origin": "origin"},
    aggregates={
        "events": Agg.count(),
        "added": Agg.sum("quantity", where="event_type = 'item_added'"),
        "first_item": Agg.first("stream_id"),
        "last_rarity": Agg.last("rarity"),
        "last_rare_item": Agg.last("stream_id", where="rarity = 'rare'"),
        "smallest_removal": Agg.min("quantity", where="event_type = 'item_removed'"),
        "largest": Agg.max("quantity"),
        "first_seen": Agg.min("occurred_at"),
        "items": Agg.distinct("stream_id"),
    },
)


def per_origin_reference(events: Iterable[dict[str, Any]]) -> list[tuple]:
    groups: dict[str | None, dict[str, Any]] = {}
    for e in reference.in_log_order(events):
        g = groups.setdefault(e["origin"], {"events": 0, "added": 0, "first_item": e["stream_id"], "last_rarity": None,
                                            "last_rare_item": None, "smallest_removal": None, "largest": None,
                                            "first_seen": None, "items": set()})
        g["events"] += 1
        if e["event_type"] == "item_added":
            g["added"] += e["quantity"]
        g["last_rarity"] = e["rarity"]
        if e["rarity"] == "rare":
            g["last_rare_item"] = e["stream_id"]
        if e["event_type"] == "item_removed":
            g["smallest_removal"] = min(e["quantity"], g["smallest_removal"] or e["quantity"])
        if e["quantity"] is not None:  # an event of another type may have none
            g["largest"] = max(e["quantity"], g["largest"] or 0)
        g["first_seen"] = min(e["occurred_at"], g["first_seen"] or e["occurred_at"])
        g["items"].add(e["stream_id"])
    rows = [(origin, g["events"], g["added"], g["first_item"], g["last_rarity"], g["last_rare_item"],
             g["smallest_removal"], g["largest"], g["first_seen"], sorted(g["items"])) for origin, g in groups.items()]
    return sorted(rows, key=lambda r: (r[0] is None, r[0] or ""))


def duckdb_rows(events: pl.DataFrame, projection: Projection) -> list[tuple]:
    """The projection's to_sql() run by DuckDB over a view ``events`` of the given frame."""
    con = duckdb.connect()
    try:
        con.execute("SET TimeZone = 'UTC'")
        con.register("events", events)
        return con.sql(projection.to_sql()).fetchall()
    finally:
        con.close()


@st.composite
def split_logs(draw: st.DrawFn) -> tuple[list[list[dict]], list[list[dict]]]:
    """Batches recorded before the first update, and batches recorded after it (either may be empty)."""
    batches = draw(item_events(max_size=20).flatmap(batches_of))
    k = draw(st.integers(0, len(batches)))
    return batches[:k], batches[k:]


@pytest.fixture
def inventory(tmp_path: Path, engine: str) -> Inventory:
    inv = Inventory.open(store(tmp_path), engine=engine)
    inv.record([
        {"event_type": "item_added", "item": "sword", "quantity": 3, "origin": "castle", "rarity": "rare", "occurred_at": T},
        {"event_type": "item_added", "item": "potion", "quantity": 2, "origin": "village", "occurred_at": T},
        {"event_type": "item_removed", "item": "sword", "quantity": 1, "occurred_at": T + dt.timedelta(days=1)},
    ])
    return inv


def _append_one(inv: Inventory) -> None:
    inv.record([{"event_type": "item_added", "item": "bow", "quantity": 1, "origin": "forest",
                 "occurred_at": T + dt.timedelta(days=2)}])


# --- the built-ins against the reference -----------------------------------------------------


@PROPERTY
@given(log=split_logs())
def test_incremental_update_equals_full_rebuild_equals_the_reference(engine: str, log: tuple[list, list]) -> None:
    before, after = log
    with tempfile.TemporaryDirectory() as tmp:
        inv = Inventory.open(store(tmp), engine=engine)
        for batch in before:
            write(inv, batch)
        inv.update_projections()
        for batch in after:
            write(inv, batch)
        inv.update_projections()
        events = events_of(inv)
        incremental = {name: inv.projection(name).read() for name in NAMES}
        for name in NAMES:
            assert incremental[name].rows() == reference.PROJECTIONS[name](events), name
        inv.update_projections(rebuild=True)
        for name in NAMES:
            assert inv.projection(name).read().equals(incremental[name]), name


@settings(PROPERTY, max_examples=8)
@given(log=split_logs(), data=st.data())
def test_reads_as_of_a_seq_or_a_business_time_equal_the_reference_there(
    engine: str, log: tuple[list, list], data: st.DataObject
) -> None:
    before, after = log
    with tempfile.TemporaryDirectory() as tmp:
        inv = Inventory.open(store(tmp), engine=engine)
        for batch in before:
            write(inv, batch)
        inv.update_projections()  # the stored tables sit at this checkpoint: cuts fall on both sides
        for batch in after:
            write(inv, batch)
        events = events_of(inv)
        seq = data.draw(st.integers(0, len(events)), label="as_of seq")
        when = data.draw(st.sampled_from([e["occurred_at"] for e in events]), label="as_of time")
        for name in NAMES:
            assert inv.projection(name).read(as_of=seq).rows() == reference.PROJECTIONS[name](
                reference.cut(events, seq=seq)), name
            assert inv.projection(name).read(as_of=when).rows() == reference.PROJECTIONS[name](
                reference.cut(events, business=when)), name


@settings(PROPERTY, max_examples=8)
@given(log=split_logs())
def test_a_user_defined_projection_matches_its_reference_after_an_incremental_update(
    engine: str, log: tuple[list, list]
) -> None:
    before, after = log
    with tempfile.TemporaryDirectory() as tmp:
        inv = Inventory.open(store(tmp), engine=engine)
        handle = inv.register(PER_ORIGIN)
        for batch in before:
            write(inv, batch)
        handle.update()
        for batch in after:
            write(inv, batch)
        assert handle.read().rows() == per_origin_reference(events_of(inv))


@settings(PROPERTY, max_examples=6)
@given(events=item_events(max_size=20))
def test_every_declarative_projection_compiles_to_sql_that_duckdb_answers_like_the_engine(
    engine: str, events: list[dict]
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        inv = Inventory.open(store(tmp), engine=engine)
        inv.register(PER_ORIGIN)
        write(inv, events)
        frame = inv.log.scan().collect()
        for projection in [*DECLARATIVE, PER_ORIGIN]:
            assert duckdb_rows(frame, projection) == inv.projection(projection.name).read().rows(), projection.name


def test_the_user_defined_projection_sql_matches_its_reference_on_a_known_log(inventory: Inventory) -> None:
    assert duckdb_rows(inventory.log.scan().collect(), PER_ORIGIN) == per_origin_reference(events_of(inventory))


@pytest.mark.parametrize("name", NAMES)
def test_every_projection_of_an_empty_inventory_is_empty_with_its_usual_columns(
    tmp_path: Path, engine: str, inventory: Inventory, name: str
) -> None:
    empty = Inventory.open(store(tmp_path / "empty"), engine=engine).projection(name).read()
    assert empty.height == 0
    assert empty.columns == inventory.projection(name).read().columns


def test_dense_daily_stock_carries_each_items_stock_forward_over_days_without_changes(inventory: Inventory) -> None:
    _append_one(inventory)  # bow, two days after the first events
    dense = dense_daily_stock(inventory.projection("daily_stock").read())
    sparse = {(item, day): level for item, day, *_, level in reference.daily_stock(events_of(inventory))}
    days = [T.date() + dt.timedelta(days=i) for i in range(3)]
    expected = []
    for item in sorted({item for item, _ in sparse}):
        level = None
        for day in days:
            level = sparse.get((item, day), level)
            if level is not None:
                expected.append((item, day, level))
    assert dense.rows() == expected


def test_top_ranks_by_the_rank_column_then_the_keys(inventory: Inventory) -> None:
    _append_one(inventory)
    expected = reference.top(reference.most_collected_items(events_of(inventory)), 2)
    assert inventory.projection("most_collected_items").top(2).rows() == expected


def test_top_of_a_function_projection_keeps_its_order_among_ties(inventory: Inventory) -> None:
    inventory.record([{"event_type": "item_added", "item": f"tied {i}", "quantity": 4, "occurred_at": T}
                      for i in range(6)])
    expected = reference.top_movers(events_of(inventory))[:4]
    assert inventory.projection("top_movers").top(4).rows() == expected


def test_top_as_of_a_seq_ranks_that_seqs_table(inventory: Inventory) -> None:
    assert inventory.projection("most_collected_items").top(5, as_of=1).rows() == [("sword", 3, 1)]


def test_top_of_a_projection_with_nothing_to_rank_by_is_an_error(inventory: Inventory) -> None:
    inventory.register(FunctionProjection("everything", lambda events: events.select("seq")))
    with pytest.raises(ProjectionError, match="rank_by"):
        inventory.projection("everything").top(3)


def test_an_unknown_projection_is_an_error_listing_the_known_ones(inventory: Inventory) -> None:
    with pytest.raises(ProjectionError, match="daily_flows"):
        inventory.projection("no_such_thing")


def test_as_of_a_naive_datetime_is_rejected_naming_as_of(inventory: Inventory) -> None:
    with pytest.raises(ValidationError) as info:
        inventory.projection("daily_flows").read(as_of=dt.datetime(2024, 3, 2))
    assert info.value.field == "as_of"


# --- definitions and status ------------------------------------------------------------------


def test_a_changed_definition_under_the_same_name_is_detected_as_stale(inventory: Inventory) -> None:
    inventory.update_projections()
    inventory.register(Projection("most_collected_items", keys={"item": "stream_id"}, event_types=["item_added"],
                                  aggregates={"total_added": Agg.max("quantity")}))
    assert inventory.projection("most_collected_items").status().stale_definition


def test_a_stale_definition_is_rebuilt_on_the_next_read(inventory: Inventory) -> None:
    inventory.update_projections()
    handle = inventory.register(Projection("most_collected_items", keys={"item": "stream_id"},
                                           event_types=["item_added"], aggregates={"total_added": Agg.max("quantity")}))
    assert handle.read().rows() == [("potion", 2), ("sword", 3)]
    assert not handle.status().stale_definition


def test_a_rebuild_is_needed_when_only_the_version_changes(inventory: Inventory) -> None:
    inventory.update_projections()
    bumped = Projection(**{**{f: getattr(ITEM_ORIGINS, f) for f in ("name", "keys", "aggregates", "event_types")},
                           "version": 2})
    inventory.register(bumped)
    assert inventory.projection("item_origins").status().stale_definition


def test_status_before_any_build_has_no_checkpoint(inventory: Inventory) -> None:
    status = inventory.projection("daily_flows").status()
    assert (status.checkpoint, status.lag, status.rows, status.built_at, status.head) == (None, None, None, None, 3)


def test_status_after_an_update_reports_checkpoint_rows_mode_and_timing(inventory: Inventory) -> None:
    before = dt.datetime.now(UTC)
    inventory.projection("daily_flows").update()
    status = inventory.projection("daily_flows").status()
    assert (status.checkpoint, status.head, status.lag, status.mode) == (3, 3, 0, "merge")
    assert status.rows == inventory.projection("daily_flows").read().height == 3
    assert before <= dt.datetime.fromisoformat(status.built_at) <= dt.datetime.now(UTC)
    assert 0 <= status.duration_s < 60
    assert not status.stale_definition


def test_status_lag_counts_the_events_appended_since_the_checkpoint(inventory: Inventory) -> None:
    inventory.projection("daily_flows").update()
    _append_one(inventory)
    _append_one(inventory)
    status = inventory.projection("daily_flows").status()
    assert (status.checkpoint, status.head, status.lag) == (3, 5, 2)


def test_projections_status_lists_every_registered_projection(inventory: Inventory) -> None:
    assert [s.name for s in inventory.projections_status()] == NAMES


def test_update_reports_the_status_of_what_it_updated_including_sources(inventory: Inventory) -> None:
    status = inventory.projection("stockouts").update()
    assert (status.name, status.mode, status.checkpoint) == ("stockouts", "rebuild", 3)
    assert inventory.projection("daily_stock").status().checkpoint == 3


# --- function projections --------------------------------------------------------------------


def _removals_per_item(events: pl.LazyFrame) -> pl.LazyFrame:
    return (
        events.filter(pl.col("event_type") == "item_removed")
        .group_by(pl.col("stream_id").alias("item"))
        .agg(pl.col("quantity").sum().alias("removed"))
        .sort("item")
    )


def test_a_function_projection_over_events_is_rebuilt_and_says_so(inventory: Inventory) -> None:
    handle = inventory.register(FunctionProjection("removals", _removals_per_item, rank_by="removed"))
    assert handle.read().rows() == [("sword", 1)]
    inventory.record([{"event_type": "item_removed", "item": "potion", "quantity": 2}])
    assert handle.read().rows() == [("potion", 2), ("sword", 1)]
    status = handle.status()
    assert (status.mode, status.checkpoint, status.lag) == ("rebuild", 4, 0)


def test_a_function_projection_reads_as_of_a_seq(inventory: Inventory) -> None:
    handle = inventory.register(FunctionProjection("removals", _removals_per_item))
    assert handle.read(as_of=2).height == 0


def test_a_function_projection_on_an_unregistered_source_is_refused(inventory: Inventory) -> None:
    with pytest.raises(ProjectionError, match="not registered"):
        inventory.register(FunctionProjection("later", lambda t: t, source="no_such_table"))


# --- stale reads -----------------------------------------------------------------------------


def test_stale_reads_serve_the_stored_table_and_warn_with_the_lag(inventory: Inventory, engine: str) -> None:
    inventory.update_projections()
    stored = inventory.projection("most_collected_items").read()
    _append_one(inventory)
    _append_one(inventory)
    stale = Inventory.open(inventory.path, projection_reads="stale", engine=engine)
    with pytest.warns(StaleProjectionWarning, match="2 events behind"):
        table = stale.projection("most_collected_items").read()
    assert table.equals(stored)
    assert stale.projection("most_collected_items").status().checkpoint == 3  # nothing was updated


def test_stale_reads_of_a_current_table_do_not_warn(inventory: Inventory, engine: str) -> None:
    inventory.update_projections()
    stale = Inventory.open(inventory.path, projection_reads="stale", engine=engine)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert stale.projection("daily_stock").read().rows() == reference.daily_stock(events_of(inventory))


def test_stale_reads_build_a_table_that_does_not_exist_yet(inventory: Inventory, engine: str) -> None:
    stale = Inventory.open(inventory.path, projection_reads="stale", engine=engine)
    assert stale.projection("item_origins").read().rows() == reference.item_origins(events_of(inventory))


def test_update_reads_the_tail_of_the_log_once_for_every_projection(inventory: Inventory,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    inventory.update_projections()
    _append_one(inventory)
    tail_scans: list[int] = []
    real = EventLog.scan_range

    def counting(self: EventLog, cut: int, **kwargs: Any) -> pl.LazyFrame:
        if kwargs.get("after", 0) > 0:
            tail_scans.append(kwargs["after"])
        return real(self, cut, **kwargs)

    monkeypatch.setattr(EventLog, "scan_range", counting)
    inventory.update_projections()
    assert tail_scans == [3]
    monkeypatch.undo()
    for name in NAMES:
        assert inventory.projection(name).read().rows() == reference.PROJECTIONS[name](events_of(inventory))


# --- several updaters ----------------------------------------------------------------------


def test_updaters_take_the_table_locks_in_one_global_order(inventory: Inventory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two updates of overlapping sets, each taking its locks in its own order, could wait on each other forever."""
    taken: list[list[str]] = []
    real = type(inventory.projector.tables).lock

    def recording(self: Any, name: str) -> Any:
        taken[-1].append(name)
        return real(self, name)

    monkeypatch.setattr(type(inventory.projector.tables), "lock", recording)
    for names in (None, ["top_movers", "most_collected_items"], ["item_origins", "stockouts", "daily_flows"]):
        taken.append([])
        inventory.update_projections(names)
    position = {name: i for i, name in enumerate(taken[0])}
    for order in taken[1:]:
        assert order == sorted(order, key=position.__getitem__)


def test_an_update_that_waited_for_another_does_not_move_the_tables_back(
    inventory: Inventory, engine: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    inventory.update_projections()
    other = Inventory.open(inventory.path, engine=engine)
    real = type(inventory.projector.tables).lock
    raced: list[bool] = []

    def lock_after_another_process_moved_on(self: Any, name: str) -> Any:
        if not raced:  # while we wait for the lock, another process appends and updates
            raced.append(True)
            _append_one(other)
            other.update_projections()
        return real(self, name)

    monkeypatch.setattr(type(inventory.projector.tables), "lock", lock_after_another_process_moved_on)
    statuses = inventory.update_projections()
    assert {s.checkpoint for s in statuses.values()} == {4}
    assert inventory.projection("daily_stock").read().rows() == reference.daily_stock(events_of(inventory))


# --- projection tables are Delta tables ------------------------------------------------------


def _months(inventory: Inventory) -> None:
    """Events over three months, so the daily tables have three month partitions."""
    inventory.record([
        {"event_type": "item_added", "item": item, "quantity": 5, "origin": "cave",
         "occurred_at": T + dt.timedelta(days=31 * month + i)}
        for month in range(3) for i, item in enumerate(["sword", "o'brien's axe"])
    ])


def test_a_projection_table_is_a_delta_table_with_its_build_in_the_commit_metadata(inventory: Inventory) -> None:
    _months(inventory)
    inventory.update_projections()
    folder = inventory.projector.tables.folder("most_collected_items")
    latest = DeltaTable(str(folder)).history(1)[0]
    assert latest["eventlog.checkpoint"] == str(inventory.log.head())
    assert latest["eventlog.fingerprint"] == inventory.projector.fingerprint(MOST_COLLECTED_ITEMS)
    read = pl.from_arrow(DeltaTable(str(folder)).to_pyarrow_table())  # any Delta reader, no eventlog
    assert read.sort("item").rows() == inventory.projection("most_collected_items").read().rows()
    assert not (folder / "current.json").exists()


def test_an_update_rewrites_only_the_months_its_events_touched(inventory: Inventory) -> None:
    _months(inventory)
    inventory.update_projections()
    folder = inventory.projector.tables.folder("daily_flows")
    before = set(DeltaTable(str(folder)).file_uris())
    inventory.add_item("sword", occurred_at=T + dt.timedelta(days=63))  # the third month only
    inventory.update_projections()
    after = set(DeltaTable(str(folder)).file_uris())
    assert len(before - after) == 1 and len(after - before) == 1  # one month's file replaced, two kept
    assert "__month=2024-05-01" in next(iter(after - before))
    assert inventory.projection("daily_flows").status().rows == len(inventory.projection("daily_flows").read())
    assert inventory.projection("daily_flows").read().equals(inventory.projection("daily_flows").rebuild() and
                                                             inventory.projection("daily_flows").read())


def test_an_update_of_a_keyed_table_merges_the_touched_keys_in_one_commit(inventory: Inventory) -> None:
    _months(inventory)
    inventory.update_projections()
    inventory.add_item("shield", 2)
    inventory.update_projections()
    folder = inventory.projector.tables.folder("most_collected_items")
    table = DeltaTable(str(folder))
    latest = table.history(1)[0]
    assert latest["eventlog.full_build"] == "false"
    commit = folder / "_delta_log" / f"{table.version():020d}.json"
    actions = [json.loads(line) for line in commit.read_text().splitlines()]
    added = [json.loads(a["add"]["stats"])["numRecords"] for a in actions if "add" in a]
    assert added == [1] and not [a for a in actions if "remove" in a]  # shield alone: no file held it
    inventory.add_item("shield", 1)
    inventory.update_projections()  # copy-on-write: the file holding shield is rewritten, the others kept
    table.update_incremental()
    commit = folder / "_delta_log" / f"{table.version():020d}.json"
    actions = [json.loads(line) for line in commit.read_text().splitlines()]
    assert [json.loads(a["add"]["stats"])["numRecords"] for a in actions if "add" in a] == [1]
    assert len([a for a in actions if "remove" in a]) == 1
    assert inventory.projection("most_collected_items").read().equals(
        inventory.projection("most_collected_items").rebuild() and inventory.projection("most_collected_items").read())


def test_read_version_reads_an_older_build_of_the_table_itself(inventory: Inventory) -> None:
    _months(inventory)
    handle = inventory.projection("most_collected_items")
    first = handle.update()
    then = handle.read()
    inventory.add_item("sword", 4)
    assert handle.update().version != first.version
    assert handle.read(version=first.version).equals(then)
    sword = pl.col("item") == "sword"
    assert handle.read().filter(sword).item(0, "total_added") == then.filter(sword).item(0, "total_added") + 4
    with pytest.raises(ProjectionError, match="versions 0 to"):
        handle.read(version=99)
    with pytest.raises(ValidationError, match="not both"):
        handle.read(as_of=1, version=first.version)


def test_an_update_merges_a_table_keyed_by_several_nullable_columns(inventory: Inventory) -> None:
    """The merge's key predicate holds one IS NOT DISTINCT FROM per key (null keys match null keys)."""
    keyed = inventory.register(Projection("by_origin_rarity", keys={"origin": "origin", "rarity": "rarity"},
                                          aggregates={"units": Agg.sum("quantity"), "last": Agg.last("stream_id")}))
    keyed.update()
    inventory.record([{"event_type": "item_added", "item": "sword", "quantity": 2, "origin": "cave", "rarity": "rare"},
                      {"event_type": "item_added", "item": "potion", "quantity": 1}])
    updated = keyed.read()
    assert updated.equals(keyed.rebuild() and keyed.read())
    assert None in updated.get_column("origin").to_list()


def test_reading_and_updating_projections_in_a_new_process_does_not_load_pandas(tmp_path: Path) -> None:
    """deltalake's to_pyarrow_table loads pandas (0.5 s in a new process): tables are read by Polars."""
    import subprocess
    import sys

    inv = Inventory.open(tmp_path / "store")
    inv.add_item("apple", 3)
    inv.update_projections()
    inv.add_item("pear", 2)  # the read below catches the tables up first
    code = ("import sys\nfrom eventlog import Inventory\ninv = Inventory.open(sys.argv[1])\n"
            "rows = {n: inv.projection(n).read().height for n in inv.projector.registry}\n"
            "print('pandas' in sys.modules, rows['most_collected_items'])\n")
    out = subprocess.run([sys.executable, "-c", code, str(inv.path)], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "2"], out.stderr
