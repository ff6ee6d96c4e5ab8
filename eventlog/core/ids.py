"""Vectorised UUIDv7 event ids (RFC 9562): time-ordered, so Delta min/max stats prune on them."""

from __future__ import annotations

import os
import time

import numpy as np
import polars as pl
import pyarrow as pa

# Each byte value -> its two lowercase hex digits, as one uint16 in memory order.
_BYTE_TO_HEX = np.frombuffer(b"".join(f"{b:02x}".encode() for b in range(256)), dtype=np.uint16)
# (start, end) of the hex groups in the 32-digit form and where each lands in the 36-char form.
_GROUPS = ((0, 8, 0), (8, 12, 9), (12, 16, 14), (16, 20, 19), (20, 32, 24))


def uuid7_series(n: int, *, now_ms: int | None = None) -> pl.Series:
    """``n`` distinct UUIDv7 strings, ordered within the batch.

    Layout: 48-bit Unix ms | version 7 | 12 bits + 20 bits of rand_b holding the row's index
    (so ids sort in batch order) | variant | 42 random bits. Built as bytes in numpy:
    formatting a million ids costs milliseconds, not a Python loop.
    """
    ms = int(time.time() * 1000) if now_ms is None else now_ms
    idx = np.arange(n, dtype=np.uint64)
    rand = np.frombuffer(os.urandom(8 * n), dtype=np.uint64) if n else np.zeros(0, dtype=np.uint64)
    words = np.empty((n, 2), dtype=">u8")
    words[:, 0] = (np.uint64(ms) << np.uint64(16)) | np.uint64(0x7000) | ((idx >> np.uint64(20)) & np.uint64(0x0FFF))
    words[:, 1] = (
        np.uint64(0x8000_0000_0000_0000)
        | ((idx & np.uint64(0xFFFFF)) << np.uint64(42))
        | (rand & np.uint64((1 << 42) - 1))
    )
    raw = words.view(np.uint8).reshape(n, 16)
    digits = _BYTE_TO_HEX[raw].view(np.uint8)  # (n, 32)
    text = np.full((n, 36), ord("-"), dtype=np.uint8)
    for start, end, at in _GROUPS:
        text[:, at : at + end - start] = digits[:, start:end]
    offsets = np.arange(0, 36 * (n + 1), 36, dtype=np.int32)
    arr = pa.StringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(text.tobytes()))
    return pl.Series("event_id", arr)
