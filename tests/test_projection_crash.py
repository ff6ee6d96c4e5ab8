"""A builder killed mid-build, or two builders at once, never leave a projection table wrong.

Each build or update of a projection table is one Delta commit: whatever version is newest
must be a complete table whose rows are the reference's at its checkpoint.
"""

from __future__ import annotations

import datetime as dt
import os
import random
import signal
import time
from pathlib import Path

import pytest
import reference
from inventory_helpers import (
    AWKWARD_ITEMS,
    T0,
    append_and_update,
    events_of,
    rebuild_until_killed,
    spawn_context,
    store,
    update_until_killed_at_touch,
)

from eventlog import Inventory
from eventlog.model.builtins import BUILTINS
from eventlog.core.definitions import Projection
from eventlog.engines._polars import PolarsEngine

pytestmark = pytest.mark.slow
NAMES = list(reference.PROJECTIONS)


def _record_some(inventory: Inventory, n: int, *, day: int = 0) -> None:
    inventory.record([
        {"event_type": "item_added", "item": AWKWARD_ITEMS[i % len(AWKWARD_ITEMS)], "quantity": 3,
         "occurred_at": T0 + dt.timedelta(days=(day + i) % 10, hours=i)}
        for i in range(n)
    ])


def _assert_current_tables_are_whole_and_right(path: Path) -> None:
    """Every projection's newest Delta version is a whole table holding the reference at its checkpoint."""
    inventory = Inventory.open(path)
    tables = inventory.projector.tables
    events = events_of(inventory)
    for name in NAMES:
        manifest = tables.manifest(name)
        assert manifest is not None, name
        stored = tables.read(name, manifest)
        assert stored.height == manifest.rows, name
        definition = next(p for p in BUILTINS if p.name == name)
        table = PolarsEngine().finish(definition, stored) if isinstance(definition, Projection) else stored
        expected = reference.PROJECTIONS[name](reference.cut(events, seq=manifest.checkpoint))
        assert table.rows() == expected, f"{name} at checkpoint {manifest.checkpoint}"


def _kill_while(path: Path, kill_point: str, *, delay: float = 0.0) -> None:
    ctx = spawn_context()
    started = ctx.Event()
    child = ctx.Process(target=rebuild_until_killed, args=(str(path), kill_point, started))
    child.start()
    try:
        assert started.wait(timeout=60), "the builder did not reach its kill point"
        time.sleep(delay)
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.join(timeout=30)
    assert child.exitcode == -signal.SIGKILL


@pytest.fixture
def built(tmp_path: Path) -> Path:
    """A store whose projections were built at seq 40, with 40 more events since."""
    path = store(tmp_path)
    inventory = Inventory.open(path)
    _record_some(inventory, 40)
    inventory.update_projections()
    _record_some(inventory, 40, day=3)
    return path


@pytest.mark.parametrize("kill_point", ["before_first_commit", "after_first_commit"])
def test_a_builder_killed_mid_build_leaves_whole_tables(built: Path, kill_point: str) -> None:
    _kill_while(built, kill_point)
    checkpoints = [Inventory.open(built).projection(n).status().checkpoint for n in NAMES]
    assert checkpoints.count(80) == (0 if kill_point == "before_first_commit" else 1)  # at most the committed one
    assert set(checkpoints) <= {40, 80}
    _assert_current_tables_are_whole_and_right(built)


def test_a_builder_killed_at_random_moments_never_leaves_a_broken_table(built: Path) -> None:
    rng = random.Random(7)
    inventory = Inventory.open(built)
    for round_ in range(4):
        _kill_while(built, "anywhere", delay=rng.uniform(0.0, 0.6))
        _assert_current_tables_are_whole_and_right(built)
        _record_some(inventory, 5, day=round_)


def test_after_a_killed_builder_the_next_update_brings_every_table_to_the_head(built: Path) -> None:
    _kill_while(built, "after_first_commit")
    inventory = Inventory.open(built)
    inventory.update_projections()  # the dead builder's locks died with it
    events = events_of(inventory)
    for name in NAMES:
        assert inventory.projection(name).status().checkpoint == len(events)
        assert inventory.projection(name).read().rows() == reference.PROJECTIONS[name](events), name


def test_two_processes_appending_and_updating_at_once_leave_correct_tables(tmp_path: Path) -> None:
    path = store(tmp_path)
    Inventory.open(path).update_projections()
    ctx = spawn_context()
    go = ctx.Event()
    workers = [ctx.Process(target=append_and_update, args=(str(path), w, 6, go)) for w in range(2)]
    for worker in workers:
        worker.start()
    go.set()
    for worker in workers:
        worker.join(timeout=120)
    assert [w.exitcode for w in workers] == [0, 0]
    _assert_current_tables_are_whole_and_right(path)
    inventory = Inventory.open(path)
    events = events_of(inventory)
    assert len(events) == 2 * 6 * 2
    for name in NAMES:
        assert inventory.projection(name).read().rows() == reference.PROJECTIONS[name](events), name


def _old_day_only(path: Path) -> Inventory:
    """Built, then one event on a day long before top_movers' window: its update only moves its checkpoint."""
    inventory = Inventory.open(path)
    _record_some(inventory, 30)
    inventory.record([{"event_type": "item_added", "item": "late ✓", "quantity": 1,
                       "occurred_at": T0 + dt.timedelta(days=40)}])
    inventory.update_projections()
    inventory.record([{"event_type": "item_added", "item": "backdated", "quantity": 1, "occurred_at": T0}])
    return inventory


def test_a_failed_checkpoint_only_commit_keeps_the_previous_version_and_the_next_update_succeeds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    import eventlog.store.tables as tables

    path = store(tmp_path)
    inventory = _old_day_only(path)
    before = inventory.projection("top_movers").status()
    real = tables.commit_actions

    def failing(*args: object, **kwargs: object) -> object:
        if not args[1]:  # the commit of no action that moves the checkpoint
            raise OSError(5, "injected I/O error")
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(tables, "commit_actions", failing)
    with pytest.raises(OSError, match="injected"):
        inventory.update_projections()
    monkeypatch.undo()
    assert Inventory.open(path).projection("top_movers").status().version == before.version
    _assert_current_tables_are_whole_and_right(path)
    inventory = Inventory.open(path)
    inventory.update_projections()
    events = events_of(inventory)
    for name in NAMES:
        assert inventory.projection(name).read().rows() == reference.PROJECTIONS[name](events), name


def test_a_builder_killed_in_a_checkpoint_only_commit_leaves_whole_tables(tmp_path: Path) -> None:
    path = store(tmp_path)
    _old_day_only(path)
    ctx = spawn_context()
    started = ctx.Event()
    child = ctx.Process(target=update_until_killed_at_touch, args=(str(path), started))
    child.start()
    try:
        assert started.wait(timeout=60), "the update never reached a checkpoint-only commit"
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.join(timeout=30)
    _assert_current_tables_are_whole_and_right(path)
    inventory = Inventory.open(path)
    inventory.update_projections()
    events = events_of(inventory)
    assert inventory.projection("top_movers").read().rows() == reference.PROJECTIONS["top_movers"](events)
