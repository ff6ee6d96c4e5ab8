"""Everything that knows the events table is Delta Lake lives here.

The rest of the package speaks of "append a batch", "scan the log", "head seq":
this module maps those to deltalake calls and converts its errors where they enter.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import polars as pl
import pyarrow as pa
from deltalake import (
    ColumnProperties,
    CommitProperties,
    DeltaTable,
    PostCommitHookProperties,
    Schema,
    Transaction,
    WriterProperties,
)
from deltalake.exceptions import CommitFailedError, DeltaError
from deltalake.transaction import AddAction, RemoveAction

from eventlog.core.schema import PARTITION_COLUMN
from eventlog.errors import CommitError, EventLogError, StorageError, StorePathError
from eventlog.store.atomic import fsync_file, fsync_folder
from eventlog.store.base import FILE_COLUMNS, FILES_PER_DAY, META_PREFIX, MIN_FILES, CommitFileProblem, FileCover, Rows
from eventlog.store.damage import check_store_path, storage_error
from eventlog.store import compaction
from eventlog.store.datafiles import DataFiles, Written, remove
from eventlog.store.paths import first_outside, outside

_CONFIGURATION = {
    # Checkpoints keep open and append fast after thousands of commits.
    "delta.checkpointInterval": "100",
    # Time travel to old versions keeps working this long after compaction (see vacuum).
    "delta.deletedFileRetentionDuration": "interval 7 days",
    "delta.logRetentionDuration": "interval 30 days",
}
# zstd level 1: appends are write-bound, and level 3 bought ~10% smaller files for ~30%
# more time. Random ids gain nothing from a dictionary.
_WRITER = WriterProperties(
    compression="ZSTD",
    compression_level=1,
    column_properties={"event_id": ColumnProperties(dictionary_enabled=False)},
)
_HOOKS = PostCommitHookProperties(create_checkpoint=True, cleanup_expired_logs=False)
# A file deltalake is still writing (or a killed writer left): "<name>#<n>".
_STAGED = re.compile(r"#\d+$")
_ANSI = re.compile(r"\x1b\[[0-9;]*m")

#: Where files() takes each neutral column from in deltalake's flattened add actions.
_STATS = {
    "path": "path",
    "size_bytes": "size_bytes",
    "rows": "num_records",
    "min_seq": "min.seq",
    "max_seq": "max.seq",
    "max_recorded_at": "max.recorded_at",
    "day": f"partition.{PARTITION_COLUMN}",
}
_LOG = "_delta_log"
#: A seq beyond any log: "no upper cut".
_NO_CUT = 2**62
#: An append's commit metadata, or a function that computes it while the data files are written.
Metadata = dict[str, str] | Callable[[], dict[str, str]]


def table_exists(path: Path) -> bool:
    """Whether ``path`` holds a Delta table (its commit log), for create to finish a half-made store."""
    return (path / _LOG).exists()


def arrow_schema(columns: dict[str, pl.DataType]) -> pa.Schema:
    """The stored schema: the given columns plus the date partition column."""
    frame = pl.DataFrame(schema={**columns, PARTITION_COLUMN: pl.Date()})
    return frame.to_arrow().schema


class DeltaEvents:
    """The events table at ``path``, kept at the latest version this process has seen."""

    def __init__(self, path: Path) -> None:
        check_store_path(path.parent)
        _refuse_symlink(path)
        self.path = path
        self._files: tuple[int, pl.DataFrame] | None = None
        self._columns: tuple[int, dict[str, pl.DataType]] | None = None
        self._inside: set[str] = set()  # data files (and their folders) found to be inside the table
        self.appended_bytes = 0  # the data files of this object's last append
        with self._reading("opening"):
            self._table = DeltaTable(str(path))
        if unquote(self._table.table_uri.removeprefix("file://")).rstrip("/") != str(path):
            # A character no probe found: refuse rather than read or write another folder.
            raise StorePathError(
                f"deltalake opened {path} as {self._table.table_uri}, another place; rename the store's folders "
                "to letters, digits, spaces and -_. only"
            )

    @classmethod
    def create(cls, path: Path, schema: pa.Schema) -> DeltaEvents:
        """Create the table and open it; the caller removes ``path`` when this raises."""
        check_store_path(path.parent)
        try:
            DeltaTable.create(
                str(path),
                schema,
                partition_by=[PARTITION_COLUMN],
                configuration=_CONFIGURATION,
                commit_properties=CommitProperties(custom_metadata={META_PREFIX + "operation": "create"}),
            )
        except (DeltaError, OSError) as exc:
            raise StorageError(f"creating the events table at {path} failed: {exc}", store=str(path.parent)) from exc
        return cls(path)

    # --- state -------------------------------------------------------------------------

    def refresh(self) -> None:
        """Catch up with commits made by any process (about a millisecond when none)."""
        with self._reading("reading new commits of"):
            self._table.update_incremental()

    @property
    def version(self) -> int:
        return self._table.version()

    def files(self) -> pl.DataFrame:
        """One row per live data file: ``FILE_COLUMNS`` taken from the Delta statistics.

        Cached per version: a version's file set never changes, and reads, appends and
        head() all start from it. Statistics are optional in Delta: a file written without
        them has null bounds, and so does every file of a table none has statistics for.
        Every path handed out was checked to lie inside the table.
        """
        files = self._listed()
        self._check_inside(files.get_column("path").to_list())
        return files

    def _listed(self) -> pl.DataFrame:
        """``files()`` before the inside check: for the statistics alone (no file is read through
        it), so a warm read checks only the tail files it reads, not every folder of the table."""
        version = self.version
        if self._files is None or self._files[0] != version:
            with self._reading("listing the data files of"):
                actions = pl.DataFrame(self._table.get_add_actions(flatten=True))  # pa.table() of it imports pandas (~0.5 s)
            self._files = (version, self._neutral(actions))
        return self._files[1]

    def _check_inside(self, paths: list[str]) -> None:
        """Refuse a table whose log names a data file outside it (``..``, absolute, a symlink leading out).

        Such a file is not ignored: the events in it would silently go missing from every
        answer. Checked once per file name and object; links are found by listing each folder
        once (``scandir`` reports an entry's type without a stat per file).
        """
        new = [r for r in paths if r not in self._inside]
        if not new:
            return
        found = first_outside(self.path, new)
        if found is not None:
            relative, why = found
            raise StorageError(
                f"the Delta log of {self.path} names the data file {relative!r}, and {why}: eventlog reads no file "
                "outside the store. The store is damaged or was tampered with: restore it from a backup, then run "
                "`eventlog verify`", store=str(self.path.parent), file=str(self.path / relative))
        self._inside.update(new)

    def _neutral(self, actions: pl.DataFrame) -> pl.DataFrame:
        schema = self.columns()
        types = {"path": pl.String(), "size_bytes": pl.Int64(), "rows": pl.Int64(), "min_seq": pl.Int64(),
                 "max_seq": pl.Int64(), "max_recorded_at": schema["recorded_at"], "day": schema[PARTITION_COLUMN]}
        return actions.select(
            (pl.col(_STATS[name]) if _STATS[name] in actions.columns else pl.lit(None)).cast(types[name]).alias(name)
            for name in FILE_COLUMNS
        )

    def files_covering(self, *, after: int, cut: int, day_max: dt.date | None = None) -> FileCover:
        """The live files that can hold events with after < seq <= cut (and day <= day_max).

        A file without statistics may hold any seq: it is chosen, and not known to be inside.
        """
        if cut <= after:
            return FileCover([], True)
        chosen = self._covering(after, cut, day_max)
        if chosen.height == 0:
            return FileCover([], True)
        inside = chosen.select(((pl.col("min_seq") > after) & (pl.col("max_seq") <= cut)).fill_null(False).all()).item()
        root = str(self.path)
        return FileCover([f"{root}/{p}" for p in chosen.get_column("path").to_list()], bool(inside))

    def _covering(self, after: int, cut: int, day_max: dt.date | None = None) -> pl.DataFrame:
        """The rows of ``files()`` that can hold events with after < seq <= cut (and day <= day_max),
        each checked to lie inside the table."""
        keep = (pl.col("max_seq") > after) & (pl.col("min_seq") <= cut)
        if day_max is not None:
            keep &= pl.col("day") <= day_max
        chosen = self._listed().filter(keep.fill_null(True))
        self._check_inside(chosen.get_column("path").to_list())
        return chosen

    def add_actions(self) -> pa.Table:
        """The live files' add actions with their statistics (path, size_bytes, modification_time,
        num_records, null_count, min, max, partition), for a branch built over the same files.

        Every path was checked to lie inside the table (``files()``) before it is handed out.
        """
        self.files()
        with self._reading("listing the data files of"):
            return pa.RecordBatchReader.from_stream(self._table.get_add_actions(flatten=False)).read_all()

    def table_schema(self) -> Schema:
        """The table's Delta schema, for a branch made with the same columns."""
        return self._table.schema()

    def configuration(self) -> dict[str, str]:
        """The table's Delta configuration (checkpoint interval, retention), for a branch made alike."""
        with self._reading("reading the metadata of"):
            return {k: v for k, v in self._table.metadata().configuration.items() if v is not None}

    def table_id(self) -> str:
        """The id Delta gave the table at creation (a table re-created at the same path gets another)."""
        with self._reading("reading the metadata of"):
            return str(self._table.metadata().id)

    def check_commit_files(self) -> CommitFileProblem | None:
        """Every commit file left in the Delta log holds its commit information.

        deltalake reads an emptied commit file as a commit with no actions: the events it added
        vanish from the table and from the chain without a gap if it was the last one. Our
        every commit writes a commitInfo action, so its absence is the trace.
        """
        for path in sorted((self.path / _LOG).glob("*.json")):
            if not path.stem.isdigit():
                continue
            with path.open("rb") as fh:
                text = fh.read()
            if b'"commitInfo"' not in text:
                what = "is empty" if not text else "holds no commit information"
                return CommitFileProblem(int(path.stem), what, f"{_LOG}/{path.name}")
        return None

    def columns(self) -> dict[str, pl.DataType]:
        """The table's columns in stored order, partition column included (cached per version)."""
        version = self.version
        if self._columns is None or self._columns[0] != version:
            # Schema.empty_table() imports pandas (0.5-2.5 s in a new process); an empty Table from no batches does not.
            empty = pl.DataFrame(pa.Table.from_batches([], schema=pa.schema(self._table.schema().to_arrow())))
            self._columns = (version, dict(empty.schema))
        return self._columns[1]

    def file_uris(self) -> list[str]:
        """Live data files as local paths.

        deltalake percent-encodes the table root in ``file_uris()`` (``my store`` becomes
        ``my%20store``) and readers take that text literally, so the root is decoded here.
        """
        with self._reading("listing the data files of"):
            uris = self._table.file_uris()
        encoded = self._encoded_root()
        if encoded is not None:
            root = unquote(encoded)
            uris = [root + uri.removeprefix(encoded) for uri in uris]
        prefix = str(self.path) + "/"
        self._check_inside([u.removeprefix(prefix) if u.startswith(prefix) else u for u in uris])
        return uris

    def _encoded_root(self) -> str | None:
        """The table root as ``file_uris()`` spells it, when that differs from the real path."""
        root = self._table.table_uri.removeprefix("file://")
        root = root if root.endswith("/") else root + "/"
        return root if unquote(root) != root else None

    def head_and_last_recorded(self) -> tuple[int, dt.datetime | None]:
        """Last seq and last recorded_at, from file statistics: no data is read."""
        files = self._listed()
        if files.height == 0:
            return 0, None
        if files["max_seq"].null_count() or files["max_recorded_at"].null_count():
            row = self.scan().select(pl.col("seq").max(), pl.col("recorded_at").max()).collect()
            return int(row["seq"][0] or 0), row["recorded_at"][0]
        return int(files["max_seq"].max()), files["max_recorded_at"].max()  # type: ignore[arg-type,return-value]

    def transaction_version(self, app_id: str) -> int | None:
        with self._reading("reading the idempotency keys of"):
            return self._table.transaction_version(app_id)

    def history(self, limit: int | None = None) -> list[dict[str, Any]]:
        with self._reading("reading the commit history of"):
            return self._table.history(limit)

    @contextmanager
    def _reading(self, doing: str) -> Iterator[None]:
        """Turn deltalake's read errors into a StorageError that names the damaged file."""
        try:
            yield
        except EventLogError:
            raise
        except (DeltaError, OSError) as exc:  # TableNotFoundError is a DeltaError
            raise storage_error(doing, self.path, exc) from exc

    # --- reads -------------------------------------------------------------------------

    def scan(self, *, after: int = 0, cut: int | None = None) -> pl.LazyFrame:
        """The whole table as of this object's version. Callers cut it by seq for isolation.

        With ``after``/``cut``: exactly the events with after < seq <= cut, read from the files
        whose statistics say they can hold some, with no seq predicate when they all lie inside
        the range (the seq column is then not read at all; a cold fold at 10M took 1.07 s this
        way against 1.50 s through ``pl.scan_delta``).
        """
        hive_root = "=" in str(self.path)
        if after == 0 and cut is None and self._encoded_root() is None and not hive_root:
            self.files()  # every file is read: each checked to lie inside the table first
            return pl.scan_delta(self._table)
        # pl.scan_delta reads the encoded file_uris() and finds no files under a root with
        # a space or non-ASCII letters in it; this scan skips files by Parquet footers only.
        schema = self.columns()
        high = _NO_CUT if cut is None else cut
        chosen = self._covering(after, high)
        if chosen.height == 0:
            return pl.LazyFrame(schema=schema)
        if hive_root:
            lf = self._scan_by_partition(schema, chosen)
        else:
            hive = {PARTITION_COLUMN: schema[PARTITION_COLUMN]}
            # Files written before a column was added (schema evolution) lack it: read it as null.
            stored = {c: t for c, t in schema.items() if c != PARTITION_COLUMN}
            root = str(self.path)
            lf = pl.scan_parquet(
                [f"{root}/{p}" for p in chosen.get_column("path").to_list()], hive_partitioning=True,
                hive_schema=hive, schema=stored, missing_columns="insert", glob=False,
            ).select(list(schema))
        inside = chosen.select(((pl.col("min_seq") > after) & (pl.col("max_seq") <= high)).fill_null(False).all()).item()
        return lf if inside else lf.filter((pl.col("seq") > after) & (pl.col("seq") <= high))

    def _scan_by_partition(self, schema: dict[str, pl.DataType], chosen: pl.DataFrame) -> pl.LazyFrame:
        """One scan per partition value, for a root with "=" in it (``/data/run=3/store``).

        Polars reads every "key=value" folder of a path as a hive column, the root's too, and
        refuses keys it was not told of; the partition value comes from the Delta log instead.
        """
        stored = {c: t for c, t in schema.items() if c != PARTITION_COLUMN}
        by_day = chosen.group_by("day").agg("path").sort("day")
        root = str(self.path)
        return pl.concat(
            pl.scan_parquet([f"{root}/{p}" for p in paths], hive_partitioning=False, glob=False, schema=stored,
                            missing_columns="insert")
            .with_columns(pl.lit(day, dtype=schema[PARTITION_COLUMN]).alias(PARTITION_COLUMN))
            .select(list(schema))
            for day, paths in by_day.iter_rows()
        )

    # --- writes (callers hold the writer lock) -----------------------------------------

    def append(self, data: Rows, *, metadata: Metadata, transactions: dict[str, int]) -> int:
        """Write ``data``'s files, sync them, then commit them with ``metadata`` (computed while they are written).

        The order is what survives a power loss: data files and their folders are synced before the
        commit file exists, and the commit file and the log folder before this returns.
        """
        given = dict(pl.DataFrame(pa.Table.from_batches([], schema=data.schema)).schema)
        if given != self.columns():
            raise CommitError(f"the batch's columns {given} are not the table's {self.columns()}; nothing was committed")
        files = DataFiles(self.path, data)
        try:
            custom = {META_PREFIX + k: v for k, v in (metadata() if callable(metadata) else metadata).items()}
        except BaseException:
            files.cancel()
            raise
        try:
            written = files.wait()
        except (OSError, pa.ArrowException) as exc:
            raise CommitError(f"writing to {self.path} failed: {exc}; nothing was committed") from exc
        props = CommitProperties(
            custom_metadata=custom,
            app_transactions=[Transaction(app_id, version) for app_id, version in transactions.items()],
            max_commit_retries=25,
        )
        before = self.version
        try:
            self._table.create_write_transaction(
                [w.action for w in written], "append", schema=self._table.schema(), partition_by=[PARTITION_COLUMN],
                commit_properties=props, post_commithook_properties=_HOOKS)
        except CommitFailedError as exc:
            remove(w.path for w in written)
            raise CommitError(f"the commit to {self.path} was refused ({exc}); nothing was written, retry") from exc
        except (DeltaError, OSError) as exc:
            # The post-commit hook (the checkpoint) runs after the commit and its failure is
            # raised too: reporting that batch as not written would make the caller append it twice.
            landed = self._committed_since(before, custom, exc)
            if landed is None:
                remove(w.path for w in written)
                raise CommitError(f"writing to {self.path} failed: {exc}; nothing was committed") from exc
            self._make_durable(landed, landed, committed=True, data=False)
            return landed
        self.refresh()
        version = self.version
        self._make_durable(before + 1, version, committed=True, data=False)
        self._extend_files(before, version, [w.action for w in written])
        self.appended_bytes = sum(w.action.size for w in written)
        return version

    def _extend_files(self, before: int, version: int, added: list[AddAction], *,
                      removed: set[str] | frozenset[str] = frozenset()) -> None:
        """Carry the file list over to our own commit: relisting every file per append would make
        an append's cost grow with the table."""
        if self._files is None or self._files[0] != before or version != before + 1:
            return
        rows = []
        for action in added:
            stats = json.loads(action.stats)
            high = stats["maxValues"].get("recorded_at")
            rows.append({"path": action.path, "size_bytes": action.size, "rows": stats["numRecords"],
                         "min_seq": stats["minValues"].get("seq"), "max_seq": stats["maxValues"].get("seq"),
                         "max_recorded_at": None if high is None else dt.datetime.fromisoformat(high.replace("Z", "+00:00")),
                         "day": dt.date.fromisoformat(action.partition_values[PARTITION_COLUMN] or "")})
        old = self._files[1]
        if removed:
            old = old.filter(~pl.col("path").is_in(list(removed)))
        self._files = (version, pl.concat([old, pl.DataFrame(rows, schema=old.schema)]))
        self._inside.update(a.path for a in added)

    def _make_durable(self, first: int, last: int, *, committed: bool, data: bool = True) -> None:
        """fsync what versions ``first..last`` wrote, before the caller is told they are committed.

        deltalake writes data files, commit files and checkpoints without fsync, and never syncs
        a folder: after a power loss an acknowledged commit could be gone, or its commit could
        survive without its data file. So, per version: every data file it added, the folders
        they are in (and the table folder, which may have gained a partition folder), the
        commit file, its checkpoint and ``_last_checkpoint`` when the commit made one, and the
        log folder. A failure here comes after the commit: readers see it, but it may not
        survive a power loss, and the error says so.
        """
        log = self.path / _LOG
        files: list[Path] = []
        folders = {self.path, log} if data else {log}
        for version in range(first, last + 1):
            commit = log / f"{version:020d}.json"
            for relative in _added_paths(commit) if data else ():  # an append synced its data files itself
                if outside(self.path, relative) is None:  # never touch what a hostile entry names
                    files.append(self.path / relative)
                    folders.add((self.path / relative).parent)
            files.append(commit)
            files.extend(sorted(p for p in log.glob(f"{version:020d}.checkpoint*.parquet") if p.is_file()))
        if files[-1].name.endswith(".parquet") and (log / "_last_checkpoint").is_file():  # a checkpoint was made
            files.append(log / "_last_checkpoint")
        try:
            for path in files:
                fsync_file(path)
            for folder in sorted(folders, key=lambda f: len(f.parts), reverse=True):  # deepest first
                fsync_folder(folder)
        except OSError as exc:
            state = "is committed and visible" if committed else "changed"
            raise CommitError(
                f"the commit to {self.path} (version {last}) {state}, but syncing it to disk failed ({exc}): it "
                "may not survive a power loss; do not retry it, check the disk"
            ) from exc

    def _committed_since(self, before: int, metadata: dict[str, str], error: Exception) -> int | None:
        """The version of a commit after ``before`` that carries exactly ``metadata``, if one landed."""
        try:
            self.refresh()
            entries = self._table.history(self.version - before) if self.version > before else []
        except (DeltaError, OSError) as exc:
            raise CommitError(
                f"writing to {self.path} failed ({error}) and the table could not be read back ({exc}): the batch "
                "may or may not be committed; check head() before retrying, or retry with an idempotency_key"
            ) from error
        for entry in entries:
            if all(entry.get(key) == value for key, value in metadata.items()):
                return int(entry["version"])
        return None

    def add_columns(self, columns: dict[str, pl.DataType], *, metadata: dict[str, str]) -> int:
        """Add nullable columns (one commit); files already written read them as null."""
        fields = Schema.from_arrow(pl.DataFrame(schema=columns).to_arrow().schema).fields
        before = self.version
        try:
            self._table.alter.add_columns(
                fields,
                commit_properties=CommitProperties(custom_metadata={META_PREFIX + k: v for k, v in metadata.items()}),
                post_commithook_properties=_HOOKS,
            )
        except (DeltaError, OSError) as exc:  # a retry is safe: columns already there are not added again
            raise CommitError(f"adding columns {sorted(columns)} to {self.path} failed: {exc}; the schema did not "
                              "change, evolve again") from exc
        self.refresh()
        self._make_durable(before + 1, self.version, committed=True)
        return self.version

    def fragmented(self) -> bool:
        files = self._listed()  # kept current by our own commits: no listing per append
        return files.height > MIN_FILES and files.height > FILES_PER_DAY * files.get_column("day").n_unique()

    def compact(self, *, target_size: int | None = None, budget: int | None = None) -> dict[str, Any]:
        """Merge each day's small files into files of about ``target_size`` bytes, in one commit.

        The merged files are written and synced by us (``compaction``), then committed with the
        remove actions of the files they replace (both ``dataChange: false``), pinned to the
        version read: if another writer committed meanwhile, nothing is committed. Then the
        commit is synced, as an append's. No bin, no commit.
        """
        files = self.files()
        target = target_size or self._target_size()
        bins = compaction.plan(files, target)
        if budget is not None:
            bins = compaction.within(bins, budget)
        if not bins:
            return compaction.metrics(files.height, bins, [])
        stored = {c: t for c, t in self.columns().items() if c != PARTITION_COLUMN}
        schema = arrow_schema(stored).remove(len(stored))  # the partition column lives in the path
        try:
            written = compaction.write(self.path, bins, schema).wait()
        except (OSError, pa.ArrowException) as exc:
            raise CommitError(f"compacting {self.path} failed writing the merged files ({plain(exc)}); nothing was "
                              "committed and the events are unchanged, run it again (with room on the disk)") from exc
        now = int(time.time() * 1000)
        removed = [RemoveAction(path, False, now, size, dict(b.partition))
                   for b in bins for path, size in zip(b.paths, b.sizes, strict=True)]
        actions: list[AddAction | RemoveAction] = [*(w.action for w in written), *removed]
        before = self.version
        props = CommitProperties(custom_metadata={META_PREFIX + "operation": "compact"}, max_commit_retries=0)
        try:
            self._table.create_write_transaction(
                actions, "append", schema=self._table.schema(), partition_by=[PARTITION_COLUMN],
                commit_properties=props, post_commithook_properties=_HOOKS)
        except CommitFailedError as exc:
            remove(w.path for w in written)
            raise CommitError(f"compacting {self.path} was refused ({plain(exc)}): another writer committed since it "
                              "read the table; nothing was committed, run it again") from exc
        except (DeltaError, OSError) as exc:
            # The checkpoint hook runs after the commit: remove the files only when they are surely not committed.
            if self._compaction_landed(written):
                self._make_durable(before + 1, before + 1, committed=True, data=False)
                raise _maintenance_error("compacting", self.path, exc) from exc
            remove(w.path for w in written)
            raise CommitError(f"compacting {self.path} failed committing the merged files ({plain(exc)}); nothing "
                              "was committed and the events are unchanged, run it again") from exc
        self.refresh()
        version = self.version
        self._make_durable(before + 1, version, committed=True, data=False)
        self._extend_files(before, version, [w.action for w in written], removed={r.path for r in removed})
        return compaction.metrics(files.height, bins, written)

    def _target_size(self) -> int:
        with self._reading("reading the metadata of"):
            configured = self._table.metadata().configuration.get("delta.targetFileSize")
        return int(configured) if configured and configured.isdigit() else compaction.TARGET_SIZE

    def _compaction_landed(self, written: list[Written]) -> bool:
        """Whether a compaction whose commit raised is in the table (its first file is live); True if unknown."""
        try:
            self.refresh()
            return written[0].action.path in set(self.files().get_column("path").to_list())
        except EventLogError:
            return True  # keep the files: vacuum takes them if they are orphans

    def vacuum(self, *, retention_hours: float, dry_run: bool) -> list[str]:
        hours = math.ceil(retention_hours)  # deltalake takes whole hours: never keep less
        before = self.version
        try:
            removed = self._table.vacuum(
                retention_hours=hours,
                dry_run=dry_run,
                enforce_retention_duration=False,
                full=True,
                commit_properties=CommitProperties(custom_metadata={META_PREFIX + "operation": "vacuum"}),
                post_commithook_properties=_HOOKS,
            )
            self.refresh()
            if self.version > before:
                self._make_durable(before + 1, self.version, committed=True)
        except StorageError:
            raise  # a damaged store: running it again would not help
        except (DeltaError, OSError) as exc:
            raise _maintenance_error("vacuuming", self.path, exc) from exc
        staged = self._staged_leftovers(older_than=time.time() - hours * 3600)
        if not dry_run:
            for name in staged:
                (self.path / name).unlink(missing_ok=True)
        return removed + staged

    def _staged_leftovers(self, *, older_than: float) -> list[str]:
        """Data files a killed writer left half written.

        deltalake writes each data file as ``<name>#<n>`` and renames it when complete; its
        vacuum does not list those names, so they would stay forever. The commit log's own
        staging files are left alone.
        """
        return sorted(
            p.relative_to(self.path).as_posix()
            for p in self.path.rglob("*#*")
            if _STAGED.search(p.name)
            and p.relative_to(self.path).parts[0] != _LOG
            and p.is_file()
            and p.stat().st_mtime <= older_than
        )


def _refuse_symlink(table: Path) -> None:
    """The events folder must be the folder itself: deltalake resolves a symlink to another place."""
    if table.is_symlink():
        target = os.path.realpath(table)
        raise StorePathError(
            f"{table} is a symlink (to {target}); the events table must be a real folder of the store. Replace "
            f"the link by the folder itself (remove the link, then move {target} to {table})")


def _added_paths(commit: Path) -> list[str]:
    """The data files a commit file adds, as paths relative to the table (Delta stores them URL-encoded)."""
    try:
        lines = commit.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return []
    out = []
    for line in lines:
        if '"add"' not in line:
            continue
        try:
            action = json.loads(line).get("add")
        except (json.JSONDecodeError, AttributeError):
            continue
        if isinstance(action, dict) and isinstance(action.get("path"), str):
            out.append(unquote(action["path"]))
    return out


def _maintenance_error(doing: str, path: Path, exc: Exception) -> CommitError:
    """Compaction and vacuum change files, never events: whether or not they committed, a retry is safe."""
    return CommitError(f"{doing} {path} failed ({plain(exc)}); the events are unchanged either way, run it again")


def plain(exc: BaseException) -> str:
    """An error's text on one line: deltalake's are several, indented, with colour codes (``↳``)."""
    text = _ANSI.sub("", str(exc))
    lines = [line.strip().removeprefix("↳").strip() for line in text.splitlines()]
    return ": ".join(line for line in lines if line)
