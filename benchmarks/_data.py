"""Benchmark data: one store per size, built once through ``Inventory.record`` and cached.

Layout of ``<data dir>/<size>-<seed>/``:

- ``store/``        the inventory store holding the first ``n`` events (as ingestion left it);
- ``extra.parquet`` the events that follow them in log order: first the 1% tail used by the
                    warm-read and incremental-update benchmarks, then the batches the
                    ``record()`` benchmark appends;
- ``meta.json``     what was generated (written last: a folder without it is incomplete).

All events come from one ``eventlog.datagen.generate(total, seed=...)`` stream, so appending
the extra events after the store's never breaks the stock invariant. The stream's time span
is stretched by ``total / n`` so that the store itself covers about a year.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import polars as pl

#: The record benchmark appends at most this many batches of at most this many events.
MAX_RECORD_BATCHES = 5
MAX_RECORD_BATCH = 1_000_000
_INGEST_BATCH = 1_000_000
_DAYS = 365
_N_ITEMS = 1000
_FORMAT = 1  # bump when the layout or the generation arguments change

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kKmM]?)\s*$")


def parse_size(text: str) -> int:
    """``"20k"`` -> 20_000, ``"1M"`` -> 1_000_000, ``"1.5M"`` -> 1_500_000."""
    m = _SIZE.match(text)
    if not m:
        raise ValueError(f"size {text!r}: write e.g. 200k, 1M or 10M")
    value = float(m.group(1)) * {"": 1, "k": 1_000, "m": 1_000_000}[m.group(2).lower()]
    if value < 1000 or value != int(value):
        raise ValueError(f"size {text!r}: at least 1k whole events")
    return int(value)


def size_label(n: int) -> str:
    """The inverse of :func:`parse_size`, for names and tables."""
    for unit, div in (("M", 1_000_000), ("k", 1_000)):
        if n >= div:
            value = n / div
            return f"{value:g}{unit}" if value == round(value, 3) else f"{n:,}"
    return str(n)


@dataclass(frozen=True)
class Dataset:
    """A cached benchmark store and the events that may follow it."""

    n: int
    seed: int
    root: Path
    tail: int  # events of extra.parquet that make the 1% tail
    extra: int  # all events in extra.parquet
    days: int

    @property
    def label(self) -> str:
        return size_label(self.n)

    @property
    def store(self) -> Path:
        return self.root / "store"

    def tail_events(self) -> pl.DataFrame:
        return pl.read_parquet(self.root / "extra.parquet", n_rows=self.tail)

    def record_batches(self, count: int, size: int) -> list[pl.DataFrame]:
        """The ``count`` batches of ``size`` events that follow the tail, in log order."""
        if count * size > self.extra - self.tail:
            raise ValueError(f"{count} batches of {size} need more than the {self.extra - self.tail} cached events")
        rest = pl.scan_parquet(self.root / "extra.parquet").slice(self.tail, count * size).collect()
        return [rest.slice(i * size, size) for i in range(count)]


def ensure(n: int, seed: int, data_dir: Path, say: Callable[[str], None] = print) -> Dataset:
    """The dataset for ``n`` events, built unless a complete matching one is cached."""
    tail = max(1, n // 100)
    extra = tail + MAX_RECORD_BATCHES * min(MAX_RECORD_BATCH, n)
    total = n + extra
    days = max(1, round(_DAYS * total / n))
    meta = {"format": _FORMAT, "n": n, "seed": seed, "tail": tail, "extra": extra, "days": days,
            "n_items": _N_ITEMS, "datagen_sha256": _datagen_fingerprint()}
    root = data_dir / f"{size_label(n)}-{seed}"
    dataset = Dataset(n=n, seed=seed, root=root, tail=tail, extra=extra, days=days)
    if _cached_meta(root) == meta:
        return dataset
    if root.exists():
        say(f"  data {root.name}: cache is stale or incomplete, rebuilding")
        shutil.rmtree(root)
    building = data_dir / f".building-{root.name}"
    shutil.rmtree(building, ignore_errors=True)
    building.mkdir(parents=True)
    start = time.perf_counter()
    _build(building, n=n, seed=seed, total=total, days=days, say=say)
    (building / "meta.json").write_text(json.dumps(meta, indent=2))
    building.rename(root)
    say(f"  data {root.name}: built in {time.perf_counter() - start:.1f} s")
    return dataset


def _build(folder: Path, *, n: int, seed: int, total: int, days: int, say: Callable[[str], None]) -> None:
    from eventlog import Inventory
    from eventlog.datagen import generate

    inv = Inventory.open(folder / "store")
    stored = 0
    rest: list[pl.DataFrame] = []
    for batch in generate(total, seed=seed, n_items=_N_ITEMS, days=days, batch_size=_INGEST_BATCH):
        take = min(batch.height, n - stored)
        if take > 0:
            inv.record(batch.slice(0, take))
            stored += take
            if stored % (10 * _INGEST_BATCH) == 0 or stored == n:
                say(f"    recorded {size_label(stored)} of {size_label(n)} events")
        if take < batch.height:
            rest.append(batch.slice(take))
    pl.concat(rest).write_parquet(folder / "extra.parquet", compression="zstd", row_group_size=math.ceil(total / 8))


def _cached_meta(root: Path) -> dict | None:
    try:
        return json.loads((root / "meta.json").read_text())
    except (OSError, ValueError):
        return None


def _datagen_fingerprint() -> str:
    """The generator's source: when it changes, cached data no longer matches a fresh build."""
    import eventlog.datagen

    return hashlib.sha256(Path(eventlog.datagen.__file__).read_bytes()).hexdigest()[:16]
