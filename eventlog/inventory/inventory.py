"""The inventory domain: items added and removed, kept as events, state computed from the log.

This module is also the worked example of defining a domain with the public schema API:
two event types, the item's name as the stream, and a small payload.
"""

from __future__ import annotations

import datetime as dt
import os
import warnings
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import polars as pl

from eventlog._display import html_table
from eventlog.engines.base import Engine, EventSlice
from eventlog.engines.choose import engine_named
from eventlog.model.state import (
    QUANTITY,
    STATE,
    STATE_VERSION,
    STORED_SCHEMA,
    empty_state,
    state_fingerprint,
    with_running_stock,
)
from eventlog.model.builtins import BUILTINS
from eventlog.core.cuts import Cut, TimeCut, resolve_cut
from eventlog.core.frames import Batch, as_frame
from eventlog.core.validate import first_row, normalize
from eventlog.errors import (
    InsufficientStockError,
    SnapshotError,
    SnapshotWarning,
    StoreExistsError,
    ValidationError,
)
from eventlog.log import AppendResult, EventLog
from eventlog.writer import AppendRequest, WriteTxn
from eventlog.core.definitions import AnyProjection, ProjectionStatus
from eventlog.inventory.branches import compare_stock, take_snapshots
from eventlog.inventory.checks import inventory_checks
from eventlog.lineage import fork, promote
from eventlog.inventory.handle import ProjectionHandle
from eventlog.model.schema import ADDED, INVENTORY_SCHEMA, REMOVED, check_inventory_schema
from eventlog.projector import Projector
from eventlog.store.snapshots import SnapshotInfo, SnapshotStore, covers
from eventlog.verify import VerifyReport, verify



DEFAULT_SNAPSHOT_EVERY = 1_000_000
_MAX_STOCK = 2**63 - 1
#: Rows the stock check and the fold of an append take at a time (their memory is that of a slice).
_CHECK_ROWS = 1 << 18
_FOLD_ROWS = 1 << 16
_CACHE_SIZE = 8


@dataclass(frozen=True)
class Item:
    """An item as the original example has it: a name, and where it is rare and from.

    Example:
        >>> Item("sword", rarity="common", origin="castle").name
        'sword'
    """

    name: str
    rarity: str | None = None
    origin: str | None = None


class Inventory:
    """An inventory kept as events; state at any cut is a vectorised fold of the log.

    Example:
        >>> import tempfile
        >>> inv = Inventory.open(tempfile.mkdtemp() + "/store")
        >>> _ = inv.add_item("sword"); _ = inv.add_item("potion", 2); _ = inv.remove_item("potion")
        >>> inv.get_items()
        [('potion', 1), ('sword', 1)]
    """

    def __init__(
        self,
        log: EventLog,
        *,
        snapshot_every: int = DEFAULT_SNAPSHOT_EVERY,
        keep_snapshots: int = 3,
        projection_reads: Literal["update", "stale"] = "update",
        engine: str | Engine | None = None,
    ) -> None:
        check_inventory_schema(log)
        if projection_reads not in ("update", "stale"):
            raise ValidationError(f"projection_reads is 'update' or 'stale', not {projection_reads!r}",
                                  field="projection_reads")
        if keep_snapshots < 1:  # retention always keeps the newest snapshot: it is the one reads start from
            raise ValidationError(f"keep_snapshots is at least 1, not {keep_snapshots}", field="keep_snapshots")
        self.log = log
        self.snapshot_every = snapshot_every
        self.keep_snapshots = keep_snapshots
        self.projection_reads = projection_reads
        self.snapshots = SnapshotStore(log.path / "snapshots", state_version=STATE_VERSION,
                                       fingerprint=state_fingerprint(log))
        # One definition, every engine: by default the state folds, merges and finishes on Polars
        # (measured in benchmarks/ and below), ``engine`` picks one for everything.
        self.engine = engine_named(engine or "polars")
        # One item's count with no state to start from: DuckDB checks `stream_id = $item` against
        # row-group statistics and reads only that stream's row groups.
        self._count_engine = self.engine if engine is not None else engine_named("duckdb")
        self.projector = Projector(log, engine=engine or "polars")
        for projection in BUILTINS:
            self.projector.register(projection)
        self._cache: OrderedDict[tuple[int, dt.datetime | None], pl.DataFrame] = OrderedDict()
        #: (seq, a bound on every item's stock there): lets a batch of additions skip the stock check.
        self._bound: tuple[int, int] | None = None
        self._newest_snapshot: int | None = None  # seq of the newest snapshot on disk, once looked up
        #: (last seq, state there or None) of the commit this process made last, for the snapshot after it.
        self._committed: tuple[int, pl.DataFrame | None] | None = None
        log.add_check(STOCK_CHECK, _StockCheck(self))

    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str],
        *,
        snapshot_every: int = DEFAULT_SNAPSHOT_EVERY,
        keep_snapshots: int = 3,
        projection_reads: Literal["update", "stale"] = "update",
        lock_timeout: float = 60.0,
        engine: str | Engine | None = None,
    ) -> Inventory:
        """Open the inventory at ``path``, creating it when there is none.

        Args:
            snapshot_every: write a snapshot when a read had to fold more events than this.
            keep_snapshots: how many recent snapshots retention keeps (plus an older ladder).
            projection_reads: ``"update"`` (default) brings a projection up to date before
                reading it; ``"stale"`` serves the stored table and warns with its lag.
            engine: ``"duckdb"`` or ``"polars"`` for the state and projections alike (every
                engine gives the same tables); by default both run on Polars, the faster
                here, and one item's count with no state to start from on DuckDB.
        """
        if not EventLog.exists(path):
            try:
                EventLog.create(path, INVENTORY_SCHEMA, lock_timeout=lock_timeout)
            except StoreExistsError:  # another process created it first
                pass
        log = EventLog.open(path, lock_timeout=lock_timeout)
        return cls(log, snapshot_every=snapshot_every, keep_snapshots=keep_snapshots, projection_reads=projection_reads,
                   engine=engine)

    @property
    def path(self) -> Path:
        return self.log.path

    # --- writes --------------------------------------------------------------------------

    def add_item(self, item: Item | str, quantity: int = 1, *, occurred_at: dt.datetime | None = None) -> AppendResult:
        """Record that ``quantity`` of ``item`` came into stock."""
        return self.record([_event(ADDED, item, quantity, occurred_at)])

    def remove_item(self, item: Item | str, quantity: int = 1, *, occurred_at: dt.datetime | None = None) -> AppendResult:
        """Record that ``quantity`` of ``item`` left; more than is in stock raises InsufficientStockError."""
        return self.record([_event(REMOVED, item, quantity, occurred_at)])

    def record(self, batch: Batch) -> AppendResult:
        """Append a batch of item events all or nothing.

        Columns: ``event_type``, ``item``, ``quantity``, optional ``rarity``, ``origin``,
        ``occurred_at``, ``event_id``. Rejected, with the first offending row named, if any
        item's stock would go below zero at any point in log order. The stock check and the
        append happen under the writer lock, so two processes can never both take the last unit.

        The batch is a table of any library (polars, pyarrow, pandas, a DuckDB relation: whatever
        exports ``__arrow_c_stream__``), a polars LazyFrame, or a list of dicts.
        """
        frame = _normalize_items(batch)
        self._committed = None
        # Under the lock, with any batches of other writers waiting for it (EventLog.commit).
        result = self.log.commit(AppendRequest(frame, schema_json=INVENTORY_SCHEMA.to_json(), check=STOCK_CHECK))
        committed, self._committed = self._committed, None
        if committed is not None and committed[1] is not None:  # outside the lock: writers need not wait
            self._maybe_snapshot(committed[1], committed[0])
        elif result.last_seq - self._newest_snapshot_seq() > self.snapshot_every:
            self._state_at_seq(result.last_seq)  # folds the additions since the last state, and snapshots
        return result

    # --- reads ---------------------------------------------------------------------------

    def stock(self, as_of: Cut = None, *, known_at: Cut = None) -> pl.DataFrame:
        """One row per item in stock: quantity, latest rarity and origin, first add, last change.

        Args:
            as_of: a seq (events with seq <= n) or business time (a datetime, a date = the end
                of that UTC day, or an ISO string): events with occurred_at <= t.
            known_at: what the log had recorded by then (a seq or a datetime), for
                bitemporal questions: what did we believe at ``known_at`` about ``as_of``?
        """
        return self.engine.finish(STATE, self._state(_resolve(self.log, as_of, known_at)))

    def get_items(self, as_of: Cut = None) -> list[tuple[str, int]]:
        """(name, count) of every item in stock, sorted by name."""
        return self.stock(as_of).select("item", "quantity").rows()

    def get_count(self, name: Item | str, as_of: Cut = None) -> int:
        """How many of ``name`` are in stock (0 for an unknown item).

        With a base to start from (a state in memory, a snapshot) the whole state is brought
        up to the cut and kept, as for ``stock()``; with none, only that item's stream is folded.
        """
        key = name.name if isinstance(name, Item) else name
        hit = self._item_state(key, _resolve(self.log, as_of, None)).get_column("quantity")
        return int(hit[0]) if hit.len() else 0

    def history(self, name: Item | str) -> pl.DataFrame:
        """The item's events in log order, with the signed change and the running stock."""
        key = name.name if isinstance(name, Item) else name
        return (
            with_running_stock(self.log.scan(streams=[key]))
            .with_columns(pl.col("change", "stock").cast(pl.Int64))
            .select("seq", "stream_version", "event_type", "quantity", "change", "stock", "rarity", "origin",
                    "occurred_at", "recorded_at", "event_id")
            .collect()
        )

    def sql(self, query: str, params: Mapping[str, Any] | Sequence[Any] | None = None) -> pl.DataFrame:
        """Run one read-only SQL query over the store's views (see ``eventlog.sql``).

        Parameters are bound, never spliced into the text.

        Example:
            >>> import tempfile
            >>> inv = Inventory.open(tempfile.mkdtemp() + "/store")
            >>> _ = inv.add_item("sword", 2)
            >>> inv.sql("SELECT item, quantity FROM inventory WHERE item = $name", {"name": "sword"}).rows()
            [('sword', 2)]
        """
        from eventlog.sql.connection import query as run_query  # sql sits above the inventory layer

        return run_query(self, query, params)

    def verify(self, *, deep: bool = False, progress: Callable[[int], None] | None = None,
               expect: str | None = None) -> VerifyReport:
        """The log's checks plus the inventory's: stock never negative, snapshots and projections
        equal to a recomputation from the log, made in verify's one read of the events.
        ``report.ok`` is False at the first violation. ``deep``, ``progress`` and ``expect`` are
        as for ``EventLog.verify``."""
        self._check_state_definition()  # snapshots of another definition (an evolved schema) are not used
        checks, reader = inventory_checks(self.log, self.snapshots, self.projector, deep=deep or expect is not None)
        return verify(self.log, deep=deep, extra_checks=[*self.log.lineage_checks(), *checks], readers=[reader],
                      progress=progress, expect=expect)

    # --- branches ------------------------------------------------------------------------

    def branch(self, path: str | os.PathLike[str], *, at: Cut = None) -> Inventory:
        """A new inventory at ``path`` whose history is this one's up to ``at``: try a what-if there.

        See ``EventLog.branch``: the data files are shared, not copied; the snapshots at or
        before the fork come along (shared too). Writes to the branch never change this store.

        Example:
            >>> import tempfile
            >>> root = tempfile.mkdtemp()
            >>> inv = Inventory.open(root + "/main")
            >>> _ = inv.add_item("sword", 2)
            >>> trial = inv.branch(root + "/trial")
            >>> _ = trial.remove_item("sword", 2)
            >>> inv.compare(trial).rows()
            [('sword', 2, 0, -2)]
        """
        fork(self.log, Path(path), at, before_done=lambda root, seq: take_snapshots(self.snapshots, root, seq))
        return Inventory.open(path, snapshot_every=self.snapshot_every, keep_snapshots=self.keep_snapshots,
                              projection_reads=self.projection_reads,
                              lock_timeout=self.log.lock_timeout)

    def compare(self, other: Inventory | None = None, *, as_of: Cut = None, other_as_of: Cut = None) -> pl.DataFrame:
        """Stock here (at ``as_of``) beside stock in ``other`` (default: this store) at ``other_as_of``.

        One row per item in stock on either side: ``item``, ``quantity``, ``other_quantity``
        and ``change`` (other minus this). ``inv.compare(as_of="2024-12-31")`` is "then vs now";
        ``origin.compare(branch)`` is what a what-if changes.
        """
        if other is not None and as_of is None and other_as_of is None:
            self._share_prefix(other)
        return compare_stock(self.stock(as_of), (other if other is not None else self).stock(other_as_of))

    def _share_prefix(self, other: Inventory) -> None:
        """A branch and its origin hold the same events up to the fork: fold them once, for both.

        Only when the two read under the same state definition; each side then folds just its
        own events after the fork onto that state (verify checks the prefix is the same).
        """
        pairs = [(self, other), (other, self)]
        for origin, branch in pairs:
            lineage = branch.log.lineage
            if lineage is None or Path(lineage.origin) != origin.path or lineage.fork_seq == 0:
                continue
            origin._check_state_definition()
            branch._check_state_definition()
            if origin.snapshots.fingerprint != branch.snapshots.fingerprint:
                return
            branch._remember((lineage.fork_seq, None), origin._state_at_seq(lineage.fork_seq))
            return

    def promote(self, branch: Inventory) -> AppendResult:
        """Append ``branch``'s events after the fork to this inventory (its origin), all or nothing.

        As ``EventLog.promote``; when this store moved since the fork, the stock check runs
        again against its head: a removal that no longer has the stock is a conflict.

        Raises:
            PromoteConflictError: names the first event that no longer fits; nothing was written.
        """
        with self.log.writing() as txn:
            result = promote(self.log, branch.log, txn,
                             check=lambda t, frame: _check_stock(frame, self._state_at_seq(t.head)))
        return result

    def _repr_html_(self) -> str:
        head = self.log.head()
        snaps = self.snapshots.list()
        rows = self.log.describe()
        newest = snaps[-1].seq if snaps else 0
        rows.append(("snapshots", f"{len(snaps)}; newest at seq {newest:,} (lag {head - newest:,})" if snaps else "none"))
        for status in self.projections_status():
            lag = "not built" if status.checkpoint is None else f"lag {status.lag:,}"
            rows.append((f"projection {status.name}", f"{status.mode}, {lag}"))
        return html_table("Inventory", rows)

    # --- snapshots -----------------------------------------------------------------------

    def snapshot(self) -> SnapshotInfo:
        """Materialise the current state as a snapshot (or return the one already at head)."""
        head = self.log.head()
        self._check_state_definition()
        for info in self.snapshots.list():
            if info.seq == head:
                return info
        return self._write_snapshot(self._state_at_seq(head), head)

    def prune_snapshots(self) -> list[SnapshotInfo]:
        """Apply the retention: the newest few plus a ladder of older ones."""
        return self.snapshots.prune(keep_latest=self.keep_snapshots)

    # --- projections ---------------------------------------------------------------------

    def projection(self, name: str) -> ProjectionHandle:
        """A registered projection: ``read``, ``update``, ``rebuild``, ``status``, ``top``."""
        self.projector.get(name)
        return ProjectionHandle(self, name)

    def register(self, projection: AnyProjection) -> ProjectionHandle:
        """Add a user-defined projection (a Projection or a FunctionProjection)."""
        self.projector.register(projection)
        return ProjectionHandle(self, projection.name)

    def update_projections(self, names: list[str] | None = None, *, rebuild: bool = False,
                           progress: Any = None) -> dict[str, ProjectionStatus]:
        """Update every projection (or ``names``), reading the log's tail once for all of them."""
        return self.projector.update(names, rebuild=rebuild, progress=progress)

    def compact(self) -> dict[str, Any]:
        """Merge small files of the log and of every projection table; every answer stays the same."""
        return {"events": self.log.compact(), "projections": self.projector.compact()}

    def vacuum(self, *, retention_hours: float = 168, dry_run: bool = False) -> dict[str, Any]:
        """The log's retention, applied to the log and to every projection table alike."""
        return {"events": self.log.vacuum(retention_hours=retention_hours, dry_run=dry_run),
                "projections": self.projector.vacuum(retention_hours=retention_hours, dry_run=dry_run)}

    def projections_status(self) -> list[ProjectionStatus]:
        head = self.log.head()
        return [self.projector.status(name, head=head) for name in self.projector.registry]

    # --- internals -----------------------------------------------------------------------

    def _state_at_seq(self, seq: int) -> pl.DataFrame:
        return self._state(TimeCut(seq=seq))

    def _state(self, cut: TimeCut, base: tuple[int, pl.DataFrame, bool] | None = None) -> pl.DataFrame:
        """Full state (items at zero included) at a cut: best base ⊕ fold of the rest."""
        head = self.log.head()
        self._check_state_definition()
        seq = head if cut.seq is None else min(cut.seq, head)
        key = (seq, cut.business)
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        base_seq, base_state, rebuild = base if base is not None else self._best_base(seq, cut.business)
        state = self.engine.merge(STATE, base_state, self._fold(after=base_seq, cut=seq, business=cut.business))
        self._remember(key, state)
        if cut.business is None:
            self._maybe_snapshot(state, seq, force=rebuild or seq - base_seq > self.snapshot_every)
        return state

    def _item_state(self, key: str, cut: TimeCut) -> pl.DataFrame:
        """One item's stored quantity at a cut: its row of the state from the best base, or with
        no base the fold of its own stream's quantities alone."""
        head = self.log.head()
        self._check_state_definition()
        seq = head if cut.seq is None else min(cut.seq, head)
        base = None
        if (seq, cut.business) not in self._cache:
            base = self._best_base(seq, cut.business)
            if base[0] == 0:
                events = EventSlice(self.log.storage, self.log.schema_history, cut=seq, business=cut.business,
                                    streams=[key])
                return self._count_engine.fold(QUANTITY, events)
        return self._state(TimeCut(seq=seq, business=cut.business), base).filter(pl.col("item") == key)

    def _check_state_definition(self) -> None:
        """After a schema evolution whose upcasters change what the state reads (made here or by
        another process), states and snapshots of the old definition are not used."""
        fingerprint = state_fingerprint(self.log)
        if fingerprint != self.snapshots.fingerprint:
            self.snapshots = SnapshotStore(self.log.path / "snapshots", state_version=STATE_VERSION,
                                           fingerprint=fingerprint)
            self._cache.clear()
            self._bound = None
            self._newest_snapshot = None

    def _maybe_snapshot(self, state: pl.DataFrame, seq: int, *, force: bool = False) -> None:
        """Snapshot ``state`` when it is more than ``snapshot_every`` events past the newest snapshot
        (or when ``force``: a read just folded that many events, or replaced a corrupt snapshot).

        Measured from the newest snapshot on disk too, not only from what this process
        folded: a long-running writer keeps its state in memory, yet the next process to
        open the store should still find a recent snapshot.
        """
        if seq == 0 or not (force or seq - self._newest_snapshot_seq() > self.snapshot_every):
            return
        try:
            self._write_snapshot(state, seq)
        except SnapshotError as exc:  # a snapshot only saves time: a read (or a write's check) goes on
            warnings.warn(f"{exc}; the state was computed from the log", SnapshotWarning, stacklevel=4)

    def _newest_snapshot_seq(self) -> int:
        if self._newest_snapshot is None:
            snaps = self.snapshots.list()
            self._newest_snapshot = snaps[-1].seq if snaps else 0
        return self._newest_snapshot

    def _best_base(self, seq: int, business: dt.datetime | None) -> tuple[int, pl.DataFrame, bool]:
        """The newest state we can start from: an in-memory one or a verified snapshot."""
        best_seq, best = 0, empty_state()
        for (s, b), state in self._cache.items():
            if b is None and best_seq < s <= seq and _happened_by(state, business):
                best_seq, best = s, state
        rebuild = False
        for info in reversed(self.snapshots.list()):
            if info.seq <= best_seq:
                break
            if info.seq > seq or not covers(info, business):
                continue
            if not self.snapshots.exists(info):  # pruned by another process since it was listed
                continue
            loaded = self.snapshots.load(info)
            if loaded is not None and set(loaded.columns) == set(STORED_SCHEMA):
                return info.seq, loaded.select(list(STORED_SCHEMA)).cast(STORED_SCHEMA), rebuild  # type: ignore[arg-type]
            if loaded is not None:
                warnings.warn(f"snapshot {info.path} does not hold the state's columns; the state is computed from "
                              "the log", SnapshotWarning, stacklevel=4)
            self.snapshots.remove(info)
            rebuild = True
        return best_seq, best, rebuild

    def _write_snapshot(self, state: pl.DataFrame, seq: int) -> SnapshotInfo:
        info = self.snapshots.write(state, seq=seq, delta_version=self.log.version)
        self._newest_snapshot = max(seq, self._newest_snapshot or 0)
        try:
            self.snapshots.prune(keep_latest=self.keep_snapshots)
        except SnapshotError as exc:  # the snapshot is written; only the retention step failed
            warnings.warn(f"{exc}; the snapshot at seq {seq} was written", SnapshotWarning, stacklevel=3)
        return info

    def _remember(self, key: tuple[int, dt.datetime | None], state: pl.DataFrame) -> None:
        if key[1] is None:
            self._bound = (key[0], int(state.get_column("quantity").max() or 0))  # type: ignore[arg-type]
        self._cache[key] = state
        self._cache.move_to_end(key)
        while len(self._cache) > _CACHE_SIZE:
            self._cache.popitem(last=False)

    def _fold(self, *, after: int, cut: int, business: dt.datetime | None = None) -> pl.DataFrame:
        """The stored form of the events with after < seq <= cut (occurred_at <= business)."""
        events = EventSlice(self.log.storage, self.log.schema_history, cut=cut, after=after, business=business)
        return self.engine.fold(STATE, events)

    def __repr__(self) -> str:
        return f"Inventory({str(self.path)!r})"


# --- helpers ---------------------------------------------------------------------------------


def _event(event_type: str, item: Item | str, quantity: int, occurred_at: dt.datetime | None) -> dict[str, Any]:
    if isinstance(item, Item):
        return {"event_type": event_type, "item": item.name, "quantity": quantity,
                "rarity": item.rarity, "origin": item.origin, "occurred_at": occurred_at}
    if not isinstance(item, str):
        raise ValidationError(f"an item is an Item or a name (str), not {type(item).__name__}", row=0, field="item")
    return {"event_type": event_type, "item": item, "quantity": quantity, "occurred_at": occurred_at}


def _normalize_items(batch: Batch) -> pl.DataFrame:
    """Validate an item batch: the log's checks, with the stream called ``item``."""
    frame = as_frame(batch)  # the one conversion EventLog.append uses too (core/frames.py)
    renamed: Any
    if frame is not None:
        if "stream_id" in frame.columns:
            raise ValidationError("name the item column 'item', not 'stream_id'", row=0, field="stream_id")
        renamed = frame.rename({"item": "stream_id"}) if "item" in frame.columns else frame
    else:
        renamed = [_rename_item(i, rec) for i, rec in enumerate(batch)]  # type: ignore[arg-type]
    try:
        return normalize(renamed, INVENTORY_SCHEMA)
    except ValidationError as exc:
        if exc.field != "stream_id":
            raise
        message = str(exc).split(": ", 1)[-1].replace("stream_id", "item")
        raise type(exc)(message, row=exc.row, field="item") from None


def _rename_item(row: int, rec: Mapping[str, Any]) -> Any:
    if not isinstance(rec, Mapping):
        return rec
    if "stream_id" in rec:
        raise ValidationError("name the item column 'item', not 'stream_id'", row=row, field="stream_id")
    out = dict(rec)
    if "item" in out:
        out["stream_id"] = out.pop("item")
    return out


def _check_stock(frame: pl.DataFrame, state: pl.DataFrame) -> None:
    """Reject the batch if any item's running stock goes negative, or beyond what an int64
    holds (the fold and every read would fail on it), naming the first row.

    Checked a slice of rows at a time, each item's stock carried from one slice to the next:
    the memory it takes does not grow with the batch.
    """
    removes = frame.get_column("event_type") == REMOVED
    added = frame.select(pl.col("quantity").filter(pl.col("event_type") == ADDED).cast(pl.Int128).sum()).item()
    most = state.get_column("quantity").max() or 0
    if not removes.any() and most + (added or 0) <= _MAX_STOCK:  # type: ignore[operator]
        return
    start = state.select(pl.col("item").alias("stream_id"), pl.col("quantity").cast(pl.Int128).alias("__start"))
    for offset in range(0, frame.height, _CHECK_ROWS):
        running = with_running_stock(
            frame.slice(offset, _CHECK_ROWS).select("stream_id", "event_type", "quantity")
            .join(start, on="stream_id", how="left", maintain_order="left"),
            start="__start",
        )
        row = first_row(running, (pl.col("stock") < 0) | (pl.col("stock") > _MAX_STOCK))
        if row is not None:
            _refuse(running, row, offset + row)
        last = running.group_by("stream_id").agg(pl.col("stock").last().alias("__start"))
        start = pl.concat([start.join(last, on="stream_id", how="anti"), last])


def _refuse(running: pl.DataFrame, at: int, row: int) -> None:
    name, quantity, after = running.select("stream_id", "quantity", "stock").row(at)
    if after < 0:
        raise InsufficientStockError(name, quantity, after + quantity, row=row)
    raise ValidationError(f"the stock of {name!r} would be {after}, more than an int64 holds ({_MAX_STOCK})",
                          row=row, field="quantity")


#: The name the stock check is registered under with the inventory's log (``EventLog.add_check``).
STOCK_CHECK = "inventory-stock"


class _StockCheck:
    """The stock check of ``record``, for every batch of a commit (this writer's and those queued for it)."""

    def __init__(self, inventory: Inventory) -> None:
        self._inventory = inventory

    def begin(self, txn: WriteTxn) -> _StockRun:
        return _StockRun(self._inventory, txn.head)


class _StockRun:
    """Each batch against the stock at the head plus the batches accepted before it in the same commit.

    A batch of additions is passed on the bound alone when this writer knows one at the head;
    otherwise the state at the head is computed once, and the earlier batches' signed
    quantities are added to it.
    """

    def __init__(self, inventory: Inventory, head: int) -> None:
        inventory._check_state_definition()
        self._inventory = inventory
        self._head = head
        self._known = inventory._bound  # (seq, bound there), for a bound at the head when one is needed
        self._bound: int | None = self._known[1] if self._known is not None and self._known[0] == head else None
        self._state: pl.DataFrame | None = None
        self._earlier: list[pl.DataFrame] = []

    def check(self, frame: pl.DataFrame) -> None:
        if not frame.get_column("event_type").eq(REMOVED).any():
            if self._bound is None and self._state is None and self._known is not None:
                self._bound = self._bound_at_head(*self._known)
                self._known = None  # tried once
                if self._bound is not None:
                    self._bound += sum(_added(f) for f in self._earlier)
            if self._bound is not None and self._bound + _added(frame) <= _MAX_STOCK:
                return
        if self._state is None:
            self._state = self._inventory._state_at_seq(self._head)
        _check_stock(frame, self._with_earlier(self._state))

    def accept(self, frame: pl.DataFrame) -> None:
        self._earlier.append(frame)
        if self._bound is not None:  # removals only lower a stock: the bound stays one
            self._bound += _added(frame)

    def committed(self, events: pl.DataFrame, last_seq: int) -> None:
        inventory = self._inventory
        if self._state is not None:  # the next read (or check) starts from here
            after = self._state
            for start in range(0, events.height, _FOLD_ROWS):  # a slice at a time: bounded memory
                after = inventory.engine.merge(STATE, after, inventory.engine.fold(STATE, events.slice(start, _FOLD_ROWS)))
            inventory._remember((last_seq, None), after)
            inventory._committed = (last_seq, after)
        else:
            if self._bound is not None and self._bound <= _MAX_STOCK:
                inventory._bound = (last_seq, self._bound)
            inventory._committed = (last_seq, None)

    def _bound_at_head(self, seq: int, bound: int) -> int | None:
        """This writer's bound at ``seq`` moved to the head by the commits of other writers since.

        Each item's stock grew by at most the largest net change any item had in between: the
        fold of those events alone, cheaper than bringing the whole state up to the head (which
        a group of additions does not need).
        """
        if seq > self._head:
            return None
        moved = self._inventory._fold(after=seq, cut=self._head).get_column("quantity").max()
        return bound + max(0, moved if isinstance(moved, int) else 0)

    def _with_earlier(self, state: pl.DataFrame) -> pl.DataFrame:
        """``state``'s item and quantity with the batches accepted before in this commit added."""
        if not self._earlier:
            return state
        signed = pl.when(pl.col("event_type") == ADDED).then(pl.col("quantity")).when(
            pl.col("event_type") == REMOVED).then(-pl.col("quantity")).otherwise(0)
        moved = (pl.concat([f.select("stream_id", "event_type", "quantity") for f in self._earlier])
                 .group_by("stream_id").agg(signed.sum().alias("__moved")).rename({"stream_id": "item"}))
        dtype = state.schema["quantity"]
        return (state.select("item", "quantity").join(moved, on="item", how="full", coalesce=True)
                .select("item", (pl.col("quantity").fill_null(0) + pl.col("__moved").fill_null(0)).cast(dtype)
                        .alias("quantity")))


def _added(frame: pl.DataFrame) -> int:
    return int(frame.select(pl.col("quantity").filter(pl.col("event_type") == ADDED).cast(pl.Int128).sum()).item() or 0)


def _resolve(log: EventLog, as_of: Cut, known_at: Cut) -> TimeCut:
    """Turn as_of / known_at into a seq cut plus an optional business-time cut."""
    return resolve_cut(as_of, known_at, lambda known: _last_seq_recorded_by(log, known))


def _last_seq_recorded_by(log: EventLog, when: dt.datetime) -> int:
    """The log's head as it was at ``when`` (recorded_at is non-decreasing in seq)."""
    last = log.scan(ordered=False).filter(pl.col("recorded_at") <= when).select(pl.col("seq").max()).collect().item()
    return int(last or 0)


def _happened_by(state: pl.DataFrame, business: dt.datetime | None) -> bool:
    if business is None or state.height == 0:
        return True
    return (state.get_column("last_changed_at") <= business).all()  # nulls are skipped: an all-null column is True


__all__ = ["INVENTORY_SCHEMA", "Inventory", "Item"]
