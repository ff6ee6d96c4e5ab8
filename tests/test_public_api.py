"""The public names: ``import eventlog`` gives every one of them, loaded on first use."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import eventlog


def _python(code: str) -> str:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()


def test_a_plain_import_exposes_eventlog_sql_and_eventlog_connect(tmp_path: Path) -> None:
    store = tmp_path / "store"
    eventlog.Inventory.open(store).add_item("sword", 3)
    code = (
        "import eventlog\n"
        f"con = eventlog.connect({str(store)!r})\n"
        "print(con.sql('SELECT item, quantity FROM inventory').fetchall(), eventlog.sql.connect is eventlog.connect)\n"
    )
    assert _python(code) == "[('sword', 3)] True"


def test_every_name_in_all_resolves_and_all_is_sorted() -> None:
    assert eventlog.__all__ == sorted(eventlog.__all__)
    for name in eventlog.__all__:
        assert getattr(eventlog, name) is not None
    assert {"connect", "sql", "errors", "Inventory", "EventLog"} <= set(dir(eventlog))


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'Inventroy'"):
        eventlog.Inventroy  # noqa: B018


def test_importing_eventlog_loads_no_heavy_library() -> None:
    """The command line and ``import eventlog`` start fast: polars, DuckDB and Delta load on first use."""
    code = "import sys, eventlog\nprint([m for m in ('polars', 'pyarrow', 'duckdb', 'deltalake') if m in sys.modules])"
    assert _python(code) == "[]"
