"""Reference models: the naive replay, one plain Python loop over the events.

Every vectorised path (the DuckDB fold, snapshots, the merge of a snapshot with a tail,
incremental projections) must agree with these. They are written for clarity, not speed:
no polars, no SQL, no clever merging — just walk the events in log order.

Events are dicts as the log stores them (``seq``, ``stream_id``, ``event_type``,
``quantity``, ``rarity``, ``origin``, ``occurred_at``, ``recorded_at``), e.g. the rows of
``log.scan().collect()`` in any order: every model sorts by seq itself.

Only ``item_added`` and ``item_removed`` move stock. A store whose schema evolved may hold
events of other types (an inspection, a count): they move nothing, and their quantity may
be null, but they are still events of their item — see each model for what they count in.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

ADDED, REMOVED = "item_added", "item_removed"
Event = dict[str, Any]

#: Column order of Inventory.stock().
STOCK_COLUMNS = ["item", "quantity", "rarity", "origin", "first_added_at", "last_changed_at", "stream_version"]
TOP_MOVERS_DAYS = 7


def in_log_order(events: Iterable[Event]) -> list[Event]:
    return sorted(events, key=lambda e: e["seq"])


def cut(events: Iterable[Event], *, seq: int | None = None, business: dt.datetime | None = None) -> list[Event]:
    """The events a cut sees: seq <= ``seq`` and occurred_at <= ``business``, in log order."""
    return [
        e
        for e in in_log_order(events)
        if (seq is None or e["seq"] <= seq) and (business is None or e["occurred_at"] <= business)
    ]


def known_by(events: Iterable[Event], when: dt.datetime) -> int:
    """The head of the log as it was at ``when``: the last seq recorded by then."""
    return max((e["seq"] for e in events if e["recorded_at"] <= when), default=0)


def signed(event: Event) -> int:
    """+quantity for an addition, -quantity for a removal, 0 for any other event type."""
    if event["event_type"] == ADDED:
        return event["quantity"]
    if event["event_type"] == REMOVED:
        return -event["quantity"]
    return 0


def added_and_removed(event: Event) -> tuple[int, int]:
    """(quantity added, quantity removed) by one event: (0, 0) for any other event type."""
    if event["event_type"] == ADDED:
        return event["quantity"], 0
    if event["event_type"] == REMOVED:
        return 0, event["quantity"]
    return 0, 0


def day_of(event: Event) -> dt.date:
    return event["occurred_at"].astimezone(dt.timezone.utc).date()


# --- inventory state -------------------------------------------------------------------------


def stream_versions(events: Iterable[Event]) -> dict[int, int]:
    """seq -> stream version, by counting each stream's events in log order."""
    count: dict[str, int] = {}
    out = {}
    for e in in_log_order(events):
        count[e["stream_id"]] = count.get(e["stream_id"], 0) + 1
        out[e["seq"]] = count[e["stream_id"]]
    return out


def state(all_events: Iterable[Event], *, seq: int | None = None, business: dt.datetime | None = None) -> dict[str, dict]:
    """Per item: quantity, latest non-null rarity/origin by seq, first add, last change, stream version.

    Only additions and removals move the quantity, and only additions set first_added_at;
    an event of any other type still brings its rarity and origin (when not null), its
    occurred_at as a change and its stream version. Every item with at least one event
    in the cut has an entry (zero and, in business time, negative quantities included).
    """
    all_events = list(all_events)
    versions = stream_versions(all_events)
    items: dict[str, dict] = {}
    for e in cut(all_events, seq=seq, business=business):
        row = items.setdefault(
            e["stream_id"],
            {"item": e["stream_id"], "quantity": 0, "rarity": None, "origin": None,
             "first_added_at": None, "last_changed_at": None, "stream_version": 0},
        )
        row["quantity"] += signed(e)
        if e["rarity"] is not None:
            row["rarity"] = e["rarity"]
        if e["origin"] is not None:
            row["origin"] = e["origin"]
        if e["event_type"] == ADDED and (row["first_added_at"] is None or e["occurred_at"] < row["first_added_at"]):
            row["first_added_at"] = e["occurred_at"]
        if row["last_changed_at"] is None or e["occurred_at"] > row["last_changed_at"]:
            row["last_changed_at"] = e["occurred_at"]
        row["stream_version"] = versions[e["seq"]]
    return items


def stock(all_events: Iterable[Event], *, seq: int | None = None, business: dt.datetime | None = None) -> list[tuple]:
    """Rows of Inventory.stock(): items with quantity > 0, sorted by name."""
    rows = state(all_events, seq=seq, business=business).values()
    return [tuple(r[c] for c in STOCK_COLUMNS) for r in sorted(rows, key=lambda r: r["item"]) if r["quantity"] > 0]


def running_stock(events: Iterable[Event], item: str) -> list[tuple[int, int, int]]:
    """(seq, change, stock after) for one item's events in log order."""
    total = 0
    out = []
    for e in in_log_order(events):
        if e["stream_id"] == item:
            total += signed(e)
            out.append((e["seq"], signed(e), total))
    return out


# --- projections ---------------------------------------------------------------------------


def _nulls_last(value: Any) -> tuple[bool, Any]:
    return (value is None, value if value is not None else 0)


def _sorted_rows(rows: Iterable[tuple], n_keys: int) -> list[tuple]:
    return sorted(rows, key=lambda r: tuple(_nulls_last(v) for v in r[:n_keys]))


def most_collected_items(events: Iterable[Event]) -> list[tuple]:
    """(item, total_added, times_added) over additions, by item."""
    totals: dict[str, list[int]] = {}
    for e in in_log_order(events):
        if e["event_type"] == ADDED:
            row = totals.setdefault(e["stream_id"], [0, 0])
            row[0] += e["quantity"]
            row[1] += 1
    return _sorted_rows(((item, t, n) for item, (t, n) in totals.items()), 1)


def top(rows: list[tuple], n: int) -> list[tuple]:
    """The first n rows by the second column descending, then the first ascending."""
    return sorted(rows, key=lambda r: (-r[1], r[0]))[:n]


def item_origins(events: Iterable[Event]) -> list[tuple]:
    """(item, sorted distinct non-null origins) over additions."""
    origins: dict[str, set[str]] = {}
    for e in in_log_order(events):
        if e["event_type"] == ADDED:
            seen = origins.setdefault(e["stream_id"], set())
            if e["origin"] is not None:
                seen.add(e["origin"])
    return _sorted_rows(((item, sorted(o)) for item, o in origins.items()), 1)


def daily_flows(events: Iterable[Event]) -> list[tuple]:
    """(day, item, rarity, origin, added, removed, events, net_change), per the event's own rarity/origin.

    Events of other types make a group (and count in ``events``) with nothing added or removed.
    """
    groups: dict[tuple, list[int]] = {}
    for e in in_log_order(events):
        row = groups.setdefault((day_of(e), e["stream_id"], e["rarity"], e["origin"]), [0, 0, 0])
        added, removed = added_and_removed(e)
        row[0] += added
        row[1] += removed
        row[2] += 1  # every event counts, whatever its type
    return _sorted_rows(((*key, a, r, n, a - r) for key, (a, r, n) in groups.items()), 4)


def daily_stock(events: Iterable[Event]) -> list[tuple]:
    """(item, day, added, removed, net_change, stock): only the days an item had events, stock at day's end.

    A day with only events of other types is a row with nothing added or removed.
    """
    per_day: dict[str, dict[dt.date, list[int]]] = {}
    for e in in_log_order(events):
        row = per_day.setdefault(e["stream_id"], {}).setdefault(day_of(e), [0, 0])
        added, removed = added_and_removed(e)
        row[0] += added
        row[1] += removed
    out = []
    for item in sorted(per_day):
        level = 0
        for day in sorted(per_day[item]):
            added, removed = per_day[item][day]
            level += added - removed
            out.append((item, day, added, removed, added - removed, level))
    return out


def stockouts(events: Iterable[Event]) -> list[tuple]:
    """(item, start_day, end_day, days, ongoing): stock 0 at a day's end after having been positive.

    A stockout starts on a day with events ending at zero once some earlier such day ended
    positive, and ends on the next day with events that does not end at zero; a day with
    only events of other types is such a day, at the level of the day before. (In business
    time a backdated removal can take a day below zero: zero after only negative days is none.)
    """
    by_item: dict[str, list[tuple[dt.date, int]]] = {}
    for item, day, *_, level in daily_stock(events):
        by_item.setdefault(item, []).append((day, level))
    out = []
    for item, days in sorted(by_item.items()):
        been_positive, start = False, None
        for day, level in days:
            if level == 0 and start is None and been_positive:
                start = day
            elif level != 0 and start is not None:
                out.append((item, start, day, (day - start).days, False))
                start = None
            been_positive = been_positive or level > 0
        if start is not None:
            out.append((item, start, None, None, True))
    return out


def top_movers(events: Iterable[Event], days: int = TOP_MOVERS_DAYS) -> list[tuple]:
    """(item, added, removed, net_change, abs_change, window_start, window_end) over the last ``days`` days of data."""
    rows = daily_stock(events)
    if not rows:
        return []
    end = max(r[1] for r in rows)
    start = end - dt.timedelta(days=days - 1)
    sums: dict[str, list[int]] = {}
    for item, day, added, removed, net, _ in rows:
        if day >= start:
            s = sums.setdefault(item, [0, 0, 0])
            s[0] += added
            s[1] += removed
            s[2] += net
    out = [(item, a, r, n, abs(n), start, end) for item, (a, r, n) in sums.items()]
    return sorted(out, key=lambda r: (-r[4], r[0]))


#: Built-in projection name -> its reference.
PROJECTIONS = {
    "most_collected_items": most_collected_items,
    "item_origins": item_origins,
    "daily_flows": daily_flows,
    "daily_stock": daily_stock,
    "stockouts": stockouts,
    "top_movers": top_movers,
}


def compare(this: list[tuple], other: list[tuple]) -> list[tuple]:
    """Rows of Inventory.compare: (item, quantity here, quantity there, change), for items in stock on either side."""
    here = {row[0]: row[1] for row in this}
    there = {row[0]: row[1] for row in other}
    return [(item, here.get(item, 0), there.get(item, 0), there.get(item, 0) - here.get(item, 0))
            for item in sorted(set(here) | set(there))]
