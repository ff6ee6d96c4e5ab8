"""Tables in Jupyter as an analyst reads them: strings without quotes.

Polars' own HTML shows every string in quotes (``"sword"``): a repr, not a table. After
``plain_tables()``, a DataFrame that ends a cell shows as an HTML table whose strings are
plain text, with its shape and column types, honouring ``pl.Config.set_tbl_rows`` and
``set_fmt_str_lengths``. Nothing else changes: ``print(df)`` and ``df._repr_html_()`` stay
polars' own.

Example:
    >>> import polars as pl
    >>> "<td>sword</td>" in frame_html(pl.DataFrame({"item": ["sword"]}))
    True
"""

from __future__ import annotations

import datetime as dt
import html
import os
from typing import Any

import polars as pl

__all__ = ["frame_html", "plain_tables"]

_STYLE = (
    "<style>.eventlog-frame td,.eventlog-frame th{text-align:left;white-space:pre-wrap}"
    ".eventlog-frame td.num{text-align:right}.eventlog-frame .null{color:#888;font-style:italic}"
    ".eventlog-frame .dtype{color:#888;font-weight:normal}</style>"
)


def plain_tables() -> None:
    """Show every polars DataFrame in this Jupyter session through ``frame_html``.

    Raises:
        RuntimeError: not inside IPython or Jupyter.
    """
    try:
        from IPython import get_ipython
    except ImportError:
        get_ipython = None
    shell = get_ipython() if get_ipython is not None else None
    if shell is None:
        raise RuntimeError("plain_tables() changes how Jupyter shows DataFrames; call it in a notebook")
    shell.display_formatter.formatters["text/html"].for_type(pl.DataFrame, frame_html)


def frame_html(frame: pl.DataFrame, *, max_rows: int | None = None, max_chars: int | None = None) -> str:
    """An HTML table of ``frame``: strings as plain text (escaped), nulls marked, long frames cut in the middle."""
    rows = max_rows if max_rows is not None else _env_int("POLARS_FMT_MAX_ROWS", 8)
    chars = max_chars if max_chars is not None else _env_int("POLARS_FMT_STR_LEN", 30)
    if rows < 0 or frame.height <= rows:
        shown, cut = frame, None
    else:
        head = max(1, (rows + 1) // 2)
        shown, cut = pl.concat([frame.head(head), frame.tail(max(0, rows - head))]), head
    numeric = [dtype.is_numeric() for dtype in frame.dtypes]
    header = "".join(
        f"<th>{html.escape(name)}<br><span class='dtype'>{html.escape(_dtype(dtype))}</span></th>"
        for name, dtype in zip(frame.columns, frame.dtypes)
    )
    body = []
    for i, row in enumerate(shown.iter_rows()):
        if i == cut:
            body.append("<tr>" + "<td>…</td>" * frame.width + "</tr>")
        cells = (_cell(value, chars, num) for value, num in zip(row, numeric))
        body.append("<tr>" + "".join(cells) + "</tr>")
    return (
        f"<div class='eventlog-frame'>{_STYLE}<small>shape: ({frame.height:,}, {frame.width})</small>"
        f"<table><thead><tr>{header}</tr></thead><tbody>{''.join(body)}</tbody></table></div>"
    )


def _cell(value: Any, chars: int, numeric: bool) -> str:
    if value is None:
        return "<td class='null'>null</td>"
    text = _text(value)
    if len(text) > chars:
        text = text[:chars] + "…"
    return f"<td class='num'>{html.escape(text)}</td>" if numeric else f"<td>{html.escape(text)}</td>"


def _text(value: Any) -> str:
    if isinstance(value, dt.datetime):
        zone = "" if value.tzinfo is None else (" UTC" if value.utcoffset() == dt.timedelta(0) else value.strftime(" %z"))
        return value.replace(tzinfo=None).isoformat(sep=" ") + zone
    if isinstance(value, float):
        return f"{value:.6g}" if abs(value) < 1e15 else repr(value)
    if isinstance(value, list):
        return "[" + ", ".join("null" if v is None else _text(v) for v in value) + "]"
    return str(value)


def _dtype(dtype: pl.DataType) -> str:
    """Polars' short name (``str``, ``i64``, ``datetime[μs, UTC]``), as in its own tables."""
    try:
        return str(dtype._string_repr())
    except (AttributeError, TypeError):  # a private helper: fall back to the class name
        return str(dtype).lower()


def _env_int(name: str, default: int) -> int:
    try:
        return int(os.environ[name])
    except (KeyError, ValueError):
        return default
