"""Rich HTML summaries for Jupyter (``_repr_html_``): what a notebook user wants at a glance.

A leaf: the objects shown hand in their facts as rows, so this module imports none of them.
"""

from __future__ import annotations

import datetime as dt
import html
from typing import Any


def html_table(title: str, rows: list[tuple[str, Any]]) -> str:
    """A titled two-column table of (label, value) rows, every value escaped."""
    body = "".join(
        f"<tr><th style='text-align:left;padding-right:1em'>{html.escape(k)}</th>"
        f"<td style='text-align:left'>{html.escape(str(v))}</td></tr>"
        for k, v in rows
    )
    return f"<div><strong>{html.escape(title)}</strong><table>{body}</table></div>"


def ms_to_iso(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, tz=dt.timezone.utc).isoformat(timespec="seconds")
