"""verify's seal: a verify recomputes only what no earlier verify checked, and finds every
violation a full recomputation finds, reported by the same check at the same place."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow.parquet as pq
import pytest
from inventory_helpers import commit_with_a_broken_envelope

from eventlog import Inventory
from eventlog.projector import Projector

UTC = dt.timezone.utc


@pytest.fixture
def inventory(tmp_path: Path) -> Inventory:
    """Three commits over three business days, verified once (so a seal exists)."""
    inv = Inventory.open(tmp_path / "store")
    for day in (1, 2, 3):
        when = dt.datetime(2024, 1, day, 12, tzinfo=UTC)
        inv.record([
            {"event_type": "item_added", "item": f"item {day}", "quantity": 5, "origin": "castle", "occurred_at": when},
            {"event_type": "item_added", "item": "sword", "quantity": day, "occurred_at": when},
            {"event_type": "item_removed", "item": "sword", "quantity": 1, "occurred_at": when},
        ])
    inv.update_projections()
    inv.snapshot()
    first = inv.verify()
    assert first.ok and first.sealed == 0, str(first)
    return inv


def reopened(inv: Inventory) -> Inventory:
    return Inventory.open(inv.path)


def seal_folder(inv: Inventory) -> Path:
    return inv.path / "cache" / "verified"


def data_files(inv: Inventory) -> list[Path]:
    root = inv.log.path / "events"
    return [root / p for p in inv.log.files().sort("min_seq")["path"].to_list()]


def test_a_second_verify_recomputes_nothing_the_first_checked(inventory: Inventory) -> None:
    for report in (reopened(inventory).log.verify(), reopened(inventory).verify()):
        assert report.ok and report.sealed == inventory.log.head() and not report.deep
        assert "sealed by an earlier verify" in str(report)


@pytest.mark.parametrize("how", ["deep", "expect"])
def test_deep_and_an_anchor_recompute_everything(inventory: Inventory, how: str) -> None:
    options = {"deep": True} if how == "deep" else {"expect": inventory.log.head_hash()}
    report = reopened(inventory).verify(**options)  # type: ignore[arg-type]
    assert report.ok and report.sealed == 0 and report.deep


def test_a_value_changed_after_a_verify_is_found_by_the_hash_chain(inventory: Inventory) -> None:
    # The same tampering as in test_verify.py (value and recorded size changed together), after a seal.
    target = data_files(inventory)[1]
    table = pq.read_table(target)
    quantities = table.column("quantity").to_pylist()
    quantities[0] += 1
    pq.write_table(table.set_column(table.schema.get_field_index("quantity"), "quantity", [quantities]), target)
    commit = inventory.log.path / "events" / "_delta_log" / f"{2:020d}.json"
    actions = [json.loads(line) for line in commit.read_text().splitlines()]
    for action in actions:
        if "add" in action and action["add"]["path"].endswith(target.name):
            action["add"]["size"] = target.stat().st_size
    commit.write_text("\n".join(json.dumps(a) for a in actions) + "\n")
    report = reopened(inventory).log.verify()
    assert report.violation is not None and report.violation.check == "hash chain" and report.sealed == 0
    assert "event hash mismatch" in report.violation.message and report.violation.version == 2


def test_compaction_after_a_verify_recomputes_everything_and_passes(inventory: Inventory) -> None:
    for _ in range(3):
        inventory.add_item("sword", occurred_at=dt.datetime(2024, 1, 3, 13, tzinfo=UTC))
    inventory.log.compact()
    report = reopened(inventory).log.verify()
    assert report.ok and report.sealed == 0  # the files the seal covered are gone
    assert reopened(inventory).log.verify().sealed == inventory.log.head()


def test_a_damaged_seal_is_no_seal(inventory: Inventory) -> None:
    for ids in seal_folder(inventory).glob("ids-*.npy"):
        ids.write_bytes(ids.read_bytes()[:-8])
    report = reopened(inventory).log.verify()
    assert report.ok and report.sealed == 0
    (seal_folder(inventory) / "log.json").write_text("{ torn")
    report = reopened(inventory).log.verify()
    assert report.ok and report.sealed == 0


def test_a_gap_in_a_streams_versions_after_the_seal_is_found(inventory: Inventory,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    sealed = inventory.log.head()
    seq = commit_with_a_broken_envelope(monkeypatch, inventory, stream_version=pl.col("stream_version") + 1)
    report = reopened(inventory).log.verify()
    assert report.sealed == sealed
    assert report.violation is not None and report.violation.check == "streams" and report.violation.seq == seq


def test_an_event_id_repeating_one_before_the_seal_is_found(inventory: Inventory,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    first_id = inventory.log.scan().filter(pl.col("seq") == 1).collect().item(0, "event_id")
    commit_with_a_broken_envelope(monkeypatch, inventory, event_id=pl.lit(first_id))
    report = reopened(inventory).log.verify()
    assert report.sealed > 0
    assert report.violation is not None and report.violation.check == "event ids" and report.violation.seq == 1


def test_recorded_at_going_back_across_the_seal_is_found(inventory: Inventory,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    long_ago = dt.datetime(2000, 1, 1, tzinfo=UTC)
    seq = commit_with_a_broken_envelope(monkeypatch, inventory, recorded_at=pl.lit(long_ago, pl.Datetime("us", "UTC")))
    report = reopened(inventory).log.verify()
    assert report.sealed > 0
    assert report.violation is not None and report.violation.check == "recorded_at" and report.violation.seq == seq


def test_stock_below_zero_after_the_seal_is_found_from_the_sealed_levels(inventory: Inventory) -> None:
    inventory.log.append([{"event_type": "item_removed", "stream_id": "sword", "quantity": 4}])  # 3 left
    report = reopened(inventory).verify()
    assert report.sealed > 0 and report.violation is not None and report.violation.check == "stock"
    assert report.violation.seq == inventory.log.head() and "'sword' goes to -1" in report.violation.message


def test_a_snapshot_written_after_the_seal_is_checked(inventory: Inventory) -> None:
    inventory.add_item("sword", 2)
    info = reopened(inventory).snapshot()
    assert reopened(inventory).verify().ok
    stored = inventory.snapshots.load(info)
    assert stored is not None
    inventory.snapshots.write(stored.with_columns(pl.col("quantity") + 1), seq=info.seq, delta_version=info.delta_version)
    report = reopened(inventory).verify()
    assert report.sealed > 0 and report.violation is not None and report.violation.check == "snapshots"


def test_a_projection_updated_after_the_seal_is_checked_from_its_sealed_build(inventory: Inventory) -> None:
    inventory.add_item("shield", 4)
    reopened(inventory).update_projections()
    assert reopened(inventory).verify().ok
    inventory.add_item("shield", 1)
    inv = reopened(inventory)
    inv.update_projections()
    table = inv.projector.tables.manifest("most_collected_items")
    assert table is not None
    for path in inv.projector.tables.files("most_collected_items", table):
        pl.read_parquet(path).with_columns(pl.col("total_added") + 1).write_parquet(path)
    report = reopened(inventory).verify()
    assert report.sealed > 0 and report.violation is not None and report.violation.check == "projections"
    assert "most_collected_items" in report.violation.message


def test_a_function_table_the_seal_does_not_name_is_checked_once_then_sealed(
        inventory: Inventory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Nothing else new: the one table is recomputed, and the seal then vouches for it too."""
    seal = seal_folder(inventory) / "inventory.json"
    data = json.loads(seal.read_text())
    del data["projections"]["stockouts"]  # as for a table built after the seal (a projection registered since)
    seal.write_text(json.dumps(data))
    computed: list[str] = []
    compute_from = Projector.compute_from

    def counted(self: Projector, proj: Any, *args: Any, **kwargs: Any) -> Any:
        computed.append(proj.name)
        return compute_from(self, proj, *args, **kwargs)

    monkeypatch.setattr(Projector, "compute_from", counted)
    assert reopened(inventory).verify().ok and computed[0] == "stockouts"
    first = len(computed)
    report = reopened(inventory).verify()
    assert report.ok and report.sealed == inventory.log.head() and len(computed) == first


def test_a_sealed_projection_table_edited_in_place_is_found(inventory: Inventory) -> None:
    table = inventory.projector.tables.manifest("item_origins")
    assert table is not None
    for path in inventory.projector.tables.files("item_origins", table):
        pl.read_parquet(path).with_columns(pl.lit("elsewhere").alias("origin")).write_parquet(path)
    report = reopened(inventory).verify()
    assert report.sealed > 0 and report.violation is not None and report.violation.check == "projections"
    assert "item_origins" in report.violation.message


def test_the_cli_verifies_deep_on_request(inventory: Inventory) -> None:
    from click.testing import CliRunner

    from eventlog.cli import main

    store = str(inventory.path)
    sealed = CliRunner().invoke(main, ["--store", store, "verify"])
    assert sealed.exit_code == 0 and "sealed by an earlier verify" in sealed.output
    deep = CliRunner().invoke(main, ["--store", store, "verify", "--deep"])
    assert deep.exit_code == 0 and "sealed by an earlier verify" not in deep.output and "verify OK" in deep.output


@pytest.mark.parametrize("deep", [True, False])
def test_each_of_several_snapshots_is_checked_at_its_own_seq(inventory: Inventory, deep: bool) -> None:
    # Snapshots fold the log once between them (each continues the one before): every one is still compared.
    infos = []
    for quantity in (2, 3):
        inventory.add_item("sword", quantity)
        infos.append(reopened(inventory).snapshot())
    assert reopened(inventory).verify(deep=deep).ok
    middle = infos[0]
    stored = inventory.snapshots.load(middle)
    assert stored is not None
    inventory.snapshots.write(stored.with_columns(pl.col("quantity") + 1), seq=middle.seq,
                              delta_version=middle.delta_version)
    report = reopened(inventory).verify(deep=deep)
    assert report.violation is not None and report.violation.check == "snapshots"
    assert report.violation.seq == middle.seq
