"""Property: the vectorised state agrees with the naive replay at every cut, however it was computed.

For random valid logs (awkward names, backdated and missing occurred_at, several batches,
events of types that move no stock) and random snapshots, a fresh Inventory (nothing in
memory, so it starts from whatever snapshot fits) must give the reference model's stock at
every seq cut and at business-time cuts on and around the event times; a snapshot file
must hold the reference state at its seq; and a corrupted snapshot must never change an
answer. Each runs on every local engine (the ``engine`` fixture), with about half the
examples each, so the suite takes no longer.
"""

from __future__ import annotations

import datetime as dt
import tempfile
from pathlib import Path
from typing import Any

import polars as pl
import pytest
import reference
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from inventory_helpers import batches_of, events_of, item_events, store, write
from polars.testing import assert_frame_equal

from eventlog import Inventory, SnapshotWarning
from eventlog.core.definitions import Projection
from eventlog.engines._polars import PolarsEngine
from eventlog.engines.folds import fold_many
from eventlog.model.builtins import BUILTINS
from eventlog.model.state import STATE, STATE_VERSION
from eventlog.store.snapshots import SnapshotStore

PROPERTY = settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
ONE_US = dt.timedelta(microseconds=1)


def _build(
    path: Path, engine: str, data: st.DataObject, *, others: bool | None = None
) -> tuple[list[dict[str, Any]], list[int]]:
    """Record a random log in a few batches, with snapshots at random seqs; return events and snapshot seqs.

    The writer's own view (the states it keeps in memory while recording) must already be right.
    """
    batches = data.draw(item_events(max_size=20, others=others).flatmap(batches_of), label="batches")
    writer = Inventory.open(path, engine=engine, snapshot_every=0, keep_snapshots=50)
    for batch in batches:
        write(writer, batch)
        if data.draw(st.booleans(), label="snapshot at head"):
            writer.snapshot()
    head = writer.log.head()
    events = events_of(writer)
    assert writer.stock().rows() == reference.stock(events)
    for seq in data.draw(st.lists(st.integers(1, head), max_size=3), label="snapshots at seqs"):
        writer.stock(as_of=seq)  # snapshot_every=0: any read that folds writes a snapshot at its cut
    return events, [s.seq for s in writer.snapshots.list()]


def _business_cuts(events: list[dict[str, Any]], data: st.DataObject) -> list[dt.datetime]:
    """Instants on, just before and just after random event times, and ends of their UTC days."""
    times = sorted({e["occurred_at"] for e in events})
    chosen = data.draw(st.lists(st.sampled_from(times), min_size=1, max_size=4), label="business cuts")
    cuts = [t + d for t in chosen for d in (-ONE_US, dt.timedelta(0), ONE_US)]
    ends = [dt.datetime.combine(t.date(), dt.time.max, tzinfo=dt.timezone.utc) for t in chosen]
    return cuts + ends


@settings(PROPERTY, max_examples=10)
@given(data=st.data())
def test_every_seq_and_business_time_cut_matches_the_reference_replay(engine: str, data: st.DataObject) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        events, _ = _build(store(tmp), engine, data)
        reader = Inventory.open(store(tmp), engine=engine)
        for seq in range(len(events) + 1):
            assert reader.stock(as_of=seq).rows() == reference.stock(events, seq=seq), f"as_of={seq}"
        for t in _business_cuts(events, data):
            assert reader.stock(as_of=t).rows() == reference.stock(events, business=t), f"as_of={t}"
        known = data.draw(st.integers(0, len(events)), label="known_at")
        t = data.draw(st.sampled_from(_business_cuts(events, data)), label="as_of with known_at")
        assert reader.stock(as_of=t, known_at=known).rows() == reference.stock(events, seq=known, business=t)


@settings(PROPERTY, max_examples=6)
@given(data=st.data())
def test_events_of_other_types_move_no_stock_but_are_changes_of_their_item_at_every_cut(
    engine: str, data: st.DataObject
) -> None:
    """Interleaved with item events, in a store whose schema grew: the state and every built-in projection."""
    with tempfile.TemporaryDirectory() as tmp:
        events, _ = _build(store(tmp), engine, data, others=True)
        reader = Inventory.open(store(tmp), engine=engine)
        seqs = [0, *data.draw(st.lists(st.integers(1, len(events)), min_size=1, max_size=3), label="seq cuts")]
        times = _business_cuts(events, data)
        for seq in seqs:
            assert reader.stock(as_of=seq).rows() == reference.stock(events, seq=seq), f"as_of={seq}"
        for t in times:
            assert reader.stock(as_of=t).rows() == reference.stock(events, business=t), f"as_of={t}"
        for name, replay in reference.PROJECTIONS.items():
            assert reader.projection(name).read().rows() == replay(events), name
            for seq in seqs:
                assert reader.projection(name).read(as_of=seq).rows() == replay(reference.cut(events, seq=seq)), name
            for t in times[:3]:
                assert reader.projection(name).read(as_of=t).rows() == replay(reference.cut(events, business=t)), name


@PROPERTY
@given(data=st.data())
def test_a_snapshot_holds_the_reference_state_at_its_seq_and_its_tail_completes_it(
    engine: str, data: st.DataObject
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        events, seqs = _build(store(tmp), engine, data)
        snapshots = SnapshotStore(store(tmp) / "snapshots", state_version=STATE_VERSION)
        for info in snapshots.list():
            stored = snapshots.load(info)
            assert stored is not None
            expected = reference.state(events, seq=info.seq)
            # The file holds the state's stored form: its columns (plus order keys), in any row order.
            rows = stored.select(reference.STOCK_COLUMNS).sort("item").rows()
            assert rows == [tuple(expected[k][c] for c in reference.STOCK_COLUMNS) for k in sorted(expected)]
        # A new reader has nothing in memory: it starts from the newest snapshot at or below its cut.
        for cut in data.draw(st.lists(st.integers(0, len(events)), min_size=1, max_size=4), label="cuts"):
            fresh = Inventory.open(store(tmp), engine=engine)
            assert fresh.stock(as_of=cut).rows() == reference.stock(events, seq=cut)


@PROPERTY
@given(data=st.data())
def test_a_corrupted_snapshot_never_changes_an_answer(engine: str, data: st.DataObject) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        events, seqs = _build(store(tmp), engine, data)
        if not seqs:
            Inventory.open(store(tmp), engine=engine).snapshot()
            seqs = [len(events)]
        victim = data.draw(st.sampled_from(seqs), label="corrupted snapshot")
        snapshots = SnapshotStore(store(tmp) / "snapshots", state_version=STATE_VERSION)
        file = store(tmp) / "snapshots" / next(s.file for s in snapshots.list() if s.seq == victim)
        raw = bytearray(file.read_bytes())
        at = data.draw(st.integers(0, len(raw) - 1), label="flipped byte")
        raw[at] ^= 0xFF
        file.write_bytes(bytes(raw))
        reader = Inventory.open(store(tmp), engine=engine)
        # A cut the victim serves: at or after it, before the next snapshot.
        below_next = min([s for s in seqs if s > victim], default=len(events) + 1) - 1
        cut = data.draw(st.integers(victim, below_next), label="cut")
        with pytest.warns(SnapshotWarning):
            rows = reader.stock(as_of=cut).rows()
        assert rows == reference.stock(events, seq=cut)
        assert victim not in [s.seq for s in snapshots.list()] or cut == victim  # removed, unless rewritten


@settings(PROPERTY, max_examples=10)
@given(events=item_events(max_size=20))
def test_every_items_history_has_the_reference_running_stock(events: list[dict[str, Any]]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        inventory = Inventory.open(store(tmp))
        write(inventory, events)
        logged = events_of(inventory)
        for item in {e["item"] for e in events}:
            history = inventory.history(item).select("seq", "change", "stock").rows()
            assert history == reference.running_stock(logged, item), item


@PROPERTY
@given(data=st.data())
def test_the_folds_of_consecutive_groups_merge_into_the_fold_of_all(data: st.DataObject) -> None:
    """What verify's one pass relies on: each group of the log folded on its own (several
    definitions in one fold where the fold plan allows), then all merged in one regroup,
    equals each definition folded over the whole log."""
    engine = PolarsEngine()
    definitions = [STATE, *(p for p in BUILTINS if isinstance(p, Projection))]
    with tempfile.TemporaryDirectory() as tmp:
        inventory = Inventory.open(store(tmp), snapshot_every=0)
        for batch in data.draw(item_events(max_size=30).flatmap(batches_of), label="batches"):
            write(inventory, batch)
        events = inventory.log.scan().collect()
    head = events.height
    cuts = sorted(data.draw(st.lists(st.integers(1, max(head - 1, 1)), max_size=4, unique=True), label="cuts"))
    bounds = [0, *(c for c in cuts if c < head), head]
    groups = [events.filter(pl.col("seq").is_between(a + 1, b)) for a, b in zip(bounds, bounds[1:])]
    folded = [fold_many(engine, definitions, group, group.schema) for group in groups]
    for definition in definitions:
        whole = engine.fold(definition, events)
        merged = engine.merge_all(definition, [f[definition.name] for f in folded])
        assert_frame_equal(merged.select(whole.columns), whole, check_row_order=False)
