"""eventlog: an event log on partitioned Parquet (Delta Lake) for analysts.

State, time travel and projections are vectorised aggregations over the log.
"""

from __future__ import annotations

from eventlog import errors
from eventlog.core.definitions import Agg, FunctionProjection, Projection, ProjectionStatus
from eventlog.core.schema import EventSchema, EventType, Field, Upcaster
from eventlog.errors import SnapshotWarning
from eventlog.inventory.inventory import Inventory, Item
from eventlog.model.schema import INVENTORY_SCHEMA
from eventlog.log import AppendResult, EventLog
from eventlog.store.snapshots import SnapshotInfo

__all__ = sorted(
    [
        "INVENTORY_SCHEMA",
        "Agg",
        "AppendResult",
        "EventLog",
        "EventSchema",
        "EventType",
        "Field",
        "FunctionProjection",
        "Inventory",
        "Item",
        "Projection",
        "ProjectionStatus",
        "SnapshotInfo",
        "SnapshotWarning",
        "Upcaster",
        "errors",
    ]
)
__version__ = "0.1.0"
