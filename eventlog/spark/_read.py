"""A store's events as a Spark DataFrame: the files of one pinned Delta version, never the folder.

After ``compact()`` the events folder still holds the files it replaced until ``vacuum``;
Spark reading the folder (or a glob of it) would count their rows twice. So the file list
comes from the Delta log of the version the read pinned (``EventStore.files_covering``,
pruned by seq and day statistics), the schema from the store (columns missing in older
files read as null), and ``basePath`` makes Spark take ``occurred_on`` from the folder
names. The store's read rules (upcasters, defaults of added fields) are rendered for Spark
through the same sqlglot path as the definitions.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import urllib.parse
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import polars as pl
from pyspark.sql import functions as F
from pyspark.sql import types as T
from sqlglot import exp

from eventlog.core import sqlrender
from eventlog.core.cuts import Cut, TimeCut, resolve_cut
from eventlog.errors import StorePathError, ValidationError
from eventlog.log import EventLog

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, SparkSession

    from eventlog.core.evolution import ReadRule, SchemaHistory

#: What the public functions take as a store: a path or ``file://`` URI, an EventLog, an Inventory.
Store = Any
#: Hadoop reads these as a glob in a file path; store paths may hold { and } (the rest are refused).
_GLOB = re.compile(r"([{}\[\]*?\\])")


def open_log(store: Store) -> EventLog:
    """The EventLog of ``store``; a path or ``file://`` URI is opened (never created)."""
    log = getattr(store, "log", None)
    if isinstance(log, EventLog):  # an Inventory (or another domain over a log)
        return log
    if isinstance(store, EventLog):
        return store
    if isinstance(store, os.PathLike):
        return EventLog.open(store)
    if isinstance(store, str):
        return EventLog.open(local_path(store))
    raise ValidationError(f"a store is a path, a file:// URI, an EventLog or an Inventory, not {type(store).__name__}",
                          field="store")


def local_path(text: str) -> str:
    """A path from a store's text: a plain path, or a ``file://`` URI (percent-escapes decoded).

    Other schemes (``s3://``, ``abfss://``, ``gs://``) are refused: the store (its lock, its
    ``eventlog.json``, its snapshots) lives on a file system; see docs/scale-out.md for mounts.
    """
    if "://" not in text:
        return text
    parts = urllib.parse.urlsplit(text)
    if parts.scheme.lower() == "file" and parts.netloc in ("", "localhost"):
        return urllib.parse.unquote(parts.path)
    raise StorePathError(
        f"the store {text!r} is not on a file system: eventlog opens a store by path or file:// URI. Mount the "
        "bucket or volume (e.g. /dbfs/..., /Volumes/..., an NFS or FUSE mount) on the driver and every executor "
        "at the same path and give that path (docs/scale-out.md)"
    )


@dataclass(frozen=True)
class Pinned:
    """One store at one Delta version: the head seq and the file list every read of a call uses."""

    log: EventLog
    head: int

    @classmethod
    def of(cls, log: EventLog) -> Pinned:
        # head() refreshes the store to its latest version (and schema); nothing below refreshes
        # it again, so every file list of this call comes from that one version.
        return cls(log, log.head())

    def events(self, spark: SparkSession, *, cut: int | None = None, business: dt.datetime | None = None) -> DataFrame:
        """The committed events with seq <= cut (and occurred_at <= business), read rules applied.

        Every stored column in stored order (``occurred_on`` among them), unordered.
        """
        storage = self.log.storage
        cut = self.head if cut is None else min(cut, self.head)
        columns = storage.columns()
        schema = spark_schema(columns)
        cover = storage.files_covering(after=0, cut=cut, day_max=None if business is None else business.date())
        if not cover.paths:
            frame = spark.createDataFrame([], schema)
        else:
            root = str(storage.path)
            frame = (spark.read.schema(schema).option("basePath", root)
                     .parquet(*[_GLOB.sub(r"\\\1", p) for p in cover.paths]))
        if not cover.inside:
            frame = frame.filter(F.col("seq") <= F.lit(cut))
        if business is not None:
            frame = frame.filter(F.col("occurred_at") <= F.lit(business))
        frame = with_read_rules(frame, self.log.schema_history)
        return frame.select(*[column(c) for c in columns])

    def resolve(self, spark: SparkSession, as_of: Cut, known_at: Cut) -> TimeCut:
        """``as_of``/``known_at`` as a seq cut and a business-time cut, as ``Inventory.stock`` reads them.

        A ``known_at`` time becomes the last seq recorded by then (recorded_at is
        non-decreasing in seq), found on Spark.
        """
        def last_seq_recorded_by(known: dt.datetime) -> int:
            recorded = (self.events(spark).filter(F.col("recorded_at") <= F.lit(known))
                        .agg(F.max("seq")).collect()[0][0])
            return int(recorded or 0)

        cut = resolve_cut(as_of, known_at, last_seq_recorded_by)
        return TimeCut(seq=self.head if cut.seq is None else min(cut.seq, self.head), business=cut.business)


def with_read_rules(frame: DataFrame, history: SchemaHistory) -> DataFrame:
    """``frame`` (stored columns) with the schema's read rules applied, version by version.

    The same rules as ``SchemaHistory.apply`` (Polars) and ``sql_source`` (DuckDB): each rule
    sets its field on the events of its type with seq < first_seq of its version.
    """
    by_version: dict[int, dict[str, list[ReadRule]]] = {}
    for rule in history.rules:
        by_version.setdefault(rule.version, {}).setdefault(rule.name, []).append(rule)
    for version in sorted(by_version):
        replaced: dict[str, Column] = {}
        for name, rules in by_version[version].items():
            arms = " ".join(f"WHEN {_applies(rule)} THEN ({_rule_sql(rule)})" for rule in rules)
            target = exp.to_identifier(name, quoted=True).sql(dialect="spark")
            dtype = spark_type(rules[0].field.dtype)
            replaced[name] = F.expr(f"CASE {arms} ELSE {target} END").cast(dtype)
        frame = frame.withColumns(replaced)
    return frame


def _applies(rule: ReadRule) -> str:
    condition = exp.and_(
        exp.EQ(this=exp.column("event_type"), expression=exp.Literal.string(rule.event_type)),
        exp.LT(this=exp.column("seq"), expression=exp.Literal.number(rule.first_seq)),
    )
    return condition.sql(dialect="spark")


def _rule_sql(rule: ReadRule) -> str:
    if rule.expression is None:
        owner = f"the default of field {rule.name!r} of event type {rule.event_type!r}"
    else:
        owner = f"Upcaster({rule.event_type!r}, {rule.name!r}, {rule.expression!r})"
    return sqlrender.transpile(rule.sql(), dialect="spark", owner=owner)


# --- types -----------------------------------------------------------------------------------


def spark_schema(columns: dict[str, pl.DataType] | pl.Schema) -> T.StructType:
    return T.StructType([T.StructField(name, spark_type(dtype), True) for name, dtype in columns.items()])


def spark_type(dtype: pl.DataType) -> T.DataType:
    """The Spark type whose Arrow form Polars reads back as ``dtype``."""
    if isinstance(dtype, pl.Datetime):
        if dtype.time_zone is None:
            return T.TimestampNTZType()
        return T.TimestampType()  # an instant; Spark shows it in the session time zone
    if isinstance(dtype, pl.List):
        inner = dtype.inner if isinstance(dtype.inner, pl.DataType) else dtype.inner()
        return T.ArrayType(spark_type(inner), True)
    simple: dict[type[pl.DataType], T.DataType] = {
        pl.Int64: T.LongType(), pl.Int32: T.IntegerType(), pl.Int16: T.ShortType(), pl.Int8: T.ByteType(),
        pl.Float64: T.DoubleType(), pl.Float32: T.FloatType(), pl.String: T.StringType(),
        pl.Boolean: T.BooleanType(), pl.Date: T.DateType(), pl.Null: T.NullType(),
    }
    for kind, spark in simple.items():
        if isinstance(dtype, kind):
            return spark
    raise ValidationError(f"a column of type {dtype} has no Spark type here", field=str(dtype))


def column(name: str) -> Column:
    """A column by name, whatever characters it holds (dots, spaces, backticks)."""
    return F.col("`" + name.replace("`", "``") + "`")


def cast_to(frame: DataFrame, schema: pl.Schema) -> DataFrame:
    """``frame``'s columns of ``schema``, in its order, cast to its types (the local engines')."""
    return frame.select(*[column(name).cast(spark_type(dtype)).alias(name) for name, dtype in schema.items()])

