"""Appending: what goes in comes back, and the log fills in the envelope it owns."""

from __future__ import annotations

import datetime as dt
import uuid
from pathlib import Path
from types import SimpleNamespace

import polars as pl
import pytest
from support import (
    ADDED,
    AWKWARD_STREAMS,
    CHECKED_OUT,
    PAYLOAD_TYPES,
    REMOVED,
    added,
    as_arrow,
    as_polars,
    expected_payload,
    read_all,
)

from eventlog import AppendResult, EventLog, EventSchema

SHAPES = {"dicts": list, "polars": as_polars, "arrow": as_arrow}


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


# --- values ---------------------------------------------------------------------------------


def test_appended_batch_reads_back_exactly_in_order(empty_log: EventLog, sample_batch: list[dict]) -> None:
    empty_log.append(sample_batch)
    got = read_all(empty_log)
    assert got.height == len(sample_batch)
    for record, row in zip(sample_batch, got.iter_rows(named=True), strict=True):
        assert row["event_id"] == record["event_id"]
        assert row["stream_id"] == record["stream_id"]
        assert row["event_type"] == record["event_type"]
        assert row["occurred_at"] == record["occurred_at"]
        assert {name: row[name] for name in PAYLOAD_TYPES} == expected_payload(record)


def test_scan_has_the_schema_columns_and_types_in_order(existing_log: EventLog, schema: EventSchema) -> None:
    assert list(existing_log.scan().collect_schema().items()) == list(schema.columns().items())


def test_defaults_fill_only_the_event_types_that_declare_them(empty_log: EventLog) -> None:
    empty_log.append(
        [
            added("s"),  # gift -> False
            {"event_type": REMOVED, "stream_id": "s", "sku": "x"},  # quantity -> 1
            {"event_type": CHECKED_OUT, "stream_id": "s"},  # neither field: stays null
        ]
    )
    got = read_all(empty_log).select("gift", "quantity").rows()
    assert got == [(False, 1), (None, 1), (None, None)]


def test_rows_with_different_keys_are_filled_with_nulls(empty_log: EventLog) -> None:
    empty_log.append([added("s", unit_price=2.5), added("s", note=None), added("s", größe=-1.0)])
    got = read_all(empty_log).select("unit_price", "größe").rows()
    assert got == [(2.5, None), (None, None), (None, -1.0)]


# --- seq and stream_version -------------------------------------------------------------------


def test_seq_is_gapless_from_one_across_batches(empty_log: EventLog) -> None:
    for size in (1, 3, 2, 5):
        empty_log.append([added("s")] * size)
    assert read_all(empty_log)["seq"].to_list() == list(range(1, 12))
    assert empty_log.head() == 11


def test_stream_version_counts_each_stream_from_one_without_gaps(empty_log: EventLog) -> None:
    a, b, c = AWKWARD_STREAMS[:3]
    empty_log.append([added(a), added(b), added(a)])
    empty_log.append([added(c), added(a), added(b), added(b)])
    got = read_all(empty_log).select("stream_id", "stream_version").rows()
    assert got == [(a, 1), (b, 1), (a, 2), (c, 1), (a, 3), (b, 2), (b, 3)]


def test_stream_version_continues_from_another_log_objects_appends(empty_log: EventLog) -> None:
    other = EventLog.open(empty_log.path)
    empty_log.append([added("s")])
    other.append([added("s"), added("t")])
    empty_log.append([added("s")])
    got = read_all(empty_log).select("seq", "stream_id", "stream_version").rows()
    assert got == [(1, "s", 1), (2, "s", 2), (3, "t", 1), (4, "s", 3)]
    assert empty_log.stream_version("s") == other.stream_version("s") == 3


def test_stream_ids_that_differ_only_in_case_or_whitespace_are_different_streams(empty_log: EventLog) -> None:
    empty_log.append([added("cart"), added("Cart"), added("cart "), added("cart")])
    assert read_all(empty_log)["stream_version"].to_list() == [1, 1, 1, 2]


# --- event_id ---------------------------------------------------------------------------------


def test_missing_event_ids_are_generated_as_distinct_uuid7_in_batch_order(empty_log: EventLog) -> None:
    before = _now()
    empty_log.append([added("s")] * 50)
    after = _now()
    ids = read_all(empty_log)["event_id"].to_list()
    parsed = [uuid.UUID(i) for i in ids]
    assert [str(u) for u in parsed] == ids  # canonical lowercase 8-4-4-4-12 form
    assert {u.version for u in parsed} == {7}
    assert {u.variant for u in parsed} == {uuid.RFC_4122}
    assert len(set(ids)) == 50
    assert ids == sorted(ids)
    millis = [u.int >> 80 for u in parsed]
    assert all(int(before.timestamp() * 1000) <= ms <= int(after.timestamp() * 1000) for ms in millis)


def test_generated_event_ids_differ_between_batches(empty_log: EventLog) -> None:
    for _ in range(3):
        empty_log.append([added("s")] * 4)
    assert read_all(empty_log)["event_id"].n_unique() == 12


def test_given_event_ids_are_kept_and_missing_ones_generated(empty_log: EventLog) -> None:
    empty_log.append([added("s", event_id="mine; 'ü'"), added("s"), added("s", event_id=None)])
    ids = read_all(empty_log)["event_id"].to_list()
    assert ids[0] == "mine; 'ü'"
    assert uuid.UUID(ids[1]).version == uuid.UUID(ids[2]).version == 7


# --- occurred_at and recorded_at --------------------------------------------------------------


def test_missing_occurred_at_is_the_append_time(empty_log: EventLog) -> None:
    before = _now()
    result = empty_log.append([added("s")])
    after = _now()
    row = read_all(empty_log).row(0, named=True)
    assert before <= row["occurred_at"] <= after
    assert row["occurred_at"] == row["recorded_at"] == result.recorded_at


def test_given_occurred_at_is_kept_even_in_the_past_or_future(empty_log: EventLog) -> None:
    past = dt.datetime(1999, 12, 31, 23, 59, 59, 999999, tzinfo=dt.timezone.utc)
    future = dt.datetime(2100, 1, 1, tzinfo=dt.timezone.utc)
    empty_log.append([added("s", occurred_at=past), added("s", occurred_at=future)])
    assert read_all(empty_log)["occurred_at"].to_list() == [past, future]


def test_recorded_at_is_set_by_the_log_for_the_whole_batch(empty_log: EventLog) -> None:
    before = _now()
    result = empty_log.append([added("s", occurred_at=dt.datetime(2020, 1, 1, tzinfo=dt.timezone.utc))] * 3)
    after = _now()
    recorded = read_all(empty_log)["recorded_at"]
    assert recorded.n_unique() == 1
    assert before <= recorded[0] <= after
    assert recorded[0] == result.recorded_at


def test_recorded_at_never_decreases_in_seq_order_across_log_objects(empty_log: EventLog) -> None:
    logs = [empty_log, EventLog.open(empty_log.path)]
    for i in range(8):
        logs[i % 2].append([added("s")] * (1 + i % 3))
    assert read_all(empty_log)["recorded_at"].is_sorted()


def test_recorded_at_does_not_go_back_when_the_wall_clock_does(
    empty_log: EventLog, monkeypatch: pytest.MonkeyPatch
) -> None:
    wall = [dt.datetime(2030, 1, 1, tzinfo=dt.timezone.utc), dt.datetime(2029, 1, 1, tzinfo=dt.timezone.utc)]

    class SteppingClock(dt.datetime):
        @classmethod
        def now(cls, tz: dt.tzinfo | None = None) -> dt.datetime:  # type: ignore[override]
            return wall.pop(0)

    clock = SimpleNamespace(datetime=SteppingClock, timezone=dt.timezone, timedelta=dt.timedelta)
    monkeypatch.setattr("eventlog.writer.dt", clock)
    first = empty_log.append([added("s")])
    second = empty_log.append([added("s")])
    assert first.recorded_at == dt.datetime(2030, 1, 1, tzinfo=dt.timezone.utc)
    assert second.recorded_at >= first.recorded_at
    assert read_all(empty_log)["recorded_at"].is_sorted()


# --- result and shapes ------------------------------------------------------------------------


def test_append_result_reports_where_the_batch_landed(empty_log: EventLog) -> None:
    first = empty_log.append([added("s")] * 3)
    second = empty_log.append([added("t")] * 2)
    assert (first.first_seq, first.last_seq, first.count, first.duplicate) == (1, 3, 3, False)
    assert (second.first_seq, second.last_seq, second.count) == (4, 5, 2)
    assert second.version == empty_log.version > first.version
    assert isinstance(first, AppendResult)


@pytest.mark.parametrize("shape", ["polars", "arrow"])
def test_batch_shapes_give_identical_results(
    tmp_path: Path, schema: EventSchema, sample_batch: list[dict], shape: str
) -> None:
    reference = EventLog.create(tmp_path / "dicts", schema)
    other = EventLog.create(tmp_path / shape, schema)
    r1 = reference.append(sample_batch)
    r2 = other.append(SHAPES[shape](sample_batch))
    assert (r1.first_seq, r1.last_seq) == (r2.first_seq, r2.last_seq)
    assert read_all(other).drop("recorded_at").equals(read_all(reference).drop("recorded_at"))


@pytest.mark.parametrize("shape", list(SHAPES))
def test_every_shape_appends_to_the_same_log(empty_log: EventLog, sample_batch: list[dict], shape: str) -> None:
    empty_log.append([added("s")])
    result = empty_log.append(SHAPES[shape](sample_batch))
    assert (result.first_seq, result.last_seq) == (2, 1 + len(sample_batch))
    got = read_all(empty_log).filter(pl.col("seq") > 1)
    assert got["event_id"].to_list() == [r["event_id"] for r in sample_batch]


def test_a_lazy_frame_is_appended_like_a_data_frame(empty_log: EventLog, sample_batch: list[dict]) -> None:
    empty_log.append(as_polars(sample_batch).lazy())  # type: ignore[arg-type]
    assert read_all(empty_log)["event_id"].to_list() == [r["event_id"] for r in sample_batch]


def test_columns_may_come_in_any_order_and_narrower_types(empty_log: EventLog) -> None:
    frame = pl.DataFrame(
        {
            "quantity": pl.Series([5, 6], dtype=pl.Int8),
            "unit_price": pl.Series([1.5, 2.0], dtype=pl.Float32),
            "sku": pl.Series(["a", "b"], dtype=pl.Categorical),
            "stream_id": ["x", "y"],
            "event_type": [ADDED, ADDED],
        }
    )
    empty_log.append(frame)
    assert read_all(empty_log).select("stream_id", "sku", "quantity", "unit_price").rows() == [
        ("x", "a", 5, 1.5),
        ("y", "b", 6, 2.0),
    ]


def test_a_writer_renews_the_stream_version_cache_so_the_next_process_reads_a_short_tail(
    empty_log: EventLog, monkeypatch: pytest.MonkeyPatch
) -> None:
    import eventlog.writer

    monkeypatch.setattr(eventlog.writer.StreamVersions, "PERSIST_AFTER", 3)
    for i in range(4):  # one process, its versions only ever advanced in memory
        empty_log.append([added("a"), added(f"b{i}")])
    saved = sorted(p.name for p in (empty_log.path / "cache").glob("streams-*.parquet"))
    assert saved == [f"streams-{4:015d}.parquet", f"streams-{8:015d}.parquet"]
    fresh = EventLog.open(empty_log.path)
    assert fresh.stream_version("a") == 4 and fresh.stream_version("b3") == 1
