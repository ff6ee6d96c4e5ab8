"""Schema evolution: a store's schema grows, old events keep reading, nothing stored is rewritten.

Compatible changes (new event types, new optional fields, new fields with a default) apply
to a store with data: old events read null or the default through every reader — ``scan``,
the DuckDB fold behind ``stock()``, the SQL views — and the hash chain still verifies.
Renames and retypes go through declared upcasters, applied at read time. Incompatible
changes are rejected and change nothing. A change of what a snapshot or a projection read
invalidates exactly those.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import polars as pl
import pytest
import reference
from inventory_helpers import events_of

from eventlog.model.state import STATE_VERSION
from eventlog import INVENTORY_SCHEMA, EventLog, EventSchema, EventType, Field, Inventory, Item, Upcaster
from eventlog.errors import SchemaEvolutionError
from eventlog.sql import connect

UTC = dt.timezone.utc
T = dt.datetime(2024, 3, 1, 9, 0, tzinfo=UTC)
ADDED, REMOVED, INSPECTED = "item_added", "item_removed", "item inspected; 'ü'"


# --- schemas ---------------------------------------------------------------------------------


def _with_fields(schema: EventSchema, extra: dict[str, tuple[Field, ...]], *new_types: EventType) -> EventSchema:
    """``schema`` with fields appended to some event types, and new event types."""
    types = tuple(EventType(et.name, et.fields + extra.get(et.name, ())) for et in schema.event_types)
    return EventSchema(types + new_types, name=schema.name)


def _replace_fields(schema: EventSchema, event_type: str, fields: tuple[Field, ...]) -> EventSchema:
    types = tuple(EventType(et.name, fields) if et.name == event_type else et for et in schema.event_types)
    return EventSchema(types, name=schema.name)


#: The inventory plus an optional field, a field with a default, and a new event type.
GROWN = _with_fields(
    INVENTORY_SCHEMA,
    {ADDED: (Field("location", "string", required=False), Field("checked", "bool", default=False))},
    EventType(INSPECTED, (Field("inspector", "string", required=False),)),
)

#: An order log whose fields get renamed and retyped.
ORDERS_V1 = EventSchema(
    [
        EventType("ordered", (Field("colour", "string"), Field("price", "string"), Field("qty", "int64"))),
        EventType("cancelled", (Field("reason", "string", required=False),)),
    ],
    name="orders",
)
ORDERED_V2 = (Field("color", "string"), Field("price_cents", "int64"), Field("qty", "int64"))
ORDERS_V2 = _replace_fields(ORDERS_V1, "ordered", ORDERED_V2)
RENAME_AND_RETYPE = [Upcaster("ordered", "color", "colour"), Upcaster("ordered", "price_cents", "CAST(price AS BIGINT)")]


# --- fixtures --------------------------------------------------------------------------------


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "store with spaces; 'quotes' ✓"


@pytest.fixture
def inventory(path: Path) -> Inventory:
    """Two commits of item events, a snapshot at the head, every built-in projection built."""
    inv = Inventory.open(path)
    inv.record([
        {"event_type": ADDED, "item": "sword", "quantity": 3, "rarity": "rare", "origin": "castle", "occurred_at": T},
        {"event_type": ADDED, "item": "o'brien's axe", "quantity": 2, "occurred_at": T},
        {"event_type": ADDED, "item": "Ünïcødé ✓", "quantity": 5, "origin": None, "occurred_at": T},
    ])
    inv.record([{"event_type": REMOVED, "item": "sword", "quantity": 1, "occurred_at": T + dt.timedelta(days=1)}])
    inv.snapshot()
    inv.update_projections()
    return inv


@pytest.fixture
def orders(path: Path) -> EventLog:
    log = EventLog.create(path, ORDERS_V1)
    log.append([
        {"event_type": "ordered", "stream_id": "o1", "colour": "red", "price": "1250", "qty": 1},
        {"event_type": "ordered", "stream_id": "o2", "colour": "blue; 'x'", "price": "99", "qty": 2},
        {"event_type": "cancelled", "stream_id": "o1", "reason": "changed mind"},
    ])
    return log


def _by_seq(log: EventLog, *columns: str, **scan: Any) -> list[tuple]:
    return log.scan(**scan).sort("seq").select("seq", *columns).collect().rows()


def _sql_events(store: EventLog | Inventory, *columns: str) -> list[tuple]:
    con = connect(store)
    try:
        names = ", ".join(f'"{c}"' for c in ("seq", *columns))
        return con.sql(f"SELECT {names} FROM events ORDER BY seq").fetchall()
    finally:
        con.close()


def _state(inv: Inventory) -> pl.DataFrame:
    return Inventory.open(inv.path).stock()


def _reference_stock(inv: Inventory) -> list[tuple]:
    return reference.stock(events_of(inv))


# --- adding fields and event types -----------------------------------------------------------


def test_old_events_read_an_added_optional_field_as_null_and_a_default_as_the_default(inventory: Inventory) -> None:
    inventory.log.evolve(GROWN)
    rows = _by_seq(inventory.log, "event_type", "location", "checked")
    assert rows == [
        (1, ADDED, None, False),
        (2, ADDED, None, False),
        (3, ADDED, None, False),
        (4, REMOVED, None, None),  # not a field of item_removed
    ]


def test_the_evolved_schema_is_persisted_with_its_history(inventory: Inventory, path: Path) -> None:
    inventory.log.evolve(GROWN)
    meta = json.loads((path / "eventlog.json").read_text())
    assert meta["schema_version"] == 2
    assert [v["version"] for v in meta["schema_history"]] == [1, 2]
    assert meta["schema_history"][0]["schema"] == INVENTORY_SCHEMA.to_json()
    assert meta["schema_history"][1]["first_seq"] == 5  # the head was 4
    reopened = EventLog.open(path)
    assert (reopened.schema_version, reopened.schema) == (2, GROWN)


def test_events_of_the_new_schema_append_and_read_beside_old_ones(inventory: Inventory) -> None:
    log = inventory.log.evolve(GROWN)
    log.append([
        {"event_type": ADDED, "stream_id": "shield", "quantity": 1, "location": "hall \"B\"", "occurred_at": T},
        {"event_type": INSPECTED, "stream_id": "sword", "inspector": "Zoë", "occurred_at": T},
    ])
    inventory.record([{"event_type": ADDED, "item": "bow", "quantity": 4, "occurred_at": T}])  # the domain's API
    assert _by_seq(log, "event_type", "location", "checked", "inspector", as_of=None)[4:] == [
        (5, ADDED, 'hall "B"', False, None),
        (6, INSPECTED, None, None, "Zoë"),
        (7, ADDED, None, False, None),  # the new field's default filled on append too
    ]


def test_stock_reads_the_same_after_fields_and_an_event_type_are_added(inventory: Inventory) -> None:
    before = inventory.stock()
    inventory.log.evolve(GROWN)
    assert inventory.stock().equals(before)
    assert _state(inventory).equals(before)  # a fresh process: snapshot ⊕ fold over old and new files
    inventory.log.append([{"event_type": INSPECTED, "stream_id": "nothing in stock", "occurred_at": T}])
    inventory.record([{"event_type": ADDED, "item": "bow", "quantity": 4, "occurred_at": T}])
    after = _state(inventory)
    assert after.filter(pl.col("item") != "bow").equals(before)
    assert after.filter(pl.col("item") == "bow")["quantity"].to_list() == [4]


def test_sql_views_show_old_events_as_scan_does(inventory: Inventory) -> None:
    inventory.log.evolve(GROWN)
    columns = ("event_type", "quantity", "location", "checked", "inspector")
    assert _sql_events(inventory, *columns) == _by_seq(inventory.log, *columns)
    inventory.log.append([{"event_type": INSPECTED, "stream_id": "sword", "inspector": "x", "occurred_at": T}])
    assert _sql_events(inventory, *columns) == _by_seq(inventory.log, *columns)
    con = connect(inventory)
    try:
        assert con.sql("SELECT * FROM inventory").pl().equals(inventory.stock())
    finally:
        con.close()


def test_an_empty_store_evolves_and_its_views_read(path: Path) -> None:
    log = EventLog.create(path, ORDERS_V1).evolve(ORDERS_V2, upcasters=RENAME_AND_RETYPE)
    assert log.scan().collect().columns == list(ORDERS_V2.columns())
    assert _sql_events(log, "color", "price_cents") == []


def test_verify_passes_before_and_after_evolution(inventory: Inventory) -> None:
    assert inventory.verify().ok
    inventory.log.evolve(GROWN)
    assert inventory.verify().ok
    inventory.log.append([{"event_type": INSPECTED, "stream_id": "sword", "occurred_at": T}])
    inventory.add_item(Item("bow", rarity="common"))
    report = inventory.verify()
    assert report.ok, str(report)
    assert EventLog.open(inventory.path).verify().ok


def test_old_commits_keep_their_hashes_and_new_ones_record_their_schema_version(inventory: Inventory) -> None:
    def appends() -> list[dict[str, Any]]:
        return [e for e in inventory.log.history() if e.get("eventlog.operation") == "append"]

    old = {e["version"]: e["eventlog.hash"] for e in appends()}
    inventory.log.evolve(GROWN)
    inventory.add_item(Item("bow"))
    entries = appends()
    assert {e["version"]: e["eventlog.hash"] for e in entries if e["version"] in old} == old
    assert [e.get("eventlog.schema_version") for e in entries] == ["2", None, None]  # newest first
    evolve = [e for e in inventory.log.history() if e.get("eventlog.operation") == "evolve"]
    assert [e["eventlog.schema_version"] for e in evolve] == ["2"]


def test_verify_checks_each_commit_against_the_schema_history(orders: EventLog) -> None:
    orders.evolve(ORDERS_V2, upcasters=RENAME_AND_RETYPE)
    assert orders.verify().ok
    # Claim the first commit was made under version 2: its hash would skip colour and price.
    meta = json.loads((orders.path / "eventlog.json").read_text())
    meta["schema_history"][1]["first_seq"] = 1
    (orders.path / "eventlog.json").write_text(json.dumps(meta))
    report = EventLog.open(orders.path).verify()
    assert not report.ok and report.violation is not None and report.violation.check == "hash chain"


def test_compaction_after_evolution_keeps_values_and_chain(orders: EventLog) -> None:
    orders.evolve(ORDERS_V2, upcasters=RENAME_AND_RETYPE)
    orders.append([{"event_type": "ordered", "stream_id": "o3", "color": "green", "price_cents": 5, "qty": 1}])
    before = orders.scan().sort("seq").collect()
    orders.compact()  # old files (without the new columns) and new ones merge into one
    assert orders.files().height == 1
    assert orders.scan().sort("seq").collect().equals(before)
    assert orders.verify().ok


def test_evolving_to_the_same_schema_changes_nothing(inventory: Inventory, path: Path) -> None:
    version, text = inventory.log.version, (path / "eventlog.json").read_text()
    assert inventory.log.evolve(INVENTORY_SCHEMA).schema_version == 1
    assert (inventory.log.version, (path / "eventlog.json").read_text()) == (version, text)


def test_a_log_opened_before_an_evolution_appends_under_the_new_schema(inventory: Inventory, path: Path) -> None:
    older = EventLog.open(path)
    older.head()
    EventLog.open(path).evolve(GROWN)
    older.append([{"event_type": ADDED, "stream_id": "bow", "quantity": 1, "location": "attic", "occurred_at": T}])
    assert older.schema_version == 2
    assert _by_seq(older, "location", "checked")[-1] == (5, "attic", False)
    assert older.verify().ok


def test_an_inventory_opened_before_an_evolution_keeps_its_stock_check(inventory: Inventory, path: Path) -> None:
    EventLog.open(path).evolve(GROWN)
    inventory.remove_item("sword", 2)  # record() re-validates its batch against the evolved schema
    assert inventory.get_count("sword") == 0
    assert _by_seq(inventory.log, "checked")[-1] == (5, None)
    assert inventory.verify().ok


# --- incompatible changes --------------------------------------------------------------------


_ITEM_FIELDS = INVENTORY_SCHEMA.event_type(ADDED).fields
INCOMPATIBLE = {
    "removes an event type": (EventSchema([INVENTORY_SCHEMA.event_type(ADDED)], name="inventory"), []),
    "removes a field": (_replace_fields(INVENTORY_SCHEMA, ADDED, _ITEM_FIELDS[:2]), []),
    "changes a field's type": (EventSchema(
        [EventType(t, (*_ITEM_FIELDS[:2], Field("origin", "int64", required=False))) for t in (ADDED, REMOVED)],
        name="inventory"), []),
    "makes an optional field required": (
        _replace_fields(INVENTORY_SCHEMA, ADDED, (*_ITEM_FIELDS[:2], Field("origin", "string"))), []),
    "adds a required field without a default": (
        _with_fields(INVENTORY_SCHEMA, {ADDED: (Field("location", "string"),)}), []),
    "upcasts from an unknown column": (
        _with_fields(INVENTORY_SCHEMA, {ADDED: (Field("location", "string", required=False),)}),
        [Upcaster(ADDED, "location", "no_such_column")]),
    "upcasts a new event type": (GROWN, [Upcaster(INSPECTED, "inspector", "stream_id")]),
    "upcasts to a field the type lacks": (INVENTORY_SCHEMA, [Upcaster(REMOVED, "location", "origin")]),
    "upcast fails on stored data": (
        _with_fields(INVENTORY_SCHEMA, {ADDED: (Field("code", "int64", required=False),)}),
        [Upcaster(ADDED, "code", "CAST(stream_id AS BIGINT)")]),
    "upcast leaves a required field null": (
        _with_fields(INVENTORY_SCHEMA, {ADDED: (Field("where_from", "string"),)}),
        [Upcaster(ADDED, "where_from", "origin")]),
    "upcast from a wrong version": (INVENTORY_SCHEMA, [Upcaster(ADDED, "origin", "origin", from_version=7)]),
}


@pytest.mark.parametrize("change", list(INCOMPATIBLE))
def test_an_incompatible_change_is_rejected_and_changes_nothing(inventory: Inventory, path: Path, change: str) -> None:
    schema, upcasters = INCOMPATIBLE[change]
    text, version, stock = (path / "eventlog.json").read_bytes(), inventory.log.version, inventory.stock()
    with pytest.raises(SchemaEvolutionError) as raised:
        inventory.log.evolve(schema, upcasters=upcasters)
    assert isinstance(raised.value, ValueError)
    assert (path / "eventlog.json").read_bytes() == text
    assert inventory.log.head() == 4 and inventory.log.version == version
    assert inventory.log.schema_version == 1 and inventory.log.schema == INVENTORY_SCHEMA
    assert _state(inventory).equals(stock)


def test_a_retired_column_is_not_reused_with_another_type(orders: EventLog) -> None:
    orders.evolve(ORDERS_V2, upcasters=RENAME_AND_RETYPE)  # colour is no field any more, but stays stored
    version = orders.version
    reuse = _with_fields(ORDERS_V2, {"cancelled": (Field("colour", "int64", required=False),)})
    with pytest.raises(SchemaEvolutionError, match="stored column 'colour'"):
        orders.evolve(reuse)
    assert (orders.schema_version, orders.version) == (2, version)


def test_a_rejected_rename_says_how_to_declare_it(inventory: Inventory) -> None:
    with pytest.raises(SchemaEvolutionError, match=r"Upcaster\('item_added', '<new name>', 'origin'\)"):
        inventory.log.evolve(INCOMPATIBLE["removes a field"][0])


# --- upcasters -------------------------------------------------------------------------------


def test_a_rename_shows_old_events_under_the_new_name(orders: EventLog) -> None:
    orders.evolve(ORDERS_V2, upcasters=RENAME_AND_RETYPE)
    orders.append([{"event_type": "ordered", "stream_id": "o3", "color": "green", "price_cents": 5, "qty": 1}])
    assert _by_seq(orders, "event_type", "color") == [
        (1, "ordered", "red"), (2, "ordered", "blue; 'x'"), (3, "cancelled", None), (4, "ordered", "green"),
    ]
    assert "colour" not in orders.scan().collect_schema()
    # The stored column stays readable, as stored.
    assert _by_seq(orders, "colour", "color", upcast=False) == [
        (1, "red", None), (2, "blue; 'x'", None), (3, None, None), (4, None, "green"),
    ]


def test_a_retype_computes_the_new_type_from_the_old_column(orders: EventLog) -> None:
    orders.evolve(ORDERS_V2, upcasters=RENAME_AND_RETYPE)
    scanned = orders.scan().sort("seq").select("seq", "price_cents").collect()
    assert scanned.schema["price_cents"] == pl.Int64
    assert scanned.rows() == [(1, 1250), (2, 99), (3, None)]


def test_upcasters_read_the_same_in_sql(orders: EventLog) -> None:
    orders.evolve(ORDERS_V2, upcasters=RENAME_AND_RETYPE)
    orders.append([{"event_type": "ordered", "stream_id": "o3", "color": "green", "price_cents": 5, "qty": 1}])
    columns = ("event_type", "color", "price_cents", "qty", "reason")
    assert _sql_events(orders, *columns) == _by_seq(orders, *columns)


def test_upcasters_chain_across_versions(orders: EventLog) -> None:
    orders.evolve(ORDERS_V2, upcasters=RENAME_AND_RETYPE)
    orders.append([{"event_type": "ordered", "stream_id": "o3", "color": "green", "price_cents": 5, "qty": 1}])
    v3 = _replace_fields(ORDERS_V2, "ordered", (Field("hue", "string"), *ORDERED_V2[1:]))
    orders.evolve(v3, upcasters=[Upcaster("ordered", "hue", "upper(color)")])
    assert orders.schema_version == 3
    assert [u.from_version for u in orders.upcasters] == [2, 2, 3]
    assert _by_seq(orders, "hue") == [(1, "RED"), (2, "BLUE; 'X'"), (3, None), (4, "GREEN")]
    assert _sql_events(orders, "hue") == _by_seq(orders, "hue")
    assert orders.verify().ok


def test_an_upcaster_the_engines_read_differently_is_rejected(orders: EventLog) -> None:
    schema = _with_fields(ORDERS_V1, {"ordered": (Field("half", "int64", required=False),)})
    with pytest.raises(SchemaEvolutionError, match="in Polars but .* in DuckDB at seq 1"):
        orders.evolve(schema, upcasters=[Upcaster("ordered", "half", "(qty + 2) / 2")])  # 1.5: truncated or rounded
    orders.evolve(schema, upcasters=[Upcaster("ordered", "half", "qty * 5", from_version=2)])
    assert _by_seq(orders, "half") == [(1, 5), (2, 10), (3, None)]
    assert _sql_events(orders, "half") == _by_seq(orders, "half")


def test_projections_read_upcast_values(orders: EventLog) -> None:
    from eventlog.core.definitions import Agg, Projection
    from eventlog.projector import Projector

    orders.evolve(ORDERS_V2, upcasters=RENAME_AND_RETYPE)
    projector = Projector(orders)
    projector.register(Projection("revenue", keys={"color": "color"}, event_types=["ordered"],
                                  aggregates={"cents": Agg.sum("price_cents * qty")}))
    projector.update()
    assert projector.read("revenue").rows() == [("blue; 'x'", 198), ("red", 1250)]


# --- invalidation: snapshots and projections -------------------------------------------------


#: A backfill of a field the state and some projections read: events without an origin get one.
BACKFILL = [Upcaster(ADDED, "origin", "COALESCE(origin, 'unknown')")]


def test_an_upcaster_rebuilds_exactly_the_projections_that_read_its_field(inventory: Inventory) -> None:
    versions = {s.name: inventory.projector.tables.manifest(s.name).version for s in inventory.projections_status()}
    inventory.log.evolve(INVENTORY_SCHEMA, upcasters=BACKFILL)
    stale = {s.name for s in inventory.projections_status() if s.stale_definition}
    assert stale == {"item_origins", "daily_flows"}  # the ones reading origin of item_added events
    inventory.update_projections()
    rebuilt = {n for n, v in versions.items() if inventory.projector.tables.manifest(n).full_build
               and inventory.projector.tables.manifest(n).version != v}
    assert rebuilt == stale
    assert not any(s.stale_definition for s in inventory.projections_status())
    assert inventory.projection("item_origins").read().rows() == [
        ("o'brien's axe", ["unknown"]), ("sword", ["castle"]), ("Ünïcødé ✓", ["unknown"]),
    ]
    assert inventory.verify().ok


def test_an_upcaster_of_a_field_no_projection_reads_rebuilds_none(inventory: Inventory) -> None:
    schema = _with_fields(INVENTORY_SCHEMA, {ADDED: (Field("note", "string", required=False),)})
    inventory.log.evolve(schema, upcasters=[Upcaster(ADDED, "note", "stream_id")])
    assert not any(s.stale_definition for s in inventory.projections_status())


def test_snapshots_of_another_state_definition_are_not_used(inventory: Inventory) -> None:
    (old,) = inventory.snapshots.list()
    inventory.log.evolve(INVENTORY_SCHEMA, upcasters=BACKFILL)
    fresh = Inventory.open(inventory.path)
    assert fresh.snapshots.list() == []
    stock = fresh.stock()
    assert dict(stock.select("item", "origin").rows()) == {
        "o'brien's axe": "unknown", "sword": "castle", "Ünïcødé ✓": "unknown",
    }
    assert stock.rows() == _reference_stock(fresh)  # the fold applies the upcaster as scan does
    assert inventory.stock().equals(stock)  # an inventory opened before drops its states too
    con = connect(fresh)
    try:
        assert con.sql("SELECT file, usable FROM snapshots").fetchall() == [(old.file, False)]
        assert con.sql("SELECT * FROM inventory").pl().equals(stock)  # the SQL fold applies it too
    finally:
        con.close()
    new = fresh.snapshot()
    assert new.fingerprint != old.fingerprint and new.file != old.file
    assert [s.file for s in fresh.snapshots.list(all_versions=True)] == [new.file]  # retention drops the old one
    assert fresh.verify().ok and inventory.verify().ok


def test_snapshot_fingerprints_do_not_change_without_upcasters(inventory: Inventory) -> None:
    (old,) = inventory.snapshots.list()
    inventory.log.evolve(GROWN)
    assert Inventory.open(inventory.path).snapshots.list() == [old]
    assert old.fingerprint == f"v{STATE_VERSION}" and old.file.startswith(f"v{STATE_VERSION}-seq")


def test_a_default_made_required_reads_into_the_state(inventory: Inventory) -> None:
    fields = (*_ITEM_FIELDS[:1], Field("rarity", "string", default="common"), _ITEM_FIELDS[2])
    inventory.log.evolve(_replace_fields(INVENTORY_SCHEMA, ADDED, fields))
    rarity = dict(Inventory.open(inventory.path).stock().select("item", "rarity").rows())
    assert rarity == {"o'brien's axe": "common", "sword": "rare", "Ünïcødé ✓": "common"}
    assert inventory.stock().rows() == _reference_stock(inventory)
