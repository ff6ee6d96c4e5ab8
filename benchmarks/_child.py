"""One operation in a fresh process, for peak memory: ``python -m benchmarks._child OP STORE``.

This process forks at once, before importing anything heavy; the fork (our only child)
imports what the operations need, opens the store, runs ``OP`` and exits. We then read its
high-water mark with ``resource.getrusage(RUSAGE_CHILDREN).ru_maxrss``.

Why the extra fork: Linux carries a process's RSS high-water mark across ``exec``, so a
process spawned straight from the (large) benchmark runner would report at least the
runner's size. A fork of this small process starts from a few MiB.

``baseline`` imports everything the operations import and opens the store; the parent
subtracts its peak from the others'. Prints one JSON line: the result's row count (so the
parent can see the work was done) and ``maxrss_kib``.

``record:N`` measures one ``record()`` of an N-event batch into a new store at STORE (the
folder must not exist; the parent removes it). The batch is generated here first, then the
high-water mark is reset (``/proc/self/clear_refs``), so ``peak_kib`` is the peak during the
call alone; ``rss_before_kib`` (the batch, the imports and the open store) and the frame's
``input_bytes`` (``estimated_size()``) come with it.
"""

from __future__ import annotations

import gc
import json
import os
import re
import resource
import sys
import traceback
from pathlib import Path


def run(op: str, store: Path) -> dict[str, object]:
    import duckdb  # noqa: F401  (every op imports it, so the baseline includes it)
    import polars  # noqa: F401

    from benchmarks import _limits
    from eventlog import Inventory

    if op.startswith("record:"):
        return record(int(op.removeprefix("record:")), store)
    inv = Inventory.open(store)
    if op == "baseline":
        return {"rows": 0}
    if op == "cold_stock":
        return {"rows": inv.stock().height}
    if op == "rebuild":
        status = inv.update_projections(rebuild=True)
        return {"rows": sum(s.rows or 0 for s in status.values())}
    if op == "duckdb_state":
        return {"rows": _limits.duckdb_stock(store / "events", shape="state").height}
    if op == "polars_state":
        return {"rows": _limits.polars_stock(store / "events", shape="state").height}
    raise ValueError(f"unknown op {op!r}")


def record(n: int, store: Path) -> dict[str, object]:
    """Peak RSS of one ``record()`` of ``n`` generated events into a new store, above the RSS before it."""
    from eventlog import Inventory
    from eventlog.datagen import generate

    if store.exists():
        raise FileExistsError(f"{store}: record:N makes a new store")
    inv = Inventory.open(store)
    frame = next(generate(n, seed=7, batch_size=n))
    gc.collect()
    Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM: the generation's peak is not record()'s
    before = _status_kib("VmRSS")
    result = inv.record(frame)
    peak = _status_kib("VmHWM")
    return {"rows": result.count, "input_bytes": frame.estimated_size(), "rss_before_kib": before, "peak_kib": peak}


def _status_kib(key: str) -> int:
    match = re.search(rf"^{key}:\s+(\d+) kB", Path("/proc/self/status").read_text(), re.MULTILINE)
    if match is None:
        raise OSError(f"/proc/self/status has no {key}")
    return int(match.group(1))


def main(op: str, store: Path) -> int:
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the measured process
        os.close(read_end)
        code = 0
        try:
            result = run(op, store)
        except BaseException:  # report anything, then exit without running the parent's cleanup
            traceback.print_exc()
            result, code = {}, 1
        with os.fdopen(write_end, "w") as out:
            out.write(json.dumps(result))
        os._exit(code)
    os.close(write_end)
    with os.fdopen(read_end) as pipe:
        text = pipe.read()
    _, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        return code
    result = json.loads(text)
    result["maxrss_kib"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], Path(sys.argv[2])))
