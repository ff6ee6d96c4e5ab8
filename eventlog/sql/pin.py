"""The pinned version: everything the views of one Delta version need, read once.

The file list, head and commit history of that version, with the snapshots and projections
beside it. The commit history of a version never changes, so it is cached per table.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow.parquet as pq

from eventlog.core.evolution import SchemaHistory
from eventlog.errors import CommitError, ProjectionWarning, SnapshotWarning
from eventlog.log import EventLog
from eventlog.model.state import STATE_VERSION, STORED_SCHEMA, state_fingerprint
from eventlog.store.snapshots import SnapshotInfo, SnapshotStore

#: Views every connection defines; a projection of the same name gets no view.
BUILT_IN_VIEWS = ("events", "inventory", "commits", "snapshots", "projections")
_HISTORY: dict[tuple[str, str], list[dict[str, Any]]] = {}
_HISTORY_LOCK = threading.Lock()


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
    projections: list[dict[str, Any]]  # name, checkpoint, file (absolute), manifest (JSON text)
    inventory: bool
    history: SchemaHistory  # schema versions: old events read through their read rules


def read_pin(log: EventLog, is_inventory: bool) -> Pin:
    """Files, head and commits of one version, with the snapshots and projections beside it."""
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
        projections=_projections(root),
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


def _projections(root: Path) -> list[dict[str, Any]]:
    """Each projection manifest that names a Parquet file inside its own folder."""
    out: list[dict[str, Any]] = []
    taken = set(BUILT_IN_VIEWS)
    for manifest in sorted((root / "projections").glob("*/current.json")):
        folder = manifest.parent
        name = folder.name
        try:
            text = manifest.read_text()
            data = json.loads(text)
            target = (folder / data["file"]).resolve()
            checkpoint = None if data.get("checkpoint") is None else int(data["checkpoint"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            warnings.warn(f"projection manifest {manifest} is unreadable ({exc!r}); no view {name!r}", ProjectionWarning,
                          stacklevel=4)
            continue
        if not target.is_relative_to(folder.resolve()) or not target.is_file():
            warnings.warn(f"projection manifest {manifest} names {target}, not a file in its folder; no view {name!r}",
                          ProjectionWarning, stacklevel=4)
            continue
        if name.lower() in taken:  # DuckDB matches names case-insensitively
            warnings.warn(f"projection {name!r} would hide another view of that name; no view for it", ProjectionWarning,
                          stacklevel=4)
            continue
        taken.add(name.lower())
        out.append({"name": name, "checkpoint": checkpoint, "file": str(target), "manifest": text})
    return out
