"""The event schema: which event types a store accepts and their typed payload fields.

A schema is declared once, persisted with the store (``eventlog.json``) and enforced on
every append. All event types share one table, so a field name means the same type in
every event type that uses it; payload columns are nullable and are null on events whose
type does not have that field.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any, Literal

import polars as pl

from eventlog.errors import SchemaError, ValidationError

FieldType = Literal["int64", "float64", "string", "bool", "timestamp", "date"]

_POLARS_TYPES: dict[str, pl.DataType] = {
    "int64": pl.Int64(),
    "float64": pl.Float64(),
    "string": pl.String(),
    "bool": pl.Boolean(),
    "timestamp": pl.Datetime("us", "UTC"),
    "date": pl.Date(),
}

#: Columns the log owns. Users give event_type and stream_id, may give event_id and
#: occurred_at; seq, stream_version and recorded_at are always set by the log.
ENVELOPE: dict[str, pl.DataType] = {
    "seq": pl.Int64(),
    "event_id": pl.String(),
    "stream_id": pl.String(),
    "stream_version": pl.Int64(),
    "event_type": pl.String(),
    "occurred_at": pl.Datetime("us", "UTC"),
    "recorded_at": pl.Datetime("us", "UTC"),
}
LOG_OWNED = ("seq", "stream_version", "recorded_at")
#: The Delta partition column: the UTC date of occurred_at. Internal to storage.
PARTITION_COLUMN = "occurred_on"


@dataclass(frozen=True)
class Field:
    """A typed payload field.

    Example:
        >>> Field("quantity", "int64", default=1, min=1)
        Field(name='quantity', type='int64', required=True, default=1, min=1, max=None)
    """

    name: str
    type: FieldType
    required: bool = True
    default: Any = None
    min: float | int | None = None
    max: float | int | None = None

    def __post_init__(self) -> None:
        if self.type not in _POLARS_TYPES:
            raise SchemaError(f"field {self.name!r}: unknown type {self.type!r}; use one of {sorted(_POLARS_TYPES)}",
                              field=self.name)
        if self.name in ENVELOPE or self.name == PARTITION_COLUMN:
            raise SchemaError(f"field {self.name!r} clashes with an envelope column; rename it", field=self.name)
        if not self.name.isidentifier():
            raise SchemaError(f"field {self.name!r}: names must be identifiers (letters, digits, _)", field=self.name)

    @property
    def dtype(self) -> pl.DataType:
        return _POLARS_TYPES[self.type]

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}


@dataclass(frozen=True)
class EventType:
    """An event type and its payload fields.

    Example:
        >>> EventType("item_added", (Field("quantity", "int64", default=1),)).name
        'item_added'
    """

    name: str
    fields: tuple[Field, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "fields", tuple(self.fields))
        names = [f.name for f in self.fields]
        if len(set(names)) != len(names):
            twice = sorted({n for n in names if names.count(n) > 1})
            raise SchemaError(f"event type {self.name!r} declares the field {twice[0]!r} twice; fields: {names}",
                              event_type=self.name, field=twice[0])

    def field(self, name: str) -> Field | None:
        return next((f for f in self.fields if f.name == name), None)


@dataclass(frozen=True)
class EventSchema:
    """The set of event types a store accepts.

    Example:
        >>> s = EventSchema([EventType("ping")], name="demo")
        >>> s.event_type_names
        ['ping']
    """

    event_types: tuple[EventType, ...]
    name: str = "events"
    payload: dict[str, pl.DataType] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "event_types", tuple(self.event_types))
        if not self.event_types:
            raise SchemaError(f"schema {self.name!r} has no event type; it needs at least one")
        payload: dict[str, pl.DataType] = {}
        for et in self.event_types:
            for f in et.fields:
                if f.name in payload and payload[f.name] != f.dtype:
                    first = next(e.name for e in self.event_types if e.field(f.name) is not None)
                    raise SchemaError(
                        f"field {f.name!r} has type {payload[f.name]} in event type {first!r} and "
                        f"{f.dtype} in {et.name!r}; a field name must mean one type",
                        event_type=et.name, field=f.name,
                    )
                payload[f.name] = f.dtype
        object.__setattr__(self, "payload", payload)

    @property
    def event_type_names(self) -> list[str]:
        return [et.name for et in self.event_types]

    def event_type(self, name: str) -> EventType:
        for et in self.event_types:
            if et.name == name:
                return et
        raise ValidationError(f"unknown event type {name!r}; known: {self.event_type_names}", field="event_type")

    def columns(self) -> dict[str, pl.DataType]:
        """Envelope then payload columns, in stored order."""
        return {**ENVELOPE, **self.payload}

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "event_types": [
                {"name": et.name, "fields": [f.to_json() for f in et.fields]} for et in self.event_types
            ],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> EventSchema:
        return cls(
            tuple(
                EventType(et["name"], tuple(Field(**f) for f in et["fields"])) for et in data["event_types"]
            ),
            name=data.get("name", "events"),
        )

    def fingerprint(self) -> str:
        """A stable text form, for equality checks across processes."""
        return json.dumps(self.to_json(), sort_keys=True, default=str)


@dataclass(frozen=True)
class Upcaster:
    """How a field reads on events committed before the schema version that declared it.

    ``expression`` is a SQL expression over the stored columns of the same event (Polars
    and DuckDB both run it, so keep to SQL they share: column names, CAST, arithmetic,
    CASE, COALESCE, common string functions; ``evolve`` refuses one whose results differ
    between the two on the stored events). It is applied at read time, vectorised, to
    the events of ``event_type`` committed before ``from_version``; the stored data is never
    rewritten and the old column stays readable (``EventLog.scan(upcast=False)``). Give
    upcasters to ``EventLog.evolve``, which sets ``from_version`` to the version it creates.

    Example:
        >>> Upcaster("item_added", "color", "colour")  # a rename
        Upcaster('item_added', 'color', 'colour')
        >>> Upcaster("item_added", "price_cents", "CAST(price AS BIGINT)").reads()  # a retype
        ['price']
    """

    event_type: str
    field: str
    expression: str
    from_version: int | None = dataclasses.field(default=None, kw_only=True)

    def __post_init__(self) -> None:
        if not isinstance(self.expression, str) or not self.expression.strip():
            raise SchemaError(f"upcaster of {self.event_type!r}.{self.field!r}: the expression is SQL text",
                              event_type=self.event_type, field=self.field)
        if self.field in ENVELOPE or self.field == PARTITION_COLUMN:
            raise SchemaError(f"upcaster of {self.event_type!r}.{self.field!r}: {self.field!r} is an envelope column, "
                              "set by the log; it cannot be upcast", event_type=self.event_type, field=self.field)
        try:
            pl.sql_expr(self.expression)
        except (pl.exceptions.PolarsError, ValueError) as exc:
            raise SchemaError(f"upcaster of {self.event_type!r}.{self.field!r}: {self.expression!r} is not a SQL "
                              f"expression Polars can run ({exc})", event_type=self.event_type, field=self.field) from None

    def reads(self) -> list[str]:
        """The stored columns the expression reads."""
        return sorted(set(pl.sql_expr(self.expression).meta.root_names()))

    def to_json(self) -> dict[str, Any]:
        return {"event_type": self.event_type, "field": self.field, "expression": self.expression,
                "from_version": self.from_version}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Upcaster:
        return cls(data["event_type"], data["field"], data["expression"], from_version=data.get("from_version"))

    def __repr__(self) -> str:
        tail = "" if self.from_version is None else f", from_version={self.from_version}"
        return f"Upcaster({self.event_type!r}, {self.field!r}, {self.expression!r}{tail})"
