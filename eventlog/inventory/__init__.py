"""The inventory domain: items added and removed, kept as events, state computed from the log."""

from __future__ import annotations

from eventlog.inventory.handle import ProjectionHandle
from eventlog.inventory.inventory import Inventory, Item
from eventlog.model.schema import INVENTORY_SCHEMA

__all__ = ["INVENTORY_SCHEMA", "Inventory", "Item", "ProjectionHandle"]
