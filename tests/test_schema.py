"""A schema defined wrongly is a SchemaError (a ValueError too) naming the event type and field at fault."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from eventlog import EventSchema, EventType, Field, Upcaster
from eventlog.errors import EventLogError, SchemaError

BAD_DEFINITIONS: list[Any] = [
    pytest.param(lambda: Field("qty", "int"), None, "qty", "unknown type 'int'", id="unknown-type"),
    pytest.param(lambda: Field("seq", "int64"), None, "seq", "clashes with an envelope column", id="envelope-name"),
    pytest.param(lambda: Field("occurred_on", "date"), None, "occurred_on", "clashes with an envelope column",
                 id="partition-name"),
    pytest.param(lambda: Field("my field", "string"), None, "my field", "names must be identifiers", id="not-identifier"),
    pytest.param(lambda: EventType("added", (Field("qty", "int64"), Field("qty", "int64"))), "added", "qty",
                 "declares the field 'qty' twice", id="field-twice"),
    pytest.param(lambda: EventSchema((), name="shop"), None, None, "schema 'shop' has no event type", id="no-event-type"),
    pytest.param(
        lambda: EventSchema((EventType("added", (Field("qty", "int64"),)), EventType("counted", (Field("qty", "string"),)))),
        "counted", "qty", "type Int64 in event type 'added' and String in 'counted'", id="one-name-two-types",
    ),
    pytest.param(lambda: Upcaster("added", "qty", "  "), "added", "qty", "the expression is SQL text", id="blank-upcaster"),
    pytest.param(lambda: Upcaster("added", "recorded_at", "now()"), "added", "recorded_at", "is an envelope column",
                 id="upcast-envelope"),
    pytest.param(lambda: Upcaster("added", "qty", "CAST(("), "added", "qty", "is not a SQL expression", id="bad-sql"),
]


@pytest.mark.parametrize(("define", "event_type", "field", "message"), BAD_DEFINITIONS)
def test_a_bad_definition_is_a_schema_error_naming_what_is_at_fault(
    define: Callable[[], object], event_type: str | None, field: str | None, message: str
) -> None:
    with pytest.raises(SchemaError, match=message) as info:
        define()
    assert isinstance(info.value, ValueError) and isinstance(info.value, EventLogError)
    assert (info.value.event_type, info.value.field) == (event_type, field)
    if field is not None:
        assert repr(field) in str(info.value)
    if event_type is not None:
        assert repr(event_type) in str(info.value)
