"""The write path side by side with raw Delta: ``python -m benchmarks.writes [--sizes 1M,10M] [--runs 5]``.

For each cached store (see ``benchmarks/_data.py``), on a scratch copy of it:

- ``record()`` of ``--batch``-event batches (validation, stock check, envelope, hash chain,
  synced commit) against ``write_deltalake`` of the same stored rows into a copy of the same
  table, interleaved batch by batch so both see the same load;
- ``add_item()`` against a one-row ``write_deltalake`` on a copy of the same table, interleaved;
  each median, p50 and their ratio, with the load average.

Each result is checked first: every event committed, the stock equal to DuckDB's.
Writes ``<out>/writes-<timestamp>.json`` and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import statistics
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

import polars as pl

from benchmarks import _data, _limits
from benchmarks._measure import timed
from eventlog import Inventory

HERE = Path(__file__).resolve().parent


def _scratch(ds: _data.Dataset, work: Path, name: str) -> Path:
    target = work / name
    shutil.copytree(ds.store, target, symlinks=True)
    return target


def bench_record(ds: _data.Dataset, work: Path, *, runs: int, batch: int) -> dict[str, Any]:
    from deltalake import WriterProperties, write_deltalake

    store, raw = _scratch(ds, work, "record"), _scratch(ds, work, "record-raw") / "events"
    Inventory.open(store).record(ds.tail_events())  # the batches follow the tail
    inv = Inventory.open(store)
    inv.stock()  # a long-lived ingester: its state at head is in memory before the first batch
    props = WriterProperties(compression="ZSTD", compression_level=1)
    ours, theirs = [], []
    for frame in ds.record_batches(runs, batch):
        t, result = timed(lambda: inv.record(frame))  # noqa: B023
        ours.append(t)
        rows = (pl.scan_delta(str(store / "events")).filter(pl.col("seq").is_between(result.first_seq, result.last_seq))
                .collect().to_arrow())
        t, _ = timed(lambda: write_deltalake(str(raw), rows, mode="append", partition_by=["occurred_on"],  # noqa: B023
                                             writer_properties=props))
        theirs.append(t)
    head = Inventory.open(store).log.head()
    want = ds.n + ds.tail + runs * batch
    if head != want:
        raise AssertionError(f"record(): head {head}, expected {want}")
    got = Counter(dict(Inventory.open(store).stock().select("item", "quantity").rows()))
    duck = Counter(dict(_limits.duckdb_stock(store / "events", shape="qty").select("item", "quantity").rows()))
    if +got != +duck:
        raise AssertionError("record(): stock differs from DuckDB's")
    return _row("record", ours, theirs, events=batch)


def bench_add_item(ds: _data.Dataset, work: Path, *, adds: int) -> dict[str, Any]:
    from deltalake import write_deltalake

    store, raw = _scratch(ds, work, "add"), _scratch(ds, work, "add-raw") / "events"
    inv = Inventory.open(store)
    before = Counter(dict(inv.stock().select("item", "quantity").rows()))
    names = sorted(before)[:50] or ["x"]
    one = pl.scan_delta(str(raw)).filter(pl.col("seq") == inv.log.head()).collect().to_arrow()
    ours, theirs = [], []
    for i in range(adds):
        t, _ = timed(lambda: inv.add_item(names[i % len(names)]))  # noqa: B023
        ours.append(t)
        t, _ = timed(lambda: write_deltalake(str(raw), one, mode="append", partition_by=["occurred_on"]))
        theirs.append(t)
    want = before + Counter(names[i % len(names)] for i in range(adds))
    if Counter(dict(Inventory.open(store).stock().select("item", "quantity").rows())) != want:
        raise AssertionError("add_item(): stock is not before + adds")
    return _row("add_item", ours, theirs, events=1)


def _row(op: str, ours: list[float], theirs: list[float], *, events: int) -> dict[str, Any]:
    a, b = statistics.median(ours), statistics.median(theirs)
    return {"op": op, "eventlog_s": a, "delta_s": b, "ratio": a / b, "events": events,
            "eventlog_ev_s": events / a, "samples": len(ours), "eventlog_all": ours, "delta_all": theirs}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m benchmarks.writes", description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", default="1M,10M")
    p.add_argument("--runs", type=int, default=5, help="record() batches per size")
    p.add_argument("--batch", default="1M", help="events per record() batch")
    p.add_argument("--adds", type=int, default=100, help="add_item() calls per size")
    p.add_argument("--only", choices=["record", "add_item"], default=None)
    p.add_argument("--data-dir", type=Path, default=Path(os.environ.get("EVENTLOG_BENCH_DATA", HERE / ".data")))
    p.add_argument("--out", type=Path, default=HERE / "runs")
    p.add_argument("--seed", type=int, default=42)
    args = p.parse_args(argv)
    rows = []
    for size in [_data.parse_size(s) for s in args.sizes.split(",")]:
        ds = _data.ensure(size, args.seed, args.data_dir)
        batch = min(_data.parse_size(args.batch), size)
        with tempfile.TemporaryDirectory(prefix="eventlog-writes-") as tmp:
            if args.only in (None, "record"):
                rows.append({"size": ds.label, **bench_record(ds, Path(tmp), runs=args.runs, batch=batch)})
            if args.only in (None, "add_item"):
                rows.append({"size": ds.label, **bench_add_item(ds, Path(tmp), adds=args.adds)})
        for row in rows[-2:]:
            print(f"{row['size']:>4} {row['op']:<8} eventlog {row['eventlog_s'] * 1000:8.1f} ms  raw Delta "
                  f"{row['delta_s'] * 1000:8.1f} ms  ratio {row['ratio']:.2f}  ({row['eventlog_ev_s'] / 1e6:.2f}M ev/s)",
                  flush=True)
    load = os.getloadavg()
    args.out.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    (args.out / f"writes-{stamp}.json").write_text(json.dumps({"load": load, "rows": rows}, indent=2))
    print(f"load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}")


if __name__ == "__main__":
    main()
