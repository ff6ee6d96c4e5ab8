"""The inventory's definition: its event schema and the test of whether a store holds one.

Kept apart from the ``Inventory`` class so that the layers between them (the SQL views)
can know an inventory store without importing the class that uses them.
"""

from __future__ import annotations

from eventlog.core.schema import EventSchema, EventType, Field
from eventlog.errors import SchemaMismatchError, ValidationError
from eventlog.log import EventLog

# A null or missing quantity is 1, on item_removed as on item_added: the default is part of the
# stored schema (changing it would change what old events mean), and the README says so.
_PAYLOAD = (
    Field("quantity", "int64", default=1, min=1),
    Field("rarity", "string", required=False),
    Field("origin", "string", required=False),
)
#: The inventory's event schema: the stream is the item's name.
INVENTORY_SCHEMA = EventSchema(
    (EventType("item_added", _PAYLOAD), EventType("item_removed", _PAYLOAD)),
    name="inventory",
)
ADDED, REMOVED = "item_added", "item_removed"


def check_inventory_schema(log: EventLog) -> None:
    """Refuse a store whose schema lacks the inventory's event types or fields (by name and type)."""
    for et in INVENTORY_SCHEMA.event_types:
        try:
            have = log.schema.event_type(et.name)
        except ValidationError:
            raise SchemaMismatchError(
                f"{log.path} is a {log.schema.name!r} store without event type {et.name!r}; "
                "it is not an inventory (open it with EventLog.open)"
            ) from None
        for f in et.fields:
            got = have.field(f.name)
            if got is None or got.type != f.type:
                raise SchemaMismatchError(
                    f"{log.path}: event type {et.name!r} field {f.name!r} is "
                    f"{'missing' if got is None else got.type}, the inventory needs {f.type}"
                )


def is_inventory(log: EventLog) -> bool:
    """Whether ``log`` holds an inventory: the one predicate the SQL views and the CLI share."""
    try:
        check_inventory_schema(log)
    except SchemaMismatchError:
        return False
    return True
