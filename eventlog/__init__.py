"""eventlog: an event log on partitioned Parquet (Delta Lake) for analysts.

State, time travel and projections are vectorised aggregations over the log.

Every public name is loaded on first use (PEP 562), so ``import eventlog`` and the
``eventlog`` command start fast; ``eventlog.sql`` and ``eventlog.connect`` need no
import of their own.

Example:
    >>> import eventlog
    >>> eventlog.connect is eventlog.sql.connect
    True
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from eventlog import errors, sql
    from eventlog.core.definitions import Agg, FunctionProjection, Projection, ProjectionStatus
    from eventlog.core.schema import EventSchema, EventType, Field, Upcaster
    from eventlog.errors import SnapshotWarning
    from eventlog.inventory.inventory import Inventory, Item
    from eventlog.log import AppendResult, EventLog
    from eventlog.model.schema import INVENTORY_SCHEMA
    from eventlog.sql import connect
    from eventlog.store.snapshots import SnapshotInfo

# name -> the module that defines it (a module itself when the name is a subpackage)
_WHERE = {
    "Agg": "eventlog.core.definitions",
    "AppendResult": "eventlog.log",
    "EventLog": "eventlog.log",
    "EventSchema": "eventlog.core.schema",
    "EventType": "eventlog.core.schema",
    "Field": "eventlog.core.schema",
    "FunctionProjection": "eventlog.core.definitions",
    "INVENTORY_SCHEMA": "eventlog.model.schema",
    "Inventory": "eventlog.inventory.inventory",
    "Item": "eventlog.inventory.inventory",
    "Projection": "eventlog.core.definitions",
    "ProjectionStatus": "eventlog.core.definitions",
    "SnapshotInfo": "eventlog.store.snapshots",
    "SnapshotWarning": "eventlog.errors",
    "Upcaster": "eventlog.core.schema",
    "connect": "eventlog.sql",
}
_MODULES = {"errors", "sql"}

__all__ = sorted([*_WHERE, *_MODULES])
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    if name in _MODULES:
        return importlib.import_module(f"eventlog.{name}")
    where = _WHERE.get(name)
    if where is None:
        raise AttributeError(f"module 'eventlog' has no attribute {name!r}")
    value = getattr(importlib.import_module(where), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
