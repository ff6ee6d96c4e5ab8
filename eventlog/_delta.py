"""Everything that knows the events table is Delta Lake lives here.

The rest of the package speaks of "append a batch", "scan the log", "head seq":
this module maps those to deltalake calls and converts its errors where they enter.
"""

from __future__ import annotations

import datetime as dt
import math
import re
import time
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
    write_deltalake,
)
from deltalake.exceptions import CommitFailedError, DeltaError, TableNotFoundError

from eventlog.errors import CommitError, StoreNotFoundError
from eventlog.schema import PARTITION_COLUMN

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
META_PREFIX = "eventlog."
# A file deltalake is still writing (or a killed writer left): "<name>#<n>".
_STAGED = re.compile(r"#\d+$")


def arrow_schema(columns: dict[str, pl.DataType]) -> pa.Schema:
    """The stored schema: the given columns plus the date partition column."""
    frame = pl.DataFrame(schema={**columns, PARTITION_COLUMN: pl.Date()})
    return frame.to_arrow().schema


class DeltaEvents:
    """The events table at ``path``, kept at the latest version this process has seen."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._files: tuple[int, pl.DataFrame] | None = None
        self._columns: tuple[int, dict[str, pl.DataType]] | None = None
        try:
            self._table = DeltaTable(str(path))
        except TableNotFoundError:
            raise StoreNotFoundError(f"no events table at {path}") from None

    @classmethod
    def create(cls, path: Path, schema: pa.Schema) -> DeltaEvents:
        DeltaTable.create(
            str(path),
            schema,
            partition_by=[PARTITION_COLUMN],
            configuration=_CONFIGURATION,
            commit_properties=CommitProperties(custom_metadata={META_PREFIX + "operation": "create"}),
        )
        return cls(path)

    # --- state -------------------------------------------------------------------------

    def refresh(self) -> None:
        """Catch up with commits made by any process (about a millisecond when none)."""
        self._table.update_incremental()

    @property
    def version(self) -> int:
        return self._table.version()

    def files(self) -> pl.DataFrame:
        """One row per live data file with its Delta statistics (path, size, rows, min/max...).

        Cached per version: a version's file set never changes, and reads, appends and
        head() all start from it.
        """
        version = self.version
        if self._files is None or self._files[0] != version:
            self._files = (version, pl.DataFrame(pa.table(self._table.get_add_actions(flatten=True))))
        return self._files[1]

    def columns(self) -> dict[str, pl.DataType]:
        """The table's columns in stored order, partition column included (cached per version)."""
        version = self.version
        if self._columns is None or self._columns[0] != version:
            empty = pl.DataFrame(pa.schema(self._table.schema().to_arrow()).empty_table())
            self._columns = (version, dict(empty.schema))
        return self._columns[1]

    def file_uris(self) -> list[str]:
        """Live data files as local paths.

        deltalake percent-encodes the table root in ``file_uris()`` (``my store`` becomes
        ``my%20store``) and readers take that text literally, so the root is decoded here.
        """
        encoded = self._encoded_root()
        if encoded is None:
            return self._table.file_uris()
        root = unquote(encoded)
        return [root + uri.removeprefix(encoded) for uri in self._table.file_uris()]

    def _encoded_root(self) -> str | None:
        """The table root as ``file_uris()`` spells it, when that differs from the real path."""
        root = self._table.table_uri.removeprefix("file://")
        root = root if root.endswith("/") else root + "/"
        return root if unquote(root) != root else None

    def head_and_last_recorded(self) -> tuple[int, dt.datetime | None]:
        """Last seq and last recorded_at, from file statistics: no data is read."""
        files = self.files()
        if files.height == 0:
            return 0, None
        if files["max.seq"].null_count() or files["max.recorded_at"].null_count():
            row = self.scan().select(pl.col("seq").max(), pl.col("recorded_at").max()).collect()
            return int(row["seq"][0] or 0), row["recorded_at"][0]
        return int(files["max.seq"].max()), files["max.recorded_at"].max()  # type: ignore[arg-type,return-value]

    def transaction_version(self, app_id: str) -> int | None:
        return self._table.transaction_version(app_id)

    def history(self, limit: int | None = None) -> list[dict[str, Any]]:
        return self._table.history(limit)

    # --- reads -------------------------------------------------------------------------

    def scan(self) -> pl.LazyFrame:
        """The whole table as of this object's version. Callers cut it by seq for isolation."""
        if self._encoded_root() is None:
            return pl.scan_delta(self._table)
        # pl.scan_delta reads the encoded file_uris() and finds no files under a root with
        # a space or non-ASCII letters in it; this scan skips files by Parquet footers only.
        schema = self.columns()
        files = self.file_uris()
        if not files:
            return pl.LazyFrame(schema=schema)
        hive = {PARTITION_COLUMN: schema[PARTITION_COLUMN]}
        # Files written before a column was added (schema evolution) lack it: read it as null.
        stored = {c: t for c, t in schema.items() if c != PARTITION_COLUMN}
        return pl.scan_parquet(
            files, hive_partitioning=True, hive_schema=hive, schema=stored, missing_columns="insert"
        ).select(list(schema))

    # --- writes (callers hold the writer lock) -----------------------------------------

    def append(self, data: pa.Table, *, metadata: dict[str, str], transactions: dict[str, int]) -> int:
        custom = {META_PREFIX + k: v for k, v in metadata.items()}
        props = CommitProperties(
            custom_metadata=custom,
            app_transactions=[Transaction(app_id, version) for app_id, version in transactions.items()],
            max_commit_retries=25,
        )
        before = self.version
        try:
            write_deltalake(
                self._table,
                data,
                mode="append",
                partition_by=[PARTITION_COLUMN],
                writer_properties=_WRITER,
                commit_properties=props,
                post_commithook_properties=_HOOKS,
            )
        except CommitFailedError as exc:
            raise CommitError(f"the commit to {self.path} was refused ({exc}); nothing was written, retry") from exc
        except (DeltaError, OSError) as exc:
            # The post-commit hook (the checkpoint) runs after the commit and its failure is
            # raised too: reporting that batch as not written would make the caller append it twice.
            landed = self._committed_since(before, custom, exc)
            if landed is None:
                raise CommitError(f"writing to {self.path} failed: {exc}; nothing was committed") from exc
            return landed
        return self.version  # write_deltalake moved self._table to the new version

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
        return self.version

    def compact(self, *, target_size: int | None = None) -> dict[str, Any]:
        try:
            return self._table.optimize.compact(  # it catches self._table up with its own commit
                target_size=target_size,
                writer_properties=_WRITER,
                commit_properties=CommitProperties(custom_metadata={META_PREFIX + "operation": "compact"}),
                post_commithook_properties=_HOOKS,
            )
        except (DeltaError, OSError) as exc:
            raise _maintenance_error("compacting", self.path, exc) from exc

    def vacuum(self, *, retention_hours: float, dry_run: bool) -> list[str]:
        hours = math.ceil(retention_hours)  # deltalake takes whole hours: never keep less
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
            and p.relative_to(self.path).parts[0] != "_delta_log"
            and p.is_file()
            and p.stat().st_mtime <= older_than
        )


def _maintenance_error(doing: str, path: Path, exc: Exception) -> CommitError:
    """Compaction and vacuum change files, never events: whether or not they committed, a retry is safe."""
    return CommitError(f"{doing} {path} failed: {exc}; the events are unchanged either way, run it again")
