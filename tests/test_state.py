"""Current state: stock, counts, an item's history, and record() as the one all-or-nothing write.

Every test that reads the state (record's stock check reads it too) runs on every local engine.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa
import pytest
import reference
from inventory_helpers import AWKWARD_ITEMS, as_frame, events_of, store

from eventlog import EventLog, EventSchema, EventType, Field, Inventory, Item
from eventlog.errors import InsufficientStockError, SchemaMismatchError, ValidationError

UTC = dt.timezone.utc
T = dt.datetime(2024, 5, 1, 9, 0, tzinfo=UTC)
SWORD, AXE = AWKWARD_ITEMS[0], AWKWARD_ITEMS[2]


@pytest.fixture
def inventory(tmp_path: Path, engine: str) -> Inventory:
    return Inventory.open(store(tmp_path), engine=engine)


@pytest.fixture
def stocked(inventory: Inventory) -> Inventory:
    """Swords and axes with rarities, origins and out-of-order business times."""
    inventory.record([
        {"event_type": "item_added", "item": SWORD, "quantity": 3, "rarity": "common", "origin": "castle", "occurred_at": T},
        {"event_type": "item_added", "item": AXE, "quantity": 2, "rarity": "rare", "occurred_at": T + dt.timedelta(hours=1)},
    ])
    inventory.record([
        # Backdated: happened before the first sword was added.
        {"event_type": "item_added", "item": SWORD, "quantity": 1, "origin": "dungeon", "occurred_at": T - dt.timedelta(days=2)},
        {"event_type": "item_removed", "item": AXE, "quantity": 2, "occurred_at": T + dt.timedelta(hours=2)},
        {"event_type": "item_removed", "item": SWORD, "quantity": 1, "occurred_at": T + dt.timedelta(days=1)},
    ])
    return inventory


def _add(item: str, quantity: int = 1) -> dict[str, Any]:
    return {"event_type": "item_added", "item": item, "quantity": quantity}


def _remove(item: str, quantity: int = 1) -> dict[str, Any]:
    return {"event_type": "item_removed", "item": item, "quantity": quantity}


# --- stock ---------------------------------------------------------------------------------


def test_stock_has_one_typed_column_per_fact(stocked: Inventory) -> None:
    assert stocked.stock().schema == pl.Schema({
        "item": pl.String(),
        "quantity": pl.Int64(),
        "rarity": pl.String(),
        "origin": pl.String(),
        "first_added_at": pl.Datetime("us", "UTC"),
        "last_changed_at": pl.Datetime("us", "UTC"),
        "stream_version": pl.Int64(),
    })


def test_stock_row_holds_quantity_latest_tags_and_business_time_extremes(stocked: Inventory) -> None:
    row = stocked.stock().row(0, named=True)
    assert row == {
        "item": SWORD,
        "quantity": 3,
        "rarity": "common",  # the later add has no rarity: the latest non-null one stays
        "origin": "dungeon",
        "first_added_at": T - dt.timedelta(days=2),  # min over adds in business time, not log order
        "last_changed_at": T + dt.timedelta(days=1),
        "stream_version": 3,
    }


def test_stock_leaves_out_items_at_zero(stocked: Inventory) -> None:
    assert stocked.stock().get_column("item").to_list() == [SWORD]


def test_stock_matches_the_reference_replay(stocked: Inventory) -> None:
    assert stocked.stock().rows() == reference.stock(events_of(stocked))


def test_stock_of_an_empty_inventory_is_empty_with_the_same_columns(inventory: Inventory) -> None:
    empty = inventory.stock()
    assert empty.height == 0
    assert empty.columns == reference.STOCK_COLUMNS


# --- counts --------------------------------------------------------------------------------


def test_get_count_of_an_unknown_item_is_zero(stocked: Inventory) -> None:
    assert stocked.get_count("never recorded") == 0


def test_get_count_of_an_item_removed_entirely_is_zero(stocked: Inventory) -> None:
    assert stocked.get_count(AXE) == 0


def test_get_count_accepts_a_name_or_an_item(stocked: Inventory) -> None:
    assert stocked.get_count(SWORD) == stocked.get_count(Item(SWORD, rarity="anything")) == 3


def test_get_items_lists_names_and_counts_sorted_by_name(inventory: Inventory) -> None:
    inventory.record([_add(name, i + 1) for i, name in enumerate(AWKWARD_ITEMS)])
    assert inventory.get_items() == sorted((name, i + 1) for i, name in enumerate(AWKWARD_ITEMS))


# --- history -------------------------------------------------------------------------------


def test_history_lists_the_items_events_in_log_order_with_the_running_stock(stocked: Inventory) -> None:
    hist = stocked.history(SWORD)
    assert hist.select("seq", "change", "stock").rows() == reference.running_stock(events_of(stocked), SWORD)
    assert hist.get_column("stream_version").to_list() == [1, 2, 3]


def test_history_of_an_unknown_item_is_empty(stocked: Inventory) -> None:
    assert stocked.history("never recorded").height == 0


# --- record: all or nothing ----------------------------------------------------------------


def test_an_over_removal_in_the_middle_of_a_batch_names_that_row_and_writes_nothing(stocked: Inventory) -> None:
    before = events_of(stocked)
    batch = [_add(AXE), _remove(SWORD, 3), _remove(AXE), _remove(SWORD, 1), _remove(AXE)]
    with pytest.raises(InsufficientStockError) as info:
        stocked.record(batch)
    # Sword: 3 in stock, row 1 takes 3, row 3 asks for 1 more; row 4 (axe) would fail too, later.
    assert (info.value.row, info.value.item, info.value.requested, info.value.available) == (3, SWORD, 1, 0)
    assert "row 3" in str(info.value)
    assert events_of(stocked) == before


def test_stock_check_runs_in_log_order_so_an_add_earlier_in_the_batch_covers_a_removal(inventory: Inventory) -> None:
    inventory.record([_add(SWORD, 2), _remove(SWORD, 2), _add(SWORD), _remove(SWORD)])
    assert inventory.get_count(SWORD) == 0


def test_an_add_later_in_the_batch_does_not_cover_an_earlier_removal(inventory: Inventory) -> None:
    with pytest.raises(InsufficientStockError) as info:
        inventory.record([_remove(SWORD), _add(SWORD)])
    assert info.value.row == 0
    assert inventory.log.head() == 0


def test_the_stock_check_starts_from_state_written_by_another_inventory_object(tmp_path: Path, engine: str) -> None:
    first = Inventory.open(store(tmp_path), engine=engine)
    first.get_count(SWORD)  # caches the empty state
    Inventory.open(store(tmp_path), engine=engine).add_item(SWORD)
    first.remove_item(SWORD)
    with pytest.raises(InsufficientStockError):
        first.remove_item(SWORD)


@pytest.mark.parametrize("shape", ["records", "polars", "arrow"])
def test_record_takes_records_a_data_frame_or_an_arrow_table_alike(tmp_path: Path, engine: str, shape: str) -> None:
    batch = [
        {"event_type": "item_added", "item": AXE, "quantity": 4, "rarity": "rare", "origin": "森", "occurred_at": T},
        {"event_type": "item_removed", "item": AXE, "quantity": 1, "rarity": None, "origin": None,
         "occurred_at": T + dt.timedelta(minutes=1)},
    ]
    given = {"records": batch, "polars": as_frame(batch), "arrow": as_frame(batch).to_arrow()}[shape]
    inventory = Inventory.open(store(tmp_path), engine=engine)
    result = inventory.record(given)
    assert (result.first_seq, result.last_seq) == (1, 2)
    assert inventory.stock().rows() == [(AXE, 3, "rare", "森", T, T + dt.timedelta(minutes=1), 2)]


def test_quantity_defaults_to_one(inventory: Inventory) -> None:
    inventory.record([{"event_type": "item_added", "item": SWORD}])
    assert inventory.get_count(SWORD) == 1


_BAD_ITEMS = {
    "missing": [{"event_type": "item_added", "quantity": 1}],
    "null": [{"event_type": "item_added", "item": None, "quantity": 1}],
    "empty": [{"event_type": "item_added", "item": "", "quantity": 1}],
}


@pytest.mark.parametrize("shape", ["records", "polars", "arrow"])
@pytest.mark.parametrize("case", sorted(_BAD_ITEMS))
def test_a_bad_item_is_reported_as_the_item_field_not_stream_id(inventory: Inventory, case: str, shape: str) -> None:
    rows = [_add(SWORD), *_BAD_ITEMS[case]]
    frame = pl.DataFrame(rows, schema={"event_type": pl.String, "quantity": pl.Int64,
                                       **({"item": pl.String} if case != "missing" else {})})
    given = {"records": rows, "polars": frame, "arrow": frame.to_arrow()}[shape]
    with pytest.raises(ValidationError) as info:
        inventory.record(given)
    assert info.value.field == "item"
    assert "stream_id" not in str(info.value)
    assert inventory.log.head() == 0


def test_an_item_that_is_not_text_names_the_item_field_and_row(inventory: Inventory) -> None:
    with pytest.raises(ValidationError) as info:
        inventory.record([_add(SWORD), {"event_type": "item_added", "item": 7}])
    assert (info.value.row, info.value.field) == (1, "item")


def test_add_item_with_something_other_than_a_name_or_item_is_a_validation_error(inventory: Inventory) -> None:
    with pytest.raises(ValidationError) as info:
        inventory.add_item(42)  # type: ignore[arg-type]
    assert info.value.field == "item"


def test_a_batch_naming_the_stream_id_column_is_told_to_call_it_item(inventory: Inventory) -> None:
    with pytest.raises(ValidationError, match="'item'") as info:
        inventory.record(pa.table({"event_type": ["item_added"], "stream_id": [SWORD]}))
    assert info.value.field == "stream_id"


def test_a_quantity_below_one_is_rejected_naming_the_row(inventory: Inventory) -> None:
    with pytest.raises(ValidationError) as info:
        inventory.record([_add(SWORD), _add(AXE, 0)])
    assert (info.value.row, info.value.field) == (1, "quantity")


# --- opening -------------------------------------------------------------------------------


def test_open_creates_an_inventory_store_when_there_is_none(tmp_path: Path) -> None:
    Inventory.open(store(tmp_path))
    assert EventLog.open(store(tmp_path)).schema.name == "inventory"


def test_open_on_a_store_of_another_schema_is_a_schema_mismatch(tmp_path: Path) -> None:
    other = EventSchema([EventType("ping", (Field("n", "int64"),))], name="pings")
    EventLog.create(tmp_path / "pings", other)
    with pytest.raises(SchemaMismatchError, match="item_added"):
        Inventory.open(tmp_path / "pings")


def test_open_on_a_store_whose_quantity_has_another_type_is_a_schema_mismatch(tmp_path: Path) -> None:
    fields = (Field("quantity", "float64"), Field("rarity", "string", required=False),
              Field("origin", "string", required=False))
    other = EventSchema([EventType("item_added", fields), EventType("item_removed", fields)], name="floaty")
    EventLog.create(tmp_path / "floaty", other)
    with pytest.raises(SchemaMismatchError, match="quantity"):
        Inventory.open(tmp_path / "floaty")


def test_state_is_right_when_data_files_carry_no_statistics(
    stocked: Inventory, engine: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Delta statistics are optional (other writers may omit them): a file without them may hold any seq."""
    from eventlog.store.delta import DeltaEvents

    real = DeltaEvents.files

    def without_stats(self: DeltaEvents) -> pl.DataFrame:
        files = real(self)
        return files.with_columns(pl.lit(None, dtype=files.schema[c]).alias(c)
                                  for c in ("min_seq", "max_seq", "max_recorded_at"))

    events = events_of(stocked)
    monkeypatch.setattr(DeltaEvents, "files", without_stats)
    fresh = Inventory.open(stocked.path, engine=engine)
    for seq in range(6):
        assert fresh.stock(as_of=seq).rows() == reference.stock(events, seq=seq)


def test_events_of_a_type_added_later_do_not_count_as_removals(tmp_path: Path, engine: str) -> None:
    """Only item_added and item_removed move stock; a new event type (after evolve) does not."""
    from eventlog import EventSchema, EventType, Field
    from eventlog.inventory import INVENTORY_SCHEMA

    inv = Inventory.open(tmp_path / "store", engine=engine)
    inv.add_item("sword", 3)
    audited = EventType("item_audited", (Field("quantity", "int64", required=False),))
    inv.log.evolve(EventSchema((*INVENTORY_SCHEMA.event_types, audited), name="inventory"))
    inv.log.append([{"event_type": "item_audited", "stream_id": "sword", "quantity": 2}])
    fresh = Inventory.open(tmp_path / "store", engine=engine)
    assert fresh.get_count("sword") == 3
    assert fresh.history("sword")["stock"].to_list() == [3, 3]
    assert fresh.verify().ok


def test_stock_is_the_same_after_compaction(tmp_path: Path, engine: str) -> None:
    """Compacted files are read by the same fold as the files appends wrote (same columns, same order)."""
    inv = Inventory.open(tmp_path / "store", engine=engine)
    for i in range(6):
        inv.record([{"event_type": "item_added", "item": f"item {i % 3}", "quantity": i + 1, "origin": f"o{i}",
                     "occurred_at": dt.datetime(2024, 1, 1 + i % 2, tzinfo=dt.timezone.utc)}])
    before = Inventory.open(tmp_path / "store", engine=engine).stock()
    inv.log.compact()
    assert inv.log.files().height < 6
    assert Inventory.open(tmp_path / "store", engine=engine).stock().equals(before)
