"""The inventory's own promises, as extra checks for ``verify``.

Stock never below zero at any point in log order; every snapshot equal to a fold of the
log up to its seq; every materialised projection equal to a rebuild at its checkpoint (those
of another definition are skipped: no read uses them, the next update rebuilds them).

Everything these checks compare is recomputed **in verify's own read of the events**: this
module is a ``GroupReader``, so each group verify reads and hashes (on its worker threads) is
also folded, there, into every snapshot's state and every projection at its own cut; the
main thread merges the partial results group by group (every definition merges) and carries
each item's stock from one group into the next. Function projections built on another
projection are then computed from that recomputed table.

A passing check leaves its own seal beside the log's (``cache/verified/inventory.json``):
the log position it checked, each item's stock there, the snapshots (by their checksums)
and projection tables (by version, checkpoint and the SHA-256 of their files) found equal
to the recomputation. The next verify that trusts the log's seal up to that position starts
the stock from there and recomputes only snapshots and tables that are not the ones sealed;
a new snapshot folds only from the newest sealed snapshot below it. ``deep`` ignores it.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from eventlog.core.definitions import FunctionProjection, Projection, columns_read
from eventlog.engines._polars import PolarsEngine
from eventlog.engines.folds import fold_many
from eventlog.errors import ProjectionError, StorageError
from eventlog.log import EventLog
from eventlog.model.state import STATE, STORED_SCHEMA, with_running_stock
from eventlog.projector import Projector
from eventlog.store.atomic import atomic_file, write_json_atomically
from eventlog.store.paths import folder_outside, outside
from eventlog.store.snapshots import SnapshotInfo, SnapshotStore
from eventlog.store.tables import TableVersion
from eventlog.verify import Check, Violation
from eventlog.verify.seal import Carry, file_digests

#: Seqs read per group when the checks read the log themselves (before a seal verify trusts).
GROUP = 1_000_000
#: Group folds held per target before they are merged (bounds memory; one regroup per this many).
_MERGE_EVERY = 16
_ENGINE = PolarsEngine()
_SEAL = "inventory.json"
_FORMAT = 1
_PARTITION = "occurred_on"


def inventory_checks(log: EventLog, snapshots: SnapshotStore, projector: Projector, *,
                     deep: bool = False) -> tuple[list[tuple[str, Check]], OnePass]:
    """The checks, over the parts of an inventory, and the reader that feeds them from verify's pass."""
    pass_ = OnePass(log, snapshots, projector, deep=deep)
    return [
        ("stock never negative", lambda _, head: pass_.run(head).negative),
        ("snapshots", lambda _, head: pass_.run(head).snapshots),
        ("projections", lambda _, head: pass_.run(head).projections),
    ], pass_


@dataclass
class _Findings:
    negative: Violation | None = None
    snapshots: Violation | None = None
    projections: Violation | None = None


@dataclass
class _Target:
    """One definition to recompute for after < seq <= ``cut``, merged onto ``state`` group by group."""

    definition: Projection
    cut: int
    after: int = 0
    state: pl.DataFrame | None = None
    #: Another target whose finished state this one continues (``after`` is its cut): several
    #: snapshots fold the log once, each the events since the one before it.
    prior: str | None = None
    #: Folds of groups absorbed since ``state`` was last merged: merged in one regroup.
    pending: list[pl.DataFrame] = field(default_factory=list)

    def absorb(self, part: pl.DataFrame) -> None:
        self.pending.append(part)
        if len(self.pending) >= _MERGE_EVERY:
            self.settled()

    def settled(self) -> pl.DataFrame | None:
        """``state`` with every absorbed fold merged in."""
        if self.pending:
            self.state = _ENGINE.merge_all(self.definition, ([] if self.state is None else [self.state]) + self.pending)
            self.pending = []
        return self.state


@dataclass
class _Plan:
    """What one verify recomputes: the targets, where the stock starts, and what was sealed as checked."""

    head: int
    targets: dict[str, _Target]
    stock_from: int
    opening: pl.DataFrame
    snapshots: list[SnapshotInfo]
    tables: dict[str, TableVersion]
    trusted: set[str]  # target names the seal vouches for (snapshot files, projection names)
    table_files: dict[str, dict[str, str]]  # projection -> {file: sha256}, as found now
    findings: _Findings = field(default_factory=_Findings)
    negative: Violation | None = None
    tip: str | None = None
    carried: bool = False


_EMPTY_OPENING = pl.DataFrame(schema={"stream_id": pl.String(), "__start": pl.Int128()})


@dataclass
class OnePass:
    """The inventory's recomputations, fed by verify's read of the events (a ``GroupReader``)."""

    log: EventLog
    snapshots: SnapshotStore
    projector: Projector
    deep: bool = False
    _plan: _Plan | None = None
    _done: dict[int, _Findings] = field(default_factory=dict)

    # --- GroupReader: verify calls these -------------------------------------------------------

    def begin(self, sealed: Carry | None, head: int, commits: pl.DataFrame | None = None) -> None:
        plan = self._plan = self._make_plan(head, sealed, commits)
        start = sealed.head if sealed is not None else 0
        first = min([plan.stock_from, *(t.after for t in plan.targets.values() if t.cut > t.after)], default=start)
        for after in range(first, start, GROUP):  # before the events verify reads: read them here
            cut = min(after + GROUP, start)
            self.absorb(self.read(self.log.scan_range(cut, after=after, upcast=False).collect().sort("seq")))

    def read(self, events: pl.DataFrame) -> Any:
        """On a worker thread: the group's partial folds and each item's stock movement in it."""
        plan = self._plan
        if plan is None or events.height == 0:
            return None
        lo, hi = int(events.item(0, "seq")), int(events.item(-1, "seq"))
        lf = events.lazy()
        if self.log.schema_history.rules:
            lf = self.log.schema_history.apply(lf)
        if _PARTITION in self._columns(plan) and _PARTITION not in events.columns:
            lf = lf.with_columns(pl.col("occurred_at").dt.date().alias(_PARTITION))
        group = lf.select(sorted(self._columns(plan) & set(lf.collect_schema()) | {"seq"})).collect()
        windows: dict[tuple[int, int], list[tuple[str, _Target]]] = {}
        for name, target in plan.targets.items():
            if target.cut >= lo and target.after < hi:
                window = (max(target.after, lo - 1), min(target.cut, hi))
                windows.setdefault(window, []).append((name, target))
        folds = {}
        for (after, cut), members in windows.items():
            whole = after < lo and cut >= hi  # the whole group: no filtered copy
            rows = group if whole else group.filter((pl.col("seq") > after) & (pl.col("seq") <= cut))
            folds.update(_fold_members(members, rows))
        moves = None
        if hi > plan.stock_from and plan.negative is None:
            rows = group if plan.stock_from < lo else group.filter(pl.col("seq") > plan.stock_from)
            moved = with_running_stock(rows.select("seq", "stream_id", "event_type", "quantity"))
            moves = moved.group_by("stream_id").agg(pl.col("stock").min().alias("low"), pl.col("stock").last().alias("net"))
        return lo, hi, folds, moves

    def absorb(self, partial: Any) -> None:
        """On the main thread, in log order: merge the partial folds, carry the stock."""
        plan = self._plan
        if plan is None or partial is None:
            return
        lo, hi, folds, moves = partial
        for name, part in folds.items():
            plan.targets[name].absorb(part)
        if moves is not None and plan.negative is None:
            level = moves.join(plan.opening, on="stream_id", how="left").with_columns(pl.col("__start").fill_null(0))
            if level.filter(pl.col("__start") + pl.col("low") < 0).height:
                plan.negative = self._locate_negative(max(lo - 1, plan.stock_from), hi, plan.opening)
            plan.opening = pl.concat([
                plan.opening.join(level, on="stream_id", how="anti"),
                level.select("stream_id", (pl.col("__start") + pl.col("net")).alias("__start")),
            ])

    def end(self, carry: Carry) -> None:
        """The log's checks passed up to ``carry.head``: the position a seal of these checks names."""
        if self._plan is not None and carry.head == self._plan.head:
            self._plan.tip, self._plan.carried = carry.tip, True

    # --- the checks ------------------------------------------------------------------------

    def run(self, head: int) -> _Findings:
        if head not in self._done:
            if self._plan is None or self._plan.head != head:
                self.begin(None, head)  # not fed by verify's pass: read the log here
                for after in range(0, head, GROUP):
                    cut = min(after + GROUP, head)
                    self.absorb(self.read(self.log.scan_range(cut, after=after, upcast=False).collect().sort("seq")))
            plan = self._plan
            if plan is None:
                raise RuntimeError("begin() made no plan")  # pragma: no cover - begin always sets one
            self._done[head] = self._check(plan)
        return self._done[head]

    def _check(self, plan: _Plan) -> _Findings:
        findings = plan.findings
        findings.negative = plan.negative
        if findings.snapshots is None:
            findings.snapshots = self._compare_snapshots(plan)
        if findings.projections is None:
            findings.projections = self._compare_projections(plan)
        # a table the seal does not vouch for (a function table is no target: it is computed
        # from its source) is something new: sealed now, it is not recomputed by every verify
        nothing_new = (plan.stock_from == plan.head and not plan.targets
                       and all(f"projection {name}" in plan.trusted for name in plan.tables))
        if not (findings.negative or findings.snapshots or findings.projections) and plan.carried and not nothing_new:
            self._seal(plan)
        return findings

    def _columns(self, plan: _Plan) -> set[str]:
        columns = {"seq", "stream_id", "event_type", "quantity"}
        for target in plan.targets.values():
            read, _ = columns_read(target.definition)
            columns |= read or set()
        return columns

    def _locate_negative(self, after: int, cut: int, opening: pl.DataFrame) -> Violation | None:
        """The first event of after < seq <= cut taking an item below zero (a rare path: read again)."""
        group = self.log.scan_range(cut, after=after).select("seq", "stream_id", "event_type", "quantity").collect()
        return _running_stock(group.sort("seq"), opening)

    # --- what to recompute ------------------------------------------------------------------

    def _make_plan(self, head: int, sealed: Carry | None, commits: pl.DataFrame | None) -> _Plan:
        seal = None if self.deep or sealed is None or commits is None else self._load_seal(sealed, commits)
        snapshots, bad_snapshot = self._snapshot_targets(head)
        projections, tables, bad_projection = self._projection_targets()
        table_files = {name: self._table_digests(name, table) for name, table in tables.items()}
        trusted: set[str] = set()
        sealed_snaps: dict[str, Any] = {}
        if seal is not None:
            sealed_snaps = {s["file"]: s for s in seal["snapshots"]}
            for info in snapshots:
                entry = sealed_snaps.get(info.file)
                if entry is not None and (entry["sha256"], entry["seq"]) == (info.sha256, info.seq):
                    trusted.add(f"snapshot {info.seq}")
            for name, table in tables.items():
                entry = seal["projections"].get(name)
                if entry is not None and entry == _table_entry(table, table_files[name]):
                    trusted.add(f"projection {name}")
        targets: dict[str, _Target] = {}
        verified = sorted((i for i in snapshots if f"snapshot {i.seq}" in trusted), key=lambda i: i.seq)
        previous: _Target | None = None
        for info in sorted(snapshots, key=lambda i: i.seq):
            key = f"snapshot {info.seq}"
            if key in trusted:
                previous = None
                continue
            below = [v for v in verified if v.seq <= info.seq]
            base = self.snapshots.load(below[-1]) if below else None
            if below and base is not None and set(base.columns) == set(STORED_SCHEMA):
                target = _Target(STATE, info.seq, below[-1].seq,
                                 base.select(list(STORED_SCHEMA)).cast(STORED_SCHEMA))  # type: ignore[arg-type]
                if previous is not None and previous.cut > target.after:
                    target = _Target(STATE, info.seq, previous.cut, prior=f"snapshot {previous.cut}")
            elif previous is not None:
                target = _Target(STATE, info.seq, previous.cut, prior=f"snapshot {previous.cut}")
            else:
                target = _Target(STATE, info.seq)
            targets[key] = previous = target
        for name, table in tables.items():
            if name in projections and f"projection {name}" not in trusted:
                targets[f"projection {name}"] = self._projection_target(name, table, seal)
        stock_from, opening = (seal["head"], seal["stock"]) if seal is not None else (0, _EMPTY_OPENING)
        plan = _Plan(head, targets, stock_from, opening, snapshots, tables, trusted, table_files)
        plan.findings.snapshots, plan.findings.projections = bad_snapshot, bad_projection
        return plan

    def _projection_target(self, name: str, table: TableVersion, seal: dict[str, Any] | None) -> _Target:
        """Recompute the table at its checkpoint: from the sealed build of it when that is still
        there with the same files (it was found equal to the log), else from the start."""
        proj = self.projector.get(name)
        if not isinstance(proj, Projection):
            raise TypeError(f"{name} is not declarative")  # pragma: no cover - only declarative ones are targets
        entry = (seal or {}).get("projections", {}).get(name)
        if (entry is None or entry.get("fingerprint") != table.fingerprint or entry.get("version", -1) < 0
                or not 0 < entry.get("checkpoint", 0) <= table.checkpoint):
            return _Target(proj, table.checkpoint)
        try:
            old, rows = self.projector.tables.read_version(name, int(entry["version"]))
            if (old.checkpoint, self._table_digests(name, old)) != (entry["checkpoint"], entry["files"]):
                return _Target(proj, table.checkpoint)
        except (ProjectionError, StorageError, OSError):
            return _Target(proj, table.checkpoint)
        schema = _ENGINE.fold(proj, pl.LazyFrame(schema=self.log.schema.columns())).schema
        if set(rows.columns) != set(schema):
            return _Target(proj, table.checkpoint)
        return _Target(proj, table.checkpoint, old.checkpoint, rows.select(list(schema)).cast(dict(schema)))  # type: ignore[arg-type]

    def _snapshot_targets(self, head: int) -> tuple[list[SnapshotInfo], Violation | None]:
        infos = self.snapshots.list()
        for info in infos:
            if info.seq > head:
                return [], Violation("snapshots", f"snapshot at seq {info.seq} is beyond the head {head}", file=info.file)
        return infos, None

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

    def _table_digests(self, name: str, table: TableVersion) -> dict[str, str]:
        try:
            root = self.projector.tables.folder(name)
            files = [str(Path(f).relative_to(root)) for f in self.projector.tables.files(name, table)]
            return dict(zip(files, file_digests(root, files), strict=True))
        except (OSError, ValueError, StorageError, ProjectionError):
            return {}  # compared below, where an unreadable table is reported

    # --- comparisons -------------------------------------------------------------------------

    def _compare_snapshots(self, plan: _Plan) -> Violation | None:
        key = list(STORED_SCHEMA)
        for info in plan.snapshots:
            if f"snapshot {info.seq}" in plan.trusted:
                continue
            stored = self.snapshots.load(info)
            if stored is None:
                return Violation("snapshots", "snapshot fails its checksum or cannot be read", seq=info.seq,
                                 file=info.file)
            if set(stored.columns) != set(key):
                return Violation("snapshots", f"snapshot has the columns {sorted(stored.columns)}, not the state's "
                                 f"{sorted(key)}", seq=info.seq, file=info.file)
            fresh = _state_or_empty(_resolved(plan.targets, f"snapshot {info.seq}"))
            if not _same(stored.select(key).cast(STORED_SCHEMA), fresh.select(key), ["item"]):  # type: ignore[arg-type]
                return Violation("snapshots", "snapshot differs from a fold of the log up to its seq", seq=info.seq,
                                 file=info.file)
        return None

    def _compare_projections(self, plan: _Plan) -> Violation | None:
        finished: dict[tuple[str, int], pl.DataFrame] = {}
        for name, table in plan.tables.items():
            if f"projection {name}" in plan.trusted:
                continue
            proj = self.projector.registry[name]
            try:
                stored = self.projector.tables.read(name, table)
            except StorageError as exc:
                return Violation("projections", str(exc), file=f"projections/{name}")
            if isinstance(proj, Projection):
                # Stored forms are compared (finishing is a function of them): no window over a
                # large table twice. A function built on this projection gets it finished, once.
                fresh = _state_or_empty(plan.targets[f"projection {name}"], proj, self.log).select(stored.columns)
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

    # --- the seal ----------------------------------------------------------------------------

    def _folder(self) -> Path:
        return self.log.path / "cache" / "verified"

    def _load_seal(self, sealed: Carry, commits: pl.DataFrame) -> dict[str, Any] | None:
        """The inventory's seal when it names a position of the log the log's seal vouches for.

        Its head is at or below the log seal's and the commit ending there still has the hash
        it had: the events up to there are the ones these checks passed on.
        """
        base = self._folder()
        try:
            if folder_outside(self.log.path, base.parent) or folder_outside(self.log.path, base):
                return None
            data = json.loads((base / _SEAL).read_text(encoding="utf-8"))
            if not isinstance(data, dict) or data.get("format") != _FORMAT or data.get("state") != self.snapshots.fingerprint:
                return None
            at = commits.filter(pl.col("last_seq") == data.get("head"))
            if not 0 < int(data["head"]) <= sealed.head or at.height != 1 or at.item(0, "hash") != data.get("tip"):
                return None
            name = data.get("stock")
            if not isinstance(name, str) or "/" in name or outside(base, name):
                return None
            raw = (base / name).read_bytes()
            if hashlib.sha256(raw).hexdigest() != data.get("stock_sha256"):
                return None
            stock = pl.read_parquet(raw).select("stream_id", pl.col("__start").cast(pl.Int128))
            if not isinstance(data.get("snapshots"), list) or not isinstance(data.get("projections"), dict):
                return None
        except (OSError, ValueError, TypeError, KeyError, pl.exceptions.PolarsError):
            return None
        return {**data, "stock": stock}

    def _seal(self, plan: _Plan) -> None:
        """Record what was found equal to the log (a cache: any failure only means more work next time)."""
        opening = plan.opening
        if opening.height and not opening.select(pl.col("__start").is_between(-(2**63), 2**63 - 1).all()).item():
            return
        base = self._folder()
        name = f"stock-{plan.head:015d}-{secrets.token_hex(4)}.parquet"
        try:
            base.mkdir(parents=True, exist_ok=True)
            if folder_outside(self.log.path, base.parent) or folder_outside(self.log.path, base):
                return
            with atomic_file(base / name) as tmp:
                opening.with_columns(pl.col("__start").cast(pl.Int64)).write_parquet(tmp)
                digest = hashlib.sha256(tmp.read_bytes()).hexdigest()
            write_json_atomically(base / _SEAL, {
                "format": _FORMAT, "head": plan.head, "tip": plan.tip, "state": self.snapshots.fingerprint,
                "stock": name, "stock_sha256": digest,
                "snapshots": [{"file": i.file, "sha256": i.sha256, "seq": i.seq} for i in plan.snapshots],
                "projections": {n: _table_entry(t, plan.table_files[n]) for n, t in plan.tables.items()},
            })
            for old in base.glob("stock-*.parquet"):
                if old.name != name:
                    old.unlink(missing_ok=True)
        except OSError:
            pass


def _table_entry(table: TableVersion, files: dict[str, str]) -> dict[str, Any]:
    return {"fingerprint": table.fingerprint, "version": table.version, "checkpoint": table.checkpoint,
            "files": files}


def _fold_members(members: list[tuple[str, _Target]], rows: pl.DataFrame) -> dict[str, pl.DataFrame]:
    """Each target's fold of ``rows``: the definitions together, in one fold where the fold plan allows."""
    folds: dict[str, pl.DataFrame] = {}
    definitions: dict[str, Projection] = {}
    for name, target in members:
        if definitions.setdefault(target.definition.name, target.definition) != target.definition:
            folds[name] = _ENGINE.fold(target.definition, rows)  # another definition of the same name: alone
    together = fold_many(_ENGINE, list(definitions.values()), rows, rows.schema)
    for name, target in members:
        folds.setdefault(name, together[target.definition.name])
    return folds


def _running_stock(group: pl.DataFrame, opening: pl.DataFrame) -> Violation | None:
    """The first event of ``group`` (in log order) that takes an item below zero, if any."""
    running = with_running_stock(
        group.select("seq", "stream_id", "event_type", "quantity")
        .join(opening, on="stream_id", how="left", maintain_order="left"),
        start="__start",
    )
    bad = running.filter(pl.col("stock") < 0).head(1)
    if bad.height == 0:
        return None
    seq, item, stock = bad.select("seq", "stream_id", "stock").row(0)
    return Violation("stock", f"item {item!r} goes to {stock} at this event", seq=seq)


def _resolved(targets: dict[str, _Target], key: str) -> _Target:
    """The target with the states of the targets it continues merged in front of its own."""
    target = targets[key]
    if target.prior is not None:
        before = _state_or_empty(_resolved(targets, target.prior))
        own = target.settled()
        target.state = before if own is None else _ENGINE.merge(target.definition, before, own)
        target.prior = None
    return target


def _state_or_empty(target: _Target, proj: Projection | None = None, log: EventLog | None = None) -> pl.DataFrame:
    state = target.settled()
    if state is not None:
        return state
    if proj is None or log is None:
        return pl.DataFrame(schema=STORED_SCHEMA)
    return _ENGINE.fold(proj, pl.LazyFrame(schema=log.schema.columns()))


def _same(a: pl.DataFrame, b: pl.DataFrame, order: list[str]) -> bool:
    """Equal as sets of rows. Both are put in the order of their row hashes first (one integer
    sort key instead of several string ones); only if that finds them different are they
    compared again in the order of ``order``, so that a tie between distinct rows sharing a
    hash cannot make equal tables differ."""
    if a.columns != b.columns or a.height != b.height:
        return False
    if a.schema == b.schema and a[a.hash_rows().arg_sort()].equals(b[b.hash_rows().arg_sort()]):
        return True
    return a.sort(order, nulls_last=True).equals(b.sort(order, nulls_last=True))
