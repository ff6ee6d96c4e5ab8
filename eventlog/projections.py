"""Projections: analytic tables computed from the log, kept up to date from its tail.

A :class:`Projection` is declarative — group keys and aggregates from a mergeable family
(count, sum, min, max, first/last by seq, distinct set), written as SQL expressions over
the event columns. Because every aggregate merges, one definition gives a full build, an
incremental update (stored table ⊕ fold of the events after its checkpoint) and ``as_of``
reads; and because the expressions are SQL, the same definition compiles to Polars
(``pl.sql_expr``) and to a SQL query for DuckDB or any other engine.

A :class:`FunctionProjection` is a free function over the events (or over another
projection's table); it is rebuilt rather than merged, and its status says so.

This module depends only on the log; domains (the inventory) register their own.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import inspect
import json
import os
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import polars as pl
from filelock import FileLock

from eventlog.errors import ProjectionError

if TYPE_CHECKING:
    from eventlog.log import EventLog

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


# --- materialised tables -------------------------------------------------------------------


@dataclass(frozen=True)
class _Manifest:
    file: str
    checkpoint: int
    fingerprint: str
    built_at: str
    duration_s: float
    rows: int
    mode: str
    name: str
    full_build: bool


class ProjectionTables:
    """The materialised tables under ``<store>/projections/<name>/``.

    Each build writes a new Parquet file, then swaps ``current.json`` to point at it with
    one atomic rename: readers see the old table or the new one, never a mix. The previous
    file is kept one generation so that a reader holding the old manifest can still read it.
    """

    def __init__(self, root: Path) -> None:
        self.root = root

    def folder(self, name: str) -> Path:
        return self.root / name

    def manifest(self, name: str) -> _Manifest | None:
        path = self.folder(name) / "current.json"
        try:
            return _Manifest(**json.loads(path.read_text()))
        except FileNotFoundError:
            return None
        except (ValueError, TypeError) as exc:
            raise ProjectionError(f"projection {name!r}: {path} is unreadable ({exc}); rebuild it") from exc

    def read(self, name: str, manifest: _Manifest) -> pl.DataFrame:
        return pl.read_parquet(self.folder(name) / manifest.file)

    def lock(self, name: str) -> FileLock:
        folder = self.folder(name)
        folder.mkdir(parents=True, exist_ok=True)
        return FileLock(str(folder / ".lock"))

    def write(self, name: str, table: pl.DataFrame, manifest: dict[str, Any]) -> _Manifest:
        folder = self.folder(name)
        folder.mkdir(parents=True, exist_ok=True)
        previous = self._current_file(name)
        stamp = f"{time.time_ns():020d}"
        final = f"t-{manifest['checkpoint']:015d}-{stamp}.parquet"
        info = _Manifest(file=final, rows=table.height, **manifest)
        tmp = tmp_manifest = None
        try:
            fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=".parquet")
            os.close(fd)
            table.write_parquet(tmp, compression="zstd")
            _fsync(Path(tmp))
            os.replace(tmp, folder / final)
            fd, tmp_manifest = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=".json")
            with os.fdopen(fd, "w") as fh:
                json.dump(info.__dict__, fh, indent=2)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp_manifest, folder / "current.json")
        except OSError:
            for leftover in (tmp, tmp_manifest):  # a full disk must not fill up further with every retry
                if leftover is not None:
                    with contextlib.suppress(OSError):
                        os.unlink(leftover)
            raise
        self._drop_old(folder, keep={final, previous})
        return info

    def _current_file(self, name: str) -> str | None:
        try:
            manifest = self.manifest(name)
        except ProjectionError:  # an unreadable manifest is replaced; its table is not worth keeping
            return None
        return manifest.file if manifest is not None else None

    def _drop_old(self, folder: Path, keep: set[str | None]) -> None:
        """Remove every table but ``keep``: the new one, and the one a reader may still hold a manifest of.

        The table before is named by the manifest that was current, not guessed by age: a build
        that failed between placing its table and its manifest leaves a newer file no one reads.
        """
        for path in folder.glob("t-*.parquet"):
            if path.name not in keep:
                path.unlink(missing_ok=True)
        stale = time.time() - 3600
        for tmp in folder.glob(".tmp-*"):  # files of builders that crashed
            if tmp.stat().st_mtime < stale:
                tmp.unlink(missing_ok=True)


# --- the engine ----------------------------------------------------------------------------


class Projector:
    """Builds, updates and reads the projections registered on one log.

    Incremental updates read the tail of the log once for all merge projections; full
    builds of several projections share one scan (Polars runs them together).
    """

    #: Past this many tail events an update streams from the log instead of loading the tail.
    TAIL_IN_MEMORY = 5_000_000

    def __init__(self, log: EventLog) -> None:
        self.log = log
        self.tables = ProjectionTables(log.path / "projections")
        self.registry: dict[str, AnyProjection] = {}
        # The last finished table per projection, keyed by (stored file, head): derived
        # projections and repeated reads share one finish instead of redoing sorts/windows.
        self._finished: dict[str, tuple[tuple[str, int], pl.DataFrame]] = {}

    def register(self, projection: AnyProjection) -> None:
        if not isinstance(projection, (Projection, FunctionProjection)):
            raise ProjectionError(f"expected a Projection or FunctionProjection, got {type(projection).__name__}")
        if projection.source != "events" and projection.source not in self.registry:
            raise ProjectionError(
                f"projection {projection.name!r} reads {projection.source!r}, which is not registered; register it first"
            )
        self.registry[projection.name] = projection

    def get(self, name: str) -> AnyProjection:
        try:
            return self.registry[name]
        except KeyError:
            raise ProjectionError(f"no projection named {name!r}; registered: {sorted(self.registry)}") from None

    # --- status --------------------------------------------------------------------------

    def status(self, name: str, *, head: int | None = None) -> ProjectionStatus:
        proj = self.get(name)
        head = self.log.head() if head is None else head
        m = self.tables.manifest(name)
        if m is None:
            return ProjectionStatus(name, proj.mode, None, head, None, None, None, None, False)
        stale = m.fingerprint != self._fingerprint(proj)
        return ProjectionStatus(
            name, proj.mode, m.checkpoint, head, head - m.checkpoint, m.rows, m.built_at, m.duration_s, stale
        )

    def is_current(self, name: str, head: int) -> bool:
        m = self.tables.manifest(name)
        return m is not None and m.checkpoint == head and m.fingerprint == self._fingerprint(self.get(name))

    # --- building ------------------------------------------------------------------------

    def update(self, names: Sequence[str] | None = None, *, rebuild: bool = False,
               progress: Callable[[str], None] | None = None) -> dict[str, ProjectionStatus]:
        """Bring the named projections (all by default) up to the head of the log.

        Merge projections fold only the tail past their checkpoint, read once for all of
        them; a changed definition, a missing table or ``rebuild=True`` means a full build.
        Rebuild-mode projections are recomputed when their source moved.
        """
        wanted = self._with_sources(list(self.registry) if names is None else list(names))
        # One global lock order (by name): two updates of overlapping sets never wait in a cycle.
        locks = [self.tables.lock(n) for n in sorted(wanted)]
        for lock in locks:
            lock.acquire()
        try:
            # The head is read once the tables are ours: read before, it could be older than
            # a checkpoint another updater wrote while we waited, and the tables would go back.
            head = self.log.head()
            self._update_locked(wanted, head, rebuild=rebuild, progress=progress)
        finally:
            for lock in reversed(locks):
                lock.release()
        return {n: self.status(n, head=head) for n in wanted}

    def _update_locked(self, wanted: list[str], head: int, *, rebuild: bool,
                       progress: Callable[[str], None] | None) -> None:
        merge = [n for n in wanted if isinstance(self.registry[n], Projection)]
        full, incremental = [], []
        for name in merge:
            m = None if rebuild else self.tables.manifest(name)  # a rebuild replaces a manifest it cannot read
            if rebuild or m is None or m.fingerprint != self._fingerprint(self.registry[name]) or m.checkpoint > head:
                full.append(name)
            elif m.checkpoint < head:
                incremental.append(name)
        if full:
            self._build_full(full, head, progress)
        if incremental:
            self._build_incremental(incremental, head, progress)
        for name in wanted:
            proj = self.registry[name]
            if isinstance(proj, FunctionProjection) and (rebuild or not self.is_current(name, head)):
                self._build_function(proj, head, progress)

    def _build_full(self, names: list[str], head: int, progress: Callable[[str], None] | None) -> None:
        start = time.perf_counter()
        events = self.log._scan_raw(head)
        # One collect per projection: collect_all over a shared scan was slower here
        # (11.8 s against 4.9 s for the four built-ins at 10M events), as it caches the scan.
        tables = [self.registry[n].fold(events).collect() for n in names]  # type: ignore[union-attr]
        elapsed = time.perf_counter() - start
        for name, table in zip(names, tables, strict=True):
            self._store(name, table, head, elapsed, full=True)
            if progress:
                progress(name)

    def _build_incremental(self, names: list[str], head: int, progress: Callable[[str], None] | None) -> None:
        start = time.perf_counter()
        manifests = {n: self.tables.manifest(n) for n in names}
        lowest = min(m.checkpoint for m in manifests.values() if m is not None)
        if head - lowest > self.TAIL_IN_MEMORY:
            tail = self.log._scan_raw(head, after=lowest)
        else:
            tail = self.log._scan_raw(head, after=lowest).collect().lazy()  # read once, fold many
        for name in names:
            proj = self.registry[name]
            m = manifests[name]
            if not isinstance(proj, Projection) or m is None:  # callers pass merge projections with tables
                raise ProjectionError(f"projection {name!r} cannot be updated incrementally")
            part = proj.fold(tail.filter(pl.col("seq") > m.checkpoint)).collect()
            table = proj.merge(self.tables.read(name, m), part)
            self._store(name, table, head, time.perf_counter() - start, full=False)
            if progress:
                progress(name)

    def _build_function(self, proj: FunctionProjection, head: int, progress: Callable[[str], None] | None) -> None:
        start = time.perf_counter()
        if proj.source == "events":
            table = proj.compute(self.log.scan(as_of=head))
        else:
            table = proj.compute(self.read(proj.source, head=head))
        self._store(proj.name, table, head, time.perf_counter() - start, full=True)
        if progress:
            progress(proj.name)

    def _store(self, name: str, table: pl.DataFrame, head: int, duration: float, *, full: bool) -> None:
        proj = self.registry[name]
        self.tables.write(name, table, {
            "checkpoint": head,
            "fingerprint": self._fingerprint(proj),
            "built_at": dt.datetime.now(dt.timezone.utc).isoformat(),
            "duration_s": round(duration, 6),
            "mode": proj.mode,
            "name": name,
            "full_build": full,
        })

    # --- reading -------------------------------------------------------------------------

    def read(self, name: str, *, head: int | None = None, as_of: int | dt.datetime | None = None) -> pl.DataFrame:
        """The finished table at ``head`` (stored ⊕ tail), or at a seq / business-time cut."""
        proj = self.get(name)
        head = self.log.head() if head is None else head
        if as_of is None:
            return self._read_current(proj, head)
        if isinstance(as_of, int) and isinstance(proj, Projection):
            cut = min(as_of, head)
            m = self.tables.manifest(name)
            if m is not None and m.fingerprint == self._fingerprint(proj) and m.checkpoint <= cut:
                tail = proj.fold(self.log._scan_raw(cut, after=m.checkpoint)).collect()
                return proj.finish(proj.merge(self.tables.read(name, m), tail))
            return proj.finish(proj.fold(self.log._scan_raw(cut)).collect())
        events = self.log.scan(as_of=as_of if isinstance(as_of, int) else None)
        if isinstance(as_of, dt.datetime):
            events = events.filter(pl.col("occurred_at") <= as_of)
        return self._compute_from(proj, events)

    def _read_current(self, proj: AnyProjection, head: int) -> pl.DataFrame:
        m = self.tables.manifest(proj.name)
        if m is None or m.fingerprint != self._fingerprint(proj):
            raise ProjectionError(f"projection {proj.name!r} has no up-to-date table; update or rebuild it first")
        key = (m.file, head)
        cached = self._finished.get(proj.name)
        if cached is not None and cached[0] == key:
            return cached[1]
        table = self.tables.read(proj.name, m)
        if isinstance(proj, Projection):
            if m.checkpoint < head:
                table = proj.merge(table, proj.fold(self.log._scan_raw(head, after=m.checkpoint)).collect())
            table = proj.finish(table)
        self._finished[proj.name] = (key, table)
        return table

    def _compute_from(self, proj: AnyProjection, events: pl.LazyFrame) -> pl.DataFrame:
        """A projection computed from scratch over the given events (for business-time cuts)."""
        if isinstance(proj, Projection):
            return proj.finish(proj.fold(events).collect())
        if proj.source == "events":
            return proj.compute(events)
        return proj.compute(self._compute_from(self.get(proj.source), events))

    # --- helpers -------------------------------------------------------------------------

    def _fingerprint(self, proj: AnyProjection) -> str:
        """A projection's identity includes the identity of what it is built from.

        For one built from the events, that includes the schema's read rules (upcasters,
        defaults of added fields) that change the columns it reads on the event types it
        reads — so a schema evolution rebuilds exactly the projections whose input changed.
        """
        if proj.source == "events":
            history = self.log._history
            if not history.rules:
                return proj.fingerprint()
            columns, types = _reads(proj)
            rules = history.fingerprint(columns, types)
            return proj.fingerprint() if rules is None else _hash([proj.fingerprint(), rules])
        return _hash([proj.fingerprint(), self._fingerprint(self.get(proj.source))])

    def _with_sources(self, names: list[str]) -> list[str]:
        """The names plus every projection they read, sources first."""
        ordered: list[str] = []

        def visit(name: str) -> None:
            proj = self.get(name)
            if proj.source != "events":
                visit(proj.source)
            if name not in ordered:
                ordered.append(name)

        for name in names:
            visit(name)
        return ordered


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


def _fsync(path: Path) -> None:
    with open(path, "rb") as fh:
        os.fsync(fh.fileno())
