"""Projection tables built on Spark and committed as the store's own (``store/tables.py``).

A build is the projection's stored form folded on Spark at one pinned head, committed with
the metadata a local build writes (``Projector.build_metadata``), so local reads, SQL views
and incremental updates carry on from it. A result of up to ``driver_rows`` rows comes to
the driver through Arrow and is written as a local build writes it; a larger one is written
by Spark as Parquet into a staging folder of the store, and those files are committed
(their statistics from deltalake's conversion of the folder), never collected.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import polars as pl
from pyspark import StorageLevel
from pyspark.sql import functions as F

from eventlog.spark import _fold
from eventlog.spark._read import column
from eventlog.store.tables import MONTH

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

    from eventlog.core.definitions import Projection
    from eventlog.projector import Projector

#: Spark writes timestamps as INT96 by default, which Delta readers take for nanoseconds.
_PARQUET_CONF = {"spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS"}
#: Staging folders of Spark's output, beside the tables (a Delta folder holds only Delta's files).
_STAGING = ".staging"


def commit(spark: SparkSession, projector: Projector, proj: Projection, form: DataFrame, *, head: int,
           start: float, driver_rows: int) -> None:
    """Commit ``form`` (the stored form at ``head``) as the projection's table; callers hold its lock."""
    columns = _fold.schemas(proj, projector.log)[0]
    form = form.persist(StorageLevel.MEMORY_AND_DISK)  # counted, then written: folded once
    try:
        rows = form.count()
        if rows <= driver_rows:
            table = pl.DataFrame(pl.from_arrow(form.toArrow())).cast(dict(columns))  # type: ignore[arg-type]
            meta = projector.build_metadata(proj, head, start, full=True)
            projector.tables.write(proj.name, table, meta, partition_by=proj.partition_by)
            return
        staged = _staging(projector.tables.root, proj.name)
        out = form if proj.partition_by is None else form.withColumn(MONTH, F.trunc(column(proj.partition_by), "MM"))
        writer = out.write.mode("errorifexists")
        if proj.partition_by is not None:
            writer = writer.partitionBy(MONTH)
        with _session_conf(spark, _PARQUET_CONF):
            writer.parquet(str(staged))
        meta = projector.build_metadata(proj, head, start, full=True)
        projector.tables.write_files(proj.name, staged, columns, meta, partition_by=proj.partition_by)
    finally:
        form.unpersist()


def _staging(root: Path, name: str) -> Path:
    """A new staging folder for ``name``; ones a crashed build left are removed (the lock is ours)."""
    folder = root / _STAGING
    for old in folder.glob(f"{name}-*"):  # names hold no "-": this matches this projection's only
        shutil.rmtree(old, ignore_errors=True)
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"{name}-{uuid.uuid4().hex}"


@contextmanager
def _session_conf(spark: SparkSession, conf: Mapping[str, str]) -> Iterator[None]:
    """Session settings for one write, put back afterwards."""
    before: dict[str, str | None] = {key: spark.conf.get(key, None) for key in conf}
    for key, value in conf.items():
        spark.conf.set(key, value)
    try:
        yield
    finally:
        for key, old in before.items():
            if old is None:
                spark.conf.unset(key)
            else:
                spark.conf.set(key, old)
