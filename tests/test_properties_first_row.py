"""Property: a refused batch names its first offending row in batch order, whichever check finds it.

Valid ``item_added`` rows get defects of different validation stages (a type, an identifier,
an event type, a field of an event type, a bound, a repeated id) at random rows; the error must
name the smallest of those rows — for records and for a typed DataFrame alike.
"""

from __future__ import annotations

from typing import Any

import hypothesis.strategies as st
import polars as pl
import pytest
from hypothesis import given, settings
from support import ADDED, REMOVED, make_schema

from eventlog.core.validate import normalize
from eventlog.errors import ValidationError

SCHEMA = make_schema()


def _valid(i: int) -> dict[str, Any]:
    return {"event_type": ADDED, "stream_id": f"s{i % 3}", "sku": "k", "quantity": 1 + i % 5,
            "occurred_at": "2024-03-01T10:00:00+00:00", "event_id": f"id-{i}", "note": None}


#: Each defect makes its row offend, and only that row; the stage that finds it in brackets.
DEFECTS = {
    "unparsable timestamp": lambda r, i: r.update(occurred_at="yesterday"),  # [types]
    "year out of range": lambda r, i: r.update(occurred_at="0001-01-01T00:00:00+05:00"),  # [types: year 0]
    "null stream_id": lambda r, i: r.update(stream_id=None),  # [identifiers]
    "empty event_id": lambda r, i: r.update(event_id=""),  # [identifiers]
    "repeated event_id": lambda r, i: r.update(event_id="id-0"),  # [repeats], i > 0 only
    "unknown event type": lambda r, i: r.update(event_type="teleported"),  # [event types]
    "missing required field": lambda r, i: r.update(sku=None),  # [fields]
    "below the minimum": lambda r, i: r.update(quantity=0),  # [bounds]
    "field of another type": lambda r, i: r.update(note="hi"),  # [fields]
    "removal below its minimum": lambda r, i: r.update(event_type=REMOVED, quantity=-1),  # [bounds, other type]
}


@st.composite
def refused_batches(draw: st.DrawFn) -> tuple[list[dict[str, Any]], int]:
    n = draw(st.integers(2, 40))
    rows = [_valid(i) for i in range(n)]
    bad = draw(st.dictionaries(st.integers(1, n - 1), st.sampled_from(sorted(DEFECTS)), min_size=1, max_size=4))
    if draw(st.booleans()):  # row 0 may offend too, by anything but repeating itself
        bad[0] = draw(st.sampled_from(sorted(set(DEFECTS) - {"repeated event_id"})))
    for i, defect in bad.items():
        DEFECTS[defect](rows[i], i)
    return rows, min(bad)


TYPES = {"event_type": pl.String, "stream_id": pl.String, "sku": pl.String, "quantity": pl.Int64,
         "occurred_at": pl.String, "event_id": pl.String, "note": pl.String}


@pytest.mark.parametrize("shape", ["records", "polars"])
@settings(max_examples=60, deadline=None)
@given(case=refused_batches())
def test_the_error_names_the_first_offending_row_in_batch_order(case: tuple[list[dict[str, Any]], int],
                                                                 shape: str) -> None:
    rows, first = case
    batch: Any = rows if shape == "records" else pl.DataFrame(rows, schema=TYPES)
    with pytest.raises(ValidationError) as refused:
        normalize(batch, SCHEMA)
    assert refused.value.row == first, str(refused.value)


def test_a_later_type_error_does_not_hide_an_earlier_unknown_event_type() -> None:
    rows = [_valid(0), _valid(1), _valid(2)]
    rows[0]["event_type"] = "teleported"
    rows[2]["occurred_at"] = "yesterday"
    with pytest.raises(ValidationError, match="unknown event type") as refused:
        normalize(pl.DataFrame(rows, schema=TYPES), SCHEMA)
    assert refused.value.row == 0
