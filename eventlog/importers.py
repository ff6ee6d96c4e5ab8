"""Read CSV, Parquet and NDJSON files as event batches and append them: what ``eventlog import`` runs.

What for: a file from a spreadsheet, a warehouse export or a log shipper goes into a store
with the same checks as any batch, and its errors name the file, the line or row, and the
field. ``import_file`` is the whole command; ``read_file`` only reads, for a caller that
wants to look at or change the rows before appending them itself.

The readers keep timestamps as text so that validation parses them strictly (a timestamp
without an offset is refused, never guessed as UTC), never glob a path, and keep each NDJSON
value's JSON type (a number in a text column is an error, not the text of the number).

Example:
    >>> import tempfile, pathlib
    >>> from eventlog import Inventory
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "events.csv"
    >>> _ = path.write_text("event_type,item,quantity\\nitem_added,sword,2\\n", encoding="utf-8")
    >>> inventory = Inventory.open(tempfile.mkdtemp() + "/store")
    >>> import_file(inventory, path).count
    1
    >>> inventory.get_items()
    [('sword', 2)]
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import polars as pl
import pyarrow as pa
import pyarrow.json as pa_json

from eventlog.core.frames import as_frame
from eventlog.core.schema import EventSchema
from eventlog.core.validate import check_text_columns
from eventlog.errors import EventLogError, ImportRejectedError, InputFileError, ValidationError
from eventlog.inventory.inventory import Inventory
from eventlog.log import AppendResult, EventLog

__all__ = ["FORMATS", "ImportResult", "Rows", "import_file", "read_file", "read_schema"]

Format = Literal["csv", "parquet", "ndjson"]
#: The formats ``read_file`` reads, and the extensions it recognises for each.
FORMATS: dict[str, tuple[str, ...]] = {"csv": (".csv",), "parquet": (".parquet", ".pq"), "ndjson": (".ndjson", ".jsonl")}
_BY_EXTENSION = {ext: fmt for fmt, exts in FORMATS.items() for ext in exts}
_NAMES = {"csv": "CSV", "parquet": "Parquet", "ndjson": "NDJSON"}

#: An input file's rows: a frame (CSV, Parquet, NDJSON of the expected types) or records
#: that keep their JSON types (NDJSON with a value of another type, so validation names its row).
Rows = pl.DataFrame | list[dict[str, Any]]


@dataclass(frozen=True)
class ImportResult:
    """What ``import_file`` committed: one ``AppendResult`` per batch, in file order."""

    file: Path
    batches: tuple[AppendResult, ...]

    @property
    def count(self) -> int:
        """Events committed (a batch the store had already committed counts too)."""
        return sum(b.count for b in self.batches)

    @property
    def first_seq(self) -> int | None:
        return self.batches[0].first_seq if self.batches else None

    @property
    def last_seq(self) -> int | None:
        return self.batches[-1].last_seq if self.batches else None


def read_schema(path: str | os.PathLike[str]) -> EventSchema:
    """Read an event schema from a JSON file in ``EventSchema.to_json`` form.

    Raises:
        InputFileError: the file cannot be read, is not JSON, or is not a valid schema.

    Example:
        >>> import json, tempfile, pathlib
        >>> from eventlog import INVENTORY_SCHEMA
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "schema.json"
        >>> _ = path.write_text(json.dumps(INVENTORY_SCHEMA.to_json()), encoding="utf-8")
        >>> read_schema(path).name
        'inventory'
    """
    path = Path(path)
    try:
        return EventSchema.from_json(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        raise InputFileError(f"{path}: cannot read the schema as JSON: {reason}") from None
    except EventLogError as exc:
        raise InputFileError(f"{path}: not a valid event schema: {exc}") from None
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        # A malformed schema reaches EventSchema.from_json's built-in errors (a missing key, a list for a dict).
        detail = f"missing key {exc}" if isinstance(exc, KeyError) else str(exc)
        raise InputFileError(f"{path}: not a valid event schema: {detail}") from None


def read_file(
    path: str | os.PathLike[str], *, schema: EventSchema, format: Format | None = None, inventory: bool = False
) -> Rows:
    """Read an input file as one batch for a store of ``schema``; nothing is written.

    Args:
        path: a CSV, Parquet or NDJSON file (never read as a glob pattern).
        schema: the store's schema: it gives the column types a CSV is parsed with.
        format: ``"csv"``, ``"parquet"`` or ``"ndjson"``. Default: from the extension (see ``FORMATS``).
        inventory: the rows name their stream ``item`` (an ``Inventory.record`` batch), not ``stream_id``.

    Raises:
        InputFileError: no such file, an unknown extension or format, bytes that are not
            UTF-8 (naming the line), a line that is not a JSON object, a file its reader
            cannot parse.
        ImportRejectedError: a value that does not parse as its column's type (naming the
            row and field).

    Example:
        >>> import tempfile, pathlib
        >>> from eventlog import INVENTORY_SCHEMA
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "events.ndjson"
        >>> _ = path.write_text('{"event_type": "item_added", "item": "o\\'brien", "quantity": 3}\\n', encoding="utf-8")
        >>> read_file(path, schema=INVENTORY_SCHEMA, inventory=True).select("item", "quantity").rows()
        [("o'brien", 3)]
    """
    path = Path(path)
    if not path.is_file():
        raise InputFileError(f"{path}: {'is a directory' if path.is_dir() else 'no such file'}")
    fmt = _format(path, format)
    try:
        if fmt == "parquet":
            return pl.read_parquet(path, glob=False)
        types = _text_schema(schema, inventory=inventory)
        if fmt == "ndjson":
            typed = _read_ndjson_typed(path, types)
            return typed if typed is not None else _read_ndjson(path)
        try:
            return pl.read_csv(path, glob=False, schema_overrides=types)
        except pl.exceptions.ComputeError:  # polars names the column of a value it cannot parse, not the row
            check_text_columns(pl.read_csv(path, glob=False, infer_schema=False), types)
            raise
    except ValidationError as exc:
        raise ImportRejectedError(path.name, exc) from None
    except (pl.exceptions.PolarsError, OSError) as exc:
        if fmt == "csv" and "utf-8" in str(exc):
            _decode(path, path.read_bytes())  # raises, naming the line
        first = next((line for line in str(exc).splitlines() if line.strip()), type(exc).__name__)
        raise InputFileError(f"{path}: cannot read as {_NAMES[fmt]}: {first.strip()}") from None


def import_file(
    target: EventLog | Inventory,
    path: str | os.PathLike[str],
    *,
    format: Format | None = None,
    batch_size: int | None = None,
) -> ImportResult:
    """Append the events of a CSV, Parquet or NDJSON file, as ``eventlog import`` does.

    Into an ``Inventory`` the rows are recorded (columns event_type, item, quantity, rarity,
    origin, occurred_at, event_id; removals checked against the stock); into an ``EventLog``
    they are appended (event_type, stream_id, occurred_at, event_id and the schema's fields).
    Timestamps need an offset (``2024-03-01T12:00:00+00:00``).

    Args:
        target: the store to write to.
        path: the input file.
        format: ``"csv"``, ``"parquet"`` or ``"ndjson"``. Default: from the extension.
        batch_size: commit every N rows separately, so a file larger than memory allows per
            commit goes in; a refused batch leaves the ones before it committed. Default:
            the whole file in one all-or-nothing batch.

    Raises:
        InputFileError: the file cannot be read (see ``read_file``).
        ImportRejectedError: the store refused a batch; the error names the file, the row
            and field when the reason has them, and what stayed committed.

    Example:
        >>> import tempfile, pathlib
        >>> from eventlog import EventLog, EventSchema, EventType, Field
        >>> log = EventLog.create(tempfile.mkdtemp() + "/store", EventSchema([EventType("ping", (Field("n", "int64"),))]))
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "pings.csv"
        >>> _ = path.write_text("event_type,stream_id,n\\nping,a,1\\nping,b,2\\nping,a,3\\n", encoding="utf-8")
        >>> result = import_file(log, path, batch_size=2)
        >>> (result.count, len(result.batches), result.first_seq, result.last_seq)
        (3, 2, 1, 3)
    """
    if batch_size is not None and batch_size < 1:
        raise ValidationError(f"batch_size is at least 1, not {batch_size}", field="batch_size")
    path = Path(path)
    log = target.log if isinstance(target, Inventory) else target
    rows = read_file(path, schema=log.schema, format=format, inventory=isinstance(target, Inventory))
    write = target.record if isinstance(target, Inventory) else target.append
    done: list[AppendResult] = []
    size = batch_size or max(len(rows), 1)
    for offset, batch in _batches(rows, size):
        try:
            done.append(write(batch))
        except EventLogError as exc:
            seqs = (done[0].first_seq, done[-1].last_seq) if done else None
            raise ImportRejectedError(
                path.name, exc, batch_row=offset if batch_size else None,
                committed=sum(r.count for r in done), seq_range=seqs,
            ) from exc
    return ImportResult(path, tuple(done))


def _format(path: Path, given: str | None) -> str:
    if given is not None:
        if given not in FORMATS:
            raise InputFileError(f"{path}: unknown format {given!r}; pass csv, parquet or ndjson")
        return given
    fmt = _BY_EXTENSION.get(path.suffix.lower())
    if fmt is None:
        raise InputFileError(
            f"{path}: cannot tell the format from the extension {path.suffix or '(none)'!r}; "
            "name the format (--format, or format= in Python): csv, parquet or ndjson"
        )
    return fmt


def _read_ndjson_typed(path: Path, types: dict[str, pl.DataType]) -> pl.DataFrame | None:
    """The fast path: pyarrow reads the file strictly against the expected types.

    Any value of another JSON type (a number for a name, text for a quantity) makes it fail
    where polars would convert silently; then the records path reads the file and
    validation names the row. The keys are taken from a first, untyped read, so a key no
    line has stays a missing column, as on the records path.
    """
    try:
        keys = pa_json.read_json(path).column_names
        wanted = {name: pl.String() if dtype == pl.Date else dtype for name, dtype in types.items() if name in keys}
        expected = pl.DataFrame(schema=wanted).to_arrow().schema
        options = pa_json.ParseOptions(explicit_schema=expected, unexpected_field_behavior="infer")
        table = pa_json.read_json(path, parse_options=options)
        table.validate(full=True)  # pyarrow does not check that strings are UTF-8
        frame = as_frame(table)  # the conversion every write shares (core/frames.py)
    except (pa.ArrowException, OSError):
        return None
    return frame if frame is not None and frame.height else None


def _read_ndjson(path: Path) -> list[dict[str, Any]]:
    """One JSON object a line (blank lines skipped) as records; row i of the batch is the i-th object."""
    records = []
    for number, line in enumerate(_decode(path, path.read_bytes()).split("\n"), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputFileError(f"{path}: line {number} is not JSON: {exc.msg} (column {exc.colno})") from None
        if not isinstance(record, dict):
            raise InputFileError(f"{path}: line {number} is not a JSON object: {line.strip()[:40]!r}")
        records.append(record)
    return records


def _decode(path: Path, data: bytes) -> str:
    """The file as UTF-8 text (a byte-order mark allowed), or an error naming the line of the first bad byte."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise InputFileError(f"{path}: line {line} is not valid utf-8 (byte {data[exc.start]:#04x}); "
                             "save the file as UTF-8") from None


def _text_schema(schema: EventSchema, *, inventory: bool) -> dict[str, pl.DataType]:
    """Column types for a CSV: the schema's, except timestamps, which stay strings."""
    envelope = ["event_id", "item" if inventory else "stream_id", "event_type", "occurred_at"]
    types: dict[str, pl.DataType] = {name: pl.String() for name in envelope}
    for name, dtype in schema.payload.items():
        types[name] = pl.String() if isinstance(dtype, pl.Datetime) else dtype
    return types


def _batches(rows: Rows, size: int) -> Iterator[tuple[int, Rows]]:
    for offset in range(0, max(len(rows), 1), size):
        yield offset, rows[offset : offset + size]
