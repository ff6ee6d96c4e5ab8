"""Reading the log: cuts by seq, filters, and opening and creating stores."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest
from support import ADDED, AWKWARD_STREAMS, REMOVED, SELECT, added, make_schema, read_all, sample_records

from eventlog import EventLog, EventSchema, EventType, Field
from eventlog.errors import StoreExistsError, StoreNotFoundError, ValidationError


def test_scan_as_of_returns_exactly_the_events_up_to_that_seq(existing_log: EventLog) -> None:
    full = read_all(existing_log)
    for n in range(existing_log.head() + 1):
        cut = existing_log.scan(as_of=n).collect().sort("seq")
        assert cut.equals(full.filter(pl.col("seq") <= n)), n


def test_scan_as_of_beyond_the_head_is_the_whole_log(existing_log: EventLog) -> None:
    assert existing_log.scan(as_of=existing_log.head() + 100).collect().sort("seq").equals(read_all(existing_log))


def test_scan_filters_by_stream_with_awkward_names(existing_log: EventLog) -> None:
    full = read_all(existing_log)
    for stream in AWKWARD_STREAMS:
        got = existing_log.scan(streams=[stream]).collect().sort("seq")
        assert got.equals(full.filter(pl.col("stream_id") == stream))
    assert existing_log.scan(streams=["no such stream"]).collect().height == 0
    assert existing_log.scan(streams=[]).collect().height == 0


def test_scan_filters_by_event_type(existing_log: EventLog) -> None:
    full = read_all(existing_log)
    got = existing_log.scan(event_types=[SELECT, REMOVED]).collect().sort("seq")
    assert got.equals(full.filter(pl.col("event_type").is_in([SELECT, REMOVED])))
    assert set(got["event_type"]) == {SELECT, REMOVED}


def test_scan_filters_combine(existing_log: EventLog) -> None:
    full = read_all(existing_log)
    stream = AWKWARD_STREAMS[1]
    got = existing_log.scan(as_of=4, streams=[stream], event_types=[ADDED]).collect().sort("seq")
    want = full.filter((pl.col("seq") <= 4) & (pl.col("stream_id") == stream) & (pl.col("event_type") == ADDED))
    assert got.equals(want)
    assert got.height == 1


@pytest.mark.parametrize("option", ["streams", "event_types"])
def test_a_single_string_instead_of_a_list_of_names_is_rejected(existing_log: EventLog, option: str) -> None:
    with pytest.raises(ValidationError, match=option):
        existing_log.scan(**{option: "select"})  # type: ignore[arg-type]


def test_head_of_an_empty_log_is_zero(empty_log: EventLog) -> None:
    assert empty_log.head() == 0
    assert empty_log.stream_version("anything") == 0


def test_scan_of_an_empty_log_is_empty_with_the_schema_columns(empty_log: EventLog, schema: EventSchema) -> None:
    got = empty_log.scan().collect()
    assert got.height == 0
    assert dict(got.schema) == schema.columns()


def test_head_and_stream_version_follow_appends_by_other_log_objects(existing_log: EventLog) -> None:
    reader = EventLog.open(existing_log.path)
    head = reader.head()
    existing_log.append([added("late"), added("late")])
    assert reader.head() == head + 2
    assert reader.stream_version("late") == 2
    assert reader.scan(streams=["late"]).collect().height == 2


# --- opening and creating ---------------------------------------------------------------------


def test_open_on_a_missing_path_raises_store_not_found(tmp_path: Path) -> None:
    with pytest.raises(StoreNotFoundError) as caught:
        EventLog.open(tmp_path / "nothing here")
    assert isinstance(caught.value, FileNotFoundError)
    assert not EventLog.exists(tmp_path / "nothing here")


def test_open_on_a_directory_without_a_store_raises_store_not_found(tmp_path: Path) -> None:
    (tmp_path / "plain dir").mkdir()
    with pytest.raises(StoreNotFoundError):
        EventLog.open(tmp_path / "plain dir")


def test_create_on_an_existing_store_raises_and_keeps_it(existing_log: EventLog) -> None:
    head = existing_log.head()
    other = EventSchema([EventType("other", (Field("x", "int64"),))])
    with pytest.raises(StoreExistsError) as caught:
        EventLog.create(existing_log.path, other)
    assert isinstance(caught.value, FileExistsError)
    reopened = EventLog.open(existing_log.path)
    assert reopened.head() == head
    assert reopened.schema == existing_log.schema


def test_schema_round_trips_through_eventlog_json(existing_log: EventLog, schema: EventSchema) -> None:
    reopened = EventLog.open(existing_log.path)
    assert reopened.schema == schema
    assert reopened.schema.fingerprint() == schema.fingerprint()
    assert reopened.schema.payload == schema.payload
    stored = json.loads((existing_log.path / "eventlog.json").read_text())
    assert EventSchema.from_json(stored["schema"]) == schema


def test_reopened_log_enforces_the_stored_schema(existing_log: EventLog) -> None:
    reopened = EventLog.open(existing_log.path)
    with pytest.raises(ValidationError, match="at least 1"):
        reopened.append([added("a", quantity=0)])
    reopened.append([added("a", quantity=2)])
    assert read_all(existing_log)["quantity"][-1] == 2


@pytest.mark.parametrize("name", ["plain", "with space", "ünïcødé ✓ 日本", "semi;colon 'quote' \"dq\"", "100% a=b {c} ~d"])
def test_store_path_with_awkward_characters_reads_back_like_any_other(tmp_path: Path, name: str) -> None:
    log = EventLog.create(tmp_path / name, make_schema())
    records = sample_records()
    log.append(records[:3])
    log.append(records[3:])
    got = read_all(EventLog.open(tmp_path / name))
    assert got["event_id"].to_list() == [r["event_id"] for r in records]
    assert dict(got.schema) == make_schema().columns()
    assert log.scan(as_of=2, streams=[AWKWARD_STREAMS[1]]).collect()["seq"].sort().to_list() == [1]
    log.compact()
    assert read_all(log).equals(got)


def test_scan_returns_events_in_seq_order(existing_log: EventLog) -> None:
    assert existing_log.scan().collect()["seq"].to_list() == list(range(1, existing_log.head() + 1))
