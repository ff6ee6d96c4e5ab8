"""Materialised projection tables: one Delta table per projection at ``<store>/projections/<name>``.

Any Delta reader (``polars.scan_delta``, ``deltalake``, Spark, DuckDB through ``eventlog.sql``)
reads a consistent table: every build or update is one Delta commit, and a crash at any
moment leaves the previous version (plus unreferenced files that ``vacuum`` removes). What a
manifest held — the checkpoint seq, the definition's fingerprint, build figures — travels in
the commit's metadata (``eventlog.*`` keys), so the table and its bookkeeping cannot drift.

Updates touch only what changed: a table partitioned by month (``partition_by`` a date key)
has the months from the first affected one on replaced in one commit; any other table has
the rows of the keys a tail touched merged in, copy-on-write. Every commit's files are written
and synced by eventlog (``datafiles``) and committed with their removes in one Delta commit
(deltalake's writer synced nothing and printed Rust panic traces on a full disk). Older versions stay readable
until vacuum: ``read(..., version=n)`` is time travel of the projection itself.

Stores written before this layout hold ``current.json`` plus a Parquet file per build in the
same folder. Readers still read them; the next build by a writer converts the folder (its
first Delta commit is the conversion's commit point; the old files are removed after it).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import re
import shutil
import threading
import time
import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
from deltalake import CommitProperties, DeltaTable, Schema, convert_to_deltalake
from deltalake.exceptions import DeltaError, TableNotFoundError
from deltalake.transaction import AddAction, RemoveAction, create_table_with_add_actions
from filelock import FileLock

from eventlog.errors import EventLogError, ProjectionError, StorageError
from eventlog.store import compaction
from eventlog.store.base import META_PREFIX
from eventlog.store.atomic import fsync_file, fsync_folder
from eventlog.store.datafiles import ROWS_PER_FILE, DataFiles, remove
from eventlog.store.delta import plain
from eventlog.store.paths import first_outside

#: The hidden partition column of month-partitioned tables (the first day of the month).
MONTH = "__month"
#: The hidden row number of tables whose row order is their meaning (a function's output):
#: Delta readers may return a table's files, and a writer its batches, in any order.
ROW = "__row"
_LEGACY = "current.json"
_FIELDS = ("checkpoint", "fingerprint", "built_at", "duration_s", "rows", "mode", "name", "full_build")


@dataclass(frozen=True)
class TableVersion:
    """A projection table as of one build: its Delta version and the build's bookkeeping.

    ``version`` is the Delta version readers pin (later maintenance commits — compaction —
    leave the rows as they are); -1 for a table still in the old layout (``legacy_file``).
    """

    name: str
    version: int
    checkpoint: int
    fingerprint: str
    built_at: str
    duration_s: float
    rows: int
    mode: str
    full_build: bool
    partition_by: str | None = None
    legacy_file: str | None = None


class ProjectionTables:
    """The Delta tables of one store's projections, under ``<store>/projections/``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        # One open table per projection, caught up on each use (about 1 ms when nothing changed):
        # opening a Delta table and reading its history cost ~15 ms each, a dozen times per update.
        self._open: dict[str, DeltaTable] = {}
        self._builds: dict[str, TableVersion] = {}

    def folder(self, name: str) -> Path:
        return self.root / name

    def lock(self, name: str) -> FileLock:
        """One updater at a time per projection (kept beside the tables: a Delta folder holds only Delta's files)."""
        locks = self.root / ".locks"
        locks.mkdir(parents=True, exist_ok=True)
        return FileLock(str(locks / f"{name}.lock"))

    # --- reading -------------------------------------------------------------------------

    def manifest(self, name: str) -> TableVersion | None:
        """The newest build of ``name`` (None before the first one)."""
        folder = self.folder(name)
        if (folder / "_delta_log").is_dir():
            return self._latest(name)
        self._forget(name)  # no table (any more): an open one of before must not be caught up
        if (folder / _LEGACY).exists():
            return self._legacy(name)
        return None

    def read(self, name: str, table: TableVersion, *, from_month: dt.date | None = None) -> pl.DataFrame:
        """The stored rows of that build (with ``from_month``: only the months from that one on)."""
        if table.legacy_file is not None:
            return pl.read_parquet(self.folder(name) / table.legacy_file)
        folder = self.folder(name)
        with _reading(name, folder):
            delta = self._at(name, table.version)
            actions = pl.DataFrame(delta.get_add_actions(flatten=True))
            schema = pl.DataFrame(pa.Table.from_batches([], schema=pa.schema(delta.schema().to_arrow()))).schema
        if from_month is not None and table.partition_by is not None and actions.height:
            actions = actions.filter(pl.col(f"partition.{MONTH}") >= from_month)
        frame = _read_files(name, folder, actions.get_column("path").to_list() if actions.height else [], schema)
        if ROW in frame.columns:
            frame = frame.sort(ROW).drop(ROW)
        return frame.drop(MONTH, strict=False)

    def read_version(self, name: str, version: int) -> tuple[TableVersion, pl.DataFrame]:
        """An older version of the table itself, with the build that made it."""
        table = self._at_version(name, version)
        return table, self.read(name, table)

    def newest_month(self, name: str, table: TableVersion) -> dt.date | None:
        """The latest month partition of a month-partitioned build (None: no rows), from the Delta log alone."""
        if table.legacy_file is not None or table.partition_by is None:
            return None
        with _reading(name, self.folder(name)):
            months = [p[MONTH] for p in self._at(name, table.version).partitions() if p.get(MONTH)]
        return max((dt.date.fromisoformat(m) for m in months), default=None)

    def current_files(self, name: str) -> tuple[TableVersion | None, list[str]]:
        """The newest build of ``name`` and its files, as :meth:`manifest` and :meth:`files` give
        them, remembered in this process per table version (what SQL connections pin).

        A version's build and files never change, so a connection made while the table stays at
        that version needs no Delta read: the newest commit file is found by listing the table's
        log (plus one stat of it), and anything else, or a listing that moved meanwhile, reads anew.
        """
        stamp = _log_stamp(self.folder(name))
        if stamp is not None:
            with _PINNED_LOCK:
                known = _PINNED.get(stamp[0])
            if known is not None and known[0] == stamp:
                return known[1], list(known[2])
        table = self.manifest(name)
        files = self.files(name, table) if table is not None else []
        if stamp is not None and table is not None and _log_stamp(self.folder(name)) == stamp:
            with _PINNED_LOCK:
                if len(_PINNED) >= 256:
                    _PINNED.clear()
                _PINNED[stamp[0]] = (stamp, table, tuple(files))
        return table, files

    def files(self, name: str, table: TableVersion) -> list[str]:
        """The Parquet files of that build (absolute paths), for readers that take a file list (SQL)."""
        if table.legacy_file is not None:
            return [str(self.folder(name) / table.legacy_file)]
        folder = self.folder(name)
        with _reading(name, folder):
            actions = pl.DataFrame(self._at(name, table.version).get_add_actions(flatten=True))
        paths = actions.get_column("path").to_list() if actions.height else []
        return [str(file) for file in _local_files(name, folder, paths)]  # SQL reads them

    # --- writing -------------------------------------------------------------------------

    def write(self, name: str, table: pl.DataFrame, meta: dict[str, Any], *,
              partition_by: str | None = None, ordered: bool = False) -> TableVersion:
        """Replace the whole table (a full build) in one commit; converts an old-layout folder.

        ``ordered``: the row order is kept (a function's output); otherwise readers sort by keys.
        """
        legacy = (self.folder(name) / _LEGACY).exists() and not (self.folder(name) / "_delta_log").is_dir()
        rows = _with_month(table.with_row_index(ROW) if ordered else table, partition_by)
        try:
            self._commit(name, rows, meta | {"rows": table.height}, partition_by=partition_by, overwrite=True)
        except StorageError:
            if not self._damaged(name):
                raise
            # A table whose own log cannot be read is derived data: a full build replaces it whole.
            self._forget(name)
            shutil.rmtree(self.folder(name))
            self._commit(name, rows, meta | {"rows": table.height}, partition_by=partition_by, overwrite=True)
        if legacy:
            self._drop_legacy(name)
        return self._latest(name)

    def write_files(self, name: str, staged: Path, columns: pl.Schema, meta: dict[str, Any], *,
                    partition_by: str | None = None) -> TableVersion:
        """Commit Parquet files another engine wrote as a full build: ``write`` for a table too large
        to pass through this process (Spark's output; ``eventlog.spark.rebuild``).

        ``staged`` is a folder of the store holding only those files (``__month=<first day>/``
        folders when ``partition_by``), with the stored form's ``columns`` (``__month`` not
        among them). Their statistics come from deltalake's conversion of the folder into a
        table; the files are then moved into the table's folder and committed in one commit,
        with the same metadata a local build writes. ``staged`` is removed.
        """
        partitions = [MONTH] if partition_by else []
        schema = Schema.from_arrow(_with_month(pl.DataFrame(schema=columns), partition_by).to_arrow().schema)
        with _writing(name, staged):
            convert_to_deltalake(
                str(staged), partition_strategy="hive" if partitions else None,
                partition_by=Schema.from_arrow(pa.schema([pa.field(MONTH, pa.date32())])) if partitions else None)
            adds = [AddAction(a["path"], a["size"], a["partitionValues"], a["modificationTime"], True, a["stats"])
                    for a in _added(staged)]
        rows = sum(int(json.loads(a.stats).get("numRecords", 0)) for a in adds)
        folder = self.folder(name)
        legacy = (folder / _LEGACY).exists() and not (folder / "_delta_log").is_dir()
        if (folder / "_delta_log").is_dir() and self._damaged(name):
            self._forget(name)  # derived data: a full build replaces a table whose own log is damaged
            shutil.rmtree(folder)
        for add in adds:  # into the table's folder first: a crash leaves files no version references
            target = folder / urllib.parse.unquote(add.path)
            target.parent.mkdir(parents=True, exist_ok=True)
            (staged / urllib.parse.unquote(add.path)).replace(target)
        props = _properties(meta | {"rows": rows})
        with _writing(name, folder):
            if (folder / "_delta_log").is_dir() and self._current(name).metadata().partition_columns == partitions:
                actions: list[AddAction | RemoveAction] = list(adds)
                self._current(name).create_write_transaction(actions, mode="overwrite", schema=schema,
                                                            partition_by=partitions, commit_properties=props)
            else:  # a new table, or a new layout (an overwrite keeps the old partition columns)
                self._forget(name)
                create_table_with_add_actions(str(folder), schema, adds, mode="overwrite", partition_by=partitions,
                                              commit_properties=props)
        shutil.rmtree(staged)
        if legacy:
            self._drop_legacy(name)
        return self._latest(name)

    def replace_from(self, name: str, rows: pl.DataFrame, meta: dict[str, Any], *, partition_by: str,
                     from_month: dt.date, total_rows: int) -> TableVersion:
        """Replace the months from ``from_month`` on with ``rows`` (all rows of those months), in one commit."""
        self._commit(name, _with_month(rows, partition_by), meta | {"rows": total_rows}, partition_by=partition_by,
                     replaced=lambda path, values: values.get(MONTH) is not None
                     and dt.date.fromisoformat(values[MONTH]) >= from_month)
        return self._latest(name)

    def merge_keys(self, name: str, rows: pl.DataFrame, keys: Sequence[str], meta: dict[str, Any], *,
                   total_rows: int) -> TableVersion:
        """Upsert ``rows`` by ``keys`` (null keys match null keys), in one commit.

        Copy-on-write, as Delta's MERGE: the files holding a key of ``rows`` are read, their rows of
        those keys replaced by ``rows``, written anew and committed with their removes.
        """
        if rows.height == 0:
            return self._commit_empty(name, meta | {"rows": total_rows})
        folder = self.folder(name)
        with _writing(name, folder):
            current = self._current(name)
            partitions = list(current.metadata().partition_columns)
            paths = [str(p) for p in pl.DataFrame(current.get_add_actions(flatten=True)).get_column("path")]
        if partitions:
            raise ProjectionError(f"projection {name!r}: merge_keys of a partitioned table ({partitions})")
        touched = rows.select(keys).unique()
        holding: list[str] = []
        kept: list[pl.DataFrame] = []
        try:
            for path, file in zip(paths, _local_files(name, folder, paths), strict=True):
                if pl.read_parquet(file, columns=list(keys)).join(touched, on=list(keys), how="semi",
                                                                  nulls_equal=True).height == 0:
                    continue  # no touched key in it: the file stays
                holding.append(path)
                kept.append(pl.read_parquet(file).join(touched, on=list(keys), how="anti", nulls_equal=True))
        except (OSError, pl.exceptions.PolarsError) as exc:
            raise StorageError(f"reading the table of projection {name!r} at {folder} failed ({plain(exc)}); "
                               "nothing was committed", file=str(folder)) from exc
        gone = set(holding)
        merged = pl.concat([*kept, rows.select(kept[0].columns) if kept else rows], how="vertical_relaxed")
        self._commit(name, merged, meta | {"rows": total_rows}, partition_by=None,
                     replaced=lambda path, values: path in gone)
        return self._latest(name)

    def touch(self, name: str, meta: dict[str, Any]) -> TableVersion:
        """Move the checkpoint without changing a row (one commit that adds no file)."""
        return self._commit_empty(name, meta | {"rows": self._latest(name).rows})

    def compact(self, name: str) -> dict[str, Any]:
        """Merge small files (an update adds a few per commit); every read stays the same.

        As for the events (``store/compaction.py``): the merged files are written and synced by
        eventlog, then committed with the removes of the files they replace, pinned to the version
        read. deltalake's ``optimize`` printed Rust panic traces on stderr on a full disk.
        """
        folder = self.folder(name)
        with _writing(name, folder):
            current = self._current(name)
            partitions = list(current.metadata().partition_columns)
            listed = pl.DataFrame(current.get_add_actions(flatten=True))
            configured = current.metadata().configuration.get("delta.targetFileSize")
        if listed.height:
            _local_files(name, folder, listed.get_column("path").to_list())  # checked: the merge reads them
        target = int(configured) if configured and configured.isdigit() else compaction.TARGET_SIZE
        values = listed.select(pl.col(f"partition.{c}").cast(pl.String) for c in partitions) if partitions else None
        files = [(path, size, dict(zip(partitions, values.row(i), strict=True)) if values is not None else {})
                 for i, (path, size) in enumerate(listed.select("path", "size_bytes").iter_rows())]
        bins = compaction.plan_table(files, target)
        if not bins:
            return compaction.metrics(len(files), bins, [])
        schema = pa.schema(current.schema().to_arrow())
        schema = pa.schema([f for f in schema if f.name not in partitions])
        try:
            written = compaction.write(folder, bins, schema).wait()
        except (OSError, pa.ArrowException) as exc:
            raise StorageError(f"compacting the table of projection {name!r} at {folder} failed writing the merged "
                               f"files ({plain(exc)}); nothing was committed, run it again", file=str(folder)) from exc
        now = int(time.time() * 1000)
        actions: list[AddAction | RemoveAction] = [w.action for w in written]
        actions += [RemoveAction(path, False, now, size, dict(b.partition))
                    for b in bins for path, size in zip(b.paths, b.sizes, strict=True)]
        try:
            current.create_write_transaction(
                actions, "append", schema=current.schema(), partition_by=partitions,
                commit_properties=CommitProperties(custom_metadata={f"{META_PREFIX}operation": "compact"},
                                                   max_commit_retries=0))
        except (DeltaError, OSError) as exc:
            committed = True  # unless the table says otherwise: vacuum takes orphans, a live file must stay
            with contextlib.suppress(DeltaError, OSError):
                current.update_incremental()
                committed = written[0].action.path in set(pl.DataFrame(current.get_add_actions(flatten=True))["path"])
            if not committed:
                remove(w.path for w in written)
            state = "it committed (a later step failed)" if committed else "nothing was committed"
            raise StorageError(f"compacting the table of projection {name!r} at {folder} failed ({plain(exc)}); "
                               f"{state}, its rows are unchanged either way, run it again", file=str(folder)) from exc
        return compaction.metrics(len(files), bins, written)

    def vacuum(self, name: str, *, retention_hours: float, dry_run: bool = False) -> list[str]:
        """Delete files no version younger than ``retention_hours`` needs (the log's policy)."""
        with _writing(name, self.folder(name)):
            return list(self._current(name).vacuum(
                retention_hours=int(retention_hours), dry_run=dry_run, enforce_retention_duration=False))

    # --- internals -----------------------------------------------------------------------

    def _commit(self, name: str, rows: pl.DataFrame, meta: dict[str, Any], *, partition_by: str | None,
                replaced: Any = None, overwrite: bool = False) -> None:
        """One commit of ``rows`` as new files: with ``overwrite`` they replace the whole table (its
        schema and partitioning too), else the files ``replaced(path, partition values)`` selects.

        The files are written and synced by eventlog (``datafiles``: a staged name, fsync, rename,
        folder sync), then committed with the removes in one commit pinned to the version read, and
        the commit file and log folder synced. deltalake's writer synced nothing and printed Rust
        panic traces on stderr on a full disk. A failure before the commit removes the new files.
        """
        folder = self.folder(name)
        folder.mkdir(parents=True, exist_ok=True)
        partitions = [MONTH] if partition_by else []
        arrow = rows.rechunk().to_arrow()
        schema = Schema.from_arrow(arrow.schema)
        with _writing(name, folder):
            exists = (folder / "_delta_log").is_dir()
            if not exists:
                self._forget(name)
            current = self._current(name) if exists else None
            before = current.version() if current is not None else -1
            removes: list[AddAction | RemoveAction] = []
            if current is not None and not overwrite:
                now = int(time.time() * 1000)
                listed = current.get_add_actions(flatten=True)
                paths = listed.column("path").to_pylist()
                sizes = listed.column("size_bytes").to_pylist()
                values = [dict(zip(partitions, (str(v) if v is not None else None
                                                for v in vs), strict=True))
                          for vs in zip(*(listed.column(f"partition.{c}").to_pylist() for c in partitions),
                                        strict=True)] if partitions else [{} for _ in paths]
                removes = [RemoveAction(p, True, now, size, v)
                           for p, size, v in zip(paths, sizes, values, strict=True) if replaced(p, v)]
        try:
            written = DataFiles.of(folder, _pieces(arrow, partitions), data_change=True).wait()
        except (OSError, pa.ArrowException) as exc:
            raise StorageError(f"writing the table of projection {name!r} at {folder} failed writing its files "
                               f"({plain(exc)}); nothing was committed", file=str(folder)) from exc
        props = _properties(meta, retries=0)
        actions: list[AddAction | RemoveAction] = [*(w.action for w in written), *removes]
        same_layout = current is not None and list(current.metadata().partition_columns) == partitions
        try:
            if current is not None and (same_layout or not overwrite):
                commit_actions(current, actions, mode="overwrite" if overwrite else "append",
                               schema=schema if overwrite else current.schema(), partition_by=partitions,
                               properties=props)
            else:  # a new table, or a new layout (an overwrite keeps the old partition columns)
                self._forget(name)
                commit_actions(str(folder), actions, mode="overwrite", schema=schema, partition_by=partitions,
                               properties=props)
        except (DeltaError, OSError) as exc:
            committed = _landed(folder, before, props)
            if not committed:
                remove(w.path for w in written)
            state = "it may have committed (a later step failed)" if committed else "nothing was committed"
            raise StorageError(f"writing the table of projection {name!r} at {folder} failed ({plain(exc)}); "
                               f"{state}", file=str(folder)) from exc
        _make_durable(name, folder, before + 1, new_log=not exists)
        with _reading(name, folder):
            self._committed(name, meta)

    def _damaged(self, name: str) -> bool:
        try:
            DeltaTable(str(self.folder(name))).version()
        except TableNotFoundError:
            return False
        except (DeltaError, OSError, ValueError):
            return True
        return False

    def _commit_empty(self, name: str, meta: dict[str, Any]) -> TableVersion:
        """A commit that moves the checkpoint and changes no row (a tail that touched no group)."""
        with _writing(name, self.folder(name)):
            current = self._current(name)
            before = current.version()
            props = _properties(meta, retries=0)
            try:
                commit_actions(current, [], mode="append", schema=current.schema(),
                               partition_by=list(current.metadata().partition_columns), properties=props)
            except OSError as exc:
                state = "it may have committed" if _landed(self.folder(name), before, props) else "nothing was committed"
                raise StorageError(f"writing the table of projection {name!r} at {self.folder(name)} failed "
                                   f"({plain(exc)}); {state}", file=str(self.folder(name))) from exc
        _make_durable(name, self.folder(name), before + 1, new_log=False)
        with _reading(name, self.folder(name)):
            self._committed(name, meta)
        return self._latest(name)

    def _committed(self, name: str, meta: dict[str, Any]) -> None:
        """Remember the build just committed (its version and metadata are known: no history read).

        Sound because every commit to a projection table is made under its update lock, so the
        newest version after our commit is ours.
        """
        current = self._current(name)
        entry = dict(_properties(meta).custom_metadata or {})
        self._builds[name] = _version(name, current.version(), entry, current.metadata().partition_columns)

    def _latest(self, name: str) -> TableVersion:
        folder = self.folder(name)
        with _reading(name, folder):
            current = self._current(name)
            version = current.version()
            known = self._builds.get(name)
            if known is not None and known.version == version:
                return known
            limit = 4  # the newest build is the newest commit but for maintenance (compact, vacuum)
            while True:
                entries = current.history(limit)
                for entry in entries:
                    if f"{META_PREFIX}checkpoint" in entry:
                        build = _version(name, version, entry, current.metadata().partition_columns)
                        self._builds[name] = build
                        return build
                if len(entries) < limit:
                    break
                limit *= 4
        raise ProjectionError(f"projection {name!r}: the table at {folder} has no build commit; rebuild it")

    def _current(self, name: str) -> DeltaTable:
        """The table at its newest version (one object per projection, caught up on each use)."""
        table = self._open.get(name)
        if table is None:
            table = self._open[name] = DeltaTable(str(self.folder(name)))
        else:
            try:
                table.update_incremental()
            except (DeltaError, OSError):  # replaced under us (a rebuild of a damaged table): open anew
                self._forget(name)
                table = self._open[name] = DeltaTable(str(self.folder(name)))
        return table

    def _at(self, name: str, version: int) -> DeltaTable:
        current = self._current(name)
        return current if current.version() == version else DeltaTable(str(self.folder(name)), version=version)

    def forget(self) -> None:
        """Drop every open table: the next read opens each from disk (verify trusts no cache)."""
        self._open.clear()
        self._builds.clear()

    def _forget(self, name: str) -> None:
        self._open.pop(name, None)
        self._builds.pop(name, None)

    def _at_version(self, name: str, version: int) -> TableVersion:
        folder = self.folder(name)
        if not (folder / "_delta_log").is_dir():
            raise ProjectionError(f"projection {name!r} has no Delta table yet (version {version} asked for)")
        with _reading(name, folder):
            current = DeltaTable(str(folder))
            if not 0 <= version <= current.version():
                raise ProjectionError(f"projection {name!r} has versions 0 to {current.version()}, not {version}")
            for entry in current.history():
                if int(entry["version"]) <= version and f"{META_PREFIX}checkpoint" in entry:
                    columns = DeltaTable(str(folder), version=version).metadata().partition_columns
                    return _version(name, version, entry, columns)
        raise ProjectionError(f"projection {name!r}: no build at or before version {version}")

    def _legacy(self, name: str) -> TableVersion:
        path = self.folder(name) / _LEGACY
        try:
            data = json.loads(path.read_text())
            return TableVersion(name=name, version=-1, checkpoint=int(data["checkpoint"]),
                                fingerprint=str(data["fingerprint"]), built_at=str(data["built_at"]),
                                duration_s=float(data["duration_s"]), rows=int(data["rows"]), mode=str(data["mode"]),
                                full_build=bool(data["full_build"]), legacy_file=_inside(path.parent, data["file"]))
        except FileNotFoundError:
            raise ProjectionError(f"projection {name!r}: {path} vanished while read; read again") from None
        except (ValueError, TypeError, KeyError) as exc:
            raise ProjectionError(f"projection {name!r}: {path} is unreadable ({exc!r}); rebuild it") from exc

    def _drop_legacy(self, name: str) -> None:
        folder = self.folder(name)
        with contextlib.suppress(FileNotFoundError):
            (folder / _LEGACY).unlink()
        for old in folder.glob("t-*.parquet"):
            old.unlink(missing_ok=True)


#: Builds and files per table folder, by the stamp of its Delta log (see ``current_files``).
_PINNED: dict[str, tuple[tuple[str, int, int, int], TableVersion, tuple[str, ...]]] = {}
_PINNED_LOCK = threading.Lock()
_COMMIT_FILE = re.compile(r"\d{20}\.json")


def _log_stamp(folder: Path) -> tuple[str, int, int, int] | None:
    """(folder, newest commit number, its size, its mtime): it changes with every commit (None: no Delta log)."""
    log = folder / "_delta_log"
    try:
        with os.scandir(log) as entries:
            newest = max((e.name for e in entries if _COMMIT_FILE.fullmatch(e.name)), default=None)
        if newest is None:
            return None
        info = os.stat(log / newest)
    except OSError:
        return None
    return str(folder.resolve()), int(newest[:20]), info.st_size, info.st_mtime_ns


def _version(name: str, version: int, entry: dict[str, Any], partitions: list[str]) -> TableVersion:
    meta: dict[str, Any] = {k: entry.get(f"{META_PREFIX}{k}") for k in _FIELDS}  # commit metadata: strings
    return TableVersion(
        name=name, version=version, checkpoint=int(meta["checkpoint"]), fingerprint=str(meta["fingerprint"]),
        built_at=str(meta["built_at"]), duration_s=float(meta["duration_s"] or 0), rows=int(meta["rows"] or 0),
        mode=str(meta["mode"]), full_build=meta["full_build"] == "true",
        partition_by=str(entry.get(f"{META_PREFIX}partition_by")) if MONTH in partitions else None,
    )


def _properties(meta: dict[str, Any], *, retries: int | None = None) -> CommitProperties:
    text = {f"{META_PREFIX}{k}": (str(v).lower() if isinstance(v, bool) else str(v))
            for k, v in meta.items() if v is not None}
    if retries is None:
        return CommitProperties(custom_metadata=text)
    return CommitProperties(custom_metadata=text, max_commit_retries=retries)


def commit_actions(target: DeltaTable | str, actions: list[AddAction | RemoveAction], *, mode: Literal["append", "overwrite"],
                   schema: Schema, partition_by: list[str], properties: CommitProperties) -> None:
    """The one Delta commit of a build or update: into the open table, or a new table at the path ``target``."""
    if isinstance(target, DeltaTable):
        target.create_write_transaction(actions, mode, schema=schema, partition_by=partition_by,
                                        commit_properties=properties)
    else:
        adds = [a for a in actions if isinstance(a, AddAction)]
        create_table_with_add_actions(target, schema, adds, mode=mode, partition_by=partition_by,
                                      commit_properties=properties)


def _pieces(table: pa.Table, partitions: list[str]) -> list[tuple[dict[str, str], Any]]:
    """The files of ``table``: per partition value (the column left out), of at most ``ROWS_PER_FILE`` rows."""
    groups: list[tuple[dict[str, str], pa.Table]] = []
    if partitions:
        frame = pl.DataFrame(pl.from_arrow(table))
        for (month,), part in frame.partition_by(MONTH, as_dict=True, maintain_order=True).items():
            if month is None:
                raise ProjectionError(f"a row has no {MONTH} (its partition key is null); nothing was written")
            groups.append(({MONTH: month.isoformat()}, part.drop(MONTH).to_arrow()))
    else:
        groups.append(({}, table))
    pieces: list[tuple[dict[str, str], Any]] = []
    for values, rows in groups:
        for start in range(0, rows.num_rows, ROWS_PER_FILE):
            pieces.append((values, _writer(rows.slice(start, ROWS_PER_FILE))))
    return pieces


def _writer(rows: pa.Table) -> Any:
    def write(staged: Path) -> None:
        pq.write_table(rows, staged, compression="zstd", compression_level=1)
    return write


def _landed(folder: Path, before: int, props: CommitProperties) -> bool:
    """Whether a commit whose call raised is in the table (a newer version carries its metadata); True if unknown."""
    wanted = props.custom_metadata or {}
    try:
        table = DeltaTable(str(folder))
        if table.version() <= before:
            return False
        return any(all(entry.get(k) == v for k, v in wanted.items()) for entry in table.history(table.version() - before))
    except TableNotFoundError:
        return False
    except (DeltaError, OSError, ValueError):
        return True


def _make_durable(name: str, folder: Path, version: int, *, new_log: bool) -> None:
    """fsync the commit file of ``version`` (its checkpoint, if the commit made one) and the log folder
    (the table folder too for a new log), before the build is reported; the data files synced themselves."""
    log = folder / "_delta_log"
    commit = log / f"{version:020d}.json"
    files = [commit, *sorted(p for p in log.glob(f"{version:020d}.checkpoint*.parquet") if p.is_file())]
    if len(files) > 1 and (log / "_last_checkpoint").is_file():
        files.append(log / "_last_checkpoint")
    try:
        for path in files:
            fsync_file(path)
        fsync_folder(log)
        if new_log:
            fsync_folder(folder)
    except OSError as exc:
        raise StorageError(f"the commit of projection {name!r} at {folder} (version {version}) is committed, but "
                           f"syncing it to disk failed ({exc}): it may not survive a power loss; check the disk",
                           file=str(commit)) from exc


def _with_month(table: pl.DataFrame, partition_by: str | None) -> pl.DataFrame:
    if partition_by is None:
        return table
    return table.with_columns(pl.col(partition_by).dt.truncate("1mo").cast(pl.Date).alias(MONTH))


def month_of(day: dt.date) -> dt.date:
    return day.replace(day=1)


def _added(staged: Path) -> list[dict[str, Any]]:
    """The add actions of the one commit a conversion wrote (path, size, partition values, statistics)."""
    commit = staged / "_delta_log" / f"{0:020d}.json"
    actions = [json.loads(line) for line in commit.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [a["add"] for a in actions if "add" in a]


def _inside(folder: Path, file: object) -> str:
    """A legacy manifest's file name, refused unless it names a file in its own folder."""
    if not isinstance(file, str) or not (folder / file).resolve().is_relative_to(folder.resolve()):
        raise ValueError(f"the file {file!r} is not in {folder}")
    return file


def _local_files(name: str, folder: Path, paths: list[str]) -> list[Path]:
    """A table's data files (``paths`` as its log names them) as local paths, once each is known to
    lead inside its folder: eventlog reads no file outside the store (else a StorageError naming it)."""
    found = first_outside(folder, paths)
    if found is not None:
        raise StorageError(f"the Delta log of projection {name!r} names the data file {found[0]!r}, and {found[1]}: "
                           f"eventlog reads no file outside the store; rebuild it: `eventlog project rebuild {name}`",
                           file=str(folder / found[0]))
    return [folder / urllib.parse.unquote(path) for path in paths]


def _read_files(name: str, folder: Path, paths: list[str], schema: pl.Schema) -> pl.DataFrame:
    """The rows of a table version's data files (paths relative to ``folder``, as its log names them).

    Read by Polars from the local paths: deltalake's ``to_pyarrow_table`` imports pandas (0.5 s
    in a new process, the first read of any projection paid it), and ``polars.scan_delta``
    finds no files under a store path with a space or a non-ASCII letter in it. Partition
    columns live in the folder names, not the files: the one a table has (the month) is not
    read back, and every other column is cast to the table's schema.
    """
    files = [str(file) for file in _local_files(name, folder, paths)]
    stored = {column: dtype for column, dtype in schema.items() if column != MONTH}
    if not files:
        return pl.DataFrame(schema=stored)
    # Delta has no unsigned integers: a row number written as UInt32 is "integer" in the log.
    # Integers are read as Int64 (an upcast from any of them but UInt64) and cast back.
    wide = {c: pl.Int64() if t.is_integer() else t for c, t in stored.items()}
    with _reading(name, folder):
        try:
            frame = pl.scan_parquet(files, schema=pl.Schema(wide), hive_partitioning=False, glob=False,
                                    missing_columns="insert", extra_columns="raise",
                                    cast_options=pl.ScanCastOptions(integer_cast="upcast")).collect()
        except pl.exceptions.PolarsError:
            _name_the_odd_file(name, folder, files, wide)
            raise  # no file is odd: a damaged one, named by _reading's StorageError
    return frame.cast(stored)  # type: ignore[arg-type]


def _name_the_odd_file(name: str, folder: Path, files: list[str], stored: dict[str, pl.DataType]) -> None:
    """After a failed read: the StorageError naming the first file that is not the table's."""
    for file in files:
        try:
            columns = pl.read_parquet_schema(file)
        except (OSError, pl.exceptions.PolarsError) as exc:
            why = f"it cannot be read ({plain(exc)})"
        else:
            unknown = [c for c in columns if c not in stored]
            odd = [c for c, t in columns.items()
                   if c in stored and t != stored[c] and not (t.is_integer() and stored[c].is_integer())]
            if not unknown and not odd:
                continue
            why = (f"it holds the column {unknown[0]!r}, which the table does not have" if unknown
                   else f"its column {odd[0]!r} is {columns[odd[0]]}, not the table's {stored[odd[0]]}")
        raise StorageError(f"the data file {file} of projection {name!r} does not belong to its table: {why}; "
                           f"rebuild it: Inventory.projection({name!r}).rebuild() or `eventlog project rebuild {name}`",
                           file=file)


@contextlib.contextmanager
def _reading(name: str, folder: Path) -> Any:
    try:
        yield
    except TableNotFoundError:
        raise ProjectionError(f"projection {name!r}: no table at {folder}") from None
    except EventLogError:
        raise  # already names what is at fault (a StorageError is an OSError too)
    except (DeltaError, OSError, pa.ArrowException, pl.exceptions.PolarsError) as exc:
        first = next((line for line in str(exc).splitlines() if line.strip()), type(exc).__name__)
        raise StorageError(f"reading the table of projection {name!r} at {folder} failed ({first.strip()}); "
                           f"rebuild it: Inventory.projection({name!r}).rebuild() or `eventlog project rebuild {name}`",
                           file=str(folder)) from exc


@contextlib.contextmanager
def _writing(name: str, folder: Path) -> Any:
    try:
        yield
    except DeltaError as exc:
        first = next((line for line in str(exc).splitlines() if line.strip()), type(exc).__name__)
        raise StorageError(f"writing the table of projection {name!r} at {folder} failed, nothing was committed "
                           f"({first.strip()})", file=str(folder)) from exc
