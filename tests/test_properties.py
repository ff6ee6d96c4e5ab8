"""Property: any sequence of valid appends reads back as a plain Python model of the log says.

The model is the naive definition: a loop that numbers events 1, 2, 3... and counts each
stream's events. Whatever the log does vectorised (joins, window functions, Delta file
layout, statistics) must agree with it.
"""

from __future__ import annotations

import datetime as dt
import tempfile
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st
from support import (
    ADDED,
    AWKWARD_STREAMS,
    CHECKED_OUT,
    PAYLOAD_TYPES,
    REMOVED,
    SELECT,
    as_arrow,
    as_polars,
    expected_payload,
    read_all,
)

from eventlog import EventLog, EventSchema

UTC = dt.timezone.utc
ZONES = [UTC, dt.timezone(dt.timedelta(hours=5, minutes=30)), dt.timezone(-dt.timedelta(hours=8))]

texts = st.text(max_size=12)
streams = st.sampled_from(AWKWARD_STREAMS) | st.text(min_size=1, max_size=12)
timestamps = st.datetimes(
    min_value=dt.datetime(2000, 1, 1), max_value=dt.datetime(2030, 12, 31), timezones=st.sampled_from(ZONES)
)
finite = st.floats(allow_nan=False, allow_infinity=False)


def _optional(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.none() | strategy


payloads: dict[str, st.SearchStrategy[dict[str, Any]]] = {
    ADDED: st.fixed_dictionaries(
        {"sku": texts, "quantity": st.integers(1, 1_000_000)},
        optional={
            "unit_price": _optional(st.floats(min_value=0, allow_nan=False, allow_infinity=False)),
            "gift": _optional(st.booleans()),
            "expires_at": _optional(timestamps),
            "delivery_on": _optional(st.dates()),
            "größe": _optional(finite),
        },
    ),
    REMOVED: st.fixed_dictionaries({"sku": texts}, optional={"quantity": _optional(st.integers(1, 1_000_000))}),
    SELECT: st.fixed_dictionaries({}, optional={"note": _optional(texts)}),
    CHECKED_OUT: st.just({}),
}


@st.composite
def events(draw: st.DrawFn) -> dict[str, Any]:
    event_type = draw(st.sampled_from(list(payloads)))
    row = {"event_type": event_type, "stream_id": draw(streams), **draw(payloads[event_type])}
    if draw(st.booleans()):
        row["occurred_at"] = draw(timestamps)
    if draw(st.booleans()):
        row["event_id"] = None  # given ids are numbered by the test: they must be unique
    return row


batches = st.lists(
    st.tuples(st.lists(events(), min_size=1, max_size=8), st.sampled_from(["dicts", "polars", "arrow"])),
    min_size=1,
    max_size=5,
)


@dataclass
class Model:
    """The log as a list of rows, built one event at a time."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    versions: dict[str, int] = field(default_factory=lambda: defaultdict(int))

    def append(self, batch: list[dict[str, Any]]) -> tuple[int, int]:
        first = len(self.rows) + 1
        for event in batch:
            self.versions[event["stream_id"]] += 1
            occurred = event.get("occurred_at")
            self.rows.append(
                {
                    "seq": len(self.rows) + 1,
                    "event_id": event.get("event_id"),
                    "stream_id": event["stream_id"],
                    "stream_version": self.versions[event["stream_id"]],
                    "event_type": event["event_type"],
                    "occurred_at": None if occurred is None else occurred.astimezone(UTC),
                    **expected_payload(event),
                }
            )
        return first, len(self.rows)


def _build(path: Path, schema: EventSchema, plan: list[tuple[list[dict[str, Any]], str]]) -> tuple[EventLog, Model]:
    log, model = EventLog.create(path, schema), Model()
    shapes = {"dicts": list, "polars": as_polars, "arrow": as_arrow}
    for batch_no, (batch, shape) in enumerate(plan):
        batch = [dict(e) for e in batch]
        for i, event in enumerate(batch):
            if "event_id" in event:
                event["event_id"] = f"given {batch_no}.{i}; 'ü'"
        result = log.append(shapes[shape](batch))
        assert (result.first_seq, result.last_seq) == model.append(batch)
    return log, model


def _check_generated_envelope(got: pl.DataFrame, model: Model) -> None:
    """What the model cannot predict: generated ids, append times."""
    for row, want in zip(got.iter_rows(named=True), model.rows, strict=True):
        if want["event_id"] is None:
            assert uuid.UUID(row["event_id"]).version == 7
        if want["occurred_at"] is None:
            assert row["occurred_at"] == row["recorded_at"]
    assert got["event_id"].n_unique() == got.height
    assert got["recorded_at"].is_sorted()


@settings(max_examples=30, deadline=None)
@given(plan=batches)
def test_appends_read_back_as_the_reference_model(schema: EventSchema, plan: list[Any]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        log, model = _build(Path(tmp) / "store", schema, plan)
        got = read_all(log)
        predictable = ["seq", "stream_id", "stream_version", "event_type", *PAYLOAD_TYPES]
        assert got.select(predictable).to_dicts() == [{k: r[k] for k in predictable} for r in model.rows]
        for column in ("event_id", "occurred_at"):  # kept where given
            given_values = [(r["seq"], r[column]) for r in model.rows if r[column] is not None]
            stored = dict(got.select("seq", column).rows())
            assert [(seq, stored[seq]) for seq, _ in given_values] == given_values
        _check_generated_envelope(got, model)
        assert log.head() == len(model.rows)
        for stream, version in model.versions.items():
            assert log.stream_version(stream) == version


@settings(max_examples=25, deadline=None)
@given(plan=batches, data=st.data())
def test_filtered_scans_agree_with_the_reference_model(
    schema: EventSchema, plan: list[Any], data: st.DataObject
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        log, model = _build(Path(tmp) / "store", schema, plan)
        known_streams = sorted(model.versions)
        as_of = data.draw(st.none() | st.integers(0, len(model.rows) + 2), label="as_of")
        wanted_streams = data.draw(st.none() | st.lists(st.sampled_from([*known_streams, "absent"])), label="streams")
        wanted_types = data.draw(st.none() | st.lists(st.sampled_from(list(payloads))), label="event_types")
        got = log.scan(as_of=as_of, streams=wanted_streams, event_types=wanted_types).collect().sort("seq")
        want = [
            r["seq"]
            for r in model.rows
            if (as_of is None or r["seq"] <= as_of)
            and (wanted_streams is None or r["stream_id"] in wanted_streams)
            and (wanted_types is None or r["event_type"] in wanted_types)
        ]
        assert got["seq"].to_list() == want
        by_seq = {r["seq"]: r for r in model.rows}
        assert got.select("stream_id", "stream_version").rows() == [
            (by_seq[s]["stream_id"], by_seq[s]["stream_version"]) for s in want
        ]
