"""The hash chain: every append commit records the hash of its events and of the previous commit.

Canonical encoding, version 1 — defined on values, so it does not depend on library
versions, file layout or compaction. The events of a commit are taken in seq order; for
each column of the store's schema, in schema order (envelope, then payload), SHA-256 is fed:

- ``col:<name>\\n`` (UTF-8);
- one byte per event: 1 if the value is present, 0 if null;
- one signed 64-bit big-endian integer per event (0 when null): integers as they are,
  timestamps as microseconds since the Unix epoch (UTC), dates as days since the epoch,
  booleans as 0/1, float64 as its IEEE-754 bit pattern, strings as their UTF-8 byte length;
- for string columns, then, the UTF-8 bytes of all present values, concatenated.

The event hash is the hex digest. The commit hash is SHA-256 of the text
``v1|<previous commit hash, or 64 zeros for the first>|<first_seq>|<last_seq>|<event hash>``.
A commit that holds several batches (a group commit) is hashed the same way over all its
events, first_seq to last_seq: the chain has one link per commit, however many batches.

Evolved schemas (``EventLog.evolve``). "The store's schema" above is the schema *version the
commit was committed under*: a commit made under version 2 or later records
``eventlog.schema_version`` in its commit metadata; a commit without it was made under
version 1 (every commit of a store that never evolved, so their hashes are unchanged). The
columns are those of that version, in its order, with their *stored* values: columns added
by later versions are not hashed for older commits (they were not part of what was
committed), and read-time rules (defaults of later fields, upcasters) play no part.
Evolution only adds columns to the table and never rewrites a file, so the stored values of
a commit's columns stay what was hashed. ``verify`` also checks that each commit's version
is the one the store's schema history puts its seq range under.

Column-major fixed-width integers let numpy produce the bytes straight from Arrow buffers:
hashing a million events costs a fraction of the Parquet write.
"""

from __future__ import annotations

import hashlib
from typing import Any, Protocol

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

ENCODING_VERSION = "v1"
GENESIS = "0" * 64


def events_hash(events: pl.DataFrame | pa.Table | ColumnSource, columns: dict[str, pl.DataType]) -> str:
    """The event hash of ``events`` (in seq order) for the schema's ``columns``.

    A frame, an Arrow table or any ``ColumnSource`` (the writer's rows of a commit, built column
    by column) is hashed a column at a time, and each column a block of rows at a time: the
    memory it takes is that of one block's encoding, not of the commit's.
    """
    digest = hashlib.sha256()
    height = events.height if isinstance(events, pl.DataFrame) else events.num_rows
    names = events.columns if isinstance(events, pl.DataFrame) else events.column_names
    for name, dtype in columns.items():
        column: pl.Series | pa.Array | pa.ChunkedArray | Blocks | None = None
        if name in names:
            column = events.get_column(name) if isinstance(events, pl.DataFrame) else events.column(name)
        _feed_column(digest, f"col:{name}\n".encode(), column, dtype, height)
    return digest.hexdigest()


#: Rows encoded at a time when hashing a column.
_BLOCK = 1 << 17


def _feed_column(digest: Any, header: bytes, column: pl.Series | pa.Array | pa.ChunkedArray | Blocks | None,
                 dtype: pl.DataType, height: int) -> None:
    """One column's canonical bytes (see the module's docstring): its presence bytes, its integers,
    then its string bytes, each fed a block of rows at a time."""
    def block(start: int) -> pa.Array:
        if column is None:
            return pa.nulls(min(_BLOCK, height - start), type=pa.int64() if dtype != pl.String else pa.large_string())
        part = column.slice(start, _BLOCK)
        if isinstance(part, pl.Series):
            return part.to_arrow()
        return part.combine_chunks() if isinstance(part, pa.ChunkedArray) else part

    digest.update(header)
    starts = range(0, height, _BLOCK)
    lengths = getattr(column, "byte_lengths", None)
    if dtype == pl.String and (isinstance(column, pl.Series) or lengths is not None):
        # Presence and byte lengths without the text (Polars' own, or the column's): the text
        # is converted (or made) once, in the last pass.
        for start in starts:
            if isinstance(column, pl.Series):
                part = column.slice(start, _BLOCK)
                valid = part.is_not_null().cast(pl.UInt8).to_numpy() if part.null_count() else None
                digest.update(b"\x01" * part.len() if valid is None else valid.data)
            else:
                digest.update(b"\x01" * min(_BLOCK, height - start))  # a made column has no nulls
        for start in starts:
            if isinstance(column, pl.Series):
                counted = column.slice(start, _BLOCK).str.len_bytes().fill_null(0).cast(pl.Int64).to_numpy()
            else:
                counted = lengths(start, _BLOCK)  # type: ignore[misc]
            digest.update(counted.astype(">i8").data)
    else:
        values = []
        for start in starts:
            valid, ints, offsets, _data = _encode(block(start), dtype)
            digest.update(b"\x01" * len(ints) if valid is None else valid.data)
            values.append(ints)
        for ints in values:
            digest.update(ints.data)
        del values
    if dtype == pl.String:
        for start in starts:
            if isinstance(column, pl.Series):  # nulls as "", so that their slots hold no bytes
                part = column.slice(start, _BLOCK)
                array = (part.fill_null("") if part.null_count() else part).to_arrow().cast(pa.large_string())
            else:
                array = block(start)
            _valid, _ints, offsets, data = _encode(array, dtype)
            if offsets is not None:
                digest.update(data[int(offsets[0]) : int(offsets[-1])])


class ColumnSource(Protocol):
    """Rows whose columns can be taken one at a time (``pa.Table`` is one)."""

    @property
    def num_rows(self) -> int: ...

    @property
    def column_names(self) -> list[str]: ...

    def column(self, name: str) -> pa.Array | pa.ChunkedArray | pl.Series | Blocks: ...


class Blocks(Protocol):
    """A column made a block of rows at a time (``slice`` gives those rows as one array)."""

    def slice(self, offset: int, length: int) -> pa.Array: ...


def _feed(digest: Any, header: bytes, valid: np.ndarray | None, values: np.ndarray, offsets: np.ndarray | None,
          data: memoryview, start: int, stop: int) -> None:
    """One column's canonical bytes for the events at positions start..stop-1."""
    digest.update(header)
    digest.update(b"\x01" * (stop - start) if valid is None else valid[start:stop].data)
    digest.update(values[start:stop].data)
    if offsets is not None:
        digest.update(data[int(offsets[start]) : int(offsets[stop])])


def commit_hash(previous: str | None, first_seq: int, last_seq: int, events_digest: str) -> str:
    text = f"{ENCODING_VERSION}|{previous or GENESIS}|{first_seq}|{last_seq}|{events_digest}"
    return hashlib.sha256(text.encode()).hexdigest()


class EncodedEvents:
    """The canonical bytes of many consecutive events, ready to hash any run of them.

    Encoding once and slicing per commit keeps ``verify`` cheap on stores made of many
    small commits: each commit costs a few buffer slices per column, not a conversion.
    """

    def __init__(self, events: pl.DataFrame | pa.Table, columns: dict[str, pl.DataType]) -> None:
        height = events.num_rows if isinstance(events, pa.Table) else events.height
        self.height = height
        names = events.column_names if isinstance(events, pa.Table) else events.columns
        present = [name for name in columns if name in names]
        if isinstance(events, pa.Table):
            table = events.select(present) if present else None
        else:
            table = events.select(present).to_arrow() if present else None
        self._columns = []
        for name, dtype in columns.items():
            if table is not None and name in present:
                array = table.column(name).combine_chunks()
            else:
                array = pa.nulls(height, type=pa.int64() if dtype != pl.String else pa.large_string())
            self._columns.append((f"col:{name}\n".encode(), *_encode(array, dtype)))

    def digest(self, start: int, stop: int) -> str:
        """The event hash of the events at positions start..stop-1."""
        digest = hashlib.sha256()
        for header, valid, values, offsets, data in self._columns:
            _feed(digest, header, valid, values, offsets, data, start, stop)
        return digest.hexdigest()


_Encoded = tuple[np.ndarray | None, np.ndarray, np.ndarray | None, memoryview]


def _encode(array: pa.Array, dtype: pl.DataType) -> _Encoded:
    """(presence bytes or None when all present, big-endian int64s, string offsets, string bytes)."""
    valid = None if array.null_count == 0 else array.is_valid().to_numpy(zero_copy_only=False).astype(np.uint8)
    if dtype != pl.String:
        return valid, _as_int64(array, dtype).astype(">i8"), None, memoryview(b"")
    if pa.types.is_null(array.type):
        return valid, np.zeros(len(array), dtype=">i8"), np.zeros(len(array) + 1, dtype=np.int64), memoryview(b"")
    array = array.cast(pa.large_string())
    bounds, lengths, data = _string_parts(array)
    if valid is not None and lengths[valid == 0].any():  # a null contributes no bytes: drop what its slot holds
        bounds, lengths, data = _string_parts(pc.fill_null(array, ""))
    return valid, lengths.astype(">i8"), bounds, memoryview(data) if data is not None else memoryview(b"")


def _string_parts(array: pa.Array) -> tuple[np.ndarray, np.ndarray, pa.Buffer | None]:
    """(offsets, byte length of each value, data buffer) of a large_string array."""
    _, offsets, data = array.buffers()
    bounds = np.frombuffer(offsets, dtype=np.int64)[array.offset : array.offset + len(array) + 1]
    return bounds, np.diff(bounds), data


def _as_int64(array: pa.Array, dtype: pl.DataType) -> np.ndarray:
    if pa.types.is_null(array.type):
        return np.zeros(len(array), dtype=np.int64)
    if isinstance(dtype, pl.Datetime):
        array = pc.cast(array, pa.timestamp("us", tz=getattr(array.type, "tz", None))).cast(pa.int64())
    elif dtype == pl.Date:
        array = array.cast(pa.int32()).cast(pa.int64())
    elif dtype == pl.Float64:
        return pc.fill_null(array.cast(pa.float64()), 0.0).to_numpy(zero_copy_only=False).view(np.int64)
    elif dtype == pl.Boolean or dtype.is_integer():
        array = array.cast(pa.int64())
    else:
        raise TypeError(f"no canonical encoding for a column of type {dtype}")
    return (pc.fill_null(array, 0) if array.null_count else array).to_numpy(zero_copy_only=False)
