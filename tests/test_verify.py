"""verify: a clean store passes; tampering with data files or the Delta log is found and located."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import shutil
import struct
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from inventory_helpers import commit_with_a_broken_envelope

import eventlog.inventory.checks as inventory_checks
import eventlog.verify.events as eventlog_verify_events
from eventlog import Inventory
from eventlog.core.chain import GENESIS, _encode, commit_hash, events_hash
from eventlog.errors import IntegrityError, ValidationError

UTC = dt.timezone.utc


@pytest.fixture
def inventory(tmp_path: Path) -> Inventory:
    """Three commits over three business days, so data files sit in different partitions."""
    inv = Inventory.open(tmp_path / "store")
    for day in (1, 2, 3):
        when = dt.datetime(2024, 1, day, 12, tzinfo=UTC)
        inv.record([
            {"event_type": "item_added", "item": f"item {day}", "quantity": 5, "origin": "castle", "occurred_at": when},
            {"event_type": "item_added", "item": "sword", "quantity": day, "occurred_at": when},
            {"event_type": "item_removed", "item": "sword", "quantity": 1, "occurred_at": when},
        ])
    return inv


def data_files(inv: Inventory) -> list[Path]:
    root = inv.log.path / "events"
    return [root / p for p in inv.log.files().sort("min_seq")["path"].to_list()]


def test_a_clean_store_verifies(inventory: Inventory) -> None:
    report = inventory.verify()
    assert report.ok, str(report)
    assert report.commits == 3
    assert "hash chain" in report.checks and "stock never negative" in report.checks


def test_compaction_does_not_change_the_chain(inventory: Inventory) -> None:
    for _ in range(3):
        inventory.add_item("sword", occurred_at=dt.datetime(2024, 1, 3, 13, tzinfo=UTC))
    before = inventory.log.files().height
    inventory.log.compact()
    assert inventory.log.files().height < before
    assert inventory.verify().ok


def test_every_commit_records_the_hash_of_the_one_before(inventory: Inventory) -> None:
    appends = [e for e in reversed(inventory.log.history()) if e.get("eventlog.operation") == "append"]
    previous = GENESIS
    for entry in appends:
        assert entry["eventlog.prev_hash"] == previous
        previous = entry["eventlog.hash"]


def test_the_event_hash_follows_the_documented_encoding() -> None:
    # Recomputes the canonical encoding by hand (see eventlog/_chain.py): a change to the
    # implementation that would break every existing chain fails here.
    frame = pl.DataFrame({
        "n": pl.Series([1, None], dtype=pl.Int64),
        "s": pl.Series(["x|é", None], dtype=pl.String),
        "t": pl.Series([dt.datetime(2024, 1, 1, tzinfo=UTC), None], dtype=pl.Datetime("us", "UTC")),
        "d": pl.Series([dt.date(1970, 1, 3), None], dtype=pl.Date),
        "b": pl.Series([True, None], dtype=pl.Boolean),
        "f": pl.Series([1.5, None], dtype=pl.Float64),
    })

    def int64s(*values: int) -> bytes:
        return b"".join(struct.pack(">q", v) for v in values)

    float_bits = struct.unpack(">q", struct.pack(">d", 1.5))[0]
    expected = hashlib.sha256()
    for name, payload in [
        ("n", int64s(1, 0)),
        ("s", int64s(len("x|é".encode()), 0) + "x|é".encode()),
        ("t", int64s(1_704_067_200_000_000, 0)),
        ("d", int64s(2, 0)),
        ("b", int64s(1, 0)),
        ("f", int64s(float_bits, 0)),
    ]:
        expected.update(f"col:{name}\n".encode() + bytes([1, 0]) + payload)
    assert events_hash(frame, dict(frame.schema)) == expected.hexdigest()
    commit = hashlib.sha256(f"v1|{GENESIS}|1|2|{expected.hexdigest()}".encode()).hexdigest()
    assert commit_hash(None, 1, 2, expected.hexdigest()) == commit


def rewrite_with_one_value_changed(target: Path) -> None:
    table = pq.read_table(target)
    quantities = table.column("quantity").to_pylist()
    quantities[0] += 1
    pq.write_table(table.set_column(table.schema.get_field_index("quantity"), "quantity", [quantities]), target)


def test_changing_one_value_in_a_data_file_is_found(inventory: Inventory) -> None:
    target = data_files(inventory)[1]
    rewrite_with_one_value_changed(target)
    report = inventory.verify()
    assert report.violation is not None and report.violation.check == "files"
    assert report.violation.file is not None and Path(report.violation.file).name == target.name


def test_changing_a_value_and_the_recorded_file_size_is_found_by_the_hash_chain(inventory: Inventory) -> None:
    target = data_files(inventory)[1]
    rewrite_with_one_value_changed(target)
    path = commit_file(inventory, 2)
    actions = [json.loads(line) for line in path.read_text().splitlines()]
    for action in actions:
        if "add" in action and action["add"]["path"].endswith(target.name):
            action["add"]["size"] = target.stat().st_size
    path.write_text("\n".join(json.dumps(a) for a in actions) + "\n")
    report = Inventory.open(inventory.path).verify()
    assert report.violation is not None and report.violation.check == "hash chain"
    assert report.violation.version == 2
    assert report.violation.file is not None and Path(report.violation.file).name == target.name
    with pytest.raises(IntegrityError, match="event hash mismatch"):
        report.raise_if_failed()


def test_deleting_a_data_file_is_found(inventory: Inventory) -> None:
    target = data_files(inventory)[0]
    target.unlink()
    report = inventory.log.verify()
    assert not report.ok
    assert report.violation is not None and report.violation.check == "files"
    assert report.violation.file is not None and target.name in report.violation.file


def test_swapping_two_data_files_is_found(inventory: Inventory) -> None:
    first, last = data_files(inventory)[0], data_files(inventory)[-1]
    spare = first.with_suffix(".tmp")
    shutil.move(first, spare)
    shutil.move(last, first)
    shutil.move(spare, last)
    report = inventory.log.verify()
    assert not report.ok
    assert report.violation is not None
    assert report.violation.file is not None
    assert Path(report.violation.file).name in {first.name, last.name}


def commit_file(inv: Inventory, version: int) -> Path:
    return inv.log.path / "events" / "_delta_log" / f"{version:020d}.json"


def test_editing_a_commit_hash_in_the_delta_log_is_found(inventory: Inventory) -> None:
    path = commit_file(inventory, 2)
    lines = path.read_text().splitlines()
    edited = []
    for line in lines:
        action = json.loads(line)
        if "commitInfo" in action:
            action["commitInfo"]["eventlog.events_hash"] = "0" * 64
        edited.append(json.dumps(action))
    path.write_text("\n".join(edited) + "\n")
    report = Inventory.open(inventory.path).log.verify()
    assert not report.ok
    assert report.violation is not None and report.violation.version == 2


def test_dropping_an_add_action_from_the_delta_log_is_found(inventory: Inventory) -> None:
    path = commit_file(inventory, 2)
    kept = [line for line in path.read_text().splitlines() if '"add"' not in line]
    path.write_text("\n".join(kept) + "\n")
    report = Inventory.open(inventory.path).log.verify()
    assert not report.ok
    assert report.violation is not None
    assert report.violation.check in {"hash chain", "seq"}
    assert report.violation.seq == 4


def test_a_negative_stock_written_around_the_api_is_found(inventory: Inventory) -> None:
    # The log itself accepts any event; only the inventory's check knows stock cannot go below zero.
    inventory.log.append([{"event_type": "item_removed", "stream_id": "item 1", "quantity": 50}])
    assert inventory.log.verify().ok
    report = inventory.verify()
    assert report.violation is not None and report.violation.check == "stock"
    assert report.violation.seq == 10 and report.violation.version == 4 and report.violation.file is not None


@pytest.mark.parametrize("group", [1, 4, 1_000_000])
def test_the_inventory_checks_carry_stock_and_partial_tables_across_their_read_groups(
    inventory: Inventory, monkeypatch: pytest.MonkeyPatch, group: int
) -> None:
    """The inventory's checks read the log once, in groups: stock levels and partial projections carry over."""
    monkeypatch.setattr(inventory_checks, "GROUP", group)
    inventory.snapshot()
    inventory.update_projections()
    inventory.add_item("sword", 2)
    inventory.snapshot()
    assert inventory.verify().ok
    inventory.log.append([{"event_type": "item_removed", "stream_id": "sword", "quantity": 9}])
    report = inventory.verify()
    assert report.violation is not None and report.violation.check == "stock"
    assert report.violation.seq == inventory.log.head() and "'sword' goes to -4" in report.violation.message


def test_a_snapshot_that_disagrees_with_the_log_is_found(inventory: Inventory) -> None:
    info = inventory.snapshot()
    stored = inventory.snapshots.load(info)
    assert stored is not None
    inventory.snapshots.write(stored.with_columns(pl.col("quantity") + 1), seq=info.seq, delta_version=info.delta_version)
    report = inventory.verify()
    assert report.violation is not None and report.violation.check == "snapshots"


def test_a_snapshot_without_the_states_columns_is_found(inventory: Inventory) -> None:
    info = inventory.snapshot()
    inventory.snapshots.write(inventory.stock(), seq=info.seq, delta_version=info.delta_version)  # no order keys
    report = inventory.verify()
    assert report.violation is not None and report.violation.check == "snapshots"
    assert "columns" in report.violation.message


def test_a_projection_that_disagrees_with_the_log_is_found(inventory: Inventory) -> None:
    inventory.update_projections()
    projector = inventory.projector
    manifest = projector.tables.manifest("most_collected_items")
    assert manifest is not None
    for path in projector.tables.files("most_collected_items", manifest):  # edited in place, behind Delta's back
        table = pl.read_parquet(path).with_columns(pl.col("total_added") * 2)
        table.write_parquet(path)
    report = inventory.verify()
    assert report.violation is not None and report.violation.check == "projections"
    assert "most_collected_items" in report.violation.message


def test_an_unreadable_projection_table_is_reported_not_raised(inventory: Inventory) -> None:
    inventory.update_projections()
    commits = sorted((inventory.projector.tables.folder("item_origins") / "_delta_log").glob("*.json"))
    commits[-1].write_text("{ torn")
    report = inventory.verify()
    assert report.violation is not None and report.violation.check == "projections"
    assert report.violation.file == "projections/item_origins"


# --- invariants the hash chain cannot vouch for -----------------------------------------------
# A writer with a bug in envelope assignment still hashes and chains what it wrote, so the
# chain passes; verify must find the broken invariant from the values themselves.


@pytest.fixture(params=[1, 2_000_000], ids=["one commit per read", "one read"])
def group_size(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> int:
    """verify reads the log in groups of commits; each check must carry its state across them."""
    monkeypatch.setattr(eventlog_verify_events, "_CHUNK", request.param)
    return request.param


def test_a_clean_store_verifies_whatever_the_read_grouping(inventory: Inventory, group_size: int) -> None:
    for day in (4, 5):
        inventory.add_item("sword", occurred_at=dt.datetime(2024, 1, day, tzinfo=UTC))
    assert inventory.log.verify().ok


def test_a_gap_in_a_streams_versions_is_found(inventory: Inventory, monkeypatch: pytest.MonkeyPatch,
                                              group_size: int) -> None:
    seq = commit_with_a_broken_envelope(monkeypatch, inventory, stream_version=pl.col("stream_version") + 1)
    report = inventory.log.verify()
    assert report.violation is not None and report.violation.check == "streams"
    assert report.violation.seq == seq and "'sword'" in report.violation.message
    assert report.violation.version == inventory.log.version  # the commit that wrote it
    assert report.violation.file is not None


def test_a_repeated_event_id_is_found(inventory: Inventory, monkeypatch: pytest.MonkeyPatch, group_size: int) -> None:
    first_id = inventory.log.scan().filter(pl.col("seq") == 1).collect().item(0, "event_id")
    commit_with_a_broken_envelope(monkeypatch, inventory, event_id=pl.lit(first_id))
    report = inventory.log.verify()
    assert report.violation is not None and report.violation.check == "event ids"
    assert report.violation.seq == 1 and first_id in report.violation.message


def test_recorded_at_going_back_in_time_is_found(inventory: Inventory, monkeypatch: pytest.MonkeyPatch,
                                                group_size: int) -> None:
    long_ago = dt.datetime(2000, 1, 1, tzinfo=UTC)
    seq = commit_with_a_broken_envelope(monkeypatch, inventory, recorded_at=pl.lit(long_ago, pl.Datetime("us", "UTC")))
    report = inventory.log.verify()
    assert report.violation is not None and report.violation.check == "recorded_at"
    assert report.violation.seq == seq


def test_a_file_with_seq_beyond_the_head_is_found(inventory: Inventory, monkeypatch: pytest.MonkeyPatch) -> None:
    seq = commit_with_a_broken_envelope(monkeypatch, inventory, seq=pl.col("seq") + 100)
    report = Inventory.open(inventory.path).log.verify()
    assert report.violation is not None and report.violation.check in {"seq", "hash chain"}
    assert report.violation.seq == seq


def test_emptying_the_last_commit_file_is_found(inventory: Inventory) -> None:
    # deltalake reads an empty commit file as a commit with no actions: the last commit's
    # events would vanish without leaving a gap in seq or in the chain.
    path = commit_file(inventory, 3)
    path.write_bytes(b"")
    report = Inventory.open(inventory.path).log.verify()
    assert report.violation is not None and report.violation.check == "delta log"
    assert report.violation.version == 3 and report.violation.file == "_delta_log/" + path.name


@pytest.mark.parametrize("where", ["middle", "footer"])
def test_a_data_file_garbled_in_place_is_found_not_raised(inventory: Inventory, where: str) -> None:
    # Bytes flipped without changing the size: the size check passes, the read fails.
    target = data_files(inventory)[1]
    data = bytearray(target.read_bytes())
    footer = pq.read_metadata(target).serialized_size  # "middle": of the column data, not of the footer's statistics
    at = (len(data) - footer - 8) // 2 if where == "middle" else len(data) - 20
    data[at : at + 6] = bytes(b ^ 0xFF for b in data[at : at + 6])
    target.write_bytes(bytes(data))
    report = Inventory.open(inventory.path).log.verify()
    assert report.violation is not None and report.violation.check in {"files", "hash chain"}
    assert report.violation.file is not None and Path(report.violation.file).name == target.name


def test_verify_reports_progress_over_every_event(inventory: Inventory, group_size: int) -> None:
    seen: list[int] = []
    assert inventory.verify(progress=seen.append).ok
    assert sum(seen) == inventory.log.head() and len(seen) == (3 if group_size == 1 else 1)


def test_a_file_of_events_outside_every_commit_is_found(inventory: Inventory) -> None:
    # A file slipped in by a commit that is not an append: no commit's range covers its rows,
    # so only the file statistics can see them (scan() would show a seq-0 event).
    stray = inventory.log.scan(upcast=False).filter(pl.col("seq") == 1).collect().with_columns(seq=pl.lit(0, pl.Int64))
    stray = stray.with_columns(pl.col("occurred_at").dt.date().alias("occurred_on"))
    inventory.log.storage.append(stray.to_arrow(), metadata={"operation": "repair"}, transactions={})
    report = Inventory.open(inventory.path).log.verify()
    assert report.violation is not None and report.violation.check == "seq"
    assert report.violation.seq == 0 and report.violation.file is not None


def test_a_null_string_slot_holding_bytes_encodes_as_empty() -> None:
    # Arrow allows a null slot to span bytes (polars never writes one, other producers may);
    # the encoding says a null contributes none.
    tidy = pa.array(["ab", None, "c"], type=pa.large_string())
    offsets = pa.py_buffer(struct.pack("<4q", 0, 2, 5, 6))
    untidy = pa.LargeStringArray.from_buffers(3, offsets, pa.py_buffer(b"abxyzc"), tidy.buffers()[0], 1)

    def fed(array: pa.Array) -> tuple[bytes, bytes]:
        valid, lengths, bounds, data = _encode(array, pl.String())
        assert valid is not None
        return lengths.tobytes(), bytes(data[int(bounds[0]) : int(bounds[-1])])

    assert fed(untidy) == fed(tidy) == (struct.pack(">3q", 2, 0, 1), b"abc")


# --- an anchor against a truncated tail, and commit metadata ----------------------------------


def test_head_hash_is_the_newest_commits_hash_and_verifies_as_expected(inventory: Inventory) -> None:
    anchor = inventory.log.head_hash()
    assert anchor == inventory.log.history(1)[0]["eventlog.hash"]
    assert inventory.verify(expect=anchor).ok
    inventory.add_item("later")
    assert Inventory.open(inventory.path).verify(expect=anchor).ok  # an older anchor: the log only grew


def test_deleting_the_newest_commit_passes_verify_but_not_verify_expecting_its_hash(inventory: Inventory) -> None:
    before = inventory.log.head_hash()
    commit_file(inventory, 3).unlink()
    reopened = Inventory.open(inventory.path)
    assert reopened.verify().ok  # nothing else records that commit 3 existed
    report = reopened.verify(expect=before)
    assert not report.ok and report.violation is not None
    assert report.violation.check == "anchor" and report.violation.seq == 7
    assert before in str(report.violation) and "ends at seq 6" in str(report.violation)


def test_an_empty_log_has_no_head_hash(tmp_path: Path) -> None:
    assert Inventory.open(tmp_path / "store").log.head_hash() is None


@pytest.mark.parametrize("expect", ["abc", "g" * 64, 5, ""])
def test_expect_that_is_not_a_commit_hash_is_a_validation_error(inventory: Inventory, expect: object) -> None:
    with pytest.raises(ValidationError, match="64 hex digits"):
        inventory.verify(expect=expect)  # type: ignore[arg-type]


def test_an_edited_recorded_at_in_commit_metadata_is_found(inventory: Inventory) -> None:
    path = commit_file(inventory, 2)
    actions = [json.loads(line) for line in path.read_text().splitlines()]
    for action in actions:
        if "commitInfo" in action:
            action["commitInfo"]["eventlog.recorded_at"] = "2020-01-01T00:00:00+00:00"
    path.write_text("".join(json.dumps(a) + "\n" for a in actions))
    report = Inventory.open(inventory.path).verify()
    assert report.violation is not None and report.violation.check == "commit metadata"
    assert (report.violation.version, report.violation.seq) == (2, 4)


def test_eventlog_head_and_verify_expect_catch_a_truncated_tail(inventory: Inventory) -> None:
    from click.testing import CliRunner

    from eventlog.cli import main

    store = str(inventory.path)
    anchor = CliRunner().invoke(main, ["--store", store, "head"])
    assert anchor.exit_code == 0 and anchor.stdout.strip() == inventory.log.head_hash()
    ok = CliRunner().invoke(main, ["--store", store, "verify", "--expect", anchor.stdout.strip()])
    assert ok.exit_code == 0, ok.output
    commit_file(inventory, 3).unlink()
    failed = CliRunner().invoke(main, ["--store", store, "verify", "--expect", anchor.stdout.strip()])
    assert failed.exit_code == 1 and "anchor" in failed.output and "Traceback" not in failed.output


def test_a_null_string_hashes_alike_whatever_bytes_its_slot_holds() -> None:
    """Arrow lets a null value's slot keep bytes; the canonical encoding is defined on values."""
    import numpy as np

    tidy = pa.array(["ab", None, "c"], type=pa.large_string())
    messy = pa.LargeStringArray.from_buffers(3, pa.py_buffer(np.array([0, 2, 5, 6], dtype=np.int64)),
                                             pa.py_buffer(b"abXYZc"), pa.py_buffer(np.packbits([1, 0, 1], bitorder="little")),
                                             null_count=1)
    assert messy.to_pylist() == tidy.to_pylist()
    columns = {"name": pl.String()}
    assert events_hash(pa.table({"name": messy}), columns) == events_hash(pa.table({"name": tidy}), columns)
