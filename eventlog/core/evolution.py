"""A store's schema versions, the rules of compatible evolution, and how old events are read.

The schema of a store has versions 1, 2, ... Version ``v`` is in force for the events with
``first_seq(v) <= seq < first_seq(v + 1)``: evolution happens under the writer lock, so no
commit straddles a boundary. Stored events are never rewritten. Reading an event committed
under an older version as the current schema describes it takes *read rules*, applied
vectorised at read time (Polars in ``EventLog.scan``, SQL in the DuckDB fold and views):

- an :class:`~eventlog.core.schema.Upcaster` declared with version ``v`` computes its field, for
  events of its type with ``seq < first_seq(v)``, from the stored columns (a rename:
  ``"old_name"``; a retype: ``"CAST(old AS BIGINT)"``);
- a field that version ``v`` added to an existing event type with a default — or that ``v``
  made required, with a default — reads as that default on those events where it is null.

Rules run version by version, oldest first, each over the result of the ones before, so
an upcaster of version 3 sees the values version 2's upcasters computed. Without any rule
(every store that never evolved) readers run exactly as before.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import polars as pl

from eventlog.errors import SchemaEvolutionError
from eventlog.core.schema import PARTITION_COLUMN, EventSchema, EventType, Field, Upcaster

_DUCK_TYPES = {"int64": "BIGINT", "float64": "DOUBLE", "string": "VARCHAR", "bool": "BOOLEAN",
               "timestamp": "TIMESTAMPTZ", "date": "DATE"}


@dataclass(frozen=True)
class SchemaVersion:
    """One version of a store's schema: in force from ``first_seq``, with its upcasters."""

    version: int
    first_seq: int
    schema: EventSchema
    upcasters: tuple[Upcaster, ...] = ()
    evolved_at: str | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"version": self.version, "first_seq": self.first_seq, "schema": self.schema.to_json()}
        if self.upcasters:
            out["upcasters"] = [u.to_json() for u in self.upcasters]
        if self.evolved_at is not None:
            out["evolved_at"] = self.evolved_at
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> SchemaVersion:
        return cls(
            version=int(data["version"]),
            first_seq=int(data["first_seq"]),
            schema=EventSchema.from_json(data["schema"]),
            upcasters=tuple(Upcaster.from_json(u) for u in data.get("upcasters", ())),
            evolved_at=data.get("evolved_at"),
        )


@dataclass(frozen=True)
class ReadRule:
    """How ``field`` of ``event_type`` reads on events committed before ``first_seq``."""

    version: int
    first_seq: int
    event_type: str
    field: Field
    expression: str | None  # an upcaster's SQL; None for a read default
    tag: str = "upcaster"

    @property
    def name(self) -> str:
        return self.field.name

    def reads(self) -> set[str]:
        """The columns the rule's value depends on (its target too, for a read default)."""
        if self.expression is None:
            return {self.name}
        return set(pl.sql_expr(self.expression).meta.root_names())

    def polars(self) -> pl.Expr:
        if self.expression is None:
            return pl.coalesce(pl.col(self.name), pl.lit(_default(self.field), dtype=self.field.dtype))
        return pl.sql_expr(self.expression).cast(self.field.dtype)

    def sql(self) -> str:
        if self.expression is None:
            return f"coalesce({_ident(self.name)}, {_sql_literal(self.field)})"
        return f"CAST(({self.expression}) AS {_DUCK_TYPES[self.field.type]})"

    def identity(self) -> list[Any]:
        value = self.expression if self.expression is not None else ["default", self.field.default]
        return [self.version, self.first_seq, self.event_type, self.name, self.field.type, value]


class SchemaHistory:
    """Every schema version of a store, oldest first, and the read rules they imply."""

    def __init__(self, versions: Sequence[SchemaVersion]) -> None:
        self.versions = tuple(versions)
        self.current = self.versions[-1]
        self.schema = self.current.schema
        self.version = self.current.version
        self.rules = _rules(self.versions)
        columns: dict[str, pl.DataType] = {}
        for v in self.versions:
            columns.update({c: t for c, t in v.schema.columns().items() if c not in columns})
        #: Every column some version declared: all exist in the events table.
        self.columns = columns
        self._fingerprints: dict[tuple[Any, ...], str | None] = {}

    # --- persistence -----------------------------------------------------------------------

    @classmethod
    def from_meta(cls, meta: Mapping[str, Any]) -> SchemaHistory:
        """From ``eventlog.json``; a store that never evolved has one implicit version."""
        if "schema_history" in meta:
            return cls([SchemaVersion.from_json(v) for v in meta["schema_history"]])
        return cls([SchemaVersion(1, 1, EventSchema.from_json(meta["schema"]))])

    def to_meta(self) -> dict[str, Any]:
        meta: dict[str, Any] = {"schema": self.schema.to_json()}
        if len(self.versions) > 1:
            meta["schema_version"] = self.version
            meta["schema_history"] = [v.to_json() for v in self.versions]
        return meta

    def schema_of(self, version: int) -> EventSchema | None:
        return next((v.schema for v in self.versions if v.version == version), None)

    # --- read rules ------------------------------------------------------------------------

    def rules_for(self, columns: Iterable[str] | None = None, event_types: Iterable[str] | None = None) -> list[ReadRule]:
        """The rules that can change the values of ``columns`` on events of ``event_types``.

        ``None`` means all. Transitive: a rule whose expression reads a column another rule
        computes brings that rule in too.
        """
        types: list[str | None] = [None] if event_types is None else list(event_types)
        names = set(self.schema.columns()) | set(self.columns) if columns is None else set(columns)
        wanted = {(t, c) for t in types for c in names}
        chosen: list[ReadRule] = []
        changed = True
        while changed:
            changed = False
            for rule in self.rules:
                if rule not in chosen and ((rule.event_type, rule.name) in wanted or (None, rule.name) in wanted):
                    chosen.append(rule)
                    # it applies to events of its own type only, and depends on what it reads there
                    wanted |= {(rule.event_type, c) for c in rule.reads()}
                    changed = True
        return sorted(chosen, key=lambda r: (r.version, r.name, r.event_type))

    def fingerprint(self, columns: Iterable[str] | None = None, event_types: Iterable[str] | None = None) -> str | None:
        """A short hash of the rules that affect ``columns`` of ``event_types`` (None: no rule does)."""
        if not self.rules:
            return None
        key = (None if columns is None else frozenset(columns), None if event_types is None else frozenset(event_types))
        if key not in self._fingerprints:
            rules = self.rules_for(columns, event_types)
            text = json.dumps([r.identity() for r in rules], sort_keys=True, default=str)
            self._fingerprints[key] = hashlib.sha256(text.encode()).hexdigest()[:16] if rules else None
        return self._fingerprints[key]

    def apply(self, lf: pl.LazyFrame, rules: Sequence[ReadRule] | None = None) -> pl.LazyFrame:
        """``lf`` (stored columns, ``seq`` and ``event_type`` included) with the rules applied."""
        for stage in _stages(self.rules if rules is None else rules):
            exprs = []
            for name, group in stage.items():
                expr: Any = pl
                for rule in group:
                    cond = (pl.col("event_type") == rule.event_type) & (pl.col("seq") < rule.first_seq)
                    expr = expr.when(cond).then(rule.polars())
                exprs.append(expr.otherwise(pl.col(name)).alias(name))
            lf = lf.with_columns(exprs)
        return lf

    def sql_source(self, source: str, rules: Sequence[ReadRule] | None = None, *, guard: bool = True) -> str:
        """A FROM item over ``source`` (stored columns) with the rules applied, in DuckDB SQL.

        With ``guard``, every column of every version is present even when no file in
        ``source`` has it (files written before a column was added lack it).
        """
        rules = self.rules if rules is None else rules
        if guard and len(self.versions) > 1:
            nulls = ", ".join(f"CAST(NULL AS {_duck_type(t)}) AS {_ident(c)}" for c, t in self.columns.items())
            source = f"(SELECT * FROM {source} UNION ALL BY NAME SELECT {nulls} WHERE FALSE)"
        for stage in _stages(rules):
            replaced = []
            for name, group in stage.items():
                arms = " ".join(
                    f"WHEN event_type = {_sql_string(r.event_type)} AND seq < {r.first_seq} THEN {r.sql()}" for r in group
                )
                replaced.append(f"CASE {arms} ELSE {_ident(name)} END AS {_ident(name)}")
            source = f"(SELECT * REPLACE ({', '.join(replaced)}) FROM {source})"
        return source

    # --- evolution -------------------------------------------------------------------------

    def evolve(
        self, new: EventSchema, upcasters: Sequence[Upcaster], *, first_seq: int, stored: Mapping[str, pl.DataType]
    ) -> SchemaHistory:
        """The history with ``new`` as its next version, or ``self`` when nothing changes.

        Raises:
            SchemaEvolutionError: the change is not a compatible evolution (see ``check``).
        """
        version = self.version + 1
        ups = tuple(_numbered(u, version) for u in upcasters)
        if not ups and new.to_json() == self.schema.to_json():
            return self
        check(self.schema, new, ups, stored=stored, columns=self.columns)
        now = dt.datetime.now(dt.timezone.utc).isoformat()
        return SchemaHistory([*self.versions, SchemaVersion(version, first_seq, new, ups, now)])


def check(
    old: EventSchema,
    new: EventSchema,
    upcasters: Sequence[Upcaster],
    *,
    stored: Mapping[str, pl.DataType],
    columns: Mapping[str, pl.DataType],
) -> None:
    """Reject an incompatible evolution of ``old`` into ``new``, naming the first problem.

    Compatible: new event types; new fields that are optional or have a default; relaxing a
    required field; new defaults and bounds (they apply to new appends only). Not
    compatible, unless an upcaster covers it: removing a field (covered when an upcaster of
    that event type reads it — a rename), a new required field without a default, making an
    optional field required without a default. Never compatible: removing an event type,
    changing a field's type under the same name (a stored column keeps its type; declare a
    new field with an upcaster that casts the old one).
    """
    covered = {(u.event_type, u.field) for u in upcasters}
    read_by = {(u.event_type, name) for u in upcasters for name in u.reads()}
    for et in old.event_types:
        target = _event_type(new, et.name)
        if target is None:
            raise SchemaEvolutionError(
                f"event type {et.name!r} would be removed; its stored events would have no type. "
                "Keep it in the schema (and stop appending it)"
            )
        for f in et.fields:
            g = target.field(f.name)
            if g is None:
                if (et.name, f.name) not in read_by:
                    raise SchemaEvolutionError(
                        f"field {f.name!r} of event type {et.name!r} would be removed. To rename it, add the new "
                        f"field and Upcaster({et.name!r}, '<new name>', {f.name!r})"
                    )
            elif g.type != f.type:
                raise SchemaEvolutionError(
                    f"field {f.name!r} of event type {et.name!r} would change type from {f.type} to {g.type}; a stored "
                    f"column keeps its type. Declare a new field instead, e.g. Field('{f.name}_{g.type}', {g.type!r}) "
                    f"with Upcaster({et.name!r}, '{f.name}_{g.type}', 'CAST({f.name} AS ...)')"
                )
            elif _optional(f) and g.required and g.default is None and (et.name, g.name) not in covered:
                raise SchemaEvolutionError(
                    f"field {g.name!r} of event type {et.name!r} would become required without a default, but old "
                    "events may lack it. Give it a default, or declare an Upcaster that computes it"
                )
        for g in target.fields:
            if et.field(g.name) is None and g.required and g.default is None and (et.name, g.name) not in covered:
                raise SchemaEvolutionError(
                    f"new field {g.name!r} of event type {et.name!r} is required without a default, but old events "
                    "lack it. Make it optional (required=False), give it a default, or declare an Upcaster"
                )
    for name, dtype in new.payload.items():
        have = stored.get(name, columns.get(name))
        if have is not None and have != dtype:
            raise SchemaEvolutionError(
                f"field {name!r} ({dtype}) would reuse the stored column {name!r}, which holds {have}; choose another name"
            )
    _check_upcasters(old, new, upcasters, readable={**columns, **stored, **new.columns()})


def check_on_events(history: SchemaHistory, stored: pl.LazyFrame | None) -> None:
    """Run the newest version's upcasters over the ``stored`` events they apply to, before committing.

    Each must compute, give a value where its field is required, and give the same values
    in Polars (``scan``, projections) as in DuckDB (the fold, the SQL views) — otherwise
    readers would fail later, show a required field empty, or disagree.

    Args:
        stored: the stored events (``EventLog.scan_range(head, upcast=False)``); None if there are none.
    """
    new = [r for r in history.rules if r.version == history.version and r.expression is not None]
    if not new:
        return
    import duckdb

    con = duckdb.connect()
    try:
        con.execute("SET TimeZone = 'UTC'")
        if stored is None:
            _duckdb(con, f"SELECT * FROM {history.sql_source('(SELECT 1 AS __none WHERE FALSE)', new)}")
            return
        needed = {"seq", "event_type"} | {c for r in history.rules for c in r.reads()}
        frame = (
            stored.filter(pl.col("event_type").is_in(sorted({r.event_type for r in new}))
                          & (pl.col("seq") < history.current.first_seq))
            .select(sorted(needed & set(stored.collect_schema())))
            .collect()
        )
        names = sorted({r.name for r in new})
        try:
            mine = history.apply(_with_all_columns(frame.lazy(), history)).select("seq", "event_type", *names).collect()
        except (pl.exceptions.PolarsError, ValueError) as exc:
            raise SchemaEvolutionError(f"an upcaster fails on the stored events: {exc}".strip()) from None
        con.register("__stored", frame.to_arrow())
        theirs = _duckdb(con, f"SELECT seq, event_type, {', '.join(map(_ident, names))} "
                              f"FROM {history.sql_source('__stored')} ORDER BY seq")
    finally:
        con.close()
    mine = mine.sort("seq")
    for rule in new:
        of_type = pl.col("event_type") == rule.event_type
        if rule.field.required:
            missing = mine.filter(of_type & pl.col(rule.name).is_null())
            if missing.height:
                raise SchemaEvolutionError(
                    f"{_describe(rule)} gives null at seq {missing['seq'][0]}, and {rule.name!r} is required; "
                    "wrap it in COALESCE(..., <default>) or make the field optional"
                )
        a, b = mine.get_column(rule.name), theirs.get_column(rule.name).cast(rule.field.dtype)
        differ = (a.ne_missing(b) & (mine.get_column("event_type") == rule.event_type)).arg_true()
        if differ.len():
            row = int(differ[0])
            raise SchemaEvolutionError(
                f"{_describe(rule)} gives {a[row]!r} in Polars but {b[row]!r} in DuckDB at seq {mine['seq'][row]}; "
                "use SQL both engines read the same way (explicit CASTs, no integer division)"
            )


def _duckdb(con: Any, query: str) -> pl.DataFrame:
    import duckdb

    try:
        return con.sql(query).pl()
    except duckdb.Error as exc:
        raise SchemaEvolutionError(f"an upcaster's SQL does not run in DuckDB (the fold and the SQL views use it): {exc}") from None


def _with_all_columns(lf: pl.LazyFrame, history: SchemaHistory) -> pl.LazyFrame:
    have = set(lf.collect_schema())
    return lf.with_columns(pl.lit(None, dtype=t).alias(c) for c, t in history.columns.items() if c not in have)


def _describe(rule: ReadRule) -> str:
    return f"Upcaster({rule.event_type!r}, {rule.name!r}, {rule.expression!r})"


def _check_upcasters(
    old: EventSchema, new: EventSchema, upcasters: Sequence[Upcaster], *, readable: Mapping[str, pl.DataType]
) -> None:
    seen: set[tuple[str, str]] = set()
    for u in upcasters:
        if (u.event_type, u.field) in seen:
            raise SchemaEvolutionError(f"two upcasters for field {u.field!r} of event type {u.event_type!r}; keep one")
        seen.add((u.event_type, u.field))
        if _event_type(old, u.event_type) is None:
            raise SchemaEvolutionError(
                f"{u}: event type {u.event_type!r} is new in this version, so it has no old events to upcast"
            )
        target = _event_type(new, u.event_type)
        if target is None or target.field(u.field) is None:
            raise SchemaEvolutionError(f"{u}: the new schema has no field {u.field!r} in event type {u.event_type!r}")
        unknown = sorted(set(u.reads()) - (set(readable) - {PARTITION_COLUMN}))
        if unknown:
            raise SchemaEvolutionError(f"{u}: reads {unknown}, which are not stored columns; known: {sorted(readable)}")


def _rules(versions: Sequence[SchemaVersion]) -> tuple[ReadRule, ...]:
    rules: list[ReadRule] = []
    for previous, v in zip(versions, versions[1:]):
        explicit = {(u.event_type, u.field): u for u in v.upcasters}
        for et in v.schema.event_types:
            before = _event_type(previous.schema, et.name)
            if before is None:  # a new type has no older events
                continue
            for f in et.fields:
                up = explicit.get((et.name, f.name))
                if up is not None:
                    rules.append(ReadRule(v.version, v.first_seq, et.name, f, up.expression))
                    continue
                was = before.field(f.name)
                if f.default is not None and (was is None or (_optional(was) and f.required)):
                    rules.append(ReadRule(v.version, v.first_seq, et.name, f, None, tag="default"))
    return tuple(rules)


def _stages(rules: Iterable[ReadRule]) -> list[dict[str, list[ReadRule]]]:
    """Rules grouped by version (oldest first), then by the column they set."""
    stages: dict[int, dict[str, list[ReadRule]]] = {}
    for rule in rules:
        stages.setdefault(rule.version, {}).setdefault(rule.name, []).append(rule)
    return [stages[v] for v in sorted(stages)]


def _numbered(u: Upcaster, version: int) -> Upcaster:
    if u.from_version is None:
        return Upcaster(u.event_type, u.field, u.expression, from_version=version)
    if u.from_version != version:
        raise SchemaEvolutionError(
            f"{u}: from_version={u.from_version}, but this evolution creates schema version {version}; "
            "leave from_version out to have it set"
        )
    return u


def _event_type(schema: EventSchema, name: str) -> EventType | None:
    return next((et for et in schema.event_types if et.name == name), None)


def _optional(f: Field) -> bool:
    return not f.required and f.default is None


def _default(f: Field) -> Any:
    """A default as its field's Python type (JSON keeps dates and timestamps as text)."""
    value = f.default
    if isinstance(value, str) and f.type == "timestamp":
        return dt.datetime.fromisoformat(value).astimezone(dt.timezone.utc)
    if isinstance(value, str) and f.type == "date":
        return dt.date.fromisoformat(value)
    return value


def _sql_literal(f: Field) -> str:
    value = _default(f)
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, (int, float)):
        return f"CAST({value!r} AS {_DUCK_TYPES[f.type]})"
    if isinstance(value, dt.datetime):
        return f"CAST({_sql_string(value.isoformat())} AS TIMESTAMPTZ)"
    if isinstance(value, dt.date):
        return f"CAST({_sql_string(value.isoformat())} AS DATE)"
    return _sql_string(str(value))


def _duck_type(dtype: pl.DataType) -> str:
    if isinstance(dtype, pl.Datetime):
        return "TIMESTAMPTZ"
    names = {pl.Int64: "BIGINT", pl.Float64: "DOUBLE", pl.String: "VARCHAR", pl.Boolean: "BOOLEAN", pl.Date: "DATE"}
    return next(name for t, name in names.items() if dtype == t)


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _sql_string(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"

