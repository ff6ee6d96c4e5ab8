"""The engine protocol, and the slice of the log an engine folds.

An engine does three things with a declarative definition: fold the events of a cut into
the definition's stored form (partial aggregates, mergeable), merge two stored forms (a
snapshot or stored table ⊕ the fold of a tail), and finish a stored form into the table a
user sees. Engines differ in how they read events — DuckDB reads the Parquet files of the
cut with the file list pruned by Delta statistics, Polars a lazy scan — and must agree on
every value and type: the stored and finished schemas are the Polars engine's.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import polars as pl

from eventlog.errors import StorageError
from eventlog.store.damage import first_unreadable

if TYPE_CHECKING:
    from eventlog.core.definitions import Projection
    from eventlog.core.evolution import SchemaHistory
    from eventlog.store.base import EventStore


@dataclass(frozen=True)
class EventSlice:
    """The committed events of one store with after < seq <= cut (and occurred_at <= business).

    ``storage`` is pinned by the caller (refreshed to the version whose head is >= cut), so an
    engine reading it later sees the same files.
    """

    storage: EventStore
    history: SchemaHistory
    cut: int
    after: int = 0
    business: dt.datetime | None = None
    streams: Sequence[str] | None = None

    @property
    def empty(self) -> bool:
        return self.cut <= self.after


#: What an engine folds: a slice of a store, or events already in memory (a batch just
#: appended, a tail read once for several projections).
Events = EventSlice | pl.DataFrame | pl.LazyFrame


class Engine(Protocol):
    """Fold, merge and finish a declarative definition; render it as SQL for the engine's dialect."""

    name: str
    dialect: str

    def fold(self, definition: Projection, events: Events) -> pl.DataFrame:
        """The stored form (keys, partial aggregates, order keys of first/last) of ``events``."""
        ...

    def merge(self, definition: Projection, stored: pl.DataFrame, tail: pl.DataFrame) -> pl.DataFrame:
        """``stored`` followed by ``tail`` (both stored forms), as one stored form."""
        ...

    def finish(self, definition: Projection, stored: pl.DataFrame) -> pl.DataFrame:
        """The table a user sees: derived columns, the ``having`` filter, hidden columns dropped, sorted."""
        ...

    def sql(self, definition: Projection, source: str) -> str:
        """The finished definition as one query over ``source``, in the engine's dialect."""
        ...


def lazy_events(events: EventSlice) -> pl.LazyFrame:
    """A slice as a Polars LazyFrame: stored columns with the schema's read rules applied."""
    lf = events.storage.scan(after=events.after, cut=events.cut)
    if events.business is not None:
        lf = lf.filter(pl.col("occurred_at") <= events.business)
    if events.streams is not None:
        lf = lf.filter(pl.col("stream_id").is_in(list(events.streams)))
    if events.history.rules:
        lf = events.history.apply(lf)
    return lf


def slice_schema(events: EventSlice) -> pl.Schema:
    """The columns and types of a slice as ``lazy_events`` gives them, without building a scan
    (opening one costs a Delta table read: a tenth of a warm read)."""
    lf = pl.LazyFrame(schema=events.storage.columns())
    if events.history.rules:
        lf = events.history.apply(lf)
    return lf.collect_schema()


def unreadable_file_error(events: EventSlice, paths: list[str] | None = None) -> StorageError | None:
    """The error naming a data file of the slice that is gone or unreadable, if one is.

    Engines' own errors on a damaged file range from FileNotFoundError to a schema error;
    only a file that really is damaged turns one into this StorageError.
    """
    if paths is None:
        day_max = None if events.business is None else events.business.date()
        paths = events.storage.files_covering(after=events.after, cut=events.cut, day_max=day_max).paths
    damaged = first_unreadable(paths)
    return None if damaged is None else damaged_data_error(str(events.storage.path.parent), *damaged)


def damaged_data_error(store: str, file: str, why: str) -> StorageError:
    """A data file the store lists is gone or unreadable: say which, and what to do."""
    return StorageError(
        f"reading the events of the store at {store} failed: the data file {file} is damaged ({why}). "
        "Run `eventlog verify` to check the store, then restore the file from a backup",
        store=store, file=file,
    )
