"""Branches of the log, as in Git: fork at any cut, try a what-if, compare, promote."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import tempfile
from pathlib import Path

import polars as pl
import pytest
import reference
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from inventory_helpers import T0, as_frame, batches_of, events_of, item_events, store

from eventlog import EventLog, Inventory
from eventlog.errors import PromoteConflictError, StoreExistsError, ValidationError

DAY = dt.timedelta(days=1)


def _day(n: int) -> dt.datetime:
    return T0 + n * DAY


@pytest.fixture
def origin(tmp_path: Path) -> Inventory:
    """Three commits over four business days; the second one holds two days (a fork can cut it)."""
    inv = Inventory.open(store(tmp_path))
    inv.record([{"event_type": "item_added", "item": "sword", "quantity": 3, "occurred_at": _day(0)},
                {"event_type": "item_added", "item": "healing potion", "quantity": 2, "occurred_at": _day(0)}])
    inv.record([{"event_type": "item_removed", "item": "sword", "quantity": 1, "occurred_at": _day(1)},
                {"event_type": "item_added", "item": "o'brien's axe", "quantity": 1, "occurred_at": _day(1)},
                {"event_type": "item_removed", "item": "healing potion", "quantity": 2, "occurred_at": _day(2)}])
    inv.record([{"event_type": "item_added", "item": "Ünïcødé ✓ 日本", "quantity": 5, "occurred_at": _day(3)}])
    return inv


def _events(inv: Inventory, upto: int | None = None) -> pl.DataFrame:
    frame = inv.log.scan().collect()
    return frame if upto is None else frame.filter(pl.col("seq") <= upto)


# --- branching at a cut -------------------------------------------------------------------------


@pytest.mark.parametrize(("at", "fork"), [(None, 6), (2, 2), (4, 4), (0, 0), (_day(1), 4), ("2024-01-02", 4),
                                         (dt.date(2024, 1, 3), 5)])
def test_a_branch_holds_the_origin_up_to_the_cut(origin: Inventory, tmp_path: Path, at: object, fork: int) -> None:
    branch = origin.branch(tmp_path / "what if", at=at)  # type: ignore[arg-type]
    assert branch.log.head() == fork
    assert branch.log.lineage is not None and branch.log.lineage.fork_seq == fork
    assert branch.log.lineage.origin == str(origin.path)
    assert _events(branch).equals(_events(origin, fork))
    assert branch.stock().rows() == origin.stock(as_of=fork).rows()
    assert branch.verify().ok


def test_a_business_time_cut_forks_after_the_longest_prefix_that_happened_by_then(tmp_path: Path) -> None:
    inv = Inventory.open(store(tmp_path))
    inv.record([{"event_type": "item_added", "item": "sword", "occurred_at": _day(d)} for d in (0, 1, 5, 2)])
    assert inv.branch(tmp_path / "b", at=_day(3)).log.head() == 2  # seq 3 happened on day 5


def test_a_cut_past_the_head_or_of_the_wrong_kind_is_refused(origin: Inventory, tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="past the head"):
        origin.branch(tmp_path / "b", at=7)
    with pytest.raises(ValidationError, match="field 'at'"):
        origin.branch(tmp_path / "b", at="yesterday")
    assert not (tmp_path / "b").exists()


def test_a_branch_cannot_go_where_a_store_or_other_files_are(origin: Inventory, tmp_path: Path) -> None:
    Inventory.open(tmp_path / "taken")
    with pytest.raises(StoreExistsError, match="already holds"):
        origin.branch(tmp_path / "taken")
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    with pytest.raises(StoreExistsError, match="not empty"):
        origin.branch(tmp_path / "busy")
    assert (tmp_path / "busy" / "notes.txt").read_text() == "mine"
    for inside in (origin.path, origin.path / "inner"):
        with pytest.raises(ValidationError, match="inside"):
            origin.branch(inside)


# --- zero copy --------------------------------------------------------------------------------------


def _data_files(log: EventLog) -> dict[str, int]:
    root = log.path / "events"
    return {p: os.stat(root / p).st_ino for p in log.files().get_column("path").to_list()}


def test_files_before_the_cut_are_shared_and_only_files_across_it_are_rewritten(origin: Inventory, tmp_path: Path) -> None:
    files = _data_files(origin.log)
    whole = origin.branch(tmp_path / "whole", at=5)
    assert _data_files(whole.log) == {p: i for p, i in files.items() if p in _data_files(whole.log)}
    assert whole.log.lineage is not None and (whole.log.lineage.copied, whole.log.lineage.rewritten) == (0, 0)
    cut = origin.branch(tmp_path / "cut", at=3)  # inside the second commit: its day-1 file holds seq 3..4
    assert cut.log.lineage is not None and cut.log.lineage.rewritten == 1
    shared = {p: i for p, i in _data_files(cut.log).items() if p in files}
    assert shared and all(files[p] == i for p, i in shared.items())
    assert len(_data_files(cut.log)) == len(shared) + 1


def test_the_snapshots_before_the_fork_come_along(origin: Inventory, tmp_path: Path) -> None:
    snap = origin.snapshot()
    branch = origin.branch(tmp_path / "b")
    assert [s.seq for s in branch.snapshots.list()] == [snap.seq]
    assert os.stat(origin.snapshots.root / snap.file).st_ino == os.stat(branch.snapshots.root / snap.file).st_ino
    assert origin.branch(tmp_path / "early", at=2).snapshots.list() == []


# --- independence -----------------------------------------------------------------------------------


def test_writes_to_a_branch_and_to_its_origin_never_reach_the_other(origin: Inventory, tmp_path: Path) -> None:
    branch = origin.branch(tmp_path / "b", at=4)
    before = _events(origin)
    branch.add_item("sword", 10)
    branch.log.compact()
    branch.log.vacuum(retention_hours=0)
    assert _events(origin).equals(before) and origin.verify().ok
    origin.remove_item("sword", 2)
    origin.log.compact()
    origin.log.vacuum(retention_hours=0)
    assert branch.get_count("sword") == 12 and origin.get_count("sword") == 0
    assert branch.verify().ok and origin.verify().ok


# --- the chain and verify ---------------------------------------------------------------------------


def test_the_branch_chain_continues_from_the_fork_commit(origin: Inventory, tmp_path: Path) -> None:
    branch = origin.branch(tmp_path / "b", at=5)
    assert branch.log.head_hash() == origin.log.history(2)[1]["eventlog.hash"]  # the commit ending at seq 5
    branch.add_item("sword")
    newest = branch.log.history(1)[0]
    assert newest["eventlog.prev_hash"] == branch.log.lineage.fork_hash  # type: ignore[union-attr]
    assert branch.verify(expect=branch.log.head_hash()).ok


def test_a_branch_cut_inside_a_commit_verifies_and_its_chain_differs_from_there(origin: Inventory, tmp_path: Path) -> None:
    branch = origin.branch(tmp_path / "b", at=3)
    lineage = branch.log.lineage
    assert lineage is not None and (lineage.base_seq, lineage.fork_seq) == (2, 3)
    assert lineage.base_hash == origin.log.history(3)[2]["eventlog.hash"]
    branch.remove_item("sword")
    assert branch.verify().ok


def test_verify_of_a_branch_reports_an_origin_changed_before_the_fork(origin: Inventory, tmp_path: Path) -> None:
    branch = origin.branch(tmp_path / "b", at=5)
    victim = origin.log.files().sort("min_seq").get_column("path")[0]
    path = origin.path / "events" / victim
    changed = pl.read_parquet(path, hive_partitioning=False).with_columns(pl.col("quantity") * 0 + 9)
    tmp = path.with_name("replacement.parquet")
    changed.write_parquet(tmp)
    os.replace(tmp, path)  # a new file under the name: the branch keeps the old one
    report = branch.verify()
    assert not report.ok and report.violation is not None
    assert report.violation.check == "origin" and "no longer holds the prefix" in report.violation.message
    assert branch.stock().rows() == reference.stock(events_of(branch))


def test_verify_of_a_branch_whose_origin_is_gone_checks_the_branch_alone(origin: Inventory, tmp_path: Path) -> None:
    branch_path = tmp_path / "b"
    origin.branch(branch_path, at=4)
    shutil.rmtree(origin.path)
    report = Inventory.open(branch_path).verify()
    assert report.ok and any("not reachable" in c for c in report.checks)


def test_a_changed_branch_record_is_reported(origin: Inventory, tmp_path: Path) -> None:
    branch = origin.branch(tmp_path / "b", at=4)
    record = branch.path / "branch.json"
    record.write_text(record.read_text().replace('"fork_seq": 4', '"fork_seq": 3'))
    report = Inventory.open(branch.path).verify()
    assert not report.ok and report.violation is not None and report.violation.check == "origin"


# --- compare ----------------------------------------------------------------------------------------


def test_compare_shows_each_item_on_both_sides_and_the_change(origin: Inventory, tmp_path: Path) -> None:
    branch = origin.branch(tmp_path / "b", at=4)
    branch.add_item("sword", 4)
    assert origin.compare(branch).rows() == [
        ("healing potion", 0, 2, 2), ("o'brien's axe", 1, 1, 0), ("sword", 2, 6, 4), ("Ünïcødé ✓ 日本", 5, 0, -5)]
    assert origin.compare(as_of="2024-01-01").rows() == reference.compare(
        reference.stock(events_of(origin), business=dt.datetime(2024, 1, 1, 23, 59, 59, 999999, tzinfo=dt.timezone.utc)),
        reference.stock(events_of(origin)))


def test_projection_compare_matches_rows_by_keys_or_whole_rows(origin: Inventory, tmp_path: Path) -> None:
    branch = origin.branch(tmp_path / "b", at=4)
    branch.add_item("healing potion", 1, occurred_at=_day(2))
    by_key = origin.projection("most_collected_items").compare(branch)
    assert by_key.columns == ["item", "total_added", "other_total_added", "times_added", "other_times_added", "status"]
    assert dict(by_key.select("item", "status").rows()) == {
        "healing potion": "changed", "o'brien's axe": "same", "sword": "same", "Ünïcødé ✓ 日本": "removed"}
    stockouts = origin.projection("stockouts").compare(branch)
    assert stockouts.filter(pl.col("item") == "healing potion").get_column("status").to_list() == ["removed"]
    assert origin.projection("stockouts").compare(2).get_column("status").to_list() == ["removed"]


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_branch_and_compare_agree_with_the_reference_replay(data: st.DataObject) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        inv = Inventory.open(store(tmp))
        for batch in data.draw(batches_of(data.draw(item_events(others=False)))):
            inv.record(as_frame(batch))
        events = events_of(inv)
        fork = data.draw(st.integers(0, len(events)), label="fork seq")
        branch = inv.branch(Path(tmp) / "branch", at=fork)
        extra = data.draw(item_events(max_size=6, others=False), label="what-if")
        try:
            branch.record(as_frame(extra))
        except ValueError:
            pass  # a what-if removal the branch does not have the stock for
        mine = events_of(branch)
        assert mine[:fork] == events[:fork]
        assert inv.compare(branch).rows() == reference.compare(reference.stock(events), reference.stock(mine))
        cut = data.draw(st.integers(0, len(events)), label="other cut")
        assert inv.compare(as_of=cut).rows() == reference.compare(reference.stock(events, seq=cut),
                                                                  reference.stock(events))
        assert branch.verify().ok


# --- promote ----------------------------------------------------------------------------------------


def test_promote_fast_forwards_an_origin_that_did_not_move(origin: Inventory, tmp_path: Path) -> None:
    branch = origin.branch(tmp_path / "b")
    branch.add_item("sword", 2)
    branch.remove_item("o'brien's axe")
    result = origin.promote(branch)
    assert (result.first_seq, result.last_seq, result.duplicate) == (7, 8, False)
    envelope = ["seq", "event_id", "stream_id", "stream_version", "event_type", "occurred_at", "quantity"]
    assert _events(origin).select(envelope).equals(_events(branch).select(envelope))
    assert origin.verify().ok and branch.verify().ok


def test_promote_after_the_origin_moved_appends_after_its_head(origin: Inventory, tmp_path: Path) -> None:
    branch = origin.branch(tmp_path / "b", at=4)
    branch.add_item("sword", 5)
    origin.remove_item("sword", 2)
    result = origin.promote(branch)
    assert (result.first_seq, result.last_seq) == (8, 8)
    assert origin.get_count("sword") == 5 and origin.verify().ok
    assert origin.stock().rows() == reference.stock(events_of(origin))


def test_a_promote_that_no_longer_fits_names_the_event_and_changes_nothing(origin: Inventory, tmp_path: Path) -> None:
    branch = origin.branch(tmp_path / "b", at=4)
    branch.add_item("shield")
    branch.remove_item("sword", 2)
    origin.remove_item("sword", 2)
    head, version = origin.log.head(), origin.log.version
    with pytest.raises(PromoteConflictError, match="seq 6") as caught:
        origin.promote(branch)
    assert (caught.value.branch_seq, caught.value.stream) == (6, "sword")
    assert (origin.log.head(), origin.log.version) == (head, version)


def test_a_stream_the_branch_created_that_the_origin_now_holds_is_a_conflict(origin: Inventory, tmp_path: Path) -> None:
    branch = origin.branch(tmp_path / "b")
    branch.add_item("shield")
    origin.add_item("shield")
    with pytest.raises(PromoteConflictError, match="created stream 'shield'"):
        origin.promote(branch)


def test_a_retried_promote_appends_once_and_a_later_one_only_what_is_new(origin: Inventory, tmp_path: Path) -> None:
    branch = origin.branch(tmp_path / "b", at=4)
    branch.add_item("sword")
    origin.add_item("healing potion")
    first = origin.promote(branch)
    again = Inventory.open(origin.path).promote(Inventory.open(branch.path))
    assert again.duplicate and (again.first_seq, again.last_seq) == (first.first_seq, first.last_seq)
    branch.add_item("shield")
    later = origin.promote(branch)
    assert (later.first_seq, later.last_seq) == (first.last_seq + 1, first.last_seq + 1)
    assert origin.get_count("sword") == 3 and origin.get_count("shield") == 1 and origin.verify().ok


def test_only_a_branch_of_this_store_can_be_promoted(origin: Inventory, tmp_path: Path) -> None:
    other = Inventory.open(tmp_path / "other")
    with pytest.raises(ValidationError, match="not a branch"):
        origin.promote(other)
    stranger = other.branch(tmp_path / "stranger")
    with pytest.raises(ValidationError, match="is a branch of"):
        origin.promote(stranger)


def test_a_plain_event_log_branches_and_promotes_too(tmp_path: Path) -> None:
    from eventlog import EventSchema, EventType

    log = EventLog.create(tmp_path / "main", EventSchema([EventType("ping", ())]))
    log.append([{"event_type": "ping", "stream_id": "a"}] * 3)
    branch = log.branch(tmp_path / "trial", at=2)
    branch.append([{"event_type": "ping", "stream_id": "b"}])
    assert log.promote(branch).last_seq == 4 and log.verify().ok
    assert branch.describe()[-1] == ("origin", f"{log.path} at seq 2")


# --- SQL and the command line -----------------------------------------------------------------------


def test_the_sql_macro_compares_two_cuts_as_compare_does(origin: Inventory) -> None:
    for x, y in ((2, 6), (0, "2024-01-02"), ("2024-01-01", 4)):
        got = origin.sql("SELECT * FROM inventory_compare($x, $y)", {"x": x, "y": y})
        assert got.rows() == origin.compare(as_of=x, other_as_of=y).rows(), (x, y)
        assert got.schema == origin.compare(as_of=x, other_as_of=y).schema


def test_the_cli_branches_compares_promotes_and_shows_the_origin(origin: Inventory, tmp_path: Path) -> None:
    import json

    from click.testing import CliRunner

    from eventlog.cli import main

    def run(*args: str) -> str:
        result = CliRunner().invoke(main, list(args), catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return result.stdout

    trial = tmp_path / "trial"
    assert "at seq 4 into" in run("--store", str(origin.path), "branch", str(trial), "--at", "4")
    run("--store", str(trial), "add", "sword", "--quantity", "4")
    rows = json.loads(run("--store", str(origin.path), "compare", str(trial), "--format", "json"))
    assert {r["item"]: r["change"] for r in rows}["sword"] == 4
    then = json.loads(run("--store", str(origin.path), "compare", "--as-of", "2", "--format", "json"))
    assert [tuple(r.values()) for r in then] == origin.compare(as_of=2).rows()
    info = json.loads(run("--store", str(trial), "info", "--format", "json"))
    assert (info["origin"], info["fork_seq"]) == (str(origin.path), 4)
    assert "promoted 1 event from" in run("--store", str(origin.path), "promote", str(trial))
    assert "already promoted" in run("--store", str(origin.path), "promote", str(trial))
    refused = CliRunner().invoke(main, ["--store", str(origin.path), "branch", str(tmp_path / "x"), "--at", "99"])
    assert refused.exit_code == 1 and refused.stderr.startswith("error: field 'at'")


def test_a_retry_on_the_branch_of_a_batch_committed_before_the_fork_appends_nothing(tmp_path: Path) -> None:
    from eventlog import EventSchema, EventType

    log = EventLog.create(tmp_path / "main", EventSchema([EventType("ping", ())]))
    batch = [{"event_type": "ping", "stream_id": "a"}] * 2
    first = log.append(batch, idempotency_key="import-1")
    log.append(batch, idempotency_key="import-2")
    branch = log.branch(tmp_path / "b", at=4).branch(tmp_path / "b of b")
    again = branch.append(batch, idempotency_key="import-1")
    assert again.duplicate and (again.first_seq, again.last_seq) == (first.first_seq, first.last_seq)
    assert branch.head() == 4 and branch.append(batch, idempotency_key="import-2").duplicate
    cut = log.branch(tmp_path / "cut", at=3)  # inside import-2: the branch holds half of it, and no key
    assert not cut.append(batch, idempotency_key="import-2").duplicate and cut.verify().ok


def test_a_branch_keeps_the_schema_versions_up_to_its_fork(tmp_path: Path) -> None:
    from eventlog import EventSchema, EventType, Field

    v1 = EventSchema([EventType("ping", (Field("n", "int64"),))])
    v2 = EventSchema([EventType("ping", (Field("n", "int64"), Field("note", "string", required=False)))])
    log = EventLog.create(tmp_path / "main", v1)
    log.append([{"event_type": "ping", "stream_id": "a", "n": 1}])
    log.evolve(v2)
    log.append([{"event_type": "ping", "stream_id": "a", "n": 2, "note": "new"}])
    before, after = log.branch(tmp_path / "before", at=1), log.branch(tmp_path / "after")
    assert (before.schema_version, after.schema_version) == (2, 2)  # v2 was in force from seq 2
    assert log.branch(tmp_path / "v1", at=0).schema_version == 1 and before.verify().ok and after.verify().ok
    after.append([{"event_type": "ping", "stream_id": "b", "n": 3, "note": "on the branch"}])
    assert after.verify().ok and log.promote(after).last_seq == 3 and log.verify().ok
