"""``eventlog.importers``: importing a file from Python is what ``eventlog import`` does.

The readers' handling of every kind of bad value is specified through the command in
``test_bad_input_import.py``; here: the Python entry points, what their errors carry,
and that the CLI and the library agree on what a store is.
"""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner
from support import ADDED, REMOVED, make_schema

from eventlog import INVENTORY_SCHEMA, EventLog, EventSchema, EventType, Inventory
from eventlog.cli import main
from eventlog.errors import ImportRejectedError, InputFileError, InsufficientStockError, ValidationError
from eventlog.importers import import_file, read_file, read_schema
from eventlog.sql import query

ITEMS_CSV = "event_type,item,quantity\nitem_added,sword,3\nitem_added,o'brien; ✓,1\nitem_removed,sword,2\n"


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def stored(path: Path) -> pl.DataFrame:
    return EventLog.open(path).scan().select("seq", "event_type", "stream_id", "quantity").collect()


def test_import_file_into_an_inventory_records_its_items(tmp_path: Path) -> None:
    inventory = Inventory.open(tmp_path / "store")
    result = import_file(inventory, write(tmp_path / "events.csv", ITEMS_CSV))
    assert (result.count, len(result.batches), result.first_seq, result.last_seq) == (3, 1, 1, 3)
    assert inventory.get_items() == [("o'brien; ✓", 1), ("sword", 1)]


def test_import_file_stores_what_the_command_stores(tmp_path: Path) -> None:
    source = write(tmp_path / "events.csv", ITEMS_CSV)
    import_file(Inventory.open(tmp_path / "python"), source, batch_size=2)
    command = CliRunner().invoke(main, ["--store", str(tmp_path / "cli"), "init"])
    assert command.exit_code == 0
    command = CliRunner().invoke(main, ["--store", str(tmp_path / "cli"), "import", str(source), "--batch-size", "2"])
    assert command.exit_code == 0, command.output
    assert stored(tmp_path / "python").equals(stored(tmp_path / "cli"))


def test_import_file_into_an_event_log_appends_stream_events(tmp_path: Path) -> None:
    log = EventLog.create(tmp_path / "store", make_schema())
    source = write(tmp_path / "events.ndjson", json.dumps(
        {"event_type": ADDED, "stream_id": "cart 1", "sku": "x", "quantity": 2, "delivery_on": "2024-03-05"}) + "\n")
    assert import_file(log, source, format="ndjson").count == 1
    assert stored(log.path).rows() == [(1, ADDED, "cart 1", 2)]


def test_a_refused_later_batch_names_the_file_row_field_and_what_stayed_committed(tmp_path: Path) -> None:
    inventory = Inventory.open(tmp_path / "store")
    source = write(tmp_path / "events.csv", "event_type,item,quantity\nitem_added,a,1\nitem_added,b,1\nitem_added,c,0\n")
    with pytest.raises(ImportRejectedError) as caught:
        import_file(inventory, source, batch_size=2)
    error = caught.value
    assert (error.file, error.row, error.field, error.batch_row) == ("events.csv", 2, "quantity", 2)
    assert (error.committed, error.last_seq) == (2, 2)
    assert isinstance(error.cause, ValidationError)
    assert "events.csv, batch from data row 2: row 0" in str(error)
    assert "2 events before it stay committed (seq 1..2)" in str(error)
    assert inventory.log.head() == 2


def test_a_refused_single_batch_writes_nothing_and_keeps_the_reason(tmp_path: Path) -> None:
    inventory = Inventory.open(tmp_path / "store")
    source = write(tmp_path / "events.csv", "event_type,item,quantity\nitem_added,a,1\nitem_removed,a,5\n")
    with pytest.raises(ImportRejectedError, match="nothing was imported") as caught:
        import_file(inventory, source)
    assert isinstance(caught.value.cause, InsufficientStockError)
    assert (caught.value.row, caught.value.batch_row, caught.value.committed) == (1, None, 0)
    assert inventory.log.head() == 0


def test_read_file_keeps_timestamps_as_text_and_writes_nothing(tmp_path: Path) -> None:
    source = write(tmp_path / "events.csv", "event_type,item,occurred_at\nitem_added,a,2024-03-01T12:00:00+05:30\n")
    rows = read_file(source, schema=INVENTORY_SCHEMA, inventory=True)
    assert isinstance(rows, pl.DataFrame)
    assert rows.get_column("occurred_at").to_list() == ["2024-03-01T12:00:00+05:30"]


def test_read_file_of_a_value_of_the_wrong_type_names_file_row_and_field(tmp_path: Path) -> None:
    source = write(tmp_path / "events.csv", "event_type,item,quantity\nitem_added,a,1\nitem_added,b,lots\n")
    with pytest.raises(ImportRejectedError) as caught:
        read_file(source, schema=INVENTORY_SCHEMA, inventory=True)
    assert (caught.value.file, caught.value.row, caught.value.field) == ("events.csv", 1, "quantity")
    assert isinstance(caught.value, InputFileError) and isinstance(caught.value, ValueError)


def test_an_unknown_format_or_extension_is_an_input_file_error(tmp_path: Path) -> None:
    source = write(tmp_path / "events.txt", ITEMS_CSV)
    with pytest.raises(InputFileError, match="format="):
        read_file(source, schema=INVENTORY_SCHEMA)
    with pytest.raises(InputFileError, match="unknown format 'xlsx'"):
        read_file(source, schema=INVENTORY_SCHEMA, format="xlsx")  # type: ignore[arg-type]


def test_a_batch_size_below_one_is_refused_before_reading(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="batch_size"):
        import_file(Inventory.open(tmp_path / "store"), tmp_path / "missing.csv", batch_size=0)


def test_read_schema_round_trips_and_names_a_bad_file(tmp_path: Path) -> None:
    good = write(tmp_path / "schema.json", json.dumps(make_schema().to_json()))
    assert read_schema(good).to_json() == make_schema().to_json()
    with pytest.raises(InputFileError, match="cannot read the schema as JSON"):
        read_schema(write(tmp_path / "broken.json", "{"))


# --- one answer to "is this an inventory store" -------------------------------------------------

STORE_KINDS = {
    "inventory": INVENTORY_SCHEMA,
    "another schema": make_schema(),
    # The two the CLI (by schema name) and the SQL views (by event types and fields) used to disagree on:
    "inventory types under another name": EventSchema(INVENTORY_SCHEMA.event_types, name="game stock"),
    "named inventory without its types": EventSchema((EventType(REMOVED, ()),), name="inventory"),
}


@pytest.mark.parametrize("kind", list(STORE_KINDS))
def test_the_cli_and_the_sql_views_agree_whether_a_store_is_an_inventory(kind: str, tmp_path: Path) -> None:
    log = EventLog.create(tmp_path / "store", STORE_KINDS[kind])
    sql_says = query(log, "SELECT count(*) FROM duckdb_views() WHERE NOT internal AND view_name = 'inventory'").item()
    info = CliRunner().invoke(main, ["--store", str(log.path), "info", "--format", "json"])
    assert info.exit_code == 0, info.output
    cli_says = json.loads(info.stdout)["snapshots"] is not None
    assert cli_says == bool(sql_says) == (kind in ("inventory", "inventory types under another name"))


def test_import_into_an_inventory_under_another_name_records_items(tmp_path: Path) -> None:
    log = EventLog.create(tmp_path / "store", STORE_KINDS["inventory types under another name"])
    source = write(tmp_path / "events.csv", ITEMS_CSV)
    result = CliRunner().invoke(main, ["--store", str(log.path), "import", str(source)])
    assert result.exit_code == 0, result.output
    assert Inventory(EventLog.open(log.path)).get_items() == [("o'brien; ✓", 1), ("sword", 1)]
