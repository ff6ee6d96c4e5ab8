"""Two processes racing for the last unit: the stock check and the append are one atomic step."""

from __future__ import annotations

from pathlib import Path

import pytest
from inventory_helpers import events_of, remove_last_unit, spawn_context, store

from eventlog import Inventory

pytestmark = pytest.mark.slow


def test_two_processes_removing_the_last_unit_one_wins_and_the_other_is_refused(tmp_path: Path) -> None:
    path = store(tmp_path)
    inventory = Inventory.open(path)
    inventory.add_item("last sword")
    ctx = spawn_context()
    go, results = ctx.Event(), ctx.Queue()
    readies = [ctx.Event() for _ in range(2)]
    workers = [ctx.Process(target=remove_last_unit, args=(str(path), "last sword", ready, go, results))
               for ready in readies]
    for worker in workers:
        worker.start()
    try:
        for ready in readies:
            assert ready.wait(timeout=60), "a worker did not start"
        go.set()  # both are past their first read, holding the same view of the stock
        outcomes = sorted(results.get(timeout=60) for _ in workers)
    finally:
        for worker in workers:
            worker.join(timeout=60)
    assert [w.exitcode for w in workers] == [0, 0]
    assert outcomes == ["insufficient", "removed"]
    assert inventory.get_count("last sword") == 0
    removals = [e for e in events_of(inventory) if e["event_type"] == "item_removed"]
    assert len(removals) == 1
