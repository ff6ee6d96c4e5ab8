"""The store's log, state and projections on Apache Spark: the same definitions, a cluster engine.

For data that outgrows one machine. Every function takes a SparkSession and a store (a path,
a ``file://`` URI, an EventLog or an Inventory) and reads the files of **one pinned Delta
version** of ``<store>/events`` — never the folder, which after ``compact()`` still holds
superseded files until vacuum. The state and the declarative projections are the very
definitions the local engines fold (``eventlog.model``), rendered as Spark SQL by sqlglot
(``eventlog.core.sqlrender``); every result equals the local engines' (values and types).

- :func:`events` — the committed events at a cut, read rules (upcasters) applied;
- :func:`stock` — the inventory's state, as ``Inventory.stock()``;
- :func:`projection` — a declarative projection, as ``Inventory.projection(name).read()``;
- :func:`rebuild` — projections computed on Spark and committed as the store's projection
  tables, with the metadata of a local build: local reads, SQL views and incremental
  updates carry on from them.

Spark needs Java 17+ and ``pip install 'eventlog[spark]'``. Executors read the data files by
the paths the driver lists: on a cluster the store must be at the same path on every node
(see docs/scale-out.md). Set ``spark.sql.session.timeZone=UTC`` to see times in UTC, and
``spark.sql.sources.parallelPartitionDiscovery.threshold`` above the number of data files
(Spark otherwise runs a job just to list them).

Example (not run as a doctest: a session takes 15-90 s to start here)::

    from pyspark.sql import SparkSession
    import eventlog.spark

    spark = SparkSession.builder.master("local[2]").config("spark.sql.session.timeZone", "UTC").getOrCreate()
    eventlog.spark.stock(spark, "data/store").show()
    eventlog.spark.rebuild(spark, "data/store", ["daily_flows"])
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

try:
    import pyspark  # noqa: F401  (the extra's own check: say what to install)
except ImportError as exc:  # pragma: no cover - the dev extra installs it
    raise ImportError("eventlog.spark runs on Apache Spark: pip install 'eventlog[spark]' (and Java 17+)",
                      name="pyspark") from exc

from eventlog.core.cuts import Cut, parse_point
from eventlog.core.definitions import AnyProjection, FunctionProjection, Projection, ProjectionStatus
from eventlog.errors import NoSparkFormError, ValidationError
from eventlog.model.builtins import BUILTINS
from eventlog.model.schema import check_inventory_schema, is_inventory
from eventlog.model.state import STATE
from eventlog.projector import Projector
from eventlog.spark import _fold, _write
from eventlog.spark._read import Pinned, Store, column, open_log

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

#: Results of up to this many rows come to the driver (Arrow) in ``rebuild``; larger ones are
#: written by Spark as Parquet and committed from those files.
DRIVER_ROWS = 1_000_000


def events(spark: SparkSession, store: Store, *, as_of: Cut = None, known_at: Cut = None) -> DataFrame:
    """The committed events at a cut, as ``EventLog.scan`` shows them, plus ``occurred_on``.

    Args:
        as_of: a seq (events with seq <= n) or business time (events with occurred_at <= t;
            a date is the end of that UTC day), as for ``Inventory.stock``.
        known_at: what the log had recorded by then (a seq, or a time: recorded_at <= t).

    Returns:
        An unordered DataFrame (``orderBy("seq")`` for log order) with the columns of the
        store's current schema, old events read through its upcasters and defaults, and the
        partition column ``occurred_on`` (filter on it to skip whole days of files).

    Example::

        eventlog.spark.events(spark, "data/store", as_of="2024-02-01").groupBy("event_type").count()
    """
    log = open_log(store)
    pinned = Pinned.of(log)
    cut = pinned.resolve(spark, as_of, known_at)
    frame = pinned.events(spark, cut=cut.seq, business=cut.business)
    names = [*log.schema.columns(), "occurred_on"]
    return frame.select(*[column(c) for c in names])


def stock(spark: SparkSession, store: Store, *, as_of: Cut = None, known_at: Cut = None) -> DataFrame:
    """The inventory's state on Spark: the rows of ``Inventory.stock(as_of, known_at=...)``, ordered by item.

    The state definition (``eventlog.model.state.STATE``) folded and finished on Spark over
    the events at the cut; no snapshot is read.

    Raises:
        SchemaMismatchError: the store is not an inventory.

    Example::

        eventlog.spark.stock(spark, "data/store", as_of="2024-02-01").show()
    """
    log = open_log(store)
    check_inventory_schema(log)
    pinned = Pinned.of(log)
    cut = pinned.resolve(spark, as_of, known_at)
    return _fold.finished(spark, STATE, pinned.events(spark, cut=cut.seq, business=cut.business), log)


def projection(spark: SparkSession, store: Store, name: str, *, as_of: Cut = None) -> DataFrame:
    """A declarative projection computed on Spark from its definition (not from its stored table).

    Equal to ``Inventory.projection(name).read(as_of)``. The projections are an Inventory's
    registered ones (its own included); for a path, the built-ins of an inventory store.

    Raises:
        ProjectionError: no projection of that name.
        NoSparkFormError: it is a function projection, which has no Spark form.

    Example::

        eventlog.spark.projection(spark, "data/store", "daily_flows").filter("day >= '2024-06-01'").show()
    """
    projector = _projector(store)
    definition = _declarative(projector, name)
    pinned = Pinned.of(projector.log)
    point = parse_point(as_of, name="as_of")
    cut = point if isinstance(point, int) else None
    business = None if isinstance(point, int) else point
    return _fold.finished(spark, definition, pinned.events(spark, cut=cut, business=business), projector.log)


def rebuild(spark: SparkSession, store: Store, names: Sequence[str] | None = None, *,
            driver_rows: int = DRIVER_ROWS) -> dict[str, ProjectionStatus]:
    """Build projections on Spark and commit them as the store's projection tables.

    Each table is the projection's stored form at the head, committed with the checkpoint and
    fingerprint a local build writes, so ``Inventory.projection(name).read()``, the SQL views
    and local incremental updates carry on from it. The projections' update locks are held
    meanwhile, so a local updater waits rather than interleaving.

    Args:
        names: the projections to build; by default every declarative one (function
            projections are rebuilt locally from their sources on their next update).
        driver_rows: a result of at most this many rows comes to the driver through Arrow; a
            larger one is written by Spark as Parquet into ``<store>/projections/.staging``
            and committed from those files, never collected.

    Returns:
        Each projection's status after the build.

    Raises:
        NoSparkFormError: a named projection is a function; nothing was built.

    Example::

        eventlog.spark.rebuild(spark, "data/store")["daily_flows"].checkpoint
    """
    projector = _projector(store)
    if isinstance(names, str):  # list("ab") would build projections "a" and "b"
        raise ValidationError(f"give a list of names, e.g. names=[{names!r}]", field="names")
    if driver_rows < 0:
        raise ValidationError(f"driver_rows is 0 or more, not {driver_rows}", field="driver_rows")
    chosen = [n for n, p in projector.registry.items() if isinstance(p, Projection)] if names is None else list(names)
    definitions = {name: _declarative(projector, name) for name in dict.fromkeys(chosen)}
    locks = [projector.tables.lock(name) for name in sorted(definitions)]  # the order Projector.update takes them in
    for lock in locks:
        lock.acquire()
    try:
        pinned = Pinned.of(projector.log)  # read once the tables are ours, as a local update does
        events_at_head = pinned.events(spark)
        for definition in definitions.values():
            start = time.perf_counter()
            form = _fold.stored(spark, definition, events_at_head, projector.log)
            _write.commit(spark, projector, definition, form, head=pinned.head, start=start, driver_rows=driver_rows)
    finally:
        for lock in reversed(locks):
            lock.release()
    return {name: projector.status(name, head=pinned.head) for name in definitions}


def _projector(store: Store) -> Projector:
    """The store's registered projections: an Inventory's own, or the built-ins of an inventory store."""
    found = getattr(store, "projector", None)
    if isinstance(found, Projector):
        return found
    log = open_log(store)
    projector = Projector(log)
    if is_inventory(log):
        for builtin in BUILTINS:
            projector.register(builtin)
    return projector


def _declarative(projector: Projector, name: str) -> Projection:
    definition: AnyProjection = projector.get(name)
    if isinstance(definition, FunctionProjection):
        if definition.source == "events":
            over, then = "the events", ""
        else:
            over, then = f"the table of {definition.source!r}", f"rebuild {definition.source!r} on Spark, then "
        raise NoSparkFormError(
            f"projection {name!r} is a Python function over {over} (a FunctionProjection): it has no Spark form; "
            f"{then}compute it locally: Inventory.open(path).projection({name!r}).read()", name=name)
    return definition


__all__ = ["DRIVER_ROWS", "events", "projection", "rebuild", "stock"]
