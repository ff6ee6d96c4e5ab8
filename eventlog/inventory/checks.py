"""The inventory's own promises, as extra checks for ``verify``.

Stock never below zero at any point in log order; every snapshot equal to a fold of the
log up to its seq; every materialised projection equal to a rebuild at its checkpoint (those
of another definition are skipped: no read uses them, the next update rebuilds them).
"""

from __future__ import annotations

from collections.abc import Callable

import polars as pl

from eventlog.model.state import STORED_SCHEMA, with_running_stock
from eventlog.errors import ProjectionError
from eventlog.core.definitions import Projection
from eventlog.log import EventLog
from eventlog.projector import Projector
from eventlog.store.snapshots import SnapshotStore
from eventlog.verify import Check, Violation

#: The state recomputed from the log alone, up to a seq (no snapshot, no cache).
StateAt = Callable[[int], pl.DataFrame]


def inventory_checks(log: EventLog, snapshots: SnapshotStore, projector: Projector,
                     state_at: StateAt) -> list[tuple[str, Check]]:
    """The checks, over the parts of an inventory (snapshots of the current state definition)."""
    return [
        ("stock never negative", lambda _, head: _stock_never_negative(log, head)),
        ("snapshots", lambda _, head: _snapshots_match(snapshots, state_at, head)),
        ("projections", lambda _, head: _projections_match(log, projector, head)),
    ]


def _stock_never_negative(log: EventLog, head: int) -> Violation | None:
    bad = (
        with_running_stock(log.scan_range(head).select("seq", "stream_id", "event_type", "quantity").sort("seq"))
        .filter(pl.col("stock") < 0)
        .head(1)
        .collect()
    )
    if bad.height == 0:
        return None
    seq, item, stock = bad.select("seq", "stream_id", "stock").row(0)
    return Violation("stock", f"item {item!r} goes to {stock} at this event", seq=seq)


def _snapshots_match(snapshots: SnapshotStore, state_at: StateAt, head: int) -> Violation | None:
    key = list(STORED_SCHEMA)
    for info in snapshots.list():
        if info.seq > head:
            return Violation("snapshots", f"snapshot at seq {info.seq} is beyond the head {head}", file=info.file)
        stored = snapshots.load(info)
        if stored is None:
            return Violation("snapshots", "snapshot fails its checksum or cannot be read", seq=info.seq, file=info.file)
        if set(stored.columns) != set(key):
            return Violation("snapshots", f"snapshot has the columns {sorted(stored.columns)}, not the state's {sorted(key)}",
                             seq=info.seq, file=info.file)
        fresh = state_at(info.seq)
        if not _same(stored.select(key).cast(STORED_SCHEMA), fresh.select(key), ["item"]):  # type: ignore[arg-type]
            return Violation("snapshots", "snapshot differs from a fold of the log up to its seq", seq=info.seq,
                             file=info.file)
    return None


def _projections_match(log: EventLog, projector: Projector, head: int) -> Violation | None:
    for name, proj in projector.registry.items():
        try:
            manifest = projector.tables.manifest(name)
        except ProjectionError as exc:
            return Violation("projections", str(exc), file=f"projections/{name}")
        if manifest is None or manifest.fingerprint != projector.fingerprint(proj):
            continue  # none, or of another definition (or schema upcasters): rebuilt before it is read
        stored = projector.tables.read(name, manifest)
        cut = manifest.checkpoint
        if isinstance(proj, Projection):
            stored = projector.finish(name, stored)
            fresh = projector.finish(name, projector.fold_at(name, cut))
        else:
            fresh = projector.compute_from(proj, log.scan(as_of=cut))
        if not _same(stored, fresh, stored.columns):
            return Violation("projections", f"projection {name!r} differs from a rebuild at its checkpoint {cut}",
                             seq=cut, file=f"projections/{name} (table version {manifest.version})")
    return None


def _same(a: pl.DataFrame, b: pl.DataFrame, order: list[str]) -> bool:
    if a.columns != b.columns or a.height != b.height:
        return False
    return a.sort(order, nulls_last=True).equals(b.sort(order, nulls_last=True))
