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
    """``n`` distinct UUIDv7 strings, ordered within the batch (see :func:`uuid7_array`)."""
    return pl.Series("event_id", uuid7_array(n, now_ms=now_ms))


def uuid7_array(n: int, *, now_ms: int | None = None) -> pa.LargeStringArray:
    """``n`` distinct UUIDv7 strings, ordered within the batch, as one Arrow array (see :class:`Uuid7s`)."""
    return Uuid7s(n, now_ms=now_ms).take(np.arange(n, dtype=np.uint64))


class Uuid7s:
    """The UUIDv7s of a batch of ``n`` rows, formatted for any rows on demand.

    Layout: 48-bit Unix ms | version 7 | 12 bits + 20 bits of rand_b holding the row's index
    (so ids sort in batch order) | variant | 42 random bits. Only the random bits are kept (8
    bytes a row, drawn once); the text of any rows is built from them in numpy, a block at a
    time straight into the array's buffer, as often as it is asked for: always the same ids.
    """

    def __init__(self, n: int, *, now_ms: int | None = None) -> None:
        self._ms = int(time.time() * 1000) if now_ms is None else now_ms
        self._rand = np.frombuffer(os.urandom(8 * n), dtype=np.uint64) if n else np.zeros(0, dtype=np.uint64)

    def slice(self, offset: int, length: int) -> pa.LargeStringArray:
        stop = min(len(self._rand), offset + length)
        return self.take(np.arange(offset, max(offset, stop), dtype=np.uint64))

    def take(self, rows: np.ndarray) -> pa.LargeStringArray:
        rows = np.asarray(rows, dtype=np.uint64)
        n = len(rows)
        text = np.full((n, 36), ord("-"), dtype=np.uint8)
        for start in range(0, n, _BLOCK):
            idx = rows[start : start + _BLOCK]
            block = text[start : start + len(idx)]
            # The first 8 bytes (ms, version, the index's top 12 bits) change once per 2**20 rows: their
            # 18 characters are formatted once per value and copied to each row.
            high = idx >> np.uint64(20)
            low = int(high.min()) if len(idx) else 0
            heads = np.array([(np.uint64(self._ms) << np.uint64(16)) | np.uint64(0x7000) | np.uint64(h & 0x0FFF)
                              for h in range(low, int(high.max()) + 1 if len(idx) else 0)], dtype=">u8")
            head_text = np.full((len(heads), 36), ord("-"), dtype=np.uint8)
            _place(head_text, _BYTE_TO_HEX[heads.view(np.uint8).reshape(-1, 8)].view(np.uint8), _HEAD)
            if len(heads) == 1:
                block[:, :18] = head_text[0, :18]  # broadcast: one memcpy-like pass
            else:
                block[:, :18] = head_text[(high - np.uint64(low)).astype(np.intp), :18]
            tail = (
                np.uint64(0x8000_0000_0000_0000)
                | ((idx & np.uint64(0xFFFFF)) << np.uint64(42))
                | (self._rand[idx] & np.uint64((1 << 42) - 1))
            ).astype(">u8")
            _place(block, _BYTE_TO_HEX[tail.view(np.uint8).reshape(-1, 8)].view(np.uint8), _TAIL)
        offsets = np.arange(0, 36 * (n + 1), 36, dtype=np.int64)
        return pa.LargeStringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(text))


#: The hex digits of the first and of the last 8 bytes as record fields, and where each group lands
#: in the 36-character form (a field copy per row is faster than a strided copy per group).
_HEAD = (np.dtype({"names": ["g1", "g2", "g3"], "formats": ["V8", "V4", "V4"], "offsets": [0, 8, 12], "itemsize": 16}),
         np.dtype({"names": ["g1", "g2", "g3"], "formats": ["V8", "V4", "V4"], "offsets": [0, 9, 14], "itemsize": 36}))
_TAIL = (np.dtype({"names": ["g4", "g5"], "formats": ["V4", "V12"], "offsets": [0, 4], "itemsize": 16}),
         np.dtype({"names": ["g4", "g5"], "formats": ["V4", "V12"], "offsets": [19, 24], "itemsize": 36}))


def _place(text: np.ndarray, digits: np.ndarray, layout: tuple[np.dtype, np.dtype]) -> None:
    """Copy ``digits`` ((rows, 16) hex characters) into their places of ``text`` ((rows, 36))."""
    source, target = digits.view(layout[0]).reshape(-1), text.view(layout[1]).reshape(-1)
    for name in layout[0].names or ():
        target[name] = source[name]


#: Rows formatted at a time (their temporary arrays are a few MiB).
_BLOCK = 1 << 16
