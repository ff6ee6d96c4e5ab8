"""Rich HTML summaries for Jupyter (``_repr_html_``): what a notebook user wants at a glance."""

from __future__ import annotations

import html
from typing import TYPE_CHECKING, Any

import polars as pl

if TYPE_CHECKING:
    from eventlog.inventory import Inventory, ProjectionHandle
    from eventlog.log import EventLog


def _table(title: str, rows: list[tuple[str, Any]]) -> str:
    body = "".join(
        f"<tr><th style='text-align:left;padding-right:1em'>{html.escape(k)}</th>"
        f"<td style='text-align:left'>{html.escape(str(v))}</td></tr>"
        for k, v in rows
    )
    return f"<div><strong>{html.escape(title)}</strong><table>{body}</table></div>"


def log_facts(log: EventLog) -> list[tuple[str, Any]]:
    head = log.head()
    counts = (
        log.scan(as_of=head, ordered=False).group_by("event_type").len().sort("event_type").collect()
        if head else pl.DataFrame({"event_type": [], "len": []})
    )
    last = next((c for c in log.history(1)), {})
    operation = last.get("eventlog.operation") or last.get("operation", "")
    when = last.get("timestamp")
    return [
        ("store", str(log.path)),
        ("schema", log.schema.name),
        ("head seq", f"{head:,}"),
        ("Delta version", log.version),
        ("events by type", ", ".join(f"{t}: {n:,}" for t, n in counts.rows()) or "none"),
        ("last commit", f"{operation} at {_ms_to_iso(when)}" if when else "none"),
    ]


def log_html(log: EventLog) -> str:
    return _table("EventLog", log_facts(log))


def inventory_html(inventory: Inventory) -> str:
    head = inventory.log.head()
    snaps = inventory.snapshots.list()
    newest = snaps[-1].seq if snaps else None
    rows = log_facts(inventory.log)
    rows.append(("snapshots", f"{len(snaps)}; newest at seq {newest:,} (lag {head - newest:,})" if snaps else "none"))
    for status in inventory.projections_status():
        lag = "not built" if status.checkpoint is None else f"lag {status.lag:,}"
        rows.append((f"projection {status.name}", f"{status.mode}, {lag}"))
    return _table("Inventory", rows)


def projection_html(handle: ProjectionHandle) -> str:
    status = handle.status()
    return _table(f"Projection {handle.name}", list(status.as_dict().items()))


def _ms_to_iso(ms: int) -> str:
    import datetime as dt

    return dt.datetime.fromtimestamp(ms / 1000, tz=dt.timezone.utc).isoformat(timespec="seconds")
