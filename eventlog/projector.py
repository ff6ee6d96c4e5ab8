"""The projection runner: builds, updates and reads the projections registered on one log.

Definitions live in ``eventlog.core.definitions``; stored tables in ``eventlog.store.tables``.
This module depends only on the log; domains (the inventory) register their own.
"""

from __future__ import annotations

import datetime as dt
import functools
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import replace
from typing import Any

import polars as pl

from eventlog.core.definitions import (
    AnyProjection,
    FunctionProjection,
    Projection,
    ProjectionStatus,
    columns_read,
    stable_hash,
)
from eventlog.engines.base import Engine, Events, EventSlice
from eventlog.engines.choose import engine_named
from eventlog.engines.folds import fold_many, folds
from eventlog.errors import ProjectionError
from eventlog.log import EventLog
from eventlog.store.tables import ProjectionTables, TableVersion, month_of


class Projector:
    """Builds, updates and reads the projections registered on one log.

    Full builds and incremental updates read the events once for all declarative
    projections (``core/foldplan.py``: a fold at the finest keys, regrouped per projection);
    the tables are committed on worker threads while the next ones are computed.
    """

    #: Past this many tail events an update streams from the log instead of loading the tail.
    TAIL_IN_MEMORY = 5_000_000

    def __init__(self, log: EventLog, *, engine: str | Engine = "polars") -> None:
        self.log = log
        self.engine = engine_named(engine)
        self.tables = ProjectionTables(log.path / "projections")
        self.registry: dict[str, AnyProjection] = {}
        # The last finished table per projection, keyed by (stored file, head): derived
        # projections and repeated reads share one finish instead of redoing sorts/windows.
        self._finished: dict[str, tuple[tuple[int, str | None, int], pl.DataFrame]] = {}
        # During an update: the whole stored form of a table just built (Delta version -> rows),
        # so the functions reading it need not read it back; and the days a tail changed in a
        # day-partitioned table (checkpoint before, first day, last day) for from_day functions.
        self._fresh: dict[str, pl.DataFrame] = {}
        self._fresh_finished: dict[str, pl.DataFrame] = {}
        self._changed: dict[str, tuple[int, dt.date | None, dt.date | None]] = {}

    def register(self, projection: AnyProjection) -> None:
        if not isinstance(projection, (Projection, FunctionProjection)):
            raise ProjectionError(f"expected a Projection or FunctionProjection, got {type(projection).__name__}")
        if projection.source != "events" and projection.source not in self.registry:
            raise ProjectionError(
                f"projection {projection.name!r} reads {projection.source!r}, which is not registered; register it first"
            )
        if isinstance(projection, FunctionProjection) and projection.updates == "from_day":
            source = self.registry[projection.source]
            if not isinstance(source, Projection) or source.partition_by != projection.day:
                raise ProjectionError(
                    f"projection {projection.name!r} updates from a day of {projection.source!r}, which must be a "
                    f"declarative projection with partition_by={projection.day!r}")
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
        stale = m.fingerprint != self.fingerprint(proj)
        return ProjectionStatus(
            name, proj.mode, m.checkpoint, head, head - m.checkpoint, m.rows, m.built_at, m.duration_s, stale,
            m.version if m.version >= 0 else None,
        )

    def is_current(self, name: str, head: int) -> bool:
        m = self.tables.manifest(name)
        return m is not None and m.checkpoint == head and m.fingerprint == self.fingerprint(self.get(name))

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
            layout = None if m is None else (m.partition_by, m.legacy_file is None)
            wanted_layout = (self._declarative(name).partition_by, True)
            if (rebuild or m is None or m.fingerprint != self.fingerprint(self.registry[name]) or m.checkpoint > head
                    or layout != wanted_layout):  # an old-layout or re-partitioned table is built anew
                full.append(name)
            elif m.checkpoint < head:
                incremental.append(name)
        self._fresh.clear()
        self._fresh_finished.clear()
        self._changed.clear()
        try:
            with _Commits() as commits:
                if full:
                    self._build_full(full, head, commits)
                if incremental:
                    self._build_incremental(incremental, head, commits)
                for name in wanted:
                    proj = self.registry[name]
                    if isinstance(proj, FunctionProjection) and (rebuild or not self.is_current(name, head)):
                        if proj.source != "events" and proj.source not in self._fresh:
                            commits.wait(proj.source)  # it reads the source's table as just committed
                        self._build_function(proj, head, commits, rebuild=rebuild)
                commits.finish(progress)
        finally:
            self._fresh.clear()
            self._fresh_finished.clear()
            self._changed.clear()

    def _build_full(self, names: list[str], head: int, commits: _Commits) -> None:
        start = time.perf_counter()
        # Each table goes to its commit as soon as it is folded: the largest (the fine fold's
        # own, daily_flows) is written while the others are regrouped from it.
        for name, table in folds(self.engine, [self._declarative(n) for n in names], self._slice(head),
                                 pl.Schema(self.log.schema.columns())):
            self._changed[name] = (-1, None, None)  # every day
            self._store(name, table, head, time.perf_counter() - start, full=True, commits=commits)

    def _fold_many(self, projections: list[Projection], events: Events) -> dict[str, pl.DataFrame]:
        """The stored form of each projection, reading ``events`` once per group of the fold plan."""
        return fold_many(self.engine, projections, events, pl.Schema(self.log.schema.columns()))

    def _build_incremental(self, names: list[str], head: int, commits: _Commits) -> None:
        start = time.perf_counter()
        manifests = {n: self.tables.manifest(n) for n in names}
        if any(m is None for m in manifests.values()):  # callers pass merge projections with tables
            raise ProjectionError(f"projections {sorted(n for n, m in manifests.items() if m is None)} cannot be "
                                  "updated incrementally")
        lowest = min(m.checkpoint for m in manifests.values() if m is not None)
        in_memory = head - lowest <= self.TAIL_IN_MEMORY
        tail = self.log.scan_range(head, after=lowest).collect() if in_memory else None  # read once, fold many
        by_checkpoint: dict[int, list[str]] = {}
        for name, m in manifests.items():
            by_checkpoint.setdefault(m.checkpoint if m is not None else 0, []).append(name)
        for checkpoint, group in by_checkpoint.items():
            events: Events = (self._slice(head, after=checkpoint) if tail is None
                              else tail.filter(pl.col("seq") > checkpoint))
            parts = self._fold_many([self._declarative(n) for n in group], events)
            for name in group:
                m = manifests[name]
                if m is not None:
                    self._apply_tail(self._declarative(name), m, parts[name], head, start, commits)

    def _apply_tail(self, proj: Projection, m: TableVersion, part: pl.DataFrame, head: int, start: float,
                    commits: _Commits) -> None:
        """Commit the fold of a tail, rewriting only what it changed.

        A month-partitioned table has the months from the first one the tail touched on
        replaced; any other has the rows of the touched keys merged in. Either is one commit.
        """
        keys = list(proj.keys)
        if part.height == 0:
            self._changed[proj.name] = (m.checkpoint, None, None) if proj.partition_by else (-1, None, None)
            commits.submit(proj.name, self.tables.merge_keys, proj.name, part, keys,
                           self.build_metadata(proj, head, start, full=False), total_rows=m.rows)
        elif proj.partition_by is not None:
            days = part.get_column(proj.partition_by)
            first, last = days.min(), days.max()
            self._changed[proj.name] = (m.checkpoint, first, last)  # type: ignore[assignment]
            since = month_of(first)  # type: ignore[arg-type]
            if self._read_whole(proj.name):  # one read for this merge and for the functions reading it
                whole = self.tables.read(proj.name, m)
                before = whole.filter(pl.col(proj.partition_by) < since)
                stored = whole.filter(pl.col(proj.partition_by) >= since)
            else:
                stored = self.tables.read(proj.name, m, from_month=since)
            merged = self.engine.merge(proj, stored, part)
            if self._read_whole(proj.name):
                self._fresh[proj.name] = pl.concat([before, merged], how="vertical_relaxed")
            commits.submit(proj.name, self.tables.replace_from, proj.name, merged,
                           self.build_metadata(proj, head, start, full=False), partition_by=proj.partition_by,
                           from_month=since, total_rows=m.rows - stored.height + merged.height)
        else:
            self._changed[proj.name] = (-1, None, None)
            stored = self.tables.read(proj.name, m)
            touched = stored.join(part.select(keys).unique(), on=keys, how="semi", nulls_equal=True)
            merged = self.engine.merge(proj, touched, part)
            if self._read_whole(proj.name):
                self._fresh[proj.name] = self.engine.merge(proj, stored, part)
            commits.submit(proj.name, self.tables.merge_keys, proj.name, merged, keys,
                           self.build_metadata(proj, head, start, full=False),
                           total_rows=m.rows - touched.height + merged.height)

    def _read_whole(self, name: str) -> bool:
        """Whether a function reads all of ``name``'s table (not only a trailing window of it):
        an update then keeps the whole new table in memory for it, rather than reading it back."""
        for proj in self.registry.values():
            if isinstance(proj, FunctionProjection) and proj.source == name:
                if proj.updates != "from_day" or self._declarative(name).having is not None:
                    return True
        return False

    def _build_function(self, proj: FunctionProjection, head: int, commits: _Commits, *, rebuild: bool) -> None:
        start = time.perf_counter()
        if proj.updates == "from_day":
            window, unchanged = self._window(proj, head, rebuild=rebuild)
            if unchanged:  # the days that changed lie before a window that did not move
                commits.submit(proj.name, self.tables.touch, proj.name, self.build_metadata(proj, head, start, full=False))
                return
            table = proj.compute(window)
        elif proj.source == "events":
            table = proj.compute(self.log.scan(as_of=head))
        else:
            table = proj.compute(self._source(proj.source, head))
        self._store(proj.name, table, head, time.perf_counter() - start, full=True, commits=commits)

    def _window(self, proj: FunctionProjection, head: int, *, rebuild: bool) -> tuple[pl.DataFrame, bool]:
        """The finished rows of the source's trailing window, and whether the function's table
        at its checkpoint already shows them (only days before the window changed since)."""
        source = self._declarative(proj.source)
        day, days = proj.day or "", proj.window_days or 1
        fresh = self._fresh.get(source.name)
        m = None if fresh is not None else self.tables.manifest(source.name)
        if fresh is None and (m is None or m.checkpoint != head):
            raise ProjectionError(f"projection {proj.name!r}: its source {source.name!r} is not at seq {head}")
        if source.having is not None:  # the latest day shown may lie anywhere: finish it all
            finished = self._source(source.name, head)
            latest = finished.get_column(day).max() if finished.height else None
        else:
            if fresh is not None:
                stored = fresh
            elif m is not None:
                newest = self.tables.newest_month(source.name, m)
                since = None if newest is None else month_of(newest - dt.timedelta(days=days))
                stored = self.tables.read(source.name, m, from_month=since)
            latest = stored.get_column(day).max() if stored.height else None
            if latest is not None:
                stored = stored.filter(pl.col(day) >= latest - dt.timedelta(days=days - 1))  # type: ignore[operator]
            finished = self._finish_rows(source, stored, proj.columns, head)
        # Skipping is sound only when the window's rows depend on their own days alone: a running
        # total in them moves with any earlier day.
        local = source.having is None and not any(
            _windowed(e) for k, e in source.derived.items() if proj.columns is None or k in proj.columns)
        if latest is not None:
            finished = finished.filter(pl.col(day) >= latest - dt.timedelta(days=days - 1))  # type: ignore[operator]
        if proj.columns is not None:
            finished = finished.select(proj.columns)
        mine = None if rebuild else self.tables.manifest(proj.name)
        changed = self._changed.get(source.name)
        unchanged = (local and mine is not None and mine.fingerprint == self.fingerprint(proj) and changed is not None
                     and changed[0] == mine.checkpoint and mine.checkpoint >= 0
                     and (changed[2] is None or (latest is not None
                                                 and changed[2] < latest - dt.timedelta(days=days - 1))))  # type: ignore[operator]
        return finished, unchanged

    def _finish_rows(self, source: Projection, stored: pl.DataFrame, columns: Sequence[str] | None,
                     head: int) -> pl.DataFrame:
        """Some stored rows of ``source``, finished on their own when the columns wanted need no
        other row (no window function among them); else the whole finished table (to be cut)."""
        wanted = dict(source.derived) if columns is None else {k: e for k, e in source.derived.items() if k in columns}
        if any(_windowed(e) for e in wanted.values()):
            return self._source(source.name, head)
        return self.engine.finish(replace(source, derived=wanted), stored)

    def _source(self, name: str, head: int) -> pl.DataFrame:
        """The finished table of a function's source at ``head``: from memory when this update
        built it whole (its commit may still be under way), else as committed."""
        fresh = self._fresh.get(name)
        if fresh is None:
            return self.read(name, head=head)
        proj = self.get(name)
        if not isinstance(proj, Projection):
            return fresh
        done = self._fresh_finished.get(name)
        if done is None:
            done = self._fresh_finished[name] = self.engine.finish(proj, fresh)
        return done

    def _store(self, name: str, table: pl.DataFrame, head: int, duration: float, *, full: bool,
               commits: _Commits) -> None:
        proj = self.registry[name]
        partition_by = proj.partition_by if isinstance(proj, Projection) else None
        meta = self.build_metadata(proj, head, time.perf_counter() - duration, full=full)
        if isinstance(proj, Projection) and any(p.source == name for p in self.registry.values()):
            self._fresh[name] = table  # the functions reading it take it from memory, not waiting for its commit
        commits.submit(name, self.tables.write, name, table, meta, partition_by=partition_by,
                       ordered=not isinstance(proj, Projection))

    def build_metadata(self, proj: AnyProjection, head: int, start: float, *, full: bool) -> dict[str, Any]:
        """The build's bookkeeping, committed with the table (no separate manifest); ``start`` is the
        ``time.perf_counter()`` at which the build began. Public for builds made elsewhere (Spark)."""
        return {
            "checkpoint": head,
            "fingerprint": self.fingerprint(proj),
            "built_at": dt.datetime.now(dt.timezone.utc).isoformat(),
            "duration_s": round(time.perf_counter() - start, 6),
            "mode": proj.mode,
            "name": proj.name,
            "full_build": full,
            "partition_by": proj.partition_by if isinstance(proj, Projection) else None,
        }

    # --- reading -------------------------------------------------------------------------

    def read(self, name: str, *, head: int | None = None, as_of: int | dt.datetime | None = None,
             version: int | None = None) -> pl.DataFrame:
        """The finished table at ``head`` (stored ⊕ tail), at a seq / business-time cut, or as
        stored in an older ``version`` of the projection's table (time travel of the table itself)."""
        proj = self.get(name)
        if version is not None:
            _, stored = self.tables.read_version(name, version)
            return self.engine.finish(proj, stored) if isinstance(proj, Projection) else stored
        head = self.log.head() if head is None else head
        if as_of is None:
            return self._read_current(proj, head)
        if isinstance(as_of, int) and isinstance(proj, Projection):
            cut = min(as_of, head)
            m = self.tables.manifest(name)
            if m is not None and m.fingerprint == self.fingerprint(proj) and m.checkpoint <= cut:
                tail = self.engine.fold(proj, self._slice(cut, after=m.checkpoint))
                return self.engine.finish(proj, self.engine.merge(proj, self.tables.read(name, m), tail))
            return self.engine.finish(proj, self.engine.fold(proj, self._slice(cut)))
        if isinstance(as_of, dt.datetime) and isinstance(proj, Projection):
            return self.engine.finish(proj, self.engine.fold(proj, self._slice(head, business=as_of)))
        events = self.log.scan(as_of=as_of if isinstance(as_of, int) else None)
        if isinstance(as_of, dt.datetime):
            events = events.filter(pl.col("occurred_at") <= as_of)
        return self.compute_from(proj, events)

    def _read_current(self, proj: AnyProjection, head: int) -> pl.DataFrame:
        m = self.tables.manifest(proj.name)
        if m is None or m.fingerprint != self.fingerprint(proj):
            raise ProjectionError(f"projection {proj.name!r} has no up-to-date table; update or rebuild it first")
        key = (m.version, m.legacy_file, head)
        cached = self._finished.get(proj.name)
        if cached is not None and cached[0] == key:
            return cached[1]
        table = self.tables.read(proj.name, m)
        if isinstance(proj, Projection):
            if m.checkpoint < head:
                table = self.engine.merge(proj, table, self.engine.fold(proj, self._slice(head, after=m.checkpoint)))
            table = self.engine.finish(proj, table)
        self._finished[proj.name] = (key, table)
        return table

    def compute_from(self, proj: AnyProjection, events: pl.LazyFrame) -> pl.DataFrame:
        """A projection computed from scratch over the given events (for business-time cuts)."""
        if isinstance(proj, Projection):
            return self.engine.finish(proj, self.engine.fold(proj, events))
        if proj.source == "events":
            return proj.compute(events)
        return proj.compute(self.compute_from(self.get(proj.source), events))

    # --- maintenance -----------------------------------------------------------------------

    def compact(self) -> dict[str, dict[str, Any]]:
        """Merge the small files updates leave in every built table (each under its update lock)."""
        out = {}
        for name in self._built():
            with self.tables.lock(name):
                out[name] = self.tables.compact(name)
        return out

    def vacuum(self, *, retention_hours: float = 168, dry_run: bool = False) -> dict[str, list[str]]:
        """The log's retention for projection tables: files no version younger than
        ``retention_hours`` reads are deleted (older versions of a table then stop reading)."""
        out = {}
        for name in self._built():
            with self.tables.lock(name):
                out[name] = self.tables.vacuum(name, retention_hours=retention_hours, dry_run=dry_run)
        return out

    def _built(self) -> list[str]:
        return [n for n in sorted(self.registry) if (self.tables.folder(n) / "_delta_log").is_dir()]

    # --- helpers -------------------------------------------------------------------------

    def _slice(self, cut: int, *, after: int = 0, business: dt.datetime | None = None) -> EventSlice:
        return EventSlice(self.log.storage, self.log.schema_history, cut=cut, after=after, business=business)

    def _declarative(self, name: str) -> Projection:
        proj = self.get(name)
        if not isinstance(proj, Projection):
            raise ProjectionError(f"projection {name!r} is a function: it is rebuilt, not folded")
        return proj

    def fingerprint(self, proj: AnyProjection) -> str:
        """A projection's identity includes the identity of what it is built from.

        For one built from the events, that includes the schema's read rules (upcasters,
        defaults of added fields) that change the columns it reads on the event types it
        reads — so a schema evolution rebuilds exactly the projections whose input changed.
        """
        if proj.source == "events":
            history = self.log.schema_history
            if not history.rules:
                return proj.fingerprint()
            columns, types = columns_read(proj)
            rules = history.fingerprint(columns, types)
            return proj.fingerprint() if rules is None else stable_hash([proj.fingerprint(), rules])
        return stable_hash([proj.fingerprint(), self.fingerprint(self.get(proj.source))])

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


@functools.lru_cache(maxsize=256)
def _windowed(sql: str) -> bool:
    """Whether a SQL expression holds a window function (its value for a row depends on others)."""
    if "over" not in sql.lower():
        return False  # every window call has OVER: parsing would import sqlglot (0.3 s in a new process) to say so
    import sqlglot  # on first use: reading the inventory's state never needs it
    from sqlglot import exp

    return sqlglot.parse_one(sql, read="duckdb").find(exp.Window) is not None


class _Commits:
    """Table commits on worker threads, started in the order submitted: deltalake releases the
    GIL while it encodes and writes, so the commits of different tables overlap each other and
    the computation of the next table on the main thread.

    Each is one Delta commit of one table, and an update commits each table at most once; after
    a failure no commit that has not started starts. So a crash or an error leaves every table
    either at its new version or at its previous one, each whole, as commits one after another
    would (which tables are at which may differ: some that were under way may have finished).
    """

    #: Commits at once: one per core and one waiting on the disk, on this 2-core machine.
    WORKERS = 3

    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(self.WORKERS, thread_name_prefix="eventlog-commit")
        self._futures: dict[str, Future[Any]] = {}
        self._error: BaseException | None = None
        self._lock = threading.Lock()

    def __enter__(self) -> _Commits:
        return self

    def __exit__(self, *exc: object) -> None:
        self._pool.shutdown(wait=True)  # no commit may outlive the update (it holds the tables' locks)

    def submit(self, name: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        self._futures[name] = self._pool.submit(self._run, fn, *args, **kwargs)

    def _run(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        if self._error is not None:
            return None  # an earlier commit failed: this one never starts
        try:
            return fn(*args, **kwargs)
        except BaseException as exc:
            with self._lock:
                if self._error is None:
                    self._error = exc
            raise

    def wait(self, name: str) -> None:
        """Until the commit of ``name`` (if any) ended; raises the first failure so far."""
        future = self._futures.get(name)
        if future is not None:
            future.exception()
        if self._error is not None:
            raise self._error

    def finish(self, progress: Callable[[str], None] | None) -> None:
        """Wait for every commit, in the order submitted; raises the first failure."""
        for name, future in self._futures.items():
            future.exception()
            if self._error is not None:
                raise self._error
            if progress:
                progress(name)
