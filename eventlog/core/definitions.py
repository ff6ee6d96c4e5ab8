"""Projection definitions: engine-neutral descriptions of analytic tables over the log.

A :class:`Projection` is declarative — group keys and aggregates from a mergeable family
(count, sum, min, max, first/last by seq, distinct set), written as SQL expressions over
the event columns. Because every aggregate merges, one definition gives a full build, an
incremental update (stored table ⊕ fold of the events after its checkpoint) and ``as_of``
reads; the engines (``eventlog.engines``) render it for Polars, DuckDB and Spark.

A :class:`FunctionProjection` is a free function over the events (or over another
projection's table); it is recomputed rather than merged — wholly, or from the days a
trailing window reads — and its status says which.
"""

from __future__ import annotations

import hashlib
import inspect
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import polars as pl

from eventlog.core import sqlrender
from eventlog.errors import ProjectionError

AggKind = Literal["count", "sum", "min", "max", "first", "last", "distinct"]
#: Prefix of bookkeeping columns kept in the stored table only (order keys of first/last).
HIDDEN = "__"


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
    #: first/last: the column that orders events (seq; or a column ordered as seq within every
    #: group, such as stream_version when the key is the stream, which saves reading seq).
    by: str = "seq"

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
    def first(expr: str, *, where: str | None = None, by: str = "seq") -> Agg:
        """The value on the matching event with the lowest seq (nulls included)."""
        return Agg("first", expr, where, by)

    @staticmethod
    def last(expr: str, *, where: str | None = None, by: str = "seq") -> Agg:
        """The value on the matching event with the highest seq (nulls included)."""
        return Agg("last", expr, where, by)

    def identity(self) -> list[Any]:
        """What the fingerprint hashes: ``by`` only when it is not the default, so that
        definitions written before it existed keep their fingerprints (and stored tables)."""
        return [self.kind, self.expr, self.where] + ([self.by] if self.by != "seq" else [])

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
        having: a SQL filter over the merged columns: which rows the finished table shows
            (every group is kept in the stored form, so that later events still merge).
        partition_by: a date key to store the table by month of: an update then rewrites
            only the months from the first one its events touched (daily tables).

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
    having: str | None = None
    partition_by: str | None = None

    mode = "merge"
    source = "events"

    def __post_init__(self) -> None:
        _check_name(self.name)
        if not self.aggregates:
            raise ProjectionError(f"projection {self.name!r} needs at least one aggregate")
        if self.partition_by is not None and self.partition_by not in self.keys:
            raise ProjectionError(f"projection {self.name!r}: partition_by {self.partition_by!r} is not one of its keys")
        for out in [*self.keys, *self.aggregates, *self.derived]:
            if out.startswith(HIDDEN):
                raise ProjectionError(f"projection {self.name!r}: column {out!r} may not start with {HIDDEN!r}")

    # --- identity ------------------------------------------------------------------------

    def definition(self) -> dict[str, Any]:
        return {
            "kind": "declarative",
            "name": self.name,
            "version": self.version,
            "keys": dict(self.keys),
            "aggregates": {k: a.identity() for k, a in self.aggregates.items()},
            "event_types": None if self.event_types is None else list(self.event_types),
            "where": self.where,
            "derived": dict(self.derived),
        } | ({"having": self.having} if self.having is not None else {})

    def fingerprint(self) -> str:
        return stable_hash(self.definition())

    def hidden(self, out: str) -> str:
        """The stored-form column that carries the order key of a first/last aggregate."""
        return f"{HIDDEN}{out}_seq"

    def to_sql(self, source: str = "events", *, dialect: str = "duckdb") -> str:
        """The finished projection as one SQL query over ``source``, for a sqlglot dialect.

        Example:
            >>> p = Projection("per_item", keys={"item": "stream_id"}, aggregates={"n": Agg.count()})
            >>> print(p.to_sql("events", dialect="spark"))
            SELECT
              `item`,
              `n`
            FROM (
              SELECT
                stream_id AS `item`,
                COUNT(*) AS `n`
              FROM events
              GROUP BY
                stream_id
            ) AS folded
            ORDER BY
              `item` NULLS LAST
        """
        return sqlrender.to_sql(self, source, dialect=dialect)


#: How a function projection is brought up to date (see :class:`FunctionProjection`).
Updates = Literal["rebuild", "from_day"]


@dataclass(frozen=True)
class FunctionProjection:
    """A projection computed by a function, recomputed whenever its source moves.

    ``source`` is ``"events"`` (the function gets the events LazyFrame, cut at the build's
    seq) or the name of another projection (the function gets that projection's finished
    table as a DataFrame), so cheap summaries can build on an incremental one.

    ``updates`` says how much an update recomputes:

    - ``"rebuild"`` (the default): the function runs on the whole source every time.
    - ``"from_day"``: the output depends only on the source's rows from ``window_days`` days
      before its latest ``day`` on (a trailing window: ``day >= latest - window_days + 1``).
      An update then reads only those days of the source (a ``partition_by`` projection, by
      ``day``) and recomputes from them, and skips the function when the days that changed
      all lie before a window that did not move. ``columns`` (the source columns the function
      reads) lets those days be finished on their own when some derived column of the
      source, such as a running total, would need every earlier day.

    Example:
        >>> import polars as pl
        >>> last = FunctionProjection("last_day", lambda d: d.filter(pl.col("day") == pl.col("day").max()),
        ...                           source="daily_stock", updates="from_day", day="day", window_days=1)
        >>> last.mode
        'from_day'
    """

    name: str
    function: Callable[[Any], pl.DataFrame | pl.LazyFrame]
    source: str = "events"
    version: int = 1
    rank_by: str | None = None
    description: str = ""
    updates: Updates = "rebuild"
    day: str | None = None
    window_days: int | None = None
    columns: Sequence[str] | None = None

    keys: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _check_name(self.name)
        if self.updates not in ("rebuild", "from_day"):
            raise ProjectionError(f"projection {self.name!r}: updates is 'rebuild' or 'from_day', not {self.updates!r}")
        if self.updates == "from_day":
            if self.source == "events" or self.day is None:
                raise ProjectionError(f"projection {self.name!r}: updates='from_day' needs a source projection "
                                      "partitioned by day and day= naming that column")
            if not isinstance(self.window_days, int) or isinstance(self.window_days, bool) or self.window_days < 1:
                raise ProjectionError(f"projection {self.name!r}: updates='from_day' needs window_days, a whole "
                                      f"number of days >= 1, not {self.window_days!r}")
            if self.columns is not None and self.day not in self.columns:
                raise ProjectionError(f"projection {self.name!r}: columns must include the day column {self.day!r}")

    @property
    def mode(self) -> str:
        return self.updates

    def definition(self) -> dict[str, Any]:
        try:
            code = inspect.getsource(self.function)
        except (OSError, TypeError):
            code = getattr(self.function, "__qualname__", repr(self.function))
        out = {"kind": "function", "name": self.name, "version": self.version, "source": self.source, "code": code}
        if self.updates != "rebuild":  # only when set: fingerprints of earlier definitions stay
            out |= {"updates": self.updates, "day": self.day, "window_days": self.window_days}
        if self.columns is not None:
            out["columns"] = list(self.columns)
        return out

    def fingerprint(self) -> str:
        return stable_hash(self.definition())

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
    #: The Delta version of the projection's table (for ``read(version=...)``); None before a build.
    version: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


# --- compiling aggregates ------------------------------------------------------------------


def columns_read(proj: AnyProjection) -> tuple[set[str] | None, list[str] | None]:
    """The event columns and types a projection reads (None: any; a function may read anything)."""
    if not isinstance(proj, Projection):
        return None, None
    texts = [*proj.keys.values(), proj.where]
    texts += [t for agg in proj.aggregates.values() for t in (agg.expr, agg.where)]
    texts += [agg.by for agg in proj.aggregates.values() if agg.kind in ("first", "last")]
    columns = {name for text in texts if text for name in pl.sql_expr(text).meta.root_names()}
    return columns, None if proj.event_types is None else list(proj.event_types)


def _check_name(name: str) -> None:
    if not name or not name.replace("_", "a").isalnum() or not name[0].isalpha():
        raise ProjectionError(f"projection name {name!r}: use letters, digits and _ (starting with a letter)")


def stable_hash(obj: object) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]
