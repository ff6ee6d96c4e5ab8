"""The original example programs, run against the event-sourced inventory.

Expected values are worked out by hand from the programs themselves; every local engine must give them.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from eventlog import Inventory, Item
from eventlog.errors import InsufficientStockError


@pytest.fixture
def inventory(tmp_path: Path, engine: str) -> Inventory:
    return Inventory.open(tmp_path / "game store", engine=engine)


def _plain_strings(inventory: Inventory) -> None:
    for name in ["sword", "potion", "bow", "shield", "torch"]:
        inventory.add_item(name)
    inventory.remove_item("potion")


def _item_objects(inventory: Inventory) -> None:
    for item in [
        Item("sword", rarity="common", origin="castle"),
        Item("sword", rarity="rare", origin="dungeon"),
        Item("potion", rarity="common", origin="village"),
        Item("potion", rarity="common", origin="village"),
        Item("bow", rarity="uncommon", origin="forest"),
        Item("torch", rarity="common", origin="dungeon"),
        Item("scroll", rarity="rare", origin="tower"),
    ]:
        inventory.add_item(item)
    inventory.remove_item(Item("potion", rarity="common", origin="village"))
    inventory.remove_item("torch")


# --- (a) plain strings ---------------------------------------------------------------------


def test_plain_string_program_leaves_one_of_each_remaining_item_sorted_by_name(inventory: Inventory) -> None:
    _plain_strings(inventory)
    assert inventory.get_items() == [("bow", 1), ("shield", 1), ("sword", 1), ("torch", 1)]


def test_removing_an_item_not_in_stock_raises_insufficient_stock_as_a_value_error(inventory: Inventory) -> None:
    _plain_strings(inventory)
    with pytest.raises(ValueError, match="potion") as info:
        inventory.remove_item("potion")
    assert isinstance(info.value, InsufficientStockError)
    assert (info.value.item, info.value.requested, info.value.available) == ("potion", 1, 0)


def test_a_refused_removal_writes_nothing(inventory: Inventory) -> None:
    _plain_strings(inventory)
    head, version = inventory.log.head(), inventory.log.version
    with pytest.raises(InsufficientStockError):
        inventory.remove_item("never seen")
    assert (inventory.log.head(), inventory.log.version) == (head, version)
    assert inventory.get_items() == [("bow", 1), ("shield", 1), ("sword", 1), ("torch", 1)]


# --- (b) Item objects ----------------------------------------------------------------------


def test_item_object_program_counts_by_name_across_origins(inventory: Inventory) -> None:
    _item_objects(inventory)
    assert inventory.get_items() == [("bow", 1), ("potion", 1), ("scroll", 1), ("sword", 2)]


def test_item_object_program_keeps_the_latest_rarity_and_origin(inventory: Inventory) -> None:
    _item_objects(inventory)
    rows = inventory.stock().select("item", "rarity", "origin").rows()
    assert rows == [
        ("bow", "uncommon", "forest"),
        ("potion", "common", "village"),
        ("scroll", "rare", "tower"),
        ("sword", "rare", "dungeon"),
    ]


def test_an_item_removed_entirely_counts_zero(inventory: Inventory) -> None:
    _item_objects(inventory)
    assert inventory.get_count("torch") == 0
    assert inventory.get_count(Item("sword")) == 2


# --- v2: most collected items and origins --------------------------------------------------


def test_most_collected_items_ranks_by_total_added_then_name(inventory: Inventory) -> None:
    _item_objects(inventory)
    top = inventory.projection("most_collected_items").top(3)
    assert top.rows() == [("potion", 2, 2), ("sword", 2, 2), ("bow", 1, 1)]


def test_most_collected_items_counts_additions_not_what_is_left(inventory: Inventory) -> None:
    _item_objects(inventory)
    table = inventory.projection("most_collected_items").read()
    assert dict(table.select("item", "total_added").rows()) == {"bow": 1, "potion": 2, "scroll": 1, "sword": 2, "torch": 1}


def test_item_origins_lists_each_items_distinct_origins_sorted(inventory: Inventory) -> None:
    _item_objects(inventory)
    table = inventory.projection("item_origins").read()
    assert table.rows() == [
        ("bow", ["forest"]),
        ("potion", ["village"]),
        ("scroll", ["tower"]),
        ("sword", ["castle", "dungeon"]),
        ("torch", ["dungeon"]),
    ]
