"""Projection definitions: engine-neutral descriptions of analytic tables over the log.

A :class:`Projection` is declarative — group keys and aggregates from a mergeable family
(count, sum, min, max, first/last by seq, distinct set), written as SQL expressions over
the event columns. Because every aggregate merges, one definition gives a full build, an
incremental update (stored table ⊕ fold of the events after its checkpoint) and ``as_of``
reads; the engines (``eventlog.engines``) render it for Polars, DuckDB and Spark.

A :class:`FunctionProjection` is a free function over the events (or over another
projection's table); it is rebuilt rather than merged, and its status says so.
"""

from __future__ import annotations

import hashlib
import inspect
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import polars as pl

from eventlog.errors import ProjectionError

AggKind = Literal["count", "sum", "min", "max", "first", "last", "distinct"]
_HIDDEN = "__"  # prefix of bookkeeping columns kept in the stored table only


@dataclass(frozen=True)
class Agg:
    """A mergeable aggregate of a SQL expression over event columns, optionally filtered.

    Example:
        >>> Agg.sum("quantity", where="event_type = 'item_added'").kind
        'sum'
    """

    kind: AggKind
    expr: str | None = None
    where: str | None = None

    @staticmethod
    def count(*, where: str | None = None) -> Agg:
        return Agg("count", None, where)

    @staticmethod
    def sum(expr: str, *, where: str | None = None) -> Agg:
        return Agg("sum", expr, where)

    @staticmethod
    def min(expr: str, *, where: str | None = None) -> Agg:
        return Agg("min", expr, where)

    @staticmethod
    def max(expr: str, *, where: str | None = None) -> Agg:
        return Agg("max", expr, where)

    @staticmethod
    def first(expr: str, *, where: str | None = None) -> Agg:
        """The value on the matching event with the lowest seq (nulls included)."""
        return Agg("first", expr, where)

    @staticmethod
    def last(expr: str, *, where: str | None = None) -> Agg:
        """The value on the matching event with the highest seq (nulls included)."""
        return Agg("last", expr, where)

    @staticmethod
    def distinct(expr: str, *, where: str | None = None) -> Agg:
        """The sorted set of distinct non-null values."""
        return Agg("distinct", expr, where)


@dataclass(frozen=True)
class Projection:
    """A declarative, mergeable projection.

    Args:
        name: the table's name (also its SQL view name).
        keys: output column -> SQL expression over event columns, e.g. ``{"item": "stream_id"}``.
        aggregates: output column -> :class:`Agg`.
        event_types: only events of these types (None: all).
        where: a SQL filter over event columns.
        derived: output column -> SQL expression over the merged columns, computed after
            merging (window functions allowed, e.g. a running sum over days).
        version: bump to force a rebuild when the meaning changes but the text does not.
        rank_by: the column ``top(n)`` ranks by (default: the first aggregate).

    Example:
        >>> p = Projection("per_item", keys={"item": "stream_id"}, aggregates={"n": Agg.count()})
        >>> p.mode
        'merge'
    """

    name: str
    keys: Mapping[str, str]
    aggregates: Mapping[str, Agg]
    event_types: Sequence[str] | None = None
    where: str | None = None
    derived: Mapping[str, str] = field(default_factory=dict)
    version: int = 1
    rank_by: str | None = None
    description: str = ""

    mode = "merge"
    source = "events"

    def __post_init__(self) -> None:
        _check_name(self.name)
        if not self.aggregates:
            raise ProjectionError(f"projection {self.name!r} needs at least one aggregate")
        for out in [*self.keys, *self.aggregates, *self.derived]:
            if out.startswith(_HIDDEN):
                raise ProjectionError(f"projection {self.name!r}: column {out!r} may not start with {_HIDDEN!r}")

    # --- identity ------------------------------------------------------------------------

    def definition(self) -> dict[str, Any]:
        return {
            "kind": "declarative",
            "name": self.name,
            "version": self.version,
            "keys": dict(self.keys),
            "aggregates": {k: [a.kind, a.expr, a.where] for k, a in self.aggregates.items()},
            "event_types": None if self.event_types is None else list(self.event_types),
            "where": self.where,
            "derived": dict(self.derived),
        }

    def fingerprint(self) -> str:
        return _hash(self.definition())

    # --- Polars --------------------------------------------------------------------------

    def fold(self, events: pl.LazyFrame) -> pl.LazyFrame:
        """Partial aggregates of ``events`` (stored form, hidden columns included)."""
        lf = self._filtered(events)
        keys = [pl.sql_expr(e).alias(k) for k, e in self.keys.items()]
        aggs: list[pl.Expr] = []
        for out, agg in self.aggregates.items():
            aggs.extend(_polars_partial(out, agg))
        return lf.group_by(keys).agg(aggs).with_columns(self._tidy_sets())

    def _tidy_sets(self) -> list[pl.Expr]:
        """Distinct sets are gathered unsorted per group, then cleaned once per row.

        Sorting inside the group-by cost 2.5x as much (0.84 s against 0.33 s at 10M events).
        """
        return [pl.col(out).list.drop_nulls().list.sort() for out, agg in self.aggregates.items()
                if agg.kind == "distinct"]

    def merge(self, stored: pl.DataFrame, tail: pl.DataFrame) -> pl.DataFrame:
        """Combine a stored form with the fold of later events.

        Only the groups the tail touches are re-aggregated; the rest of the (possibly
        large) stored table is carried over as it is.
        """
        if tail.height == 0:
            return stored
        if stored.height == 0:
            return tail
        keys = list(self.keys)
        touched_keys = tail.select(keys).unique()
        touched = stored.join(touched_keys, on=keys, how="semi", nulls_equal=True)
        untouched = stored.join(touched_keys, on=keys, how="anti", nulls_equal=True)
        merged: list[pl.Expr] = []
        for out, agg in self.aggregates.items():
            merged.extend(_polars_merge(out, agg))
        both = pl.concat([touched, tail.select(stored.columns)], how="vertical_relaxed")
        regrouped = both.group_by(keys).agg(merged).with_columns(self._tidy_sets())
        return pl.concat([untouched, regrouped], how="vertical_relaxed")

    def finish(self, stored: pl.DataFrame) -> pl.DataFrame:
        """The user-facing table: derived columns added, hidden ones dropped, sorted by keys."""
        out = stored.sort(list(self.keys), nulls_last=True)
        if self.derived:
            out = out.with_columns(pl.sql_expr(e).alias(k) for k, e in self.derived.items())
        return out.select([c for c in out.columns if not c.startswith(_HIDDEN)])

    def _filtered(self, events: pl.LazyFrame) -> pl.LazyFrame:
        if self.event_types is not None:
            events = events.filter(pl.col("event_type").is_in(list(self.event_types)))
        if self.where:
            events = events.filter(pl.sql_expr(self.where))
        return events

    # --- SQL -----------------------------------------------------------------------------

    def to_sql(self, source: str = "events") -> str:
        """The same projection as one SQL query over ``source`` (DuckDB dialect)."""
        where = []
        if self.event_types is not None:
            where.append("event_type IN (" + ", ".join(_sql_str(t) for t in self.event_types) + ")")
        if self.where:
            where.append(f"({self.where})")
        keys = ", ".join(f"{e} AS {_ident(k)}" for k, e in self.keys.items())
        aggs = ", ".join(f"{_sql_agg(a)} AS {_ident(k)}" for k, a in self.aggregates.items())
        inner = f"SELECT {keys}, {aggs} FROM {source}"
        if where:
            inner += " WHERE " + " AND ".join(where)
        inner += " GROUP BY ALL"
        derived = "".join(f", {e} AS {_ident(k)}" for k, e in self.derived.items())
        order = ", ".join(f"{_ident(k)} NULLS LAST" for k in self.keys)
        return f"SELECT *{derived} FROM ({inner}) ORDER BY {order}"


@dataclass(frozen=True)
class FunctionProjection:
    """A projection computed by a function, rebuilt from scratch whenever its source moves.

    ``source`` is ``"events"`` (the function gets the events LazyFrame, cut at the build's
    seq) or the name of another projection (the function gets that projection's finished
    table as a DataFrame), so cheap summaries can build on an incremental one.
    """

    name: str
    function: Callable[[Any], pl.DataFrame | pl.LazyFrame]
    source: str = "events"
    version: int = 1
    rank_by: str | None = None
    description: str = ""

    mode = "rebuild"
    keys: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _check_name(self.name)

    def definition(self) -> dict[str, Any]:
        try:
            code = inspect.getsource(self.function)
        except (OSError, TypeError):
            code = getattr(self.function, "__qualname__", repr(self.function))
        return {"kind": "function", "name": self.name, "version": self.version, "source": self.source, "code": code}

    def fingerprint(self) -> str:
        return _hash(self.definition())

    def compute(self, source: pl.LazyFrame | pl.DataFrame) -> pl.DataFrame:
        out = self.function(source)
        return out.collect() if isinstance(out, pl.LazyFrame) else out


AnyProjection = Projection | FunctionProjection


@dataclass(frozen=True)
class ProjectionStatus:
    """Where a materialised projection stands."""

    name: str
    mode: str
    checkpoint: int | None
    head: int
    lag: int | None
    rows: int | None
    built_at: str | None
    duration_s: float | None
    stale_definition: bool

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


# --- compiling aggregates ------------------------------------------------------------------


def _polars_partial(out: str, agg: Agg) -> list[pl.Expr]:
    # Conditions are applied with when/then (null elsewhere) rather than filter: in a
    # group-by, Polars runs the former as a streaming aggregation, about 2x faster.
    cond = pl.sql_expr(agg.where) if agg.where else None

    def only(expr: pl.Expr) -> pl.Expr:
        return pl.when(cond).then(expr) if cond is not None else expr

    if agg.kind == "count":
        return [(cond.sum() if cond is not None else pl.len()).cast(pl.Int64).alias(out)]
    value = pl.sql_expr(agg.expr or "NULL")
    if agg.kind in ("sum", "min", "max"):
        return [getattr(only(value), agg.kind)().alias(out)]
    if agg.kind in ("first", "last"):
        keep = cond if cond is not None else pl.lit(True)
        seq = pl.col("seq").filter(keep)
        pick = seq.arg_min() if agg.kind == "first" else seq.arg_max()
        best = seq.min() if agg.kind == "first" else seq.max()
        return [value.filter(keep).get(pick).alias(out), best.alias(f"{_HIDDEN}{out}_seq")]
    if agg.kind == "distinct":
        return [only(value).unique().alias(out)]
    raise ProjectionError(f"unknown aggregate kind {agg.kind!r}")


def _polars_merge(out: str, agg: Agg) -> list[pl.Expr]:
    col = pl.col(out)
    if agg.kind in ("count", "sum"):
        return [col.sum().alias(out)]
    if agg.kind in ("min", "max"):
        return [getattr(col, agg.kind)().alias(out)]
    if agg.kind in ("first", "last"):
        seq = pl.col(f"{_HIDDEN}{out}_seq")
        pick = seq.arg_min() if agg.kind == "first" else seq.arg_max()
        best = seq.min() if agg.kind == "first" else seq.max()
        return [col.get(pick).alias(out), best.alias(f"{_HIDDEN}{out}_seq")]
    if agg.kind == "distinct":
        return [col.list.explode(keep_nulls=False, empty_as_null=False).unique().alias(out)]
    raise ProjectionError(f"unknown aggregate kind {agg.kind!r}")


def _sql_agg(agg: Agg) -> str:
    filt = f" FILTER (WHERE {agg.where})" if agg.where else ""
    if agg.kind == "count":
        return f"COUNT(*){filt}"
    if agg.kind == "sum":
        return f"COALESCE(SUM({agg.expr}){filt}, 0)"
    if agg.kind in ("min", "max"):
        return f"{agg.kind.upper()}({agg.expr}){filt}"
    if agg.kind == "first":
        return f"arg_min_null({agg.expr}, seq){filt}"
    if agg.kind == "last":
        return f"arg_max_null({agg.expr}, seq){filt}"
    if agg.kind == "distinct":
        return f"COALESCE(list_sort(list_distinct(list({agg.expr}){filt})), [])"
    raise ProjectionError(f"unknown aggregate kind {agg.kind!r}")


def _reads(proj: AnyProjection) -> tuple[set[str] | None, list[str] | None]:
    """The event columns and types a projection reads (None: any; a function may read anything)."""
    if not isinstance(proj, Projection):
        return None, None
    texts = [*proj.keys.values(), proj.where]
    texts += [t for agg in proj.aggregates.values() for t in (agg.expr, agg.where)]
    columns = {name for text in texts if text for name in pl.sql_expr(text).meta.root_names()}
    return columns, None if proj.event_types is None else list(proj.event_types)


def _sql_str(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _check_name(name: str) -> None:
    if not name or not name.replace("_", "a").isalnum() or not name[0].isalpha():
        raise ProjectionError(f"projection name {name!r}: use letters, digits and _ (starting with a letter)")


def _hash(obj: object) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]
