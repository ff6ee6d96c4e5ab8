"""eventlog.spark reads: the events and the state of a store on Spark equal the local engines', exactly.

The local engines are the reference (their agreement with the naive replay is tested
elsewhere): every Spark result is compared value for value and type for type. Stores hold
20k generated events in several commits (so seq, business-time and known_at cuts differ),
under awkward paths. All Spark tests share one session (``spark`` in conftest.py).
"""

from __future__ import annotations

import datetime as dt
import urllib.parse
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from polars.testing import assert_frame_equal

import eventlog.spark as on_spark
from eventlog import INVENTORY_SCHEMA, EventSchema, EventType, Field, Inventory, Upcaster
from eventlog.datagen import generate_frame
from eventlog.errors import SchemaMismatchError, StorePathError

pytestmark = [pytest.mark.xdist_group("spark")]

UTC = dt.timezone.utc
ADDED = "item_added"
BATCHES = 4
EVENTS = 20_000


def build(path: Path, *, seed: int = 0) -> Inventory:
    """20k events in four commits, a twentieth of them backdated (business time out of log order)."""
    inv = Inventory.open(path)
    events = generate_frame(EVENTS, seed=seed, n_items=60, days=90, late_fraction=0.05)
    for part in events.iter_slices(EVENTS // BATCHES):
        inv.record(part)
    return inv


def local(frame: Any) -> pl.DataFrame:
    """A Spark DataFrame as Polars, through Arrow (as a user would take a result home)."""
    return pl.DataFrame(pl.from_arrow(frame.toArrow()))


def commit_times(inv: Inventory) -> list[dt.datetime]:
    """The recorded_at of each append commit, oldest first."""
    times = inv.log.scan().group_by("recorded_at").agg().sort("recorded_at").collect()
    return times.get_column("recorded_at").to_list()


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Inventory:
    return build(tmp_path_factory.mktemp("spark-read") / "store with spaces; 'quotes' ✓")


# --- events -----------------------------------------------------------------------------------


def _local_events(inv: Inventory, as_of: Any = None, known_at: Any = None) -> pl.DataFrame:
    head = inv.log.head()
    events = inv.log.scan()
    if isinstance(known_at, dt.datetime):
        known_at = inv.log.scan().filter(pl.col("recorded_at") <= known_at).select(pl.col("seq").max()).collect().item()
    seq = min(x for x in (as_of, known_at, head) if isinstance(x, int))
    events = events.filter(pl.col("seq") <= seq)
    if isinstance(as_of, dt.datetime):
        events = events.filter(pl.col("occurred_at") <= as_of)
    return events.collect()


def test_events_at_seq_and_time_cuts_are_the_logs_events(spark: Any, store: Inventory) -> None:
    second_commit = commit_times(store)[1]
    middle = dt.datetime(2024, 2, 10, 12, tzinfo=UTC)
    cuts: list[dict[str, Any]] = [{}, {"as_of": 12_345}, {"as_of": middle},
                                  {"as_of": middle, "known_at": second_commit}]
    for cut in cuts:
        got = local(on_spark.events(spark, store.path, **cut)).sort("seq")
        want = _local_events(store, **cut)
        assert got.height == want.height > 0, cut
        assert_frame_equal(got.drop("occurred_on"), want)
        assert got.get_column("occurred_on").equals(want.get_column("occurred_at").dt.date(), check_names=False)


# --- stock ------------------------------------------------------------------------------------


def test_stock_equals_inventory_stock_at_every_kind_of_cut(spark: Any, store: Inventory) -> None:
    recorded = commit_times(store)
    assert len(recorded) == BATCHES
    cuts: list[dict[str, Any]] = [
        {},
        {"as_of": 7_777},
        {"as_of": "2024-02-10"},  # text, as the CLI and SQL take it: the end of that UTC day
        {"known_at": recorded[1]},
        {"as_of": dt.datetime(2024, 3, 1, 6, tzinfo=UTC), "known_at": 11_000},
    ]
    fresh = Inventory.open(store.path)  # no state cached from the writes
    for cut in cuts:
        assert_frame_equal(local(on_spark.stock(spark, store.path, **cut)), fresh.stock(**cut))


def test_a_store_given_as_a_file_uri_reads_the_same(spark: Any, store: Inventory) -> None:
    uri = "file://" + urllib.parse.quote(str(store.path))
    assert_frame_equal(local(on_spark.stock(spark, uri, as_of=5_000)), store.stock(as_of=5_000))


def test_a_store_in_object_storage_is_refused_with_what_to_do(spark: Any) -> None:
    with pytest.raises(StorePathError, match="Mount the bucket"):
        on_spark.events(spark, "s3://bucket/store")


def test_stock_of_a_store_that_is_no_inventory_is_refused(spark: Any, tmp_path: Path) -> None:
    from eventlog import EventLog

    log = EventLog.create(tmp_path / "pings", EventSchema([EventType("ping", (Field("n", "int64"),))]))
    with pytest.raises(SchemaMismatchError):
        on_spark.stock(spark, log)


# --- the folder is not the table -----------------------------------------------------------------


def test_after_compact_superseded_files_are_on_disk_and_not_read(spark: Any, tmp_path: Path) -> None:
    # Braces too: Spark (Hadoop) reads "{a,b}" in a path as a glob unless it is escaped.
    inv = build(tmp_path / "compacted {a,b}", seed=1)
    before = inv.stock()
    assert inv.compact()["events"]["numFilesRemoved"] > 0
    events_dir = inv.path / "events"
    on_disk = sum(1 for _ in events_dir.rglob("*.parquet"))
    assert on_disk > inv.log.files().height  # superseded files are still there until vacuum
    head = inv.log.head()
    assert on_spark.events(spark, inv.path).count() == head
    # The trap the file list avoids: the folder read counts the superseded files' rows again.
    assert spark.read.parquet(str(events_dir).replace("{", "\\{").replace("}", "\\}")).count() > head
    assert_frame_equal(local(on_spark.stock(spark, inv.path)), before)


# --- schema evolution ----------------------------------------------------------------------------

#: The inventory with a new field with a default, and an upcaster that reads old additions' origins in capitals.
EVOLVED = EventSchema(
    tuple(
        EventType(et.name, et.fields + ((Field("grade", "string", default="B"),) if et.name == ADDED else ()))
        for et in INVENTORY_SCHEMA.event_types
    ),
    name=INVENTORY_SCHEMA.name,
)
UPCASTERS = [Upcaster(ADDED, "origin", "upper(origin)")]


def test_after_evolve_old_events_read_through_the_upcaster_and_the_default(spark: Any, tmp_path: Path) -> None:
    inv = build(tmp_path / "evolved", seed=2)
    inv.log.evolve(EVOLVED, upcasters=UPCASTERS)
    later = generate_frame(500, seed=3, n_items=60, days=90).filter(pl.col("event_type") == ADDED)
    inv.log.append(later.rename({"item": "stream_id"}).with_columns(grade=pl.lit("A")))  # record() knows no grade
    fresh = Inventory.open(inv.path)
    got = local(on_spark.events(spark, inv.path)).sort("seq")
    assert_frame_equal(got.drop("occurred_on"), fresh.log.scan().collect())
    assert set(got.filter(pl.col("seq") <= EVENTS).get_column("grade").unique()) <= {"B", None}
    old_adds = got.filter((pl.col("event_type") == ADDED) & (pl.col("seq") <= EVENTS)).get_column("origin")
    assert old_adds.equals(old_adds.str.to_uppercase()) and old_adds.null_count() == 0
    assert_frame_equal(local(on_spark.stock(spark, inv.path)), fresh.stock())
    assert_frame_equal(local(on_spark.stock(spark, inv.path, as_of=dt.date(2024, 2, 1))),
                       fresh.stock(as_of=dt.date(2024, 2, 1)))
