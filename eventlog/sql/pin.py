"""The pinned version: everything the views of one Delta version need, read once.

The file list, head and commit history of that version, with the snapshots and projections
beside it. The commit history of a version never changes, so it is cached per table.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow.parquet as pq

from eventlog.core.definitions import HIDDEN, AnyProjection, Projection
from eventlog.core.evolution import SchemaHistory
from eventlog.engines._polars import finish_lazy, stored_schema
from eventlog.errors import CommitError, ProjectionError, ProjectionWarning, SnapshotWarning, StorageError
from eventlog.log import EventLog
from eventlog.model.builtins import BUILTINS
from eventlog.model.state import STATE_VERSION, STORED_SCHEMA, state_fingerprint
from eventlog.projector import Projector
from eventlog.store.snapshots import SnapshotInfo, SnapshotStore
from eventlog.store.tables import ROW, TableVersion

#: Views every connection defines; a projection of the same name gets no view.
BUILT_IN_VIEWS = ("events", "inventory", "commits", "snapshots", "projections")
_HISTORY: dict[tuple[str, str], list[dict[str, Any]]] = {}
_HISTORY_LOCK = threading.Lock()
_SCHEMAS: dict[tuple[Any, ...], tuple[dict[str, pl.DataType], dict[str, pl.DataType], bool]] = {}


@dataclass(frozen=True)
class Pin:
    """Everything the views of one Delta version need, read once."""

    root: Path
    version: int
    head: int
    columns: dict[str, pl.DataType]
    files: pl.DataFrame  # path (absolute), min_seq, max_seq
    commits: list[dict[str, Any]]
    snapshots: list[tuple[SnapshotInfo, bool]]
    projections: list[ProjectionPin]  # every registered projection, and every table on disk
    inventory: bool
    history: SchemaHistory  # schema versions: old events read through their read rules


@dataclass(frozen=True)
class ProjectionPin:
    """One projection as the views of a pinned version show it.

    ``definition`` is None for a table on disk that nothing registered here (another process's
    projection): its view can only serve the stored table, and only while it is current.
    """

    name: str
    definition: AnyProjection | None
    fingerprint: str | None  # of the definition now: a table built under another is not used
    table: TableVersion | None
    files: list[str]  # the Parquet files of that build (absolute)
    columns: dict[str, pl.DataType]  # of the finished table (for a view with no rows yet)
    stored: dict[str, pl.DataType]  # of the stored form (declarative projections)
    ordered: bool = False  # the stored rows carry their order (a function's output: hidden __row)


def read_pin(log: EventLog, is_inventory: bool, projector: Projector | None = None) -> Pin:
    """Files, head and commits of one version, with the snapshots and projections beside it.

    ``projector`` names the projections the views show (an Inventory's, its own included);
    without one, an inventory store shows its built-ins, and any store the tables on disk.
    """
    events = log.storage
    root = log.path.resolve()
    log.reload_schema()  # before the table: an evolution commits its columns before its schema
    key = (str(root), events.table_id())
    for _ in range(20):
        events.refresh()
        version = events.version
        stats = events.files()
        head = events.head_and_last_recorded()[0]
        commits = _commits(events, key, version)
        events.refresh()
        # The storage labels history entries counting back from the version it has loaded, but
        # reads the newest commits: one landing in between would shift every label.
        if events.version == version:
            break
    else:
        raise CommitError(f"{log.path} kept changing while its commit history was read; try again")
    with _HISTORY_LOCK:
        if len(commits) > len(_HISTORY.get(key, [])):
            _HISTORY[key] = commits
    files = _file_table(stats, events.path)
    return Pin(
        root=root,
        version=version,
        head=head,
        columns=dict(log.schema.columns()),
        files=files,
        commits=commits,
        snapshots=_snapshots(root, head, state_fingerprint(log)) if is_inventory else [],
        projections=_projections(log, _projector(log, is_inventory, projector)),
        inventory=is_inventory,
        history=log.schema_history,
    )


def _file_table(stats: pl.DataFrame, table_root: Path) -> pl.DataFrame:
    schema = {"path": pl.String(), "min_seq": pl.Int64(), "max_seq": pl.Int64()}
    if stats.height == 0:
        return pl.DataFrame(schema=schema)
    prefix = str(table_root) + "/"
    return (
        stats.select(
            (pl.lit(prefix) + pl.col("path")).alias("path"),
            "min_seq",
            "max_seq",
        )
        .cast(schema)  # type: ignore[arg-type]
        .sort("min_seq", "path", nulls_last=True)
    )


def _commits(events: Any, key: tuple[str, str], version: int) -> list[dict[str, Any]]:
    """One row per commit up to ``version``, oldest first: the new ones read, older ones cached.

    The history of a version never changes, and reading all of it costs a file per commit.
    """
    with _HISTORY_LOCK:
        known = list(_HISTORY.get(key, []))
    have = known[-1]["version"] if known else -1
    if have >= version:
        return [c for c in known if c["version"] <= version]
    fresh = [_commit_row(e) for e in events.history(version - have)]
    return known + sorted((c for c in fresh if have < c["version"] <= version), key=lambda c: c["version"])


def _commit_row(entry: dict[str, Any]) -> dict[str, Any]:
    def number(name: str) -> int | None:
        value = entry.get(f"eventlog.{name}")
        return None if value is None else int(value)

    committed = entry.get("timestamp")
    return {
        "version": int(entry["version"]),
        "first_seq": number("first_seq"),
        "last_seq": number("last_seq"),
        "event_count": number("count"),
        "recorded_at": entry.get("eventlog.recorded_at"),
        "operation": entry.get("eventlog.operation") or str(entry.get("operation", "")).lower() or None,
        "committed_at": None if committed is None
        else dt.datetime.fromtimestamp(committed / 1000, dt.timezone.utc).isoformat(),
        "idempotency_key": entry.get("eventlog.idempotency_key"),
    }


def _snapshots(root: Path, head: int, fingerprint: str) -> list[tuple[SnapshotInfo, bool]]:
    """Every manifest, and whether the state may start from it (this state definition, at or
    below head, its file matching its checksum)."""
    store = SnapshotStore(root / "snapshots", state_version=STATE_VERSION, fingerprint=fingerprint)
    out = []
    for info in store.list(all_versions=True):
        usable = store.accepts(info) and info.seq <= head and _intact(store.root / info.file, info)
        out.append((info, usable))
    return out


def _intact(path: Path, info: SnapshotInfo) -> bool:
    """Whether the snapshot file matches its checksum and holds the state's stored columns."""
    try:
        with open(path, "rb") as fh:
            digest = hashlib.file_digest(fh, "sha256").hexdigest()
    except OSError as exc:
        problem = f"cannot be read ({exc})"
    else:
        if digest != info.sha256:
            problem = "does not match its checksum"
        elif set(pq.read_schema(path).names) != set(STORED_SCHEMA):
            problem = "does not hold the state's columns"
        else:
            return True
    warnings.warn(f"snapshot {path} {problem}; the SQL views fold the log instead", SnapshotWarning, stacklevel=4)
    return False


def _projector(log: EventLog, is_inventory: bool, projector: Projector | None) -> Projector:
    if projector is not None:
        return projector
    fresh = Projector(log)
    if is_inventory:
        for projection in BUILTINS:
            fresh.register(projection)
    return fresh


def _projections(log: EventLog, projector: Projector) -> list[ProjectionPin]:
    """Every registered projection, then every other table on disk, as their views will show them."""
    tables = projector.tables
    on_disk = sorted(p.name for p in tables.root.glob("*") if p.is_dir() and not p.name.startswith("."))
    names = [*projector.registry, *(n for n in on_disk if n not in projector.registry)]
    events = pl.Schema(log.schema.columns())
    out: list[ProjectionPin] = []
    taken = set(BUILT_IN_VIEWS)
    for name in names:
        if name.lower() in taken:  # DuckDB matches names case-insensitively
            warnings.warn(f"projection {name!r} would hide another view of that name; no view for it",
                          ProjectionWarning, stacklevel=5)
            continue
        taken.add(name.lower())
        definition = projector.registry.get(name)
        try:
            table, files = tables.current_files(name)
        except (ProjectionError, StorageError, OSError, ValueError) as exc:
            warnings.warn(f"the table of projection {name!r} is unreadable ({exc}); its view shows no stored rows",
                          ProjectionWarning, stacklevel=5)
            table, files = None, []
        if definition is None and table is None:
            continue
        fingerprint = projector.fingerprint(definition) if definition is not None else None
        columns, stored, ordered = _schemas(definition, files, events)
        out.append(ProjectionPin(name, definition, fingerprint, table, files, columns, stored, ordered))
    return out


def _schemas(definition: AnyProjection | None, files: list[str],
             events: pl.Schema) -> tuple[dict[str, pl.DataType], dict[str, pl.DataType], bool]:
    """The finished and stored columns, and whether stored rows carry their order: from the
    definition when it is declarative, else from the stored files (a function's columns are
    known once it ran), else none. Remembered: a definition's or a file's columns never change."""
    if isinstance(definition, Projection):
        key: tuple[Any, ...] = (definition.fingerprint(), repr(definition.having), tuple(events.items()))
    elif files:
        key = (files[0],)
    else:
        return {}, {}, False
    with _HISTORY_LOCK:
        known = _SCHEMAS.get(key)
    if known is not None:
        return dict(known[0]), dict(known[1]), known[2]
    if isinstance(definition, Projection):
        stored = stored_schema(definition, events)
        finished = finish_lazy(definition, pl.LazyFrame(schema=stored)).collect_schema()
        found = (dict(finished), dict(stored), False)
    else:
        schema = pl.Schema(pl.read_parquet_schema(files[0]))
        found = ({c: t for c, t in schema.items() if not c.startswith(HIDDEN)}, {}, ROW in schema)
    with _HISTORY_LOCK:
        if len(_SCHEMAS) >= 512:
            _SCHEMAS.clear()
        _SCHEMAS[key] = found
    return dict(found[0]), dict(found[1]), found[2]
