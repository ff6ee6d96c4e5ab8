"""Every frame in, through one conversion: EventLog.append, Inventory.record and the importers
take a table of any library that exports the Arrow C stream, a LazyFrame, or records."""

from __future__ import annotations

import ast
import datetime as dt
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import polars as pl
import pyarrow as pa
import pytest

import eventlog
from eventlog import EventLog, EventSchema, EventType, Field, Inventory
from eventlog.core.frames import as_frame
from eventlog.errors import ValidationError

T0 = dt.datetime(2024, 3, 1, 12, tzinfo=dt.timezone.utc)


class _StreamOnly:
    """Nothing but the PyCapsule interface: proof that no library is recognised by name."""

    def __init__(self, table: pa.Table) -> None:
        self._table = table

    def __arrow_c_stream__(self, requested_schema: object | None = None) -> object:
        return self._table.__arrow_c_stream__(requested_schema)


def _reader(frame: pl.DataFrame) -> pa.RecordBatchReader:
    table = frame.to_arrow()
    return pa.RecordBatchReader.from_batches(table.schema, table.to_batches())


SHAPES: dict[str, Callable[[pl.DataFrame], Any]] = {
    "polars DataFrame": lambda f: f,
    "polars LazyFrame": lambda f: f.lazy(),
    "pyarrow Table": lambda f: f.to_arrow(),
    "pyarrow RecordBatch": lambda f: f.to_arrow().combine_chunks().to_batches()[0],
    "pyarrow RecordBatchReader": _reader,
    "pandas DataFrame": lambda f: f.to_pandas(),
    "pandas DataFrame, unnamed index": lambda f: f.to_pandas().set_axis(list(range(10, 10 + f.height))),
    "DuckDB relation": lambda f: duckdb.from_arrow(f.to_arrow()),
    "__arrow_c_stream__ only": lambda f: _StreamOnly(f.to_arrow()),
    "list of dicts": lambda f: f.to_dicts(),
}


def _items() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "event_type": ["item_added", "item_added", "item_removed"],
            "item": ["sword", "O'Brien's shield ✓", "sword"],
            "quantity": [3, 1, 2],
            "rarity": ["rare", None, None],
            "origin": ["forge", "quest", None],
            "occurred_at": [T0, T0 + dt.timedelta(hours=1), T0 + dt.timedelta(hours=2)],
        }
    )


@pytest.mark.parametrize("shape", SHAPES)
def test_inventory_records_every_frame_shape(tmp_path: Path, shape: str) -> None:
    inventory = Inventory.open(tmp_path / "store")
    inventory.record(SHAPES[shape](_items()))
    assert inventory.get_items() == [("O'Brien's shield ✓", 1), ("sword", 1)]
    assert inventory.stock().filter(pl.col("item") == "sword")["rarity"].to_list() == ["rare"]


@pytest.mark.parametrize("shape", SHAPES)
def test_event_log_appends_every_frame_shape(tmp_path: Path, shape: str) -> None:
    schema = EventSchema([EventType("ping", (Field("n", "int64"), Field("note", "string", required=False)))])
    log = EventLog.create(tmp_path / "store", schema)
    frame = pl.DataFrame({"event_type": ["ping", "ping"], "stream_id": ["a", "b"], "n": [1, 2],
                          "note": ["x", None], "occurred_at": [T0, T0]})
    result = log.append(SHAPES[shape](frame))
    assert (result.first_seq, result.last_seq) == (1, 2)
    got = log.scan().select("stream_id", "n", "note").collect()
    assert got.rows() == [("a", 1, "x"), ("b", 2, None)]


@pytest.mark.parametrize("shape", ["polars LazyFrame", "pyarrow RecordBatch", "pandas DataFrame", "DuckDB relation"])
def test_an_invalid_row_is_named_with_the_item_column_in_every_shape(tmp_path: Path, shape: str) -> None:
    bad = _items().with_columns(item=pl.Series(["sword", "", "sword"]))
    with pytest.raises(ValidationError) as caught:
        Inventory.open(tmp_path / "store").record(SHAPES[shape](bad))
    assert (caught.value.row, caught.value.field) == (1, "item")


def test_a_frame_with_stream_id_instead_of_item_is_refused_in_every_shape(tmp_path: Path) -> None:
    inventory = Inventory.open(tmp_path / "store")
    renamed = _items().rename({"item": "stream_id"})
    for shape in ("polars LazyFrame", "pyarrow RecordBatch", "pandas DataFrame"):
        with pytest.raises(ValidationError, match="name the item column 'item'"):
            inventory.record(SHAPES[shape](renamed))


@pytest.mark.parametrize("thing", [pl.Series("n", [1, 2]), pa.chunked_array([[1, 2]]), "item_added", 42, {"a": [1]}])
def test_what_is_no_table_is_refused_by_name(thing: object) -> None:
    with pytest.raises(ValidationError, match="a table .*LazyFrame.*list of dicts"):
        as_frame(thing)


def test_the_conversion_does_not_import_pandas() -> None:
    """Objects are recognised by their Arrow interface, so converting never loads pandas.

    (The Delta writer underneath may load it when it is installed; that is not ours.)
    """
    code = (
        "import sys, duckdb, polars as pl\n"
        "from eventlog.core.validate import normalize\n"
        "from eventlog.model.schema import INVENTORY_SCHEMA\n"
        "table = pl.DataFrame({'event_type': ['item_added'], 'stream_id': ['a'], 'quantity': [1]}).to_arrow()\n"
        "for batch in (table, table.to_batches()[0], duckdb.from_arrow(table), table.to_pylist()):\n"
        "    normalize(batch, INVENTORY_SCHEMA)\n"
        "print('pandas' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_no_module_of_the_package_imports_pandas() -> None:
    package = Path(eventlog.__file__).parent
    for path in package.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            assert not any(n.split(".")[0] == "pandas" for n in names), f"{path} imports pandas"


def test_the_importers_share_the_conversion(tmp_path: Path) -> None:
    """A file read by the importers goes in as the same frame a caller's table would."""
    from eventlog.importers import import_file

    path = tmp_path / "items.ndjson"
    _items().with_columns(pl.col("occurred_at").dt.to_string("%Y-%m-%dT%H:%M:%S%:z")).write_ndjson(path)
    inventory = Inventory.open(tmp_path / "store")
    import_file(inventory, path)
    other = Inventory.open(tmp_path / "other")
    other.record(SHAPES["pandas DataFrame"](_items()))
    assert inventory.stock().drop("first_added_at", "last_changed_at").equals(
        other.stock().drop("first_added_at", "last_changed_at"))


def test_integer_sums_from_sql_come_back_as_int64_when_they_fit(tmp_path: Path) -> None:
    inventory = Inventory.open(tmp_path / "store")
    inventory.record(_items())
    got = inventory.sql("SELECT SUM(quantity) AS units, SUM(quantity) * 1e0 AS ratio, COUNT(*) AS n FROM events")
    assert got.schema == pl.Schema({"units": pl.Int64, "ratio": pl.Float64, "n": pl.Int64})
    assert got.row(0) == (6, 6.0, 3)
    views = eventlog.sql.query(inventory, "SELECT * FROM most_collected_items")
    assert all(not isinstance(t, pl.Decimal) and t != pl.Int128 for t in views.dtypes), views.schema


def test_a_sum_beyond_int64_keeps_its_wide_type() -> None:
    from eventlog.core.frames import narrow_integers

    wide = duckdb.sql("SELECT SUM(x) * CAST(10000000000000000000 AS HUGEINT) AS big, SUM(x) AS small FROM range(3) t(x)").pl()
    assert narrow_integers(wide).dtypes == [pl.Decimal(38, 0), pl.Int64]
