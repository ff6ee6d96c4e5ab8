"""Jupyter summaries: what a notebook user sees when an object is the last expression of a cell."""

from __future__ import annotations

from pathlib import Path

from eventlog import Inventory


def test_inventory_summary_shows_head_counts_snapshot_and_projection_lag(tmp_path: Path) -> None:
    inv = Inventory.open(tmp_path / "store")
    inv.add_item("sword", 2)
    inv.add_item("bow")
    inv.snapshot()
    inv.update_projections()
    inv.remove_item("sword")
    html = inv._repr_html_()
    assert "head seq</th><td style='text-align:left'>3" in html
    assert "item_added: 2, item_removed: 1" in html
    assert "newest at seq 2 (lag 1)" in html
    assert "projection most_collected_items" in html and "lag 1" in html


def test_log_and_projection_summaries_escape_names(tmp_path: Path) -> None:
    inv = Inventory.open(tmp_path / "<b>store</b>")
    inv.add_item("<script>")
    assert "<b>store</b>" not in inv.log._repr_html_()
    assert "&lt;b&gt;store&lt;/b&gt;" in inv.log._repr_html_()
    assert "checkpoint" in inv.projection("item_origins")._repr_html_()
