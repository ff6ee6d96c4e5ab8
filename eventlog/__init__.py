"""eventlog: an event log on partitioned Parquet (Delta Lake) for analysts.

State, time travel and projections are vectorised aggregations over the log.
"""

from __future__ import annotations

from eventlog import errors
from eventlog.log import AppendResult, EventLog
from eventlog.schema import EventSchema, EventType, Field

__all__ = sorted(
    [
        "AppendResult",
        "EventLog",
        "EventSchema",
        "EventType",
        "Field",
        "errors",
    ]
)
__version__ = "0.1.0"
