"""One read in a new process, timed inside it: ``python -m benchmarks._fresh OP SOURCE OUT``.

The warm-read goal is about a process that has just started: no state in memory, no DuckDB
connection, no rendered SQL. Both sides of the comparison run here alike, each in its own
new interpreter that imports only what it needs:

- ``warm_stock``: ``from eventlog import Inventory``, then ``Inventory.open(SOURCE).stock()``;
- ``sqlite_state``: ``import sqlite3, polars``, then ``SELECT *`` of the state table at SOURCE
  into a DataFrame (``benchmarks._sqlite_state``, a new connection).

Prints one JSON line: ``import_s`` (the imports), ``read_s`` (the read alone: the figure the
goal compares) and ``end`` (``time.time()`` when the read returned, so the parent can take the
whole process, interpreter start included, from its own clock). The result is then written to
``OUT`` (Parquet, untimed) for the parent's agreement check.
"""

from __future__ import annotations

import json
import sys
import time


def main(op: str, source: str, out: str) -> int:
    start = time.perf_counter()
    if op == "warm_stock":
        from eventlog import Inventory

        imported = time.perf_counter()
        frame = Inventory.open(source).stock()
    elif op == "sqlite_state":
        from benchmarks._sqlite_state import read_state

        imported = time.perf_counter()
        frame = read_state(source)
    else:
        raise ValueError(f"unknown op {op!r}")
    done = time.perf_counter()
    end = time.time()
    frame.write_parquet(out)
    print(json.dumps({"import_s": imported - start, "read_s": done - imported, "end": end, "rows": frame.height}))
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:4]))
