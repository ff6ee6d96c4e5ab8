"""Spark local vs DuckDB: ``eventlog.spark.stock`` and a projection rebuild, beside the local engines.

Called by ``_suite.SizeBench.run`` on each size of a full run (``_spark.run(bench)``; skipped in
``--quick``, and when pyspark or Java is missing). One ``local[<cores>]`` session per process,
its start measured once; one untimed stock() warms the JVM. Then, interleaved:

- stock: ``eventlog.spark.stock(...).toArrow()`` vs the hand-written DuckDB query over the same
  files and eventlog's own cold ``stock()`` (DuckDB engine, no snapshot);
- rebuild of ``daily_flows`` (the largest built-in): ``eventlog.spark.rebuild`` (default
  ``driver_rows``: through Arrow when the table fits), the same with ``driver_rows=0`` (Spark
  writes Parquet, the files are committed), and the local rebuild on DuckDB and on Polars.

On two cores Spark's value is reach, not speed: the ratio is reported, not a goal. Every result
is checked against the local one first.

Alone: ``python -m benchmarks._spark --sizes 1M,10M --data-dir DIR`` measures only these.
"""

from __future__ import annotations

import argparse
import atexit
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl

from benchmarks import _limits
from benchmarks._measure import same_frames, timed
from eventlog import Inventory

if TYPE_CHECKING:
    from benchmarks._suite import SizeBench

PROJECTION = "daily_flows"
_SESSION: list[Any] = []  # the process's one session, started on first use


def available() -> str | None:
    """Why Spark cannot run here (None when it can)."""
    try:
        import pyspark  # noqa: F401
    except ImportError:
        return "pyspark is not installed (pip install 'eventlog[spark]')"
    if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
        return "no Java runtime (Spark 4 needs Java 17+)"
    return None


def session(bench: SizeBench) -> Any:
    if _SESSION:
        return _SESSION[0]
    import eventlog.spark  # noqa: F401  (before the session: its import checks pyspark)
    from pyspark.sql import SparkSession

    scratch = Path(tempfile.mkdtemp(prefix="eventlog-spark-"))
    atexit.register(shutil.rmtree, scratch, True)
    cores = os.cpu_count() or 2
    t, spark = timed(lambda: (
        SparkSession.builder.master(f"local[{cores}]").appName("eventlog-bench")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.shuffle.partitions", str(2 * cores))
        .config("spark.driver.memory", "4g")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.warehouse.dir", str(scratch / "warehouse"))
        .config("spark.local.dir", str(scratch / "local"))
        .config("spark.sql.sources.parallelPartitionDiscovery.threshold", "1000000")
        .getOrCreate()))
    spark.sparkContext.setLogLevel("ERROR")
    bench.say(f"  [{bench.label}] Spark {spark.version} local[{cores}] session started in {t:.1f} s")
    bench.res.notes.append(f"Spark {spark.version}: a local[{cores}] session took {t:.1f} s to start "
                           "(not in the figures).")
    _SESSION.append(spark)
    return spark


def run(bench: SizeBench) -> None:
    """Spark vs DuckDB (and the local engines) for stock and a projection rebuild; the store is at n events."""
    if not bench.cfg.spark:
        return
    why = available()
    if why is not None:
        bench.res.notes.append(f"Spark not measured at {bench.label}: {why}.")
        bench.say(f"  [{bench.label}] Spark skipped: {why}")
        return
    import eventlog.spark as on_spark

    spark = session(bench)
    store = bench.store
    for folder in ("snapshots", "projections"):
        shutil.rmtree(store / folder, ignore_errors=True)
    local = Inventory.open(store).stock()
    warm = pl.DataFrame(pl.from_arrow(on_spark.stock(spark, store).toArrow()))  # untimed: JIT, file cache
    bench.check("Spark stock() = local stock()", same_frames(warm, local, ["item"]))

    def cold_local(i: int) -> pl.DataFrame:
        shutil.rmtree(store / "snapshots", ignore_errors=True)
        return Inventory.open(store, snapshot_every=1 << 62).stock()

    out = bench.interleaved(bench.cfg.runs, {
        "eventlog": lambda i: pl.DataFrame(pl.from_arrow(on_spark.stock(spark, store).toArrow())),
        "duckdb": lambda i: _limits.duckdb_stock(bench.events, shape="state"),
        "local": cold_local,
    })
    for i, got in enumerate(out["eventlog"][1]):
        bench.check(f"Spark stock() run {i + 1} = local stock()", same_frames(got, local, ["item"]))
    bench.add("spark_stock", "eventlog", out["eventlog"][0], note="eventlog.spark.stock(), to Arrow")
    bench.add("spark_stock", "duckdb", out["duckdb"][0], variant="state")
    bench.add("spark_stock", "local", out["local"][0], note="Inventory.stock() on DuckDB, no snapshot")

    keys = list(Inventory.open(store).projector.get(PROJECTION).keys)
    Inventory.open(store).projection(PROJECTION).rebuild()
    expected = Inventory.open(store).projection(PROJECTION).read()

    def local_build(engine: str) -> Any:
        return Inventory.open(store, engine=engine).projection(PROJECTION).rebuild()

    out = bench.interleaved(bench.cfg.runs, {
        "eventlog": lambda i: on_spark.rebuild(spark, store, [PROJECTION]),
        "spark-files": lambda i: on_spark.rebuild(spark, store, [PROJECTION], driver_rows=0),
        "local-duckdb": lambda i: local_build("duckdb"),
        "local-polars": lambda i: local_build("polars"),
    })
    rows = expected.height
    for impl in ("eventlog", "spark-files"):
        on_spark.rebuild(spark, store, [PROJECTION], driver_rows=0 if impl == "spark-files" else on_spark.DRIVER_ROWS)
        got = Inventory.open(store).projection(PROJECTION).read()
        bench.check(f"{PROJECTION} rebuilt on Spark ({impl}) reads as the local build",
                    same_frames(got, expected, keys))
    path = "through Arrow" if rows <= on_spark.DRIVER_ROWS else "Spark's Parquet files committed"
    bench.add("spark_rebuild", "eventlog", out["eventlog"][0], note=f"eventlog.spark.rebuild(['{PROJECTION}']), "
              f"{rows:,} rows, {path}")
    bench.add("spark_rebuild", "spark-files", out["spark-files"][0],
              note="driver_rows=0: Spark's Parquet files committed")
    bench.add("spark_rebuild", "local-duckdb", out["local-duckdb"][0], variant="state")
    bench.add("spark_rebuild", "local-polars", out["local-polars"][0])
    shutil.rmtree(store / "projections", ignore_errors=True)  # as the suite's rebuild step left them
    saved = getattr(bench, "proj_n", None)
    if saved is not None:
        shutil.copytree(saved, store / "projections")


def main(argv: list[str] | None = None) -> int:
    """Only the Spark measurements, on the cached stores of a full run."""
    from dataclasses import replace

    from benchmarks import _data, _report
    from benchmarks._measure import Results
    from benchmarks._suite import FULL, SizeBench

    p = argparse.ArgumentParser(prog="python -m benchmarks._spark", description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", default="1M,10M")
    p.add_argument("--data-dir", type=Path, required=True)
    p.add_argument("--runs", type=int, default=FULL.runs)
    p.add_argument("--seed", type=int, default=42)
    args = p.parse_args(argv)
    start = time.perf_counter()
    results = Results(say=lambda text: print(f"[{time.perf_counter() - start:6.1f}s] {text}", flush=True))
    cfg = replace(FULL, runs=args.runs, spark=True)
    load = os.getloadavg()
    work = Path(tempfile.mkdtemp(prefix="bench-spark-"))  # its own: a suite run may be using the data dir's
    for n in (_data.parse_size(s) for s in args.sizes.split(",")):
        ds = _data.ensure(n, args.seed, args.data_dir, say=results.say)
        bench = SizeBench(ds, cfg, results, work)
        bench.work.mkdir(parents=True)
        try:
            shutil.copytree(ds.store, bench.store, ignore=shutil.ignore_patterns("snapshots", "projections"))
            run(bench)
        finally:
            shutil.rmtree(bench.work, ignore_errors=True)
    shutil.rmtree(work, ignore_errors=True)
    print(f"load average {load[0]:.1f} at start, {os.getloadavg()[0]:.1f} at end; "
          f"{sum(c['passed'] for c in results.checks)} checks passed")
    for row in results.rows:
        print(f"{row['size']:>4} {row['op']:<14} {row['impl']:<13} median {_report.fmt_s(row['median'])} "
              f"(min {_report.fmt_s(row['min'])}, max {_report.fmt_s(row['max'])})  {row['note']}")
    for note in results.notes:
        print("note:", note)
    return 0 if all(c["passed"] for c in results.checks) else 1


if __name__ == "__main__":
    sys.exit(main())
