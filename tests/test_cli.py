"""The ``eventlog`` command: each command's happy path, and user errors as one line and exit 1.

Every test runs the command in-process with click's CliRunner against a store under
``tmp_path``; what a command wrote is checked through the library's public API.
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from click.testing import CliRunner, Result
from support import make_schema, sample_records

from eventlog import INVENTORY_SCHEMA, EventLog, Inventory
from eventlog.cli import main

GOLDEN_HELP = Path(__file__).parent / "golden" / "cli_help.txt"

#: Inventory events as a user's file has them: awkward names, nulls, timestamps with offsets.
ROWS: list[dict[str, Any]] = [
    {"event_id": "e-1", "event_type": "item_added", "item": "Bow, Long", "quantity": 3,
     "rarity": "rare", "origin": "forest", "occurred_at": "2024-03-01T12:00:00+00:00"},
    {"event_id": "e-2", "event_type": "item_added", "item": 'Cloak of "Whispers"', "quantity": 1,
     "rarity": None, "origin": "castle; keep", "occurred_at": "2024-03-02T09:30:00.250000+02:00"},
    {"event_id": "e-3", "event_type": "item_removed", "item": "Bow, Long", "quantity": 2,
     "rarity": None, "origin": None, "occurred_at": "2024-03-03T00:00:00Z"},
    {"event_id": "e-4", "event_type": "item_added", "item": "Ōkami Charm 🐺", "quantity": 5,
     "rarity": "epic", "origin": None, "occurred_at": "2024-03-04T23:59:59-05:00"},
    {"event_id": "e-5", "event_type": "item_added", "item": "select", "quantity": 1,
     "rarity": "common", "origin": "village", "occurred_at": "2024-03-05T08:00:00+00:00"},
]
ROW_TYPES = {"event_id": pl.String, "event_type": pl.String, "item": pl.String, "quantity": pl.Int64,
             "rarity": pl.String, "origin": pl.String, "occurred_at": pl.String}

needs_datagen = pytest.mark.skipif(
    importlib.util.find_spec("eventlog.datagen") is None, reason="eventlog.datagen is not written yet"
)


# --- helpers ------------------------------------------------------------------------------


@pytest.fixture
def store(tmp_path: Path) -> Path:
    return tmp_path / "store ✓ 'quoted'"


@pytest.fixture
def inventory(store: Path) -> Inventory:
    """An inventory with the ROWS in it (seq 1..5)."""
    inv = Inventory.open(store)
    inv.record(ROWS)
    return inv


def run(store: Path, *args: str, env: dict[str, str | None] | None = None) -> Result:
    """Run ``eventlog --store STORE ARGS``; bugs (unexpected exceptions) propagate to pytest."""
    return CliRunner(env=env).invoke(main, ["--store", str(store), *args], catch_exceptions=False)


def ok(store: Path, *args: str) -> str:
    result = run(store, *args)
    assert result.exit_code == 0, result.output
    assert result.stderr == ""
    return result.stdout


def assert_one_line_error(result: Result, *fragments: str) -> None:
    assert result.exit_code == 1, result.output
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    for fragment in fragments:
        assert fragment in lines[0]


def position(store: Path) -> tuple[int, int]:
    """(head seq, Delta version) as a fresh reader sees them."""
    log = EventLog.open(store)
    return log.head(), log.version


def stored(store: Path) -> pl.DataFrame:
    """The log as stored, without recorded_at (the one column a re-run cannot reproduce)."""
    return EventLog.open(store).scan().collect().sort("seq").drop("recorded_at")


def rows_frame() -> pl.DataFrame:
    return pl.DataFrame(ROWS, schema=ROW_TYPES)


# --- the group ----------------------------------------------------------------------------


def test_main_help_matches_the_golden_file() -> None:
    # After an intended change to the commands or their help, regenerate with:
    #   .venv/bin/python -c "from click.testing import CliRunner; from eventlog.cli import main; \
    #   print(CliRunner().invoke(main, ['--help'], terminal_width=80).stdout, end='')" > tests/golden/cli_help.txt
    result = CliRunner().invoke(main, ["--help"], terminal_width=80)
    assert result.exit_code == 0
    assert result.stdout == GOLDEN_HELP.read_text(encoding="utf-8")


def test_store_defaults_to_data_store_in_the_current_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = CliRunner(env={"EVENTLOG_STORE": None}).invoke(main, ["add", "sword"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert EventLog.exists(tmp_path / "data" / "store")


def test_store_can_be_chosen_with_the_environment_variable(store: Path) -> None:
    result = CliRunner(env={"EVENTLOG_STORE": str(store)}).invoke(main, ["add", "sword"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert Inventory.open(store).get_items() == [("sword", 1)]


def test_an_unexpected_exception_is_not_turned_into_an_error_line(
    store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("a bug")

    Inventory.open(store)
    monkeypatch.setattr(Inventory, "stock", broken)
    with pytest.raises(RuntimeError, match="a bug"):
        run(store, "stock")


# --- init ---------------------------------------------------------------------------------


def test_init_creates_an_inventory_store_by_default(store: Path) -> None:
    out = ok(store, "init")
    assert "inventory" in out
    assert EventLog.open(store).schema.fingerprint() == INVENTORY_SCHEMA.fingerprint()


def test_init_with_a_schema_file_creates_a_store_with_that_schema(store: Path, tmp_path: Path) -> None:
    schema_file = tmp_path / "schema.json"
    schema_file.write_text(json.dumps(make_schema().to_json()), encoding="utf-8")
    ok(store, "init", "--schema", str(schema_file))
    assert EventLog.open(store).schema.fingerprint() == make_schema().fingerprint()


def test_init_on_an_existing_store_is_one_error_line(store: Path) -> None:
    ok(store, "init")
    assert_one_line_error(run(store, "init"), "already holds an event store")


def test_init_with_an_invalid_schema_file_is_one_error_line_and_creates_nothing(store: Path, tmp_path: Path) -> None:
    schema_file = tmp_path / "schema.json"
    schema_file.write_text(json.dumps({"event_types": [{"name": "ping", "fields": [{"name": "n", "type": "int"}]}]}))
    assert_one_line_error(run(store, "init", "--schema", str(schema_file)), "schema.json", "unknown type 'int'")
    assert not EventLog.exists(store)


# --- inventory commands -------------------------------------------------------------------


def test_add_remove_stock_and_count_round_trip(store: Path) -> None:
    ok(store, "add", "sword", "--quantity", "3", "--rarity", "rare", "--origin", "castle")
    ok(store, "add", "o'brien ✓")
    ok(store, "remove", "sword", "--quantity", "2")
    assert ok(store, "count", "sword") == "1\n"
    assert ok(store, "count", "never added") == "0\n"
    stock = json.loads(ok(store, "stock", "--format", "json"))
    assert [(r["item"], r["quantity"], r["rarity"], r["origin"]) for r in stock] == [
        ("o'brien ✓", 1, None, None),
        ("sword", 1, "rare", "castle"),
    ]
    assert Inventory.open(store).get_items() == [("o'brien ✓", 1), ("sword", 1)]


def test_removing_more_than_in_stock_is_one_error_line_naming_the_item_and_writes_nothing(store: Path) -> None:
    ok(store, "add", "Bow, Long", "--quantity", "2")
    before = position(store)
    assert_one_line_error(run(store, "remove", "Bow, Long", "--quantity", "3"), "'Bow, Long'", "only 2 in stock")
    assert position(store) == before


def test_stock_table_lists_every_item(inventory: Inventory, store: Path) -> None:
    out = ok(store, "stock")
    for item, _ in inventory.get_items():
        assert item in out


def test_stock_csv_output_reads_back_as_the_stock(inventory: Inventory, store: Path) -> None:
    out = ok(store, "stock", "--format", "csv")
    back = pl.read_csv(out.encode(), schema_overrides={"item": pl.String})
    assert back.select("item", "quantity").rows() == inventory.get_items()


def test_stock_as_of_a_seq_shows_the_stock_after_that_event(inventory: Inventory, store: Path) -> None:
    stock = json.loads(ok(store, "stock", "--as-of", "2", "--format", "json"))
    assert [(r["item"], r["quantity"]) for r in stock] == [("Bow, Long", 3), ('Cloak of "Whispers"', 1)]


def test_stock_as_of_a_date_counts_events_that_occurred_by_the_end_of_that_utc_day(
    inventory: Inventory, store: Path
) -> None:
    # e-4 occurred 2024-03-04T23:59:59-05:00, i.e. on March 5th UTC.
    stock = json.loads(ok(store, "stock", "--as-of", "2024-03-04", "--format", "json"))
    assert [(r["item"], r["quantity"]) for r in stock] == [("Bow, Long", 1), ('Cloak of "Whispers"', 1)]


def test_stock_as_of_a_timestamp_with_offset(inventory: Inventory, store: Path) -> None:
    stock = json.loads(ok(store, "stock", "--as-of", "2024-03-02T09:00:00+01:00", "--format", "json"))
    assert [(r["item"], r["quantity"]) for r in stock] == [("Bow, Long", 3), ('Cloak of "Whispers"', 1)]


def test_stock_known_at_a_seq_ignores_later_recorded_events(inventory: Inventory, store: Path) -> None:
    stock = json.loads(ok(store, "stock", "--as-of", "2024-12-31", "--known-at", "1", "--format", "json"))
    assert [(r["item"], r["quantity"]) for r in stock] == [("Bow, Long", 3)]


def test_as_of_a_timestamp_without_time_zone_is_one_error_line(inventory: Inventory, store: Path) -> None:
    assert_one_line_error(run(store, "stock", "--as-of", "2024-03-01T12:00:00"), "as_of", "no time zone")


def test_count_as_of_a_seq_and_a_date(inventory: Inventory, store: Path) -> None:
    assert ok(store, "count", "Bow, Long", "--as-of", "1") == "3\n"
    assert ok(store, "count", "Bow, Long", "--as-of", "2024-03-02") == "3\n"
    assert ok(store, "count", "Bow, Long", "--as-of", "2024-03-03") == "1\n"


def test_history_json_lists_the_items_events_with_the_running_stock(inventory: Inventory, store: Path) -> None:
    events = json.loads(ok(store, "history", "Bow, Long", "--format", "json"))
    assert [(e["seq"], e["event_type"], e["change"], e["stock"]) for e in events] == [
        (1, "item_added", 3, 3),
        (3, "item_removed", -2, 1),
    ]


def test_snapshot_takes_one_at_head_and_list_shows_it(inventory: Inventory, store: Path) -> None:
    assert "snapshot at seq 5" in ok(store, "snapshot")
    (info,) = Inventory.open(store).snapshots.list()
    assert info.seq == 5
    assert info.file in ok(store, "snapshot", "--list")


def test_snapshot_prune_reports_what_it_removed(inventory: Inventory, store: Path) -> None:
    ok(store, "snapshot")
    assert ok(store, "snapshot", "--prune").startswith("removed 0 snapshots")


def test_snapshot_list_and_prune_together_is_a_usage_error(store: Path) -> None:
    result = run(store, "snapshot", "--list", "--prune")
    assert result.exit_code == 2
    assert "cannot be combined" in result.stderr


def test_inventory_commands_on_a_store_of_another_schema_are_one_error_line(store: Path) -> None:
    EventLog.create(store, make_schema())
    assert_one_line_error(run(store, "add", "sword"), "the inventory needs")


# --- log commands -------------------------------------------------------------------------


def test_log_commands_on_a_missing_store_say_how_to_create_one(store: Path) -> None:
    assert_one_line_error(run(store, "tail"), "no event store", "eventlog init")


READING_COMMANDS = [
    ["stock"], ["count", "sword"], ["history", "sword"], ["tail"], ["info"], ["verify"], ["compact"],
    ["vacuum", "--dry-run"], ["remove", "sword"], ["snapshot"], ["snapshot", "--list"],
    ["project", "list"], ["project", "status"], ["project", "update"], ["project", "show", "stockouts"],
    ["sql", "SELECT 1"], ["export-duckdb", "out.duckdb"],
]


@pytest.mark.parametrize("args", READING_COMMANDS, ids=" ".join)
def test_a_mistyped_store_is_one_error_line_and_creates_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    typo = tmp_path / "data" / "stroe"
    assert_one_line_error(run(typo, *args), "no event store at", "--store", "eventlog init")
    assert not typo.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == []


@pytest.mark.parametrize("args", [["init"], ["add", "sword"], ["generate", "50", "--items", "5", "--days", "3"]],
                         ids=" ".join)
def test_only_init_add_import_and_generate_create_a_store(store: Path, args: list[str]) -> None:
    ok(store, *args)
    assert EventLog.exists(store)


def test_import_creates_an_inventory_store_but_a_mistyped_file_creates_nothing(store: Path, tmp_path: Path) -> None:
    assert_one_line_error(run(store, "import", str(tmp_path / "evnets.csv")), "evnets.csv", "no such file")
    assert not store.exists()
    path = tmp_path / "events.csv"
    path.write_text("event_type,item,quantity\nitem_added,sword,2\n", encoding="utf-8")
    ok(store, "import", str(path))
    assert Inventory.open(store).get_items() == [("sword", 2)]


def test_the_help_names_the_import_formats_the_readers_know() -> None:
    from eventlog.cli import IMPORT_FORMATS
    from eventlog.importers import FORMATS

    assert set(IMPORT_FORMATS) == set(FORMATS)


def test_help_answers_without_importing_the_heavy_libraries() -> None:
    """``eventlog --help`` imports neither polars, pyarrow, DuckDB nor deltalake (it answers in well under 0.5 s)."""
    code = (
        "import sys\nfrom click.testing import CliRunner\nfrom eventlog.cli import main\n"
        "assert CliRunner().invoke(main, ['--help']).exit_code == 0\n"
        "assert CliRunner().invoke(main, ['stock', '--help']).exit_code == 0\n"
        "print(sorted(m for m in ('polars', 'pyarrow', 'duckdb', 'deltalake', 'numpy') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_tail_shows_the_last_n_events_in_seq_order(inventory: Inventory, store: Path) -> None:
    events = json.loads(ok(store, "tail", "-n", "2", "--format", "json"))
    assert [(e["seq"], e["event_id"], e["stream_id"]) for e in events] == [
        (4, "e-4", "Ōkami Charm 🐺"),
        (5, "e-5", "select"),
    ]


def test_tail_csv_output_has_every_column(inventory: Inventory, store: Path) -> None:
    out = ok(store, "tail", "--format", "csv")
    back = pl.read_csv(out.encode(), infer_schema=False)
    assert back.columns == list(INVENTORY_SCHEMA.columns())
    assert back["event_id"].to_list() == ["e-1", "e-2", "e-3", "e-4", "e-5"]


def test_tail_table_shows_every_requested_row_and_whole_ids(store: Path) -> None:
    Inventory.open(store).record([{"event_type": "item_added", "item": f"item {i}"} for i in range(40)])
    out = ok(store, "tail", "-n", "40")
    ids = EventLog.open(store).scan().select("event_id").collect()["event_id"].to_list()
    assert all(event_id in out for event_id in ids)
    assert "…" not in out


def test_info_json_reports_head_version_files_streams_and_counts(inventory: Inventory, store: Path) -> None:
    facts = json.loads(ok(store, "info", "--format", "json"))
    log = EventLog.open(store)
    files = log.files()
    assert facts["head_seq"] == 5
    assert facts["delta_version"] == log.version
    assert facts["data_files"] == files.height
    assert facts["total_bytes"] == files["size_bytes"].sum()
    assert facts["streams"] == 4
    assert facts["events_by_type"] == {"item_added": 4, "item_removed": 1}
    assert facts["snapshots"] == 0


def test_info_table_names_each_fact(inventory: Inventory, store: Path) -> None:
    out = ok(store, "info")
    for name in ("head_seq", "delta_version", "data_files", "total_bytes", "streams", "snapshots", "item_removed"):
        assert name in out


def test_compact_merges_files_and_keeps_the_log(store: Path) -> None:
    for item in ("a", "b", "c"):
        ok(store, "add", item)
    before = stored(store)
    assert ok(store, "compact") == "compacted 3 files into 1\n"
    assert EventLog.open(store).files().height == 1
    assert stored(store).equals(before)


def test_vacuum_dry_run_lists_files_and_deletes_none(store: Path) -> None:
    ok(store, "add", "a")
    ok(store, "add", "b")
    ok(store, "compact")
    out = ok(store, "vacuum", "--retention-hours", "0", "--dry-run")
    assert out.startswith("would delete 2 files")
    assert len(list((store / "events").rglob("*.parquet"))) == 3


def test_vacuum_deletes_files_compaction_replaced(store: Path) -> None:
    ok(store, "add", "a")
    ok(store, "add", "b")
    ok(store, "compact")
    assert ok(store, "vacuum", "--retention-hours", "0").startswith("deleted 2 files")
    assert len(list((store / "events").rglob("*.parquet"))) == 1
    assert Inventory.open(store).get_items() == [("a", 1), ("b", 1)]


# --- import -------------------------------------------------------------------------------


def write_input(path: Path) -> Path:
    """ROWS as a CSV, Parquet or NDJSON file, by the extension of ``path``."""
    frame = rows_frame()
    if path.suffix == ".csv":
        frame.write_csv(path)
    elif path.suffix == ".ndjson":
        frame.write_ndjson(path)
    else:
        aware = [dt.datetime.fromisoformat(r["occurred_at"].replace("Z", "+00:00")) for r in ROWS]
        frame.with_columns(occurred_at=pl.Series(aware, dtype=pl.Datetime("us", "UTC"))).write_parquet(path)
    return path


@pytest.mark.parametrize("suffix", [".csv", ".parquet", ".ndjson"])
def test_import_stores_the_same_events_as_recording_them_through_the_api(
    suffix: str, tmp_path: Path, store: Path
) -> None:
    reference = tmp_path / "reference"
    Inventory.open(reference).record(ROWS)
    ok(store, "init")
    # Brackets and a star: polars would read the name as a glob pattern if given the chance.
    name = f"events [1] *{suffix}"
    out = ok(store, "import", str(write_input(tmp_path / name)))
    assert out == f"imported 5 events from {name} (seq 1..5)\n"
    assert stored(store).equals(stored(reference))


def test_import_format_option_overrides_the_extension(tmp_path: Path, store: Path) -> None:
    source = write_input(tmp_path / "events.csv").rename(tmp_path / "events.txt")
    ok(store, "init")
    ok(store, "import", str(source), "--format", "csv")
    assert position(store)[0] == 5


def test_import_into_a_store_with_its_own_schema_goes_through_the_log(tmp_path: Path, store: Path) -> None:
    reference = EventLog.create(tmp_path / "reference", make_schema())
    reference.append(sample_records())
    schema_file = tmp_path / "schema.json"
    schema_file.write_text(json.dumps(make_schema().to_json()), encoding="utf-8")
    ok(store, "init", "--schema", str(schema_file))
    # Timestamps as ISO text with an offset; dates, booleans and floats as CSV spells them.
    text = [{k: v.isoformat() if isinstance(v, dt.datetime) else v for k, v in rec.items()} for rec in sample_records()]
    source = tmp_path / "events.csv"
    pl.DataFrame(text, infer_schema_length=None).write_csv(source)
    ok(store, "import", str(source))
    assert stored(store).equals(stored(reference.path))


def test_import_with_batch_size_commits_each_batch(tmp_path: Path, store: Path) -> None:
    ok(store, "init")
    out = ok(store, "import", str(write_input(tmp_path / "events.csv")), "--batch-size", "2")
    assert out == "imported 5 events from events.csv in 3 batches (seq 1..5)\n"
    assert position(store) == (5, 3)


def test_a_rejected_later_batch_says_which_events_stay_committed(tmp_path: Path, store: Path) -> None:
    source = tmp_path / "events.csv"
    source.write_text("event_type,item,quantity\nitem_added,a,1\nitem_added,b,1\nitem_removed,a,5\n")
    ok(store, "init")
    assert_one_line_error(
        run(store, "import", str(source), "--batch-size", "2"), "events.csv", "cannot remove 5 of 'a'", "seq 1..2"
    )
    assert position(store)[0] == 2


def test_import_of_more_removals_than_stock_writes_nothing(tmp_path: Path, store: Path) -> None:
    source = tmp_path / "events.csv"
    source.write_text("event_type,item,quantity\nitem_added,a,1\nitem_removed,a,5\n")
    ok(store, "init")
    assert_one_line_error(run(store, "import", str(source)), "events.csv", "row 1", "nothing was imported")
    assert position(store) == (0, 0)


def write_naive_csv(path: Path) -> None:
    path.write_text("event_type,item,quantity,occurred_at\nitem_added,a,1,2024-03-01T12:00:00\n")


def write_truncated_parquet(path: Path) -> None:
    write_input(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def write_csv_named_parquet(path: Path) -> None:
    rows_frame().write_csv(path)


def write_invalid_utf8_csv(path: Path) -> None:
    path.write_bytes(b"event_type,item,quantity\nitem_added,sw\xff\xfeord,1\n")


@pytest.mark.parametrize(
    ("name", "write", "says"),
    [
        ("naive.csv", write_naive_csv, "no time zone"),
        ("truncated.parquet", write_truncated_parquet, "cannot read as Parquet"),
        ("not_really.parquet", write_csv_named_parquet, "cannot read as Parquet"),
        ("latin1.csv", write_invalid_utf8_csv, "utf-8"),
    ],
    ids=["naive-timestamp", "truncated-parquet", "csv-named-parquet", "invalid-utf8"],
)
def test_import_of_a_bad_file_is_one_error_line_and_writes_nothing(
    name: str, write: Any, says: str, inventory: Inventory, tmp_path: Path, store: Path
) -> None:
    source = tmp_path / name
    write(source)
    before = position(store)
    assert_one_line_error(run(store, "import", str(source)), name, says)
    assert position(store) == before


def test_import_of_a_missing_file_is_one_error_line(inventory: Inventory, tmp_path: Path, store: Path) -> None:
    assert_one_line_error(run(store, "import", str(tmp_path / "missing.csv")), "missing.csv", "no such file")


def test_import_of_an_unknown_extension_asks_for_format(tmp_path: Path, store: Path) -> None:
    source = tmp_path / "events.txt"
    source.write_text("event_type,item\n")
    ok(store, "init")
    assert_one_line_error(run(store, "import", str(source)), "events.txt", "--format")


# --- generate -----------------------------------------------------------------------------


@needs_datagen
def test_generate_records_n_events_into_the_store(store: Path) -> None:
    out = ok(store, "generate", "300", "--items", "20", "--days", "10", "--batch-size", "100")
    assert out == f"recorded 300 events in {store} (seq 1..300)\n"
    assert position(store) == (300, 3)


@needs_datagen
@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_generate_output_writes_a_file_that_imports_into_the_same_stock(
    suffix: str, tmp_path: Path, store: Path
) -> None:
    direct = tmp_path / "direct"
    ok(direct, "generate", "200", "--items", "20", "--seed", "7")
    output = tmp_path / f"events{suffix}"
    assert ok(store, "generate", "200", "--items", "20", "--seed", "7", "--output", str(output)) == (
        f"wrote 200 events to {output}\n"
    )
    assert not EventLog.exists(store)
    ok(store, "init")
    ok(store, "import", str(output))
    assert Inventory.open(store).stock().equals(Inventory.open(direct).stock())


# --- projections and SQL --------------------------------------------------------------------


def test_project_update_then_show_gives_the_projection_table(inventory: Inventory, store: Path) -> None:
    ok(store, "project", "update")
    shown = pl.read_json(ok(store, "project", "show", "most_collected_items", "--format", "json").encode())
    expected = Inventory.open(store).projection("most_collected_items").read()
    assert shown.rows() == expected.rows()


def test_project_show_top_ranks_by_the_projection_rank_column(inventory: Inventory, store: Path) -> None:
    shown = pl.read_json(ok(store, "project", "show", "most_collected_items", "--top", "1", "--format", "json").encode())
    assert shown["item"].to_list() == ["Ōkami Charm 🐺"]


def test_project_status_reports_lag_after_an_append(inventory: Inventory, store: Path) -> None:
    ok(store, "project", "update")
    ok(store, "add", "lantern")
    status = {row["name"]: row for row in json.loads(ok(store, "project", "status", "--format", "json"))}
    assert status["most_collected_items"]["lag"] == 1
    assert status["stockouts"]["mode"] == "rebuild"


def test_project_rebuild_of_an_unknown_name_is_one_line(inventory: Inventory, store: Path) -> None:
    assert_one_line_error(run(store, "project", "rebuild", "nope"), "no projection named 'nope'")


def test_sql_query_matches_the_python_api(inventory: Inventory, store: Path) -> None:
    out = pl.read_csv(ok(store, "sql", "SELECT item, quantity FROM inventory ORDER BY item", "--format", "csv").encode())
    assert out.rows() == Inventory.open(store).stock().select("item", "quantity").rows()


def test_sql_reads_the_query_from_a_file_and_writes_parquet(inventory: Inventory, store: Path, tmp_path: Path) -> None:
    query = tmp_path / "q.sql"
    query.write_text("SELECT count(*) AS n FROM events")
    target = tmp_path / "out.parquet"
    ok(store, "sql", "-f", str(query), "--format", "parquet", "--output", str(target))
    assert pl.read_parquet(target)["n"].to_list() == [len(ROWS)]


def test_sql_reads_the_query_from_standard_input(inventory: Inventory, store: Path) -> None:
    result = CliRunner().invoke(main, ["--store", str(store), "sql", "--format", "json"],
                                input="SELECT max(seq) AS head FROM events", catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == [{"head": len(ROWS)}]


def test_sql_that_writes_is_refused_and_changes_nothing(inventory: Inventory, store: Path) -> None:
    before = position(store)
    assert_one_line_error(run(store, "sql", "DELETE FROM events"), "SELECT")
    assert position(store) == before


def test_export_duckdb_writes_a_database_with_the_views(inventory: Inventory, store: Path, tmp_path: Path) -> None:
    import duckdb

    target = tmp_path / "copy.duckdb"
    ok(store, "export-duckdb", str(target))
    con = duckdb.connect(str(target), read_only=True)
    try:
        assert con.sql("SELECT count(*) FROM events").fetchall() == [(len(ROWS),)]
    finally:
        con.close()


def test_verify_passes_on_a_clean_store(inventory: Inventory, store: Path) -> None:
    assert ok(store, "verify").startswith("verify OK")


def test_verify_fails_with_one_line_when_a_data_file_is_gone(inventory: Inventory, store: Path) -> None:
    first = inventory.log.files()["path"][0]
    (store / "events" / first).unlink()
    result = run(store, "verify")
    assert result.exit_code == 1
    assert "FAILED" in result.stdout
    assert result.stderr.startswith("error: files: a data file listed by the Delta log is missing")


@pytest.mark.parametrize("spelling", [["--store", "{store}"], ["--store={store}"]], ids=["two words", "one word"])
def test_store_may_follow_the_command(inventory: Inventory, store: Path, spelling: list[str]) -> None:
    args = [part.format(store=store) for part in spelling]
    result = CliRunner().invoke(main, ["count", "Bow, Long", *args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "1"  # from the store given, not the default one


def test_an_item_named_like_the_option_is_still_an_item_after_double_dash(store: Path) -> None:
    result = CliRunner().invoke(main, ["--store", str(store), "add", "--", "--store"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert ok(store, "count", "--", "--store").strip() == "1"
