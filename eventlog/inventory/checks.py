"""The inventory's own promises, as extra checks for ``verify``.

Stock never below zero at any point in log order; every snapshot equal to a fold of the
log up to its seq; every materialised projection equal to a rebuild at its checkpoint (those
of another definition are skipped: no read uses them, the next update rebuilds them).

Everything these checks compare is recomputed in **one pass over the log**: groups of about a
million seqs are read once, and each group is folded into every snapshot's state and every
projection at its own cut, merging partial results group by group (every definition merges),
while the running stock carries each item's level from one group into the next. Function
projections built on another projection are then computed from that recomputed table.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import polars as pl

from eventlog.core.definitions import FunctionProjection, Projection, columns_read
from eventlog.engines._polars import PolarsEngine
from eventlog.errors import ProjectionError, StorageError
from eventlog.log import EventLog
from eventlog.model.state import STATE, STORED_SCHEMA, with_running_stock
from eventlog.projector import Projector
from eventlog.store.snapshots import SnapshotInfo, SnapshotStore
from eventlog.store.tables import TableVersion
from eventlog.verify import Check, Violation

#: Seqs read per group: bounded memory on large logs, few groups on small ones.
GROUP = 1_000_000
_ENGINE = PolarsEngine()


def inventory_checks(log: EventLog, snapshots: SnapshotStore, projector: Projector) -> list[tuple[str, Check]]:
    """The checks, over the parts of an inventory (snapshots of the current state definition)."""
    pass_ = _OnePass(log, snapshots, projector)
    return [
        ("stock never negative", lambda _, head: pass_.run(head).negative),
        ("snapshots", lambda _, head: pass_.run(head).snapshots),
        ("projections", lambda _, head: pass_.run(head).projections),
    ]


@dataclass
class _Findings:
    negative: Violation | None = None
    snapshots: Violation | None = None
    projections: Violation | None = None


@dataclass
class _Target:
    """One definition to recompute up to ``cut``, accumulated group by group."""

    definition: Projection
    cut: int
    state: pl.DataFrame | None = None


@dataclass
class _OnePass:
    log: EventLog
    snapshots: SnapshotStore
    projector: Projector
    _done: dict[int, _Findings] = field(default_factory=dict)

    def run(self, head: int) -> _Findings:
        if head not in self._done:
            self._done[head] = self._check(head)
        return self._done[head]

    def _check(self, head: int) -> _Findings:
        findings = _Findings()
        snapshots, findings.snapshots = self._snapshot_targets(head)
        projections, tables, findings.projections = self._projection_targets()
        targets = {**{f"snapshot {s.seq}": _Target(STATE, s.seq) for s in snapshots},
                   **{f"projection {n}": _Target(self.projector.get(n), t.checkpoint)  # type: ignore[arg-type]
                      for n, t in tables.items() if n in projections}}
        findings.negative = self._read_once(head, targets)
        if findings.snapshots is None:
            findings.snapshots = self._compare_snapshots(snapshots, targets)
        if findings.projections is None:
            findings.projections = self._compare_projections(tables, targets)
        return findings

    def _read_once(self, head: int, targets: dict[str, _Target]) -> Violation | None:
        """Fold every group of the log into every target; return the first negative stock, if any."""
        columns = {"seq", "stream_id", "event_type", "quantity"}
        for target in targets.values():
            read, _ = columns_read(target.definition)
            columns |= read or set()
        opening = pl.DataFrame(schema={"stream_id": pl.String(), "__start": pl.Int128()})
        negative: Violation | None = None
        for after in range(0, head, GROUP):
            cut = min(after + GROUP, head)
            group = self.log.scan_range(cut, after=after).select(sorted(columns)).collect().sort("seq")
            if negative is None:
                negative, opening = _running_stock(group, opening)
            for target in targets.values():
                if target.cut > after:
                    part = _ENGINE.fold(target.definition, group.filter(pl.col("seq") <= target.cut))
                    target.state = part if target.state is None else _ENGINE.merge(target.definition, target.state, part)
        return negative

    # --- snapshots -----------------------------------------------------------------------

    def _snapshot_targets(self, head: int) -> tuple[list[SnapshotInfo], Violation | None]:
        infos = self.snapshots.list()
        for info in infos:
            if info.seq > head:
                return [], Violation("snapshots", f"snapshot at seq {info.seq} is beyond the head {head}", file=info.file)
        return infos, None

    def _compare_snapshots(self, infos: list[SnapshotInfo], targets: dict[str, _Target]) -> Violation | None:
        key = list(STORED_SCHEMA)
        for info in infos:
            stored = self.snapshots.load(info)
            if stored is None:
                return Violation("snapshots", "snapshot fails its checksum or cannot be read", seq=info.seq,
                                 file=info.file)
            if set(stored.columns) != set(key):
                return Violation("snapshots", f"snapshot has the columns {sorted(stored.columns)}, not the state's "
                                 f"{sorted(key)}", seq=info.seq, file=info.file)
            fresh = _state_or_empty(targets[f"snapshot {info.seq}"])
            if not _same(stored.select(key).cast(STORED_SCHEMA), fresh.select(key), ["item"]):  # type: ignore[arg-type]
                return Violation("snapshots", "snapshot differs from a fold of the log up to its seq", seq=info.seq,
                                 file=info.file)
        return None

    # --- projections ---------------------------------------------------------------------

    def _projection_targets(self) -> tuple[set[str], dict[str, TableVersion], Violation | None]:
        """The declarative projections to recompute, every table of this definition, or a violation."""
        tables: dict[str, TableVersion] = {}
        self.projector.tables.forget()  # read every table from disk, not from what this process holds
        for name, proj in self.projector.registry.items():
            try:
                table = self.projector.tables.manifest(name)
            except (ProjectionError, StorageError) as exc:
                return set(), {}, Violation("projections", str(exc), file=f"projections/{name}")
            if table is not None and table.fingerprint == self.projector.fingerprint(proj):
                tables[name] = table  # others: rebuilt before they are read
        declarative = {n for n in tables if isinstance(self.projector.registry[n], Projection)}
        return declarative, tables, None

    def _compare_projections(self, tables: dict[str, TableVersion], targets: dict[str, _Target]) -> Violation | None:
        finished: dict[tuple[str, int], pl.DataFrame] = {}
        for name, table in tables.items():
            proj = self.projector.registry[name]
            try:
                stored = self.projector.tables.read(name, table)
            except StorageError as exc:
                return Violation("projections", str(exc), file=f"projections/{name}")
            if isinstance(proj, Projection):
                # Stored forms are compared (finishing is a function of them): no window over a
                # large table twice. A function built on this projection gets it finished, once.
                fresh = _state_or_empty(targets[f"projection {name}"], proj, self.log).select(stored.columns)
                if any(p.source == name for p in self.projector.registry.values()):
                    finished[(name, table.checkpoint)] = _ENGINE.finish(proj, fresh)
                order = list(proj.keys)
            else:
                fresh = self._function_at(proj, table.checkpoint, finished)
                order = stored.columns
            if not _same(stored, fresh, order):
                return Violation("projections", f"projection {name!r} differs from a rebuild at its checkpoint "
                                 f"{table.checkpoint}", seq=table.checkpoint,
                                 file=f"projections/{name} (table version {table.version})")
        return None

    def _function_at(self, proj: FunctionProjection, cut: int,
                     finished: dict[tuple[str, int], pl.DataFrame]) -> pl.DataFrame:
        """A function's table at ``cut``: from its source recomputed in the pass when there is one."""
        source = finished.get((proj.source, cut))
        if source is not None:
            return proj.compute(source)
        return self.projector.compute_from(proj, self.log.scan(as_of=cut))


def _running_stock(group: pl.DataFrame, opening: pl.DataFrame) -> tuple[Violation | None, pl.DataFrame]:
    """The first event of ``group`` that takes an item below zero, and each item's stock after the group."""
    running = with_running_stock(
        group.select("seq", "stream_id", "event_type", "quantity")
        .join(opening, on="stream_id", how="left", maintain_order="left"),
        start="__start",
    )
    bad = running.filter(pl.col("stock") < 0).head(1)
    closing = pl.concat([
        opening,
        running.group_by("stream_id").agg(pl.col("stock").last().alias("__start")),
    ]).group_by("stream_id").agg(pl.col("__start").last())
    if bad.height == 0:
        return None, closing
    seq, item, stock = bad.select("seq", "stream_id", "stock").row(0)
    return Violation("stock", f"item {item!r} goes to {stock} at this event", seq=seq), closing


def _state_or_empty(target: _Target, proj: Projection | None = None, log: EventLog | None = None) -> pl.DataFrame:
    if target.state is not None:
        return target.state
    if proj is None or log is None:
        return pl.DataFrame(schema=STORED_SCHEMA)
    return _ENGINE.fold(proj, pl.LazyFrame(schema=log.schema.columns()))


def _same(a: pl.DataFrame, b: pl.DataFrame, order: list[str]) -> bool:
    if a.columns != b.columns or a.height != b.height:
        return False
    return a.sort(order, nulls_last=True).equals(b.sort(order, nulls_last=True))
