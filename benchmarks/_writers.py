"""Many small writers: ``python -m benchmarks._writers --store PATH [--writers 1,2,4,8] [--seconds 10]``.

1, 2, 4 and 8 processes each call ``add_item`` (one event) in a loop for a fixed time, all
starting together on the same store. Reported per writer count: total events/s over the
window and p50/p99 latency of the calls. Checked first: every acknowledged event is in the log
exactly once, at the seq its result named, for that writer's item; the head grew by the
number of acknowledgements; the stock grew by them; the log verifies.

Called from ``_suite.py`` (rows ``writers`` / ``eventlog`` / variant ``<n>``) on a scratch
copy of each store; run alone it works on the store it is given (a copy is up to you).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

WRITER_COUNTS = (1, 2, 4, 8)


def child(store: str, writer: int, seconds: float, go: str) -> None:
    """One writer: ``add_item`` of its own items until ``seconds`` after the go file appears."""
    from eventlog import Inventory

    inv = Inventory.open(store)
    # A long-lived writer: one append of its own (imports, the Delta writer, the chain) and its state in
    # memory before the timed loop; the parent reads the head after every writer has done this.
    inv.add_item(f"writer {writer} warm-up")
    inv.stock()
    # The first hash of a batch with a null (pyarrow's fill_null makes a scalar) imports pandas: ~0.9 s
    # of CPU, paid by whichever writer first leads a group. A long-lived writer paid it long ago.
    import pandas  # noqa: F401
    print("ready", flush=True)
    while not os.path.exists(go):
        time.sleep(0.001)
    cpu = resource.getrusage(resource.RUSAGE_SELF)
    start = time.monotonic()
    stop = start + seconds
    latencies, acks = [], []
    i = 0
    while time.monotonic() < stop:
        item = f"writer {writer} ✓ {i % 5}"
        t = time.monotonic()
        result = inv.add_item(item)
        latencies.append(time.monotonic() - t)
        acks.append((result.first_seq, item))
        i += 1
    end = time.monotonic()
    used = resource.getrusage(resource.RUSAGE_SELF)
    cpu_s = used.ru_utime + used.ru_stime - cpu.ru_utime - cpu.ru_stime
    print(json.dumps({"start": start, "end": end, "cpu_s": cpu_s, "latencies": latencies, "acks": acks}), flush=True)


def run_writers(store: Path, writers: int, seconds: float) -> dict[str, Any]:
    """``writers`` processes appending for ``seconds``; their figures, checked against the log."""
    from eventlog import Inventory

    with tempfile.TemporaryDirectory(prefix="writers-go-") as tmp:
        go = Path(tmp) / "go"
        procs = [subprocess.Popen([sys.executable, "-m", "benchmarks._writers", "--child", str(store), str(w),
                                   str(seconds), str(go)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for w in range(writers)]
        try:
            for p in procs:
                line = p.stdout.readline().strip() if p.stdout else ""
                if line != "ready":
                    raise AssertionError(f"a writer did not start: {line!r} {p.stderr.read() if p.stderr else ''}")
            inv = Inventory.open(store)
            head = inv.log.head()
            before = Counter(dict(inv.stock().select("item", "quantity").rows()))
            go.touch()
            outs = []
            for p in procs:
                out, err = p.communicate(timeout=seconds * 20 + 120)
                if p.returncode != 0:
                    raise AssertionError(f"a writer failed: {err[-2000:]}")
                outs.append(json.loads(out.strip().splitlines()[-1]))
        finally:
            for p in procs:
                if p.poll() is None:
                    p.kill()
                    p.communicate()
    acks = [(int(seq), item) for o in outs for seq, item in o["acks"]]
    latencies = [lat for o in outs for lat in o["latencies"]]
    window = max(o["end"] for o in outs) - min(o["start"] for o in outs)
    check = _check(store, head, before, acks)
    ordered = sorted(latencies)
    cpu_s = sum(o["cpu_s"] for o in outs)
    return {"writers": writers, "events": len(acks), "window_s": window, "events_per_s": len(acks) / window,
            "cpu_ms_per_event": cpu_s * 1e3 / max(1, len(acks)),
            "p50": ordered[len(ordered) // 2], "p99": ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))],
            "latencies": latencies, "check": check}


def _check(store: Path, head: int, before: Counter[str], acks: list[tuple[int, str]]) -> tuple[bool, str]:
    """Every acknowledged event committed once, where its result said; nothing else appended; the log verifies."""
    import polars as pl

    from eventlog import Inventory

    inv = Inventory.open(store)
    new = (inv.log.scan().filter(pl.col("seq") > head).select("seq", "stream_id", "quantity").collect())
    if inv.log.head() != head + len(acks):
        return False, f"head {inv.log.head()}, expected {head} + {len(acks)} acknowledged"
    if sorted(new.select("seq", "stream_id").rows()) != sorted(acks):
        return False, "the events after the old head are not exactly the acknowledged ones"
    after = Counter(dict(inv.stock().select("item", "quantity").rows()))
    if after != before + Counter(item for _, item in acks):
        return False, "the stock did not grow by the acknowledged additions"
    report = inv.log.verify()
    if not report.ok:
        return False, f"the log does not verify: {report}"
    return True, f"{len(acks)} acknowledged events, each once at its seq; stock and verify agree"


def run(bench: Any) -> None:
    """The writers benchmark inside the suite, on a scratch copy of the store (``bench`` is a SizeBench)."""
    import shutil

    store = bench.work / "writers"
    shutil.copytree(bench.store, store, symlinks=True, ignore=shutil.ignore_patterns("snapshots", "projections"))
    seconds = 5.0 if bench.cfg.mode == "quick" else 10.0
    load = os.getloadavg()
    rows: dict[int, dict[str, Any]] = {}
    try:
        for n in WRITER_COUNTS:
            r = run_writers(store, n, seconds)
            rows[n] = r
            bench.check(f"writers {n}: every acknowledged event committed once, stock and verify", r["check"])
            row = bench.add("writers", "eventlog", r["latencies"], variant=str(n), events=r["events"],
                            note=f"{n} process(es) × add_item() for {seconds:.0f} s: {r['events_per_s']:.1f} events/s, "
                                 f"CPU {r['cpu_ms_per_event']:.0f} ms/event")
            row["events_per_s"] = r["events_per_s"]
            row["cpu_ms_per_event"] = r["cpu_ms_per_event"]
    finally:
        shutil.rmtree(store, ignore_errors=True)
    bench.say(f"    writers: load before {load[0]:.1f}; " + ", ".join(
        f"{n}: {r['events_per_s']:.0f} ev/s p50 {r['p50'] * 1e3:.0f} ms" for n, r in rows.items()))


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m benchmarks._writers", description=__doc__.split("\n\n")[0])
    p.add_argument("--store", type=Path)
    p.add_argument("--writers", default=",".join(map(str, WRITER_COUNTS)))
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--child", nargs=4, metavar=("STORE", "WRITER", "SECONDS", "GO"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        store, writer, seconds, go = args.child
        child(store, int(writer), float(seconds), go)
        return
    if args.store is None:
        p.error("--store is required")
    print(f"load {os.getloadavg()}", flush=True)
    base = None
    for n in (int(x) for x in args.writers.split(",")):
        r = run_writers(args.store, n, args.seconds)
        if not r["check"][0]:
            raise AssertionError(f"{n} writers: {r['check'][1]}")
        base = base or r["events_per_s"]
        print(f"{n} writers: {r['events']} events in {r['window_s']:.1f} s = {r['events_per_s']:.1f} events/s "
              f"({r['events_per_s'] / base:.2f}× 1 writer), p50 {r['p50'] * 1e3:.1f} ms, p99 {r['p99'] * 1e3:.1f} ms, "
              f"median {statistics.median(r['latencies']) * 1e3:.1f} ms, CPU {r['cpu_ms_per_event']:.1f} ms/event; "
              f"load {os.getloadavg()[0]:.1f}", flush=True)


if __name__ == "__main__":
    main()
