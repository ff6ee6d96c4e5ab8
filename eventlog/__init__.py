"""eventlog: an event log on partitioned Parquet (Delta Lake) for analysts.

State, time travel and projections are vectorised aggregations over the log.
"""

from __future__ import annotations

from eventlog import errors
from eventlog.inventory import INVENTORY_SCHEMA, Inventory, Item
from eventlog.log import AppendResult, EventLog
from eventlog.projections import Agg, FunctionProjection, Projection, ProjectionStatus
from eventlog.schema import EventSchema, EventType, Field, Upcaster
from eventlog.snapshots import SnapshotInfo, SnapshotWarning

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
