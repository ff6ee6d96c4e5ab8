"""Compaction of the events table through our own writer: plan the bins, write the merged files.

deltalake's ``optimize.compact`` writes its files with its Rust writer, which syncs nothing and,
on a full disk, prints panic traces (``object_store … Already shut down``) on stderr before it
returns its error. Here the merged files are written like an append's (``datafiles``: a staged
name, fsync, rename, folder sync, statistics from the footer), and ``DeltaEvents.compact`` commits
them with the remove actions of the files they replace, in one commit pinned to the version read.

The plan keeps deltalake's rules: per partition (day), files below the target size are merged,
a bin holds files whose sizes add up to at most the target, and a bin of one file is left alone.
Bins are runs of files *consecutive in seq order*: a file too large to merge ends the run, so the
files of a day keep disjoint seq ranges and a merged file's rows are the concatenation of its
inputs' rows in seq order (each input sorted if it was not). Only files whose ranges overlap
(written so by another tool) are read whole and sorted together. Rows are written in row groups
of ``ROWS_PER_FILE``, one input file in memory at a time.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from eventlog.core.schema import PARTITION_COLUMN
from eventlog.errors import StorageError
from eventlog.store.datafiles import ROWS_PER_FILE, DataFiles, Written, dictionary_columns

#: deltalake's default target file size (``delta.targetFileSize`` overrides it, as for deltalake).
TARGET_SIZE = 100 * 1024 * 1024


@dataclass(frozen=True)
class Bin:
    """Files of one partition merged into one file: their paths (relative to the table), in order."""

    partition: dict[str, str]  # the partition values (none for a table without partitions)
    paths: tuple[str, ...]
    sizes: tuple[int, ...]
    disjoint: bool  # their seq ranges do not overlap: each can be read, sorted and written in turn
    by: str | None = "seq"  # the column the merged rows are in order of (None: as the files hold them)


def plan(files: pl.DataFrame, target: int) -> list[Bin]:
    """The bins of a compaction of the events' ``files`` (``FILE_COLUMNS``) to files of about ``target`` bytes.

    A file without seq statistics is never merged (nothing says where its rows belong), and
    it ends a run like a large file.
    """
    bins: list[Bin] = []
    ordered = files.sort("day", "min_seq", "path", nulls_last=True)
    for (day,), group in ordered.group_by("day", maintain_order=True):
        rows = group.select("path", "size_bytes", "min_seq", "max_seq").iter_rows()
        for run in _runs(((path, size, (low, high)) for path, size, low, high in rows), target,
                         mergeable=lambda r: r[2][0] is not None and r[2][1] is not None):
            disjoint = all(later[2][0] > earlier[2][1] for earlier, later in zip(run, run[1:], strict=False))
            bins.append(Bin({PARTITION_COLUMN: day.isoformat()}, tuple(r[0] for r in run),
                            tuple(r[1] for r in run), disjoint))
    return bins


def within(bins: list[Bin], budget: int) -> list[Bin]:
    """The bins that merge the most files for at most ``budget`` bytes read (at least one bin):
    the write policy's share of a compaction per append (``EventLog._compact_after_append``)."""
    chosen: list[Bin] = []
    spent = 0
    for b in sorted(bins, key=lambda b: (-len(b.paths), sum(b.sizes))):
        if chosen and spent + sum(b.sizes) > budget:
            continue
        chosen.append(b)
        spent += sum(b.sizes)
    return chosen


def plan_table(files: list[tuple[str, int, dict[str, str]]], target: int) -> list[Bin]:
    """The bins of a compaction of another table's files: (path, size, partition values), in log order.

    Their rows keep the files' order (a projection table orders its rows by keys, or by a hidden
    row number): runs of small files of one partition, as for the events.
    """
    by_partition: dict[tuple[tuple[str, str], ...], list[tuple[str, int, None]]] = {}
    for path, size, partition in files:
        by_partition.setdefault(tuple(sorted(partition.items())), []).append((path, size, None))
    return [Bin(dict(key), tuple(r[0] for r in run), tuple(r[1] for r in run), True, by=None)
            for key, group in by_partition.items() for run in _runs(iter(group), target, mergeable=lambda r: True)]


def _runs(files: Iterator[tuple[str, int, Any]], target: int, *, mergeable: Any) -> Iterator[list[Any]]:
    """Runs of consecutive files below ``target`` whose sizes add up to at most it; a run of one is no run."""
    run: list[Any] = []
    total = 0
    for item in files:
        small = item[1] < target and mergeable(item)
        if not small or total + item[1] > target:
            if len(run) > 1:
                yield run
            run, total = [], 0
        if small:
            run.append(item)
            total += item[1]
    if len(run) > 1:
        yield run


def write(root: Path, bins: list[Bin], schema: pa.Schema) -> DataFiles:
    """Start writing one merged file per bin (with ``schema``: the stored columns, the partition's
    left out); ``wait()`` on the result gives them in place and synced, or removes them and raises."""
    return DataFiles.of(root, [(b.partition, _merger(root, b, schema)) for b in bins], data_change=False)


def _merger(root: Path, bin_: Bin, schema: pa.Schema) -> Any:
    def merge(staged: Path) -> None:
        with pq.ParquetWriter(staged, schema, compression="zstd", compression_level=1,
                              use_dictionary=dictionary_columns(schema.names)) as writer:
            pending: list[pa.Table] = []
            rows = 0
            for piece in _pieces(root, bin_, schema):
                pending.append(piece)
                rows += piece.num_rows
                while rows >= ROWS_PER_FILE:  # whole row groups as an append writes them, the rest carried
                    table = pa.concat_tables(pending)
                    writer.write_table(table.slice(0, ROWS_PER_FILE), row_group_size=ROWS_PER_FILE)
                    pending, rows = [table.slice(ROWS_PER_FILE)], rows - ROWS_PER_FILE
            if rows:
                writer.write_table(pa.concat_tables(pending), row_group_size=ROWS_PER_FILE)

    return merge


def _pieces(root: Path, bin_: Bin, schema: pa.Schema) -> Iterator[pa.Table]:
    """The bin's rows in order: file by file when their ranges are disjoint, else all at once."""
    partitions = set(bin_.partition)
    tables = (_conform(pq.ParquetFile(root / path).read(), schema, root / path, partitions) for path in bin_.paths)
    if bin_.disjoint:
        for table in tables:
            yield _ordered(table, bin_.by)
    else:
        yield _ordered(pa.concat_tables(list(tables)), bin_.by)


def _ordered(table: pa.Table, by: str | None) -> pa.Table:
    if by is None:
        return table
    key = table.column(by).to_numpy()
    if len(key) > 1 and bool((key[1:] < key[:-1]).any()):
        return table.take(pa.array(np.argsort(key, kind="stable")))
    return table


def _conform(table: pa.Table, schema: pa.Schema, path: Path, partitions: set[str]) -> pa.Table:
    """A file's rows with the table's columns: a file written before a column was added reads it
    as null, as every reader does. A column the table does not have would be lost: refused."""
    extra = sorted(set(table.column_names) - set(schema.names) - partitions)
    if extra:
        raise StorageError(f"the data file {path} holds columns {extra} the table's schema does not have; "
                           "compaction would drop them. Nothing was committed", file=str(path))
    columns = [
        (table.column(f.name) if table.column(f.name).type == f.type else table.column(f.name).cast(f.type))
        if f.name in table.column_names else pa.nulls(table.num_rows, f.type)
        for f in schema
    ]
    return pa.Table.from_arrays(columns, schema=schema)


def metrics(considered: int, bins: list[Bin], written: list[Written]) -> dict[str, Any]:
    """deltalake's compaction metrics, for what callers read of them (the counts, the sizes)."""
    removed = [s for b in bins for s in b.sizes]
    added = [w.action.size for w in written]
    return {
        "numFilesAdded": len(added),
        "numFilesRemoved": len(removed),
        "filesAdded": _sizes(added),
        "filesRemoved": _sizes(removed),
        "partitionsOptimized": len({tuple(sorted(b.partition.items())) for b in bins}),
        "totalConsideredFiles": considered,
        "totalFilesSkipped": considered - len(removed),
    }


def _sizes(sizes: list[int]) -> str:
    """As deltalake reports them: a JSON object of avg, max, min, totalFiles, totalSize."""
    return json.dumps({"avg": sum(sizes) / len(sizes) if sizes else 0.0, "max": max(sizes, default=0),
                       "min": min(sizes, default=0), "totalFiles": len(sizes), "totalSize": sum(sizes)},
                      separators=(",", ":"))
