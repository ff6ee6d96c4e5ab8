"""The SQL of the views and macros: CREATE statements for one pinned version.

The as_of macros follow the one cut grammar of ``eventlog.core.cuts``; the ``inventory`` view
and ``inventory_as_of`` macro are the state definition (``model.state.STATE``) rendered for
DuckDB over the newest usable snapshot and the tail of the log after it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import duckdb
import polars as pl
import pyarrow.parquet as pq

from eventlog.core import cuts, sqlrender
from eventlog.core.definitions import Projection, columns_read
from eventlog.core.evolution import SchemaHistory
from eventlog.errors import StaleProjectionError
from eventlog.model.state import STATE, STATE_SCHEMA, STORED_SCHEMA
from eventlog.sql.literals import duck_type, ident, indent, literal, string, string_list, timestamp, typed_nulls
from eventlog.sql.pin import Pin, ProjectionPin
from eventlog.store.tables import ROW

_MAX_SEQ = "9223372036854775807"
_NO_TIME = "TIMESTAMPTZ 'infinity'"
_COMMIT_COLUMNS = {
    "version": pl.Int64(),
    "first_seq": pl.Int64(),
    "last_seq": pl.Int64(),
    "event_count": pl.Int64(),
    "recorded_at": pl.Datetime("us", "UTC"),
    "operation": pl.String(),
    "committed_at": pl.Datetime("us", "UTC"),
    "idempotency_key": pl.String(),
}
_SNAPSHOT_COLUMNS = {
    "seq": pl.Int64(),
    "delta_version": pl.Int64(),
    "rows": pl.Int64(),
    "state_version": pl.Int64(),
    "created_at": pl.Datetime("us", "UTC"),
    "max_occurred_at": pl.Datetime("us", "UTC"),
    "file": pl.String(),
    "sha256": pl.String(),
    "usable": pl.Boolean(),
}
_PROJECTION_COLUMNS = {
    "name": pl.String(),
    "mode": pl.String(),
    "checkpoint": pl.Int64(),
    "lag": pl.Int64(),
    "table_version": pl.Int64(),
    "rows": pl.Int64(),
    "built_at": pl.Datetime("us", "UTC"),
    "view": pl.String(),
}
# The as_of argument, by its type. Typed overloads (``as_of_seq(x BIGINT)``, ...) dispatch
# well in plain queries, but DuckDB binds a table macro's body with x untyped and then finds
# every overload ambiguous; so each macro branches on typeof(x), with casts that bind for
# any type. A constant argument folds to one constant cut before the scans are planned.
_INTS = ", ".join(
    f"'{t}'" for t in ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER",
                       "UBIGINT", "UHUGEINT")
)
_TIMES = "'TIMESTAMP', 'TIMESTAMP_S', 'TIMESTAMP_MS', 'TIMESTAMP_NS'"
# Text follows the one grammar of eventlog.core.cuts: its blanks and its patterns, as SQL.
_TEXT = "trim(CAST(x AS VARCHAR), E'" + "".join(f"\\x{ord(c):02x}" for c in cuts.BLANKS) + "')"
_SEQ_RE, _DATE_RE, _NAIVE_RE, _TIMESTAMP_RE = (
    "'" + p.replace("'", "''") + "'"
    for p in (cuts.SEQ_PATTERN, cuts.DATE_PATTERN, cuts.NAIVE_TIMESTAMP_PATTERN, cuts.TIMESTAMP_PATTERN)
)
_END_OF_DAY = "timezone('UTC', CAST({date} AS TIMESTAMP) + INTERVAL 1 DAY - INTERVAL 1 MICROSECOND)"
_AS_OF_SEQ = f"""\
CREATE OR REPLACE MACRO as_of_seq(x) AS CASE
    WHEN x IS NULL THEN CAST(NULL AS BIGINT)
    WHEN typeof(x) IN ({_INTS}) THEN CASE
        WHEN TRY_CAST(x AS HUGEINT) < 0 THEN error('as_of=' || CAST(x AS VARCHAR) || ': a seq cut cannot be negative')
        ELSE TRY_CAST(x AS BIGINT)  -- NULL beyond BIGINT: no cut
    END
    WHEN typeof(x) = 'VARCHAR' AND regexp_full_match({_TEXT}, {_SEQ_RE}) THEN TRY_CAST({_TEXT} AS BIGINT)
    WHEN typeof(x) IN ('VARCHAR', 'DATE', 'TIMESTAMP WITH TIME ZONE', {_TIMES}) THEN CAST(NULL AS BIGINT)
    ELSE error('as_of is a seq (an integer), a TIMESTAMPTZ, a TIMESTAMP (read as UTC), a DATE or an ISO string, not '
               || typeof(x))
END;
"""
_AS_OF_TIME = f"""\
CREATE OR REPLACE MACRO as_of_time(x) AS CASE
    WHEN x IS NULL OR typeof(x) NOT IN ('VARCHAR', 'DATE', 'TIMESTAMP WITH TIME ZONE', {_TIMES})
        THEN CAST(NULL AS TIMESTAMPTZ)
    WHEN typeof(x) = 'TIMESTAMP WITH TIME ZONE' THEN TRY_CAST(x AS TIMESTAMPTZ)
    WHEN typeof(x) IN ({_TIMES}) THEN timezone('UTC', TRY_CAST(x AS TIMESTAMP))
    WHEN typeof(x) = 'DATE' THEN {_END_OF_DAY.format(date="TRY_CAST(x AS DATE)")}
    WHEN regexp_full_match({_TEXT}, {_SEQ_RE}) THEN CAST(NULL AS TIMESTAMPTZ)
    WHEN regexp_full_match({_TEXT}, {_DATE_RE}) AND TRY_CAST({_TEXT} AS DATE) IS NOT NULL
        THEN {_END_OF_DAY.format(date=f"TRY_CAST({_TEXT} AS DATE)")}
    WHEN regexp_full_match({_TEXT}, {_TIMESTAMP_RE}) AND TRY_CAST({_TEXT} AS TIMESTAMPTZ) IS NOT NULL
        THEN TRY_CAST({_TEXT} AS TIMESTAMPTZ)
    WHEN regexp_full_match({_TEXT}, {_NAIVE_RE}) AND TRY_CAST({_TEXT} AS TIMESTAMP) IS NOT NULL
        THEN error('as_of=''' || CAST(x AS VARCHAR) || ''' has no time zone; add one, e.g. ' || {_TEXT} || '+00:00')
    ELSE error('as_of=''' || CAST(x AS VARCHAR) || ''' {cuts.NOT_A_CUT}')
END;
"""


# Inventory.compare over two cuts of the pinned store: change is y's quantity minus x's.
_INVENTORY_COMPARE = """\
CREATE OR REPLACE MACRO inventory_compare(x, y) AS TABLE
SELECT
    coalesce(here.item, there.item) AS item,
    coalesce(here.quantity, 0) AS quantity,
    coalesce(there.quantity, 0) AS other_quantity,
    coalesce(there.quantity, 0) - coalesce(here.quantity, 0) AS change
FROM inventory_as_of(x) AS here
FULL JOIN inventory_as_of(y) AS there ON here.item = there.item
ORDER BY item;
"""


class Sources:
    """How views read Parquet files: a literal read_parquet list, or Arrow datasets for files
    a locked connection may not open (after refresh)."""

    def __init__(self, con: duckdb.DuckDBPyConnection | None, *, readable: frozenset[str] | None, tag: str,
                 uniform: bool = False) -> None:
        self._con = con
        self._readable = readable
        self._tag = tag
        # A store that never evolved writes every file with the same columns in the same order:
        # DuckDB then need not read every footer to unify them by name (a third of a full scan).
        self._union = "" if uniform else ", union_by_name = true"
        self.files: set[str] = set()
        self.registered: list[str] = []

    def can_read(self, path: str) -> bool:
        return self._readable is None or path in self._readable

    def parquet(self, files: Sequence[str], columns: Mapping[str, pl.DataType]) -> str:
        """A FROM item over ``files`` (an empty relation with ``columns`` when there are none)."""
        if not files:
            return f"(SELECT {typed_nulls(columns)} LIMIT 0)"
        direct = [f for f in files if self.can_read(f)]
        other = [f for f in files if not self.can_read(f)]
        parts = []
        if direct:
            self.files.update(direct)
            parts.append(f"read_parquet({string_list(direct)}, hive_partitioning = false{self._union})")
        if other:
            parts.append(ident(self._register(other)))
        if len(parts) == 1:
            return parts[0]
        return "(SELECT * FROM " + " UNION ALL BY NAME SELECT * FROM ".join(parts) + ")"

    def _register(self, files: list[str]) -> str:
        import pyarrow as pa
        import pyarrow.dataset as pads
        
        if self._con is None:
            raise RuntimeError("Arrow sources need a connection")
        name = f"__eventlog_{self._tag}_{len(self.registered)}"
        schema = pa.unify_schemas([pq.read_schema(f) for f in files])
        self._con.register(name, pads.dataset(files, format="parquet", schema=schema))
        self.registered.append(name)
        return name


def statements(pin: Pin, sources: Sources) -> list[str]:
    """CREATE statements for every view and macro, in dependency order."""
    columns = ", ".join(ident(c) for c in pin.columns)
    out = [
        f"CREATE OR REPLACE VIEW events AS\nSELECT {columns}\n"
        f"FROM {pin.history.sql_source(sources.parquet(pin.files['path'].to_list(), pin.columns))};\n",
        _AS_OF_SEQ,
        _AS_OF_TIME,
        "CREATE OR REPLACE MACRO events_as_of(x) AS TABLE\nSELECT * FROM events\n"
        f"WHERE seq <= coalesce(as_of_seq(x), {_MAX_SEQ})\n"
        f"  AND occurred_at <= coalesce(as_of_time(x), {_NO_TIME});\n",
        f"CREATE OR REPLACE VIEW commits AS\n{_values(pin.commits, _COMMIT_COLUMNS)};\n",
        f"CREATE OR REPLACE VIEW snapshots AS\n{_snapshot_rows(pin)};\n",
    ]
    if pin.inventory:
        out += _inventory_definitions(pin, sources)
    views = {p.name: _projection_view(p, pin, sources) for p in pin.projections}
    rows = [_projection_row(p, pin, how) for p, (how, _) in zip(pin.projections, views.values(), strict=True)]
    out.append(f"CREATE OR REPLACE VIEW projections AS\n{_values(rows, _PROJECTION_COLUMNS)};\n")
    for name, (_, sql) in views.items():
        out.append(f"CREATE OR REPLACE VIEW {ident(name)} AS\n{sql};\n")
    return [s.strip() + "\n" for s in out]


def _inventory_definitions(pin: Pin, sources: Sources) -> list[str]:
    bases = sorted(
        (
            (info.seq, info.max_occurred_at, str(pin.root / "snapshots" / info.file))
            for info, usable in pin.snapshots
            if usable and sources.can_read(str(pin.root / "snapshots" / info.file))
        ),
        reverse=True,
    )
    # The view starts from the newest base and reads only the files that can hold events
    # after it; when each lies wholly inside the range the seq column need not be read.
    after = bases[0][0] if bases else 0
    tail = pin.files.filter(pl.col("max_seq").is_null() | (pl.col("max_seq") > after))
    inside = tail.select((pl.col("min_seq") > after).fill_null(False).all()).item()
    view = _stock_sql(
        base=str(after),
        bases=bases[:1],
        where=[] if inside else [f"seq > {after}", f"seq <= {pin.head}"],
        events=_state_source(pin.history, sources.parquet(tail["path"].to_list(), pin.columns)),
        sources=sources,
    )
    # The macro picks its base from the cut: a CASE over the snapshots' literal seqs, so a
    # constant argument folds to one snapshot and one seq range before the scans are planned.
    seq, time = f"coalesce(as_of_seq(x), {_MAX_SEQ})", f"coalesce(as_of_time(x), {_NO_TIME})"
    arms = []
    for snap_seq, max_occurred, _ in bases:
        served_by = f" AND {timestamp(max_occurred)} <= {time}" if max_occurred is not None else ""
        arms.append(f"WHEN {snap_seq} <= {seq}{served_by} THEN {snap_seq}")
    base = f"CASE {' '.join(arms)} ELSE 0 END" if arms else "0"
    macro = _stock_sql(
        base=base,
        bases=bases,
        where=[*([f"seq > {base}"] if bases else []), f"seq <= {seq}", f"occurred_at <= {time}"],
        events="events",
        sources=sources,
    )
    return [
        f"CREATE OR REPLACE VIEW inventory AS\n{view};\n",
        f"CREATE OR REPLACE MACRO inventory_as_of(x) AS TABLE\n{macro};\n",
        _INVENTORY_COMPARE,
    ]


def _stock_sql(
    *, base: str, bases: list[tuple[int, str | None, str]], where: list[str], events: str, sources: Sources
) -> str:
    """Inventory.stock() as SQL: the base snapshot's rows ⊕ the fold of ``events`` under ``where``.

    ``base`` is the SQL expression of the base's seq (0: no snapshot); each snapshot in
    ``bases`` contributes its rows when ``base`` equals its seq. Fold, merge and finish are
    the state definition (``model.state.STATE``) rendered for DuckDB, as the engines run it.
    """
    stored = ", ".join(f"CAST({ident(c)} AS {duck_type(t)}) AS {ident(c)}" for c, t in STORED_SCHEMA.items())
    base_rows = [
        f"SELECT {stored} FROM {sources.parquet([path], {})}"
        + ("" if base == str(snap_seq) else f" WHERE {base} = {snap_seq}")
        for snap_seq, _, path in bases
    ] or [f"SELECT {typed_nulls(STORED_SCHEMA)} LIMIT 0"]
    tail = sqlrender.substitute(sqlrender.fold(STATE, "__events", where=where), {"__events": events})
    merged = sqlrender.merge(STATE, ["__base", "__tail"])
    casts = {c: duck_type(t) for c, t in STATE_SCHEMA.items()}
    finished = sqlrender.finish(STATE, "(__merged) AS merged", casts=casts)
    return sqlrender.substitute(sqlrender.substitute(finished, {"__merged": merged}), {
        "__base": "(\n    " + "\n    UNION ALL\n    ".join(base_rows) + "\n) AS base",
        "__tail": f"(\n{indent(tail)}\n) AS tail",
    })


def _state_source(history: SchemaHistory, source: str) -> str:
    """``source`` with the read rules that touch what the state reads applied (as it is when none do)."""
    columns, types = columns_read(STATE)
    rules = history.rules_for(columns, types) if history.rules else []
    return history.sql_source(source, rules) if rules else source


def _projection_view(p: ProjectionPin, pin: Pin, sources: Sources) -> tuple[str, str]:
    """How the view shows the projection, and its SQL: what ``projection(name).read()`` gives
    at the pinned version, or an error naming why it cannot — never an old table without a word."""
    if isinstance(p.definition, Projection):
        return _merge_view(p.definition, p, pin, sources)
    table = p.table
    if table is None:
        return "refused: not built", _refused(p, f"projection {p.name!r} has not been built yet")
    if p.fingerprint is not None and table.fingerprint != p.fingerprint:
        return "refused: another definition", _refused(
            p, f"projection {p.name!r} was built by another definition of it")
    if table.checkpoint != pin.head:
        lag = pin.head - table.checkpoint
        events = "1 event" if lag == 1 else f"{lag} events"
        return f"refused: {events} behind", _refused(
            p, f"projection {p.name!r} is {events} behind the log (built at seq {table.checkpoint}, "
               f"the connection shows seq {pin.head})")
    return "stored (current)", _stored_rows(p, sources)


def _merge_view(definition: Projection, p: ProjectionPin, pin: Pin, sources: Sources) -> tuple[str, str]:
    """Stored table ⊕ fold of the log after its checkpoint, finished: the projector's read, in SQL."""
    table = p.table
    usable = (table is not None and table.fingerprint == p.fingerprint and table.checkpoint <= pin.head)
    after = table.checkpoint if usable and table is not None else 0
    stored = ", ".join(ident(c) for c in p.stored)
    base = (f"SELECT {stored} FROM {sources.parquet(p.files, {})}" if usable and p.files
            else f"SELECT {typed_nulls(p.stored)} LIMIT 0")
    tail = sqlrender.substitute(sqlrender.fold(definition, "__events", where=[f"seq > {after}"]),
                               {"__events": "events"})
    merged = sqlrender.merge(definition, ["__base", "__tail"])
    casts = {c: duck_type(t) for c, t in p.columns.items()}
    finished = sqlrender.finish(definition, "(__merged) AS merged", casts=casts)
    sql = sqlrender.substitute(sqlrender.substitute(finished, {"__merged": merged}), {
        "__base": f"(\n{indent(base)}\n) AS base",
        "__tail": f"(\n{indent(tail)}\n) AS tail",
    })
    how = "stored + tail" if usable else "folded from the log (no usable table)"
    return how, sql


def _stored_rows(p: ProjectionPin, sources: Sources) -> str:
    names = ", ".join(ident(c) for c in p.columns) or "*"
    if not p.files:
        return f"SELECT {typed_nulls(p.columns)} LIMIT 0"
    order = f" ORDER BY {ident(ROW)}" if p.ordered else ""
    return f"SELECT {names} FROM {sources.parquet(p.files, {})}{order}"


_REFUSED = "eventlog: projection "


def _refused(p: ProjectionPin, why: str) -> str:
    """A view that raises ``why`` as soon as any of its rows or columns is read."""
    message = string(f"eventlog: {why}; run `eventlog project update {p.name}` (or Inventory.update_projections())")
    columns = p.columns or {"refused": pl.String()}
    raising = ", ".join(f"CAST(error({message}) AS {duck_type(t)}) AS {ident(c)}" for c, t in columns.items())
    return f"SELECT {typed_nulls(columns)} WHERE FALSE\nUNION ALL\nSELECT {raising}"


def stale_projection(exc: Exception) -> StaleProjectionError | None:
    """The typed error for DuckDB's error raised by a refusing projection view (None for any other)."""
    text = str(exc)
    start = text.find(_REFUSED)
    if start < 0:
        return None
    message = text[start + len("eventlog: "):]
    name = message.split("'")[1] if message.count("'") >= 2 else ""
    return StaleProjectionError(message, projection=name)


def _projection_row(p: ProjectionPin, pin: Pin, how: str) -> dict[str, Any]:
    table = p.table
    return {
        "name": p.name,
        "mode": p.definition.mode if p.definition is not None else (table.mode if table else None),
        "checkpoint": table.checkpoint if table else None,
        "lag": pin.head - table.checkpoint if table else None,
        "table_version": table.version if table else None,
        "rows": table.rows if table else None,
        "built_at": table.built_at if table else None,
        "view": how,
    }


def _snapshot_rows(pin: Pin) -> str:
    rows = [
        {**{k: getattr(info, k) for k in _SNAPSHOT_COLUMNS if k != "usable"}, "usable": usable}
        for info, usable in pin.snapshots
    ]
    return _values(rows, _SNAPSHOT_COLUMNS)


def _values(rows: list[dict[str, Any]], columns: Mapping[str, pl.DataType]) -> str:
    """A typed relation of literal rows (empty, with the right columns, when there are none)."""
    if not rows:
        return f"SELECT {typed_nulls(columns)} LIMIT 0"
    names = ", ".join(ident(c) for c in columns)
    values = ",\n    ".join("(" + ", ".join(literal(row[c]) for c in columns) + ")" for row in rows)
    casts = ", ".join(f"CAST({ident(c)} AS {duck_type(t)}) AS {ident(c)}" for c, t in columns.items())
    return f"SELECT {casts}\nFROM (VALUES\n    {values}\n) AS v({names})"
