"""What syncing an append to disk costs: ``python -m benchmarks.durability [--rounds 5] [--events 1M]``.

Every append, compaction and checkpoint fsyncs its data files, its commit file and their
folders before returning (an append's data files and folders before its commit, in
``store/datafiles.py``; the rest in ``DeltaEvents._make_durable``). This measures ``add_item`` (one
event, p50 of many) and ``record`` of one large batch with the syncs and with them patched
out, interleaved round by round so that both see the same machine load. The store of each
mode is its own, so both grow alike; each result is checked (head seq, stock) first.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import tempfile
import time
from pathlib import Path

import polars as pl

import eventlog.store.datafiles as datafiles
import eventlog.store.delta as delta
from eventlog import Inventory

_REAL = delta.DeltaEvents._make_durable
_REAL_FILE, _REAL_FOLDER = datafiles._fsync, datafiles._fsync_folder


def _skip(_: object) -> None:
    return None


def _no_sync(self: delta.DeltaEvents, first: int, last: int, *, committed: bool, data: bool = True) -> None:
    return None


#: Seconds spent inside the syncs, per call (the synced mode only): the cost without the noise around it.
_INSIDE: list[float] = []


def _timed_sync(self: delta.DeltaEvents, first: int, last: int, *, committed: bool, data: bool = True) -> None:
    start = time.perf_counter()
    _REAL(self, first, last, committed=committed, data=data)
    _INSIDE.append(time.perf_counter() - start)


def _batch(n: int) -> pl.DataFrame:
    """n item_added events over 28 days (28 data files) and 5000 items."""
    i = pl.int_range(0, n, eager=True)
    return pl.DataFrame({
        "event_type": pl.repeat("item_added", n, eager=True),
        "item": "item " + (i % 5000).cast(pl.String),
        "quantity": pl.repeat(1, n, eager=True),
        "occurred_at": pl.datetime_range(dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc),
                                         dt.datetime(2024, 1, 28, tzinfo=dt.timezone.utc), "1d", eager=True)
        .gather(i % 28),
    })


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m benchmarks.durability", description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--adds", type=int, default=30, help="add_item calls per mode and round")
    p.add_argument("--events", type=int, default=1_000_000, help="events in the large batch")
    args = p.parse_args(argv)
    big = _batch(args.events)
    root = Path(tempfile.mkdtemp(prefix="eventlog-durability-"))
    stores = {mode: (Inventory.open(root / f"small-{mode}"), Inventory.open(root / f"large-{mode}"))
              for mode in ("synced", "unsynced")}
    times: dict[str, dict[str, list[float]]] = {m: {"add": [], "record": []} for m in (*stores, "inside")}
    load = [os.getloadavg()[0]]
    for rnd in range(args.rounds):
        for mode in ("synced", "unsynced") if rnd % 2 == 0 else ("unsynced", "synced"):
            delta.DeltaEvents._make_durable = _timed_sync if mode == "synced" else _no_sync  # type: ignore[method-assign]
            # an append syncs its data files and their folders itself, before the commit
            datafiles._fsync = _REAL_FILE if mode == "synced" else _skip  # type: ignore[assignment]
            datafiles._fsync_folder = _REAL_FOLDER if mode == "synced" else _skip  # type: ignore[assignment]
            small, large = stores[mode]
            for _ in range(args.adds):
                t = time.perf_counter()
                small.add_item("apple")
                times[mode]["add"].append(time.perf_counter() - t)
            inside_add = len(_INSIDE)
            t = time.perf_counter()
            result = large.record(big)
            times[mode]["record"].append(time.perf_counter() - t)
            if mode == "synced":
                times["inside"]["add"].extend(_INSIDE[:inside_add])
                times["inside"]["record"].extend(_INSIDE[inside_add:])
                _INSIDE.clear()
            if result.count != args.events:
                raise SystemExit(f"record appended {result.count} events, not {args.events}")
        load.append(os.getloadavg()[0])
    delta.DeltaEvents._make_durable = _REAL  # type: ignore[method-assign]
    datafiles._fsync, datafiles._fsync_folder = _REAL_FILE, _REAL_FOLDER  # type: ignore[assignment]
    for mode, (small, large) in stores.items():
        if small.get_count("apple") != args.rounds * args.adds or large.log.head() != args.rounds * args.events:
            raise SystemExit(f"{mode}: wrong stock or head")
    add = {m: statistics.median(t["add"]) * 1e3 for m, t in times.items()}
    rec = {m: statistics.median(t["record"]) * 1e3 for m, t in times.items()}
    print(f"rounds {args.rounds}, load average (1 min) {min(load):.1f}..{max(load):.1f}")
    print(f"add_item p50:  synced {add['synced']:.1f} ms, unsynced {add['unsynced']:.1f} ms, "
          f"ratio {add['synced'] / add['unsynced']:.2f}")
    print(f"record({args.events:,}) median: synced {rec['synced']:.0f} ms, unsynced {rec['unsynced']:.0f} ms, "
          f"ratio {rec['synced'] / rec['unsynced']:.2f}")
    print(f"inside the syncs after the commit (median): add_item {add['inside']:.1f} ms, record({args.events:,}) {rec['inside']:.0f} ms")


if __name__ == "__main__":
    main()
