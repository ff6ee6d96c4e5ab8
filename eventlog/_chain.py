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

import numpy as np
import polars as pl
import pyarrow as pa

ENCODING_VERSION = "v1"
GENESIS = "0" * 64


def events_hash(events: pl.DataFrame, columns: dict[str, pl.DataType]) -> str:
    """The event hash of ``events`` (in seq order) for the schema's ``columns``."""
    digest = hashlib.sha256()
    for name, dtype in columns.items():
        series = events.get_column(name) if name in events.columns else pl.Series(name, [None] * events.height, dtype)
        digest.update(f"col:{name}\n".encode())
        _feed(digest, series.rechunk(), dtype)
    return digest.hexdigest()


def commit_hash(previous: str | None, first_seq: int, last_seq: int, events_digest: str) -> str:
    text = f"{ENCODING_VERSION}|{previous or GENESIS}|{first_seq}|{last_seq}|{events_digest}"
    return hashlib.sha256(text.encode()).hexdigest()


def _feed(digest: hashlib._Hash, series: pl.Series, dtype: pl.DataType) -> None:
    present = series.is_not_null().to_numpy().astype(np.uint8)
    digest.update(present.tobytes())
    if dtype == pl.String:
        _feed_strings(digest, series)
        return
    digest.update(_as_int64(series, dtype).astype(">i8").tobytes())


def _as_int64(series: pl.Series, dtype: pl.DataType) -> np.ndarray:
    if isinstance(dtype, pl.Datetime):
        values = series.dt.cast_time_unit("us").dt.epoch("us")
    elif dtype == pl.Date:
        values = series.dt.epoch("d").cast(pl.Int64)
    elif dtype == pl.Boolean:
        values = series.cast(pl.Int64)
    elif dtype == pl.Float64:
        return series.fill_null(0.0).to_numpy().view(np.int64)
    elif dtype.is_integer():
        values = series.cast(pl.Int64)
    else:
        raise TypeError(f"no canonical encoding for {series.name!r} of type {dtype}")
    return values.fill_null(0).to_numpy()


def _feed_strings(digest: hashlib._Hash, series: pl.Series) -> None:
    lengths = series.str.len_bytes().fill_null(0).cast(pl.Int64).to_numpy()
    digest.update(lengths.astype(">i8").tobytes())
    array = series.fill_null("").to_arrow()  # a null contributes no bytes, whatever its slot holds
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    if not pa.types.is_large_string(array.type):
        array = array.cast(pa.large_string())
    _, offsets, data = array.buffers()
    if data is None:
        return
    bounds = np.frombuffer(offsets, dtype=np.int64)[array.offset : array.offset + len(array) + 1]
    digest.update(memoryview(data)[int(bounds[0]) : int(bounds[-1])])
