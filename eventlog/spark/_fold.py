"""A declarative definition run on Spark: ``core/sqlrender``'s Spark SQL over a view of the events.

The same definition the local engines fold (fold → finish), rendered by sqlglot for Spark
(first/last as ``min_by``/``max_by``, distinct sets as ``array_sort(array_distinct(...))``);
results are cast to the Polars engine's schemas, which every engine agrees on.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import polars as pl

from eventlog.core import sqlrender
from eventlog.engines.choose import engine_named
from eventlog.spark._read import cast_to

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

    from eventlog.core.definitions import Projection
    from eventlog.log import EventLog

#: The name the rendered SQL reads the events from, replaced by a view of this call's own.
_EVENTS = "__eventlog_events"


def stored(spark: SparkSession, definition: Projection, events: DataFrame, log: EventLog) -> DataFrame:
    """The stored form (keys, partial aggregates, order keys of first/last) of ``events``."""
    query = sqlrender.fold(definition, _EVENTS, dialect="spark")
    return cast_to(_over(spark, events, query), schemas(definition, log)[0])


def finished(spark: SparkSession, definition: Projection, events: DataFrame, log: EventLog) -> DataFrame:
    """The table a user sees (fold, then derived columns, ``having``, sorted by the keys), in one query."""
    query = sqlrender.to_sql(definition, _EVENTS, dialect="spark")
    return cast_to(_over(spark, events, query), schemas(definition, log)[1])


def schemas(definition: Projection, log: EventLog) -> tuple[pl.Schema, pl.Schema]:
    """The stored and finished schemas the local engines give for this store's events (no data read)."""
    columns = pl.LazyFrame(schema=log.storage.columns())
    history = log.schema_history
    events = history.apply(columns) if history.rules else columns
    polars = engine_named("polars")
    empty = polars.fold(definition, events)
    return empty.schema, polars.finish(definition, empty).schema


def _over(spark: SparkSession, events: DataFrame, query: str) -> DataFrame:
    """``query`` run with ``events`` as its source.

    Through ``spark.sql``'s DataFrame arguments: a classic session gives the frame a view of
    its own for the analysis only, Spark Connect sends it with the plan. The query is
    formatted as Python text, so its own braces (in literals) are doubled first.
    """
    text = query.replace("{", "{{").replace("}", "}}")
    return spark.sql(sqlrender.substitute(text, {_EVENTS: "{events}"}), events=events)
