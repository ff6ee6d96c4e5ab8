"""The data files of one append, written and synced by us before Delta commits them.

``write_deltalake`` writes the data files and the commit in one call and syncs neither: after
a power loss the commit could survive while a data file it adds did not. Here every file is
written under a staged name (``<name>#1``, the name deltalake's own writer stages under, so
vacuum finds what a killed writer left), fsynced, renamed into place, and its folder synced;
only then does the caller commit the add actions. Files are written by a small thread pool
(pyarrow releases the GIL) while the caller hashes the same rows, and each file's Delta
statistics come from the Parquet footer just written: no second pass over the data.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import time
import uuid
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
from deltalake.transaction import AddAction

from eventlog.core.schema import PARTITION_COLUMN
from eventlog.store.atomic import fsync_folder
from eventlog.store.base import Rows

#: A partition's rows go to files of at most this many rows (a file is one row group of pyarrow's default size).
ROWS_PER_FILE = 1 << 20
#: Delta readers expect statistics for the first 32 columns only (``delta.dataSkippingNumIndexedCols``).
_STATS_COLUMNS = 32
_WORKERS = min(4, os.cpu_count() or 1)
_POOL: ThreadPoolExecutor | None = None


def _pool() -> ThreadPoolExecutor:
    global _POOL  # one pool per process: threads are started once, not per append
    if _POOL is None:
        _POOL = ThreadPoolExecutor(_WORKERS, thread_name_prefix="eventlog-write")
    return _POOL


@dataclass(frozen=True)
class Written:
    """A data file in place and synced, not yet committed."""

    action: AddAction
    path: Path
    rows: int
    min_seq: int | None
    max_seq: int | None
    max_recorded_at: dt.datetime | None
    partition: dict[str, str]  # its partition values (none for a table without partitions)
    new_folder: bool  # its partition folder was made for it: the table folder gained an entry


class DataFiles:
    """Write the files of one commit; ``wait`` returns them synced, or raises after removing them all."""

    def __init__(self, root: Path, data: Rows) -> None:
        self._root = root
        self._futures: list[Future[Written]] = []
        days = pl.Series(PARTITION_COLUMN, data.column(PARTITION_COLUMN)).to_frame().with_row_index("__row")
        groups = days.group_by(PARTITION_COLUMN, maintain_order=True).agg(
            pl.col("__row").first().alias("first"), pl.col("__row").last().alias("last"), pl.len().alias("n"))
        scattered = groups.filter(pl.col("last") - pl.col("first") + 1 != pl.col("n")).get_column(PARTITION_COLUMN)
        rows_of: dict[dt.date, pa.Array] = {}
        if scattered.len():  # the rows of each day spread over the batch: their indices, in one pass
            spread = days.filter(pl.col(PARTITION_COLUMN).is_in(scattered.implode()))
            for key, part in spread.partition_by(PARTITION_COLUMN, as_dict=True, maintain_order=True).items():
                rows_of[key[0]] = part.get_column("__row").to_arrow()
        for day, first, _last, n in groups.iter_rows():
            for start in range(0, n, ROWS_PER_FILE):
                stop = min(start + ROWS_PER_FILE, n)
                piece: Callable[[], pa.Table]
                # Built in the worker: only the files being written have their rows in memory.
                if day not in rows_of:
                    piece = partial(data.slice, first + start, stop - start)
                else:
                    piece = partial(data.take, rows_of[day].slice(start, stop - start))
                self._futures.append(_pool().submit(place_file, root, {PARTITION_COLUMN: day.isoformat()},
                                                    partial(_write_table, piece)))

    @classmethod
    def of(cls, root: Path, writes: list[tuple[dict[str, str], Callable[[Path], None]]], *,
           data_change: bool) -> DataFiles:
        """The files that ``writes`` make, one per (partition values, write): each write fills the staged
        path it is given, in the folder of those partition values."""
        files = cls.__new__(cls)
        files._root = root
        files._futures = [_pool().submit(place_file, root, partition, write, data_change=data_change)
                          for partition, write in writes]
        return files

    def wait(self) -> list[Written]:
        """Every file written, synced and renamed; their folders (and the table's, for new ones) synced."""
        written, error = [], None
        for future in self._futures:
            try:
                written.append(future.result())
            except Exception as exc:  # re-raised below, once every other file is in and can be removed
                error = error or exc
        if error is None:
            try:
                # every partition folder, and the table's when a partition folder is new (an entry of it), side by side
                folders = sorted({w.path.parent for w in written} | ({self._root} if any(w.new_folder for w in written)
                                                                     else set()))
                for done in [_pool().submit(_fsync_folder, folder) for folder in folders]:
                    done.result()
                return written
            except OSError as exc:
                error = exc
        remove(w.path for w in written)
        raise error

    def cancel(self) -> None:
        """Wait for the writes in flight and remove every file (the commit will not happen)."""
        for future in self._futures:
            try:
                remove([future.result().path])
            except Exception:  # noqa: BLE001 (that file was not written: nothing to remove)
                pass


def remove(paths: Any) -> None:
    """Remove files never committed; what cannot be removed is an orphan vacuum takes later."""
    for path in paths:
        try:
            path.unlink(missing_ok=True)
        except OSError:
            pass


def _write_table(piece: Callable[[], pa.Table], staged: Path) -> None:
    table = piece()
    if PARTITION_COLUMN in table.column_names:  # kept in the folder's name, not in the file
        table = table.drop_columns([PARTITION_COLUMN])
    pq.write_table(
        table, staged, compression="zstd", compression_level=1,
        # random ids gain nothing from a dictionary; zstd level 1: appends are write-bound
        use_dictionary=dictionary_columns(table.column_names),
    )


def dictionary_columns(names: list[str]) -> list[str]:
    """The columns written with a dictionary: all but ``event_id`` (random ids gain nothing from one)."""
    return [c for c in names if c != "event_id"]


def place_file(root: Path, partition: dict[str, str], write: Callable[[Path], None], *,
               data_change: bool = True) -> Written:
    """One data file of the ``partition`` values' folder: ``write`` fills a staged name, which is fsynced
    and renamed into place; its add action carries the statistics of the footer just written."""
    relative = "/".join(f"{column}={value}" for column, value in partition.items())
    folder = root / relative if relative else root
    new_folder = not folder.is_dir()
    folder.mkdir(exist_ok=True)
    name = f"part-00000-{uuid.uuid4()}-c000.zstd.parquet"
    final = folder / name
    staged = folder / f"{name}#1"
    try:
        write(staged)
        meta = pq.read_metadata(staged)  # the footer just written, from the page cache
        fd = os.open(staged, os.O_RDONLY)
        try:
            _fsync(fd)
        finally:
            os.close(fd)
        os.replace(staged, final)
    except BaseException:
        remove([staged, final])
        raise
    size = final.stat().st_size
    stats = _stats(meta, meta.num_rows)
    action = AddAction(
        path=f"{relative}/{name}" if relative else name, size=size, partition_values=dict(partition),
        modification_time=int(time.time() * 1000), data_change=data_change,
        # raw UTF-8, as deltalake writes it: it misreads the \\u escapes of a character beyond U+FFFF
        stats=json.dumps(stats, separators=(",", ":"), ensure_ascii=False))
    return Written(action, final, meta.num_rows, stats["minValues"].get("seq"), stats["maxValues"].get("seq"),
                   _max_recorded(meta), dict(partition), new_folder)


def _fsync_folder(folder: Path) -> None:
    fsync_folder(folder)


def _fsync(fd: int) -> None:
    """The one sync of a data file's content (``benchmarks/durability.py`` measures without it)."""
    os.fsync(fd)


def _stats(meta: pq.FileMetaData, rows: int) -> dict[str, Any]:
    """Delta's per-file statistics (numRecords, minValues, maxValues, nullCount) from the Parquet footer.

    A column whose values some row group has no min/max for (a value longer than Parquet keeps
    statistics for) gets none: readers then never skip the file by it.
    """
    low: dict[str, Any] = {}
    high: dict[str, Any] = {}
    nulls: dict[str, int] = {}
    schema = meta.schema.to_arrow_schema()
    for j in range(min(meta.num_columns, _STATS_COLUMNS)):
        name = meta.schema.column(j).path
        if name not in schema.names:
            continue  # a leaf of a nested column (a projection's list): Delta keeps no statistics for it
        kind = schema.field(name).type
        lo = hi = None
        complete, count = True, 0
        for g in range(meta.num_row_groups):
            st = meta.row_group(g).column(j).statistics
            if st is None:
                complete = False
                break
            count += st.null_count or 0
            if st.has_min_max:
                lo = st.min if lo is None else min(lo, st.min)
                hi = st.max if hi is None else max(hi, st.max)
            elif st.null_count != meta.row_group(g).num_rows:
                complete = False
        if not complete:
            continue
        nulls[name] = count
        if lo is None or pa.types.is_boolean(kind):
            continue
        low[name], high[name] = _json_value(lo, kind, up=False), _json_value(hi, kind, up=True)
    return {"numRecords": rows, "minValues": low, "maxValues": high, "nullCount": nulls}


def _json_value(value: Any, kind: pa.DataType, *, up: bool) -> Any:
    """A statistic as Delta spells it: timestamps in UTC to the millisecond (a max rounded up, so
    that no reader skips a file whose values lie within that millisecond), dates as ISO dates."""
    if isinstance(value, dt.datetime):
        naive = value.tzinfo is None  # a timestamp without time zone (a projection's): as stored, no "Z"
        value = value if naive else value.astimezone(dt.timezone.utc)
        ms = value.replace(microsecond=value.microsecond // 1000 * 1000)
        if up and ms != value:
            ms += dt.timedelta(milliseconds=1)
        return ms.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms.microsecond // 1000:03d}" + ("" if naive else "Z")
    if isinstance(value, dt.date):
        return value.isoformat()
    return value


def _max_recorded(meta: pq.FileMetaData) -> dt.datetime | None:
    for j in range(meta.num_columns):
        if meta.schema.column(j).path == "recorded_at":
            values = [meta.row_group(g).column(j).statistics for g in range(meta.num_row_groups)]
            if all(st is not None and st.has_min_max for st in values):
                return max(st.max for st in values)
    return None
