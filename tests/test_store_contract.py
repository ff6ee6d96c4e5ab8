"""The storage contract: what every events store promises the log, run on each store.

``MemoryEvents`` is the reference model (obviously right, in memory); ``DeltaEvents`` is the
real one. One test class states the rules; each store runs it by overriding ``new_store``,
as the ``eventsourcing`` library runs one recorder test case against every backend.
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Callable
from pathlib import Path

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal
from support import AWKWARD_STREAMS, make_schema

from eventlog.core.schema import PARTITION_COLUMN
from eventlog.errors import CommitError
from eventlog.store.base import FILE_COLUMNS, META_PREFIX, EventStore
from eventlog.store.delta import DeltaEvents, arrow_schema
from eventlog.store.memory import MemoryEvents

UTC = dt.timezone.utc
SCHEMA = arrow_schema(make_schema().columns())
FIRST_DAY = dt.date(2024, 1, 1)
#: Hypothesis settings: each example creates a store (a Delta table takes tens of ms) from the
#: ``new_store`` factory, so the function-scoped fixture is not shared between examples. Each
#: subclass runs the same test method ("differing executors"): on purpose, since an example
#: means the same for every store.
PROPERTY = settings(max_examples=15, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                                           HealthCheck.differing_executors])
#: Batches as lists of day offsets, one per event: several batches, some spanning days.
BATCHES = st.lists(st.lists(st.integers(0, 2), min_size=1, max_size=6), min_size=1, max_size=4)

NewStore = Callable[[], EventStore]


def events(store: EventStore, first_seq: int, days: list[int]) -> pl.DataFrame:
    """Stored rows with seq first_seq.. on the given day offsets, every column of ``store``."""
    n = len(days)
    seqs = list(range(first_seq, first_seq + n))
    occurred = [dt.datetime.combine(FIRST_DAY + dt.timedelta(days=d), dt.time(12), UTC) + dt.timedelta(seconds=s)
                for d, s in zip(days, seqs)]
    values = {
        "seq": seqs,
        "event_id": [f"id-{s}" for s in seqs],
        "stream_id": [AWKWARD_STREAMS[s % len(AWKWARD_STREAMS)] for s in seqs],
        "stream_version": seqs,
        "event_type": ["item_added"] * n,
        "occurred_at": occurred,
        "recorded_at": [dt.datetime(2025, 1, 1, tzinfo=UTC) + dt.timedelta(milliseconds=s) for s in seqs],
        "quantity": seqs,
        "note": ["ünïcødé 'quoted'"] * n,
        PARTITION_COLUMN: [o.date() for o in occurred],
    }
    columns = store.columns()
    return pl.DataFrame({c: values.get(c, [None] * n) for c in columns}, schema=columns)


def append(store: EventStore, days: list[int], **transactions: int) -> pl.DataFrame:
    """Append one batch after the head; returns its rows."""
    head, _ = store.head_and_last_recorded()
    batch = events(store, head + 1, days)
    store.append(batch.to_arrow(), metadata={"operation": "append", "last_seq": str(head + len(days))},
                 transactions=transactions)
    return batch


def scanned(store: EventStore) -> pl.DataFrame:
    return store.scan().collect().sort("seq")


class StoreContract:
    """The rules; a subclass supplies ``new_store``."""

    @pytest.fixture
    def new_store(self, tmp_path: Path) -> NewStore:
        raise NotImplementedError

    @pytest.fixture
    def store(self, new_store: NewStore) -> EventStore:
        return new_store()

    # --- an empty store --------------------------------------------------------------------

    def test_an_empty_store_is_version_0_with_no_events_and_no_files(self, store: EventStore) -> None:
        assert store.version == 0
        assert store.head_and_last_recorded() == (0, None)
        assert scanned(store).height == 0
        assert store.scan().collect_schema() == pl.Schema(store.columns())
        assert store.files().columns == list(FILE_COLUMNS) and store.files().height == 0
        assert store.files_covering(after=0, cut=10) == ([], True)
        assert store.transaction_version("anything") is None
        assert store.check_commit_files() is None

    def test_a_new_store_has_the_given_columns_partition_last(self, store: EventStore) -> None:
        columns = store.columns()
        assert list(columns) == SCHEMA.names
        assert list(columns)[-1] == PARTITION_COLUMN

    def test_the_creation_is_the_first_commit_of_the_history(self, store: EventStore) -> None:
        (entry,) = store.history()
        assert entry["version"] == 0 and entry[META_PREFIX + "operation"] == "create"

    def test_each_store_has_its_own_lasting_id(self, new_store: NewStore) -> None:
        one, other = new_store(), new_store()
        before = one.table_id()
        append(one, [0])
        one.refresh()
        assert one.table_id() == before != other.table_id()

    # --- appends -----------------------------------------------------------------------------

    def test_an_append_commits_the_whole_batch_as_the_next_version(self, store: EventStore) -> None:
        batch = events(store, 1, [0, 1, 1])
        version = store.append(batch.to_arrow(), metadata={}, transactions={})
        assert version == store.version == 1
        assert_frame_equal(scanned(store), batch)
        assert store.head_and_last_recorded() == (3, batch["recorded_at"].max())

    def test_an_append_adds_one_file_per_day_of_its_batch_with_its_bounds(self, store: EventStore) -> None:
        append(store, [0])
        append(store, [2, 0, 2])
        files = store.files().sort("min_seq")
        assert files.select("rows", "min_seq", "max_seq", "day").rows() == [
            (1, 1, 1, FIRST_DAY), (2, 2, 4, FIRST_DAY + dt.timedelta(days=2)), (1, 3, 3, FIRST_DAY)]
        assert files["size_bytes"].min() > 0  # type: ignore[operator]
        recorded = scanned(store)["recorded_at"]
        assert files["max_recorded_at"].to_list() == [recorded[0], recorded[3], recorded[2]]

    def test_a_batch_with_other_columns_is_refused_and_writes_nothing(self, store: EventStore) -> None:
        append(store, [0])
        before, version = scanned(store), store.version
        odd = events(store, 2, [0]).with_columns(pl.lit(1).alias("not a column"))
        with pytest.raises(CommitError):
            store.append(odd.to_arrow(), metadata={}, transactions={})
        store.refresh()
        assert store.version == version
        assert_frame_equal(scanned(store), before)

    @PROPERTY
    @given(batches=BATCHES)
    def test_a_scan_holds_exactly_the_appended_events(self, new_store: NewStore, batches: list[list[int]]) -> None:
        store = new_store()
        written = pl.concat([append(store, days) for days in batches])
        assert store.version == len(batches)
        assert_frame_equal(scanned(store), written)
        head = written.height
        for after, cut in itertools.combinations(range(head + 1), 2):
            ranged = store.scan().filter((pl.col("seq") > after) & (pl.col("seq") <= cut)).collect().sort("seq")
            assert ranged["seq"].to_list() == list(range(after + 1, cut + 1))
            assert_frame_equal(store.scan(after=after, cut=cut).collect().sort("seq"), ranged)

    # --- history and transactions ------------------------------------------------------------

    def test_history_is_newest_first_with_the_commit_metadata(self, store: EventStore) -> None:
        append(store, [0])
        append(store, [1, 1])
        entries = store.history()
        assert [e["version"] for e in entries] == [2, 1, 0]
        assert [e.get(META_PREFIX + "last_seq") for e in entries] == ["3", "1", None]
        assert all(isinstance(e["timestamp"], int) and e["operation"] for e in entries)
        assert [e["timestamp"] for e in entries] == sorted((e["timestamp"] for e in entries), reverse=True)
        assert store.history(1) == entries[:1]

    def test_transaction_version_is_the_last_committed_for_each_app(self, store: EventStore) -> None:
        append(store, [0], first=3)
        append(store, [0], first=7, other=1)
        append(store, [0])
        assert store.transaction_version("first") == 7
        assert store.transaction_version("other") == 1
        assert store.transaction_version("never") is None

    # --- files covering a range --------------------------------------------------------------

    @PROPERTY
    @given(batches=BATCHES, data=st.data())
    def test_files_covering_hold_every_event_of_the_range_and_say_inside_truthfully(
        self, new_store: NewStore, batches: list[list[int]], data: st.DataObject
    ) -> None:
        store = new_store()
        written = pl.concat([append(store, days) for days in batches])
        head = written.height
        after = data.draw(st.integers(0, head), label="after")
        cut = data.draw(st.integers(0, head + 1), label="cut")
        day_max = data.draw(st.none() | st.integers(-1, 2).map(lambda d: FIRST_DAY + dt.timedelta(days=d)))
        paths, inside = store.files_covering(after=after, cut=cut, day_max=day_max)
        files = store.files().with_columns(pl.col("path").map_elements(lambda p: str(store.path / p),
                                                                        return_dtype=pl.String))
        chosen = files.filter(pl.col("path").is_in(paths))
        assert chosen.height == len(paths) == len(set(paths))  # existing files, each once
        # Every event of the range lies in a chosen file: the one of its day and seq bounds.
        wanted = written.filter((pl.col("seq") > after) & (pl.col("seq") <= cut)
                                & (pl.col(PARTITION_COLUMN) <= (day_max or dt.date.max)))
        held = wanted.join(chosen, left_on=PARTITION_COLUMN, right_on="day").filter(
            pl.col("seq").is_between(pl.col("min_seq"), pl.col("max_seq")))
        assert held["seq"].sort().to_list() == wanted["seq"].sort().to_list()
        # No chosen file lies outside the range; every file left out does (all for an empty range).
        overlaps = pl.lit(after < cut) & (pl.col("max_seq") > after) & (pl.col("min_seq") <= cut) & (
            pl.col("day") <= (day_max or dt.date.max))
        assert chosen.filter(~overlaps).height == 0
        assert files.filter(~pl.col("path").is_in(paths) & overlaps).height == 0
        assert inside == all(after < lo and hi <= cut for lo, hi in chosen.select("min_seq", "max_seq").rows())

    # --- schema and maintenance --------------------------------------------------------------

    def test_added_columns_read_as_null_in_older_files(self, store: EventStore) -> None:
        old = append(store, [0, 1])
        version = store.add_columns({"extra": pl.String(), "quantity": pl.Int64()}, metadata={"operation": "evolve"})
        assert version == store.version == 2
        assert list(store.columns()) == [*SCHEMA.names, "extra"]  # after the partition column, as Delta has it
        assert store.history(1)[0][META_PREFIX + "operation"] == "evolve"
        new = events(store, 3, [1]).with_columns(pl.lit("x").alias("extra"))
        store.append(new.to_arrow(), metadata={}, transactions={})
        expected = pl.concat([old.with_columns(pl.lit(None, pl.String).alias("extra")), new])
        assert_frame_equal(scanned(store), expected)

    def test_adding_columns_that_exist_changes_no_column(self, store: EventStore) -> None:
        before = store.columns()
        store.add_columns({"quantity": pl.Int64()}, metadata={})
        assert store.columns() == before

    @PROPERTY
    @given(batches=BATCHES)
    def test_compact_keeps_every_scan_result_and_leaves_one_file_per_day(
        self, new_store: NewStore, batches: list[list[int]]
    ) -> None:
        store = new_store()
        written = pl.concat([append(store, days) for days in batches])
        before, version, files = scanned(store), store.version, store.files().height
        metrics = store.compact()
        days = written[PARTITION_COLUMN].n_unique()
        assert_frame_equal(scanned(store), before)
        assert store.head_and_last_recorded() == (written.height, written["recorded_at"].max())
        assert store.files().height == days
        assert (metrics["numFilesRemoved"] > 0) == (files > days) == (store.version == version + 1)
        paths, inside = store.files_covering(after=0, cut=written.height)
        assert len(paths) == days and inside

    def test_vacuum_after_compact_keeps_every_scan_result(self, store: EventStore) -> None:
        for days in ([0, 1], [0], [1, 1]):
            append(store, days)
        before = scanned(store)
        store.compact()
        store.vacuum(retention_hours=0, dry_run=True)
        assert_frame_equal(scanned(store), before)
        store.vacuum(retention_hours=0, dry_run=False)
        store.refresh()
        assert_frame_equal(scanned(store), before)
        append(store, [2])
        assert scanned(store).height == before.height + 1


class TestMemoryStore(StoreContract):
    @pytest.fixture
    def new_store(self, tmp_path: Path) -> NewStore:
        counter = itertools.count()
        return lambda: MemoryEvents.create(tmp_path / f"memory {next(counter)}", SCHEMA)


class TestDeltaStore(StoreContract):
    @pytest.fixture
    def new_store(self, tmp_path: Path) -> NewStore:
        counter = itertools.count()

        def make() -> DeltaEvents:
            root = tmp_path / f"store {next(counter)} ✓"
            root.mkdir()
            return DeltaEvents.create(root / "events", SCHEMA)

        return make

    def test_vacuum_deletes_the_files_compaction_replaced(self, store: EventStore) -> None:
        """Delta keeps replaced files for time travel until vacuum; the memory store has none."""
        append(store, [0])
        append(store, [0])
        replaced = set(store.files()["path"])
        store.compact()
        assert set(store.vacuum(retention_hours=0, dry_run=True)) == replaced
        assert set(store.vacuum(retention_hours=0, dry_run=False)) == replaced
        assert not any((store.path / p).exists() for p in replaced)


def test_the_file_list_carried_over_an_own_append_is_the_one_a_fresh_listing_gives(tmp_path: Path) -> None:
    """DeltaEvents extends its cached file list by its own commit instead of relisting every file."""
    from eventlog import EventLog
    from support import added, make_schema

    log = EventLog.create(tmp_path / "store", make_schema())
    for i in range(3):
        log.append([added(f"s{i}", occurred_at=f"2024-03-0{1 + i % 2}T10:00:00.123456+00:00"), added("t")])
        carried = log.storage.files()
        fresh = type(log.storage)(log.path / "events").files()  # type: ignore[call-arg]
        assert carried.sort("path").equals(fresh.sort("path"))
