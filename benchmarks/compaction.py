"""Compaction of a store with many small files: ``python -m benchmarks.compaction [--size 1M] [--rounds 3]``.

The cached store (``--data-dir``, as ``benchmarks.run`` builds it) gets its 1% tail appended
in ``--batches`` small ``record()`` calls, each writing a small file into every day it
touches (with ``--spread``, the events backdated over the year: nearly every day); that fragmented store is then copied once per run and compacted, alternately by
eventlog's compaction (its own writer: ``DeltaEvents.compact``) and by deltalake's
``optimize.compact`` followed by the same syncs (what ``compact()`` did before), so that both
see the same machine load. Each result is checked first: the same events (count, seq sum),
the same stock, and the same number of files as the other method left.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import polars as pl
from deltalake import CommitProperties

from benchmarks._data import ensure, parse_size
from eventlog import Inventory
from eventlog.store import delta


def _deltalake_compact(inventory: Inventory) -> dict[str, Any]:
    """``compact()`` as it was: deltalake's optimize, then the commit and its files synced."""
    storage = inventory.log.storage
    if not isinstance(storage, delta.DeltaEvents):
        raise SystemExit("the benchmark store is not a Delta store")
    with inventory.log.writing():
        before = storage.version
        table = storage._table  # the baseline needs deltalake's own object  # noqa: SLF001
        metrics = table.optimize.compact(
            writer_properties=delta._WRITER,  # noqa: SLF001
            commit_properties=CommitProperties(custom_metadata={delta.META_PREFIX + "operation": "compact"}),
            post_commithook_properties=delta._HOOKS)  # noqa: SLF001
        storage._make_durable(before + 1, storage.version, committed=True)  # noqa: SLF001
    return dict(metrics)


def _ours(inventory: Inventory) -> dict[str, Any]:
    return inventory.log.compact()


def _answer(inventory: Inventory) -> tuple[int, int, list[tuple[Any, ...]]]:
    seqs = inventory.log.scan().select(pl.len(), pl.col("seq").sum()).collect().row(0)
    return int(seqs[0]), int(seqs[1]), inventory.stock().rows()


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m benchmarks.compaction", description=__doc__.split("\n\n")[0])
    p.add_argument("--size", default="1M")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--data-dir", type=Path, default=Path("benchmarks/data"))
    p.add_argument("--batches", type=int, default=200, help="small record() calls the tail is appended in")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--spread", action="store_true",
                   help="backdate the tail's events over the year (event i by i mod 365 days): a small file in "
                        "almost every day per call, as backdated imports leave")
    args = p.parse_args(argv)
    dataset = ensure(parse_size(args.size), args.seed, args.data_dir)
    work = Path(tempfile.mkdtemp(prefix="eventlog-compaction-"))
    try:
        fragmented = work / "fragmented"
        shutil.copytree(dataset.store, fragmented)
        inventory = Inventory.open(fragmented)
        tail = dataset.tail_events()
        if args.spread:
            back = pl.duration(days=pl.int_range(0, pl.len()) % 365)
            tail = tail.with_columns(pl.col("occurred_at") - back)
        size = -(-tail.height // args.batches)
        for start in range(0, tail.height, size):
            inventory.record(tail.slice(start, size))
        files_before = inventory.log.files().height
        expected = _answer(inventory)
        methods = {"eventlog": _ours, "deltalake": _deltalake_compact}
        times: dict[str, list[float]] = {m: [] for m in methods}
        after: dict[str, set[int]] = {m: set() for m in methods}
        load = [os.getloadavg()[0]]
        for rnd in range(args.rounds):
            for name in list(methods) if rnd % 2 == 0 else list(methods)[::-1]:
                copy = work / f"{name}-{rnd}"
                shutil.copytree(fragmented, copy)
                target = Inventory.open(copy)
                target.log.files()  # the file listing both start from, outside the timing
                start = time.perf_counter()
                methods[name](target)
                times[name].append(time.perf_counter() - start)
                fresh = Inventory.open(copy)
                if _answer(fresh) != expected or not fresh.log.verify().ok:
                    raise SystemExit(f"{name}: the compacted store does not hold the same events and stock")
                after[name].add(fresh.log.files().height)
                shutil.rmtree(copy)
                load.append(os.getloadavg()[0])
        if after["eventlog"] != after["deltalake"]:
            raise SystemExit(f"files after compaction differ: {after}")
        med = {m: statistics.median(t) for m, t in times.items()}
        print(f"{dataset.label} store + {tail.height:,} events{' backdated over the year' if args.spread else ''} "
              f"in {args.batches} record() calls: "
              f"{files_before} files, {after['eventlog'].pop()} after compaction")
        print(f"rounds {args.rounds}, load average (1 min) {min(load):.1f}..{max(load):.1f}")
        for name, t in times.items():
            print(f"  {name:9} median {med[name]:.2f} s  ({', '.join(f'{x:.2f}' for x in t)})")
        print(f"  ratio eventlog / deltalake {med['eventlog'] / med['deltalake']:.2f}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
