"""Compaction and vacuum change the files, never the answers; scans keep their cut."""

from __future__ import annotations

import datetime as dt
import tempfile
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow.parquet as pq
import pytest
from deltalake import DeltaTable
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from support import AWKWARD_STREAMS, SELECT, added, read_all

from eventlog import EventLog, Inventory
from eventlog.errors import CommitError


@pytest.fixture(params=["plain", "with spaces ✓"])
def store_path(tmp_path: Path, request: pytest.FixtureRequest) -> Path:
    """Both ways of reading the table: deltalake spells a path with spaces differently."""
    return tmp_path / request.param


@pytest.fixture
def fragmented_log(existing_log: EventLog) -> EventLog:
    """Many small files: one per append."""
    for i in range(12):
        existing_log.append([added(AWKWARD_STREAMS[i % len(AWKWARD_STREAMS)], quantity=i + 1)])
    return existing_log


def _answers(log: EventLog) -> dict[str, object]:
    """The results of the queries a user may run; compaction must leave all of them alone."""
    return {
        "full": read_all(log),
        "as_of": log.scan(as_of=5).collect().sort("seq"),
        "stream": log.scan(streams=[AWKWARD_STREAMS[1]]).collect().sort("seq"),
        "type": log.scan(event_types=[SELECT]).collect().sort("seq"),
        "head": log.head(),
        "versions": {s: log.stream_version(s) for s in AWKWARD_STREAMS},
    }


def _same(a: dict[str, object], b: dict[str, object]) -> bool:
    return a.keys() == b.keys() and all(
        x.equals(y) if isinstance(x, pl.DataFrame) else x == y for x, y in zip(a.values(), b.values(), strict=True)
    )


def _parquet_on_disk(log: EventLog) -> set[str]:
    """Data files present in the table directory, live or not, as paths relative to it."""
    root = log.path / "events"
    return {str(p.relative_to(root)) for p in root.rglob("*.parquet") if "_delta_log" not in p.parts}


def test_compact_leaves_every_query_result_unchanged(fragmented_log: EventLog) -> None:
    before = _answers(fragmented_log)
    fragmented_log.compact()
    assert _same(_answers(fragmented_log), before)
    assert _same(_answers(EventLog.open(fragmented_log.path)), before)


def test_compact_reduces_the_file_count(fragmented_log: EventLog) -> None:
    files_before = fragmented_log.files().height
    fragmented_log.compact()
    files_after = fragmented_log.files().height
    assert files_after < files_before
    # one file per occurred_on partition is the floor
    assert files_after == fragmented_log.files()["day"].n_unique()


def test_appends_after_compact_continue_seq_and_stream_versions(fragmented_log: EventLog) -> None:
    head = fragmented_log.head()
    version = fragmented_log.stream_version(AWKWARD_STREAMS[0])
    fragmented_log.compact()
    result = fragmented_log.append([added(AWKWARD_STREAMS[0])])
    assert result.first_seq == head + 1
    assert fragmented_log.stream_version(AWKWARD_STREAMS[0]) == version + 1
    assert read_all(fragmented_log)["seq"].to_list() == list(range(1, head + 2))


def test_vacuum_with_zero_retention_keeps_the_current_version_readable(fragmented_log: EventLog) -> None:
    fragmented_log.compact()
    before = _answers(fragmented_log)
    removed = fragmented_log.vacuum(retention_hours=0)
    assert removed  # the files compaction replaced
    assert _same(_answers(fragmented_log), before)
    assert _same(_answers(EventLog.open(fragmented_log.path)), before)
    assert fragmented_log.append([added("after vacuum")]).first_seq == before["head"] + 1  # type: ignore[operator]


def test_vacuum_with_zero_retention_deletes_every_unreferenced_file(fragmented_log: EventLog) -> None:
    fragmented_log.compact()
    live = {str(p) for p in fragmented_log.files()["path"]}
    assert _parquet_on_disk(fragmented_log) > live
    fragmented_log.vacuum(retention_hours=0)
    assert _parquet_on_disk(fragmented_log) == live


def test_vacuum_dry_run_lists_files_but_deletes_nothing(fragmented_log: EventLog) -> None:
    fragmented_log.compact()
    on_disk = _parquet_on_disk(fragmented_log)
    listed = fragmented_log.vacuum(retention_hours=0, dry_run=True)
    assert listed
    assert _parquet_on_disk(fragmented_log) == on_disk


@pytest.mark.parametrize("hours", [168, 0.5])
def test_vacuum_keeps_files_younger_than_the_retention(fragmented_log: EventLog, hours: float) -> None:
    fragmented_log.compact()
    on_disk = _parquet_on_disk(fragmented_log)
    assert fragmented_log.vacuum(retention_hours=hours) == []
    assert _parquet_on_disk(fragmented_log) == on_disk


def test_scan_created_before_an_append_shows_only_its_prefix_when_collected_after(existing_log: EventLog) -> None:
    head = existing_log.head()
    before = read_all(existing_log)
    lazy = existing_log.scan()
    lazy_cut = existing_log.scan(as_of=2)
    existing_log.append([added("later")] * 3)
    EventLog.open(existing_log.path).append([added("later still")])
    got = lazy.collect().sort("seq")
    assert got["seq"].max() == head
    assert got.equals(before)
    assert lazy_cut.collect()["seq"].sort().to_list() == [1, 2]


def test_scan_created_before_a_compaction_still_collects_the_same(fragmented_log: EventLog) -> None:
    before = read_all(fragmented_log)
    lazy = fragmented_log.scan()
    fragmented_log.compact()
    assert lazy.collect().sort("seq").equals(before)


def _plant_leftovers(log: EventLog) -> set[str]:
    """What a killed writer leaves: a finished data file never committed, and one still staged."""
    live = log.path / "events" / str(log.files()["path"][0])
    planted = {
        live.with_name("part-99999-never-committed-c000.zstd.parquet"),
        live.with_name("part-99998-half-written-c000.zstd.parquet#1"),
    }
    for path in planted:
        path.write_bytes(live.read_bytes()[: len(live.read_bytes()) // 2])
    return {p.relative_to(log.path / "events").as_posix() for p in planted}


def test_vacuum_removes_files_a_killed_writer_left(existing_log: EventLog) -> None:
    before = read_all(existing_log)
    planted = _plant_leftovers(existing_log)
    assert set(existing_log.vacuum(retention_hours=0)) >= planted
    root = existing_log.path / "events"
    assert not any((root / p).exists() for p in planted)
    assert read_all(existing_log).equals(before)


def test_vacuum_keeps_leftovers_younger_than_the_retention(existing_log: EventLog) -> None:
    planted = _plant_leftovers(existing_log)
    assert existing_log.vacuum(retention_hours=1, dry_run=True) == []
    assert set(existing_log.vacuum(retention_hours=0, dry_run=True)) >= planted
    assert all((existing_log.path / "events" / p).exists() for p in planted)


# --- compaction through eventlog's own writer: every event kept, in seq order, verify passing ----------

T0 = dt.datetime(2024, 3, 1, tzinfo=dt.timezone.utc)
ITEMS = ["sword", "o'brien's axe", "Ünïcødé ✓ 日本", "a;b; --"]
#: Batches of (day offset, item, quantity) additions; after each, one of the batch's items loses 1.
BATCH = st.lists(st.tuples(st.integers(0, 3), st.integers(0, 3), st.integers(1, 3)), min_size=1, max_size=8)


def _record(inventory: Inventory, batch: list[tuple[int, int, int]]) -> None:
    inventory.record([{"event_type": "item_added", "item": ITEMS[i], "quantity": q,
                       "occurred_at": T0 + dt.timedelta(days=d, minutes=k)} for k, (d, i, q) in enumerate(batch)])
    day, item, _ = batch[-1]
    inventory.record([{"event_type": "item_removed", "item": ITEMS[item], "quantity": 1,
                       "occurred_at": T0 + dt.timedelta(days=day, hours=1)}])


# No shrinking: each example writes a store, and shrinking one took minutes on a shared machine.
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow],
          phases=[Phase.explicit, Phase.reuse, Phase.generate])
@given(batches=st.lists(BATCH, min_size=2, max_size=6), target=st.sampled_from([None, 4_500, 9_000]))
def test_compaction_keeps_every_event_in_seq_order_and_verify_passes(
    batches: list[list[tuple[int, int, int]]], target: int | None
) -> None:
    """Random small appends over a few days; a compaction to a target that merges some or all of a day's
    files changes no scan and no stock, leaves each file in seq order with true statistics, and verifies."""
    with tempfile.TemporaryDirectory() as tmp:
        inventory = Inventory.open(Path(tmp) / "store ✓")
        for batch in batches:
            _record(inventory, batch)
        events, stock, files = read_all(inventory.log), inventory.stock().rows(), inventory.log.files()
        metrics = inventory.log.compact(target_size=target)
        after = inventory.log.files()
        assert after.height == files.height - metrics["numFilesRemoved"] + metrics["numFilesAdded"]
        for opened in (inventory, Inventory.open(inventory.path)):
            assert read_all(opened.log).equals(events)
            assert opened.stock().rows() == stock
        for path, low, high in after.select("path", "min_seq", "max_seq").iter_rows():
            seq = pq.ParquetFile(inventory.log.path / "events" / path).read(columns=["seq"]).column("seq").to_pylist()
            assert seq == sorted(seq) and (seq[0], seq[-1]) == (low, high)
        for _, day in after.sort("min_seq").group_by("day"):  # the files of a day keep disjoint seq ranges
            assert (day["min_seq"].shift(-1).drop_nulls() > day["max_seq"].head(day.height - 1)).all()
        assert Inventory.open(inventory.path).verify().ok
        if target is None:  # the default target merges each day into one file; then there is nothing to do
            assert after.height == after["day"].n_unique()
            assert inventory.log.compact()["numFilesRemoved"] == 0


def test_compaction_merges_only_files_below_the_target_and_consecutive_in_seq(empty_log: EventLog) -> None:
    """A file at or above the target ends a run: merged files never span it, so a day's ranges stay disjoint."""
    for i in range(6):
        empty_log.append([added(AWKWARD_STREAMS[0], quantity=1 + i)] * (2000 if i == 2 else 1))
    files = empty_log.files().sort("min_seq")
    assert files["day"].n_unique() == 1
    big = int(files.filter(pl.col("rows") == 2000)["size_bytes"][0])
    before = read_all(empty_log)
    metrics = empty_log.compact(target_size=big)
    after = empty_log.files().sort("min_seq")
    assert (metrics["numFilesRemoved"], metrics["numFilesAdded"]) == (5, 2)
    assert after["rows"].to_list() == [2, 2000, 3]  # the files before it, the large one left alone, those after it
    assert read_all(empty_log).equals(before)


def test_a_compaction_racing_another_writers_compaction_commits_nothing(
    fragmented_log: EventLog, monkeypatch: pytest.MonkeyPatch
) -> None:
    """deltalake does not check a remove against a concurrent one: committed anyway, the rows would be
    there twice. The commit is pinned to the version read, so it is refused."""
    before = read_all(fragmented_log)
    real = DeltaTable.create_write_transaction

    def another_writer_first(self: DeltaTable, *args: Any, **kwargs: Any) -> None:
        DeltaTable(str(fragmented_log.path / "events")).optimize.compact()  # removes the same files
        real(self, *args, **kwargs)

    monkeypatch.setattr(DeltaTable, "create_write_transaction", another_writer_first)
    with pytest.raises(CommitError, match="another writer committed"):
        fragmented_log.compact()
    monkeypatch.undo()
    assert read_all(EventLog.open(fragmented_log.path)).equals(before)
    assert _same(_answers(EventLog.open(fragmented_log.path)), _answers(fragmented_log))
    assert fragmented_log.verify().ok


# --- the write policy: a fragmented table is compacted after the append that finds it so -------


@pytest.fixture
def low_threshold(monkeypatch: pytest.MonkeyPatch) -> int:
    """The policy's floor lowered from 256 files to 8, so a test reaches it in a few appends."""
    import eventlog.store.delta as delta

    monkeypatch.setattr(delta, "MIN_FILES", 8)
    return 8


def test_single_event_appends_keep_the_file_count_bounded_and_every_answer(tmp_path: Path, low_threshold: int) -> None:
    inv = Inventory.open(tmp_path / "store")
    counts = []
    for i in range(40):
        inv.add_item("apple" if i % 3 else "pear")
        counts.append(inv.log.files().height)
    assert max(counts) <= low_threshold + 1  # one day partition: compacted once it held more than 8 files
    assert sum(after < before for before, after in zip(counts, counts[1:])) >= 3  # compacted again and again
    reopened = Inventory.open(tmp_path / "store")
    assert sorted(reopened.get_items()) == [("apple", 26), ("pear", 14)]
    assert reopened.log.scan().select("seq").collect().get_column("seq").to_list() == list(range(1, 41))
    assert reopened.log.verify().ok
    operations = [e.get("eventlog.operation") for e in reopened.log.history()]
    assert operations.count("compact") >= 3 and operations.count("append") == 40


def test_the_policy_can_be_switched_off(tmp_path: Path, low_threshold: int) -> None:
    inv = Inventory.open(tmp_path / "store")
    inv.log.auto_compact = False
    for _ in range(20):
        inv.add_item("apple")
    assert inv.log.files().height == 20


def test_a_failing_compaction_after_an_append_is_a_warning_and_the_append_stands(
    tmp_path: Path, low_threshold: int, monkeypatch: pytest.MonkeyPatch,
) -> None:
    import eventlog.store.delta as delta
    from eventlog.errors import MaintenanceWarning, StorageError

    inv = Inventory.open(tmp_path / "store")
    for _ in range(low_threshold):
        inv.add_item("apple")

    def broken(self: Any, **kwargs: Any) -> Any:
        raise StorageError("the disk is full", store=str(tmp_path / "store"))

    monkeypatch.setattr(delta.DeltaEvents, "compact", broken)
    with pytest.warns(MaintenanceWarning, match="the append is committed"):
        result = inv.add_item("apple")
    assert result.last_seq == low_threshold + 1
    assert Inventory.open(tmp_path / "store").get_count("apple") == low_threshold + 1


def test_a_writer_that_finds_the_lock_taken_leaves_the_compaction_to_its_holder(
    tmp_path: Path, low_threshold: int,
) -> None:
    inv = Inventory.open(tmp_path / "store")
    for _ in range(low_threshold):
        inv.add_item("apple")
    holder = EventLog.open(tmp_path / "store")
    with holder.writing():  # another writer of this process holds the lock (thread-local locks: a thread)
        import threading

        done: list[Any] = []
        thread = threading.Thread(target=lambda: done.append(inv.log._compact_after_append()))
        thread.start()
        thread.join(10)
        assert done == [None] and inv.log.files().height == low_threshold
    inv.add_item("apple")  # the next append finds the table fragmented and the lock free
    assert inv.log.files().height == 1


def test_the_policy_merges_at_most_its_budget_per_append_the_most_fragmented_days_first(
    tmp_path: Path, low_threshold: int, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A table far past the threshold is compacted a share at a time, never all in one append."""
    import eventlog.log

    inv = Inventory.open(tmp_path / "store")
    inv.log.auto_compact = False
    days = [dt.datetime(2024, 1, d, 12, tzinfo=dt.timezone.utc) for d in (1, 2, 3)]
    for i in range(30):  # 15 files on the 1st, 10 on the 2nd, 5 on the 3rd
        inv.add_item("apple", occurred_at=days[0 if i % 2 == 0 else (1 if i % 3 else 2)])
    per_day = inv.log.files().group_by("day").len().sort("day").get_column("len").to_list()
    assert per_day == [15, 10, 5]
    size = int(inv.log.files().get_column("size_bytes").max())
    monkeypatch.setattr(eventlog.log, "COMPACT_BUDGET", 12 * size)  # about the 1st day's 15 files, not the 2nd's too
    inv.log.auto_compact = True
    inv.add_item("apple", occurred_at=days[1])  # 31 files: past 8 and past 4 per day
    assert inv.log.files().group_by("day").len().sort("day").get_column("len").to_list() == [1, 11, 5]
    while inv.log.files().height > low_threshold:
        inv.add_item("apple", occurred_at=days[2])
    assert Inventory.open(tmp_path / "store").get_count("apple") == inv.log.head()
    assert Inventory.open(tmp_path / "store").log.verify().ok
