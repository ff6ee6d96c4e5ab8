"""Synthetic inventory events: realistic, reproducible, fast, and never below zero stock.

What for: benchmarks, demos and ``import`` need millions of events that look like a game
inventory (a few popular items, busy weekends, a December peak, restocks, stockouts, late
imports) and that a stock-checking writer accepts as they are.

How the stock invariant is kept without a per-event loop: every candidate event is a map on
the item's stock, ``x -> max(floor, x + change)``:

- a removal of q is ``max(0, x - q)``: it takes what is there, at most q;
- a plain add of q is ``x + q`` (floor minus infinity);
- a delivery (about one add in ten) is ``max(level, x + q)``: an ordinary add when stock is
  healthy, a restock up to the item's level when stock has fallen below ``level - q``.

Maps of this form compose into the same form, so the stock after every event is a prefix
scan: ``x_t = C_t + max(x_0, max_{j<=t}(floor_j - C_j))`` with ``C`` the running sum of
changes, i.e. a cumsum and a running max per item (on events sorted by item). The change an
event really makes is the difference of consecutive stocks; removal attempts that find the
item out of stock change nothing and are dropped (the demand is lost). Items also have supply
outages (no adds for a few days every month or two), during which stock runs down to exactly
zero and stays there until supply resumes: the stockouts. Late (backdated) events are adds
only, so the stock as of any business time is never negative either.

Determinism: the events depend on every argument except ``batch_size`` and ``progress``
(for given numpy and polars versions). Candidates are drawn in internal chunks whose sizes
depend only on ``n_events`` and the draws, each chunk from its own seeded stream, and batches
are cut from that one stream, so any ``batch_size`` gives the same concatenated events.
``generate(n)`` is not a prefix of ``generate(n + k)``: time is spread over ``days`` by ``n``.
"""

from __future__ import annotations

import datetime as dt
import math
import os
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from eventlog.errors import ValidationError

EVENT_TYPES = ("item_added", "item_removed")
RARITIES = ("common", "uncommon", "rare", "epic", "legendary")
ORIGINS = ("castle", "dungeon", "forest", "village", "tower", "cave", "market", "shipwreck")
#: Column names and dtypes of every generated batch, in order.
SCHEMA: dict[str, pl.DataType] = {
    "event_type": pl.String(),
    "item": pl.String(),
    "quantity": pl.Int64(),
    "rarity": pl.String(),
    "origin": pl.String(),
    "occurred_at": pl.Datetime("us", "UTC"),
}
DEFAULT_START = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)

_ADJECTIVES = (
    "Ancient", "Blessed", "Broken", "Crimson", "Cursed", "Dusty", "Elven", "Enchanted",
    "Frozen", "Gilded", "Glowing", "Golden", "Haunted", "Iron", "Mystic", "Obsidian",
    "Royal", "Rusty", "Shadow", "Silver", "Sturdy", "Thunder", "Twisted", "Wooden",
)  # fmt: skip
_NOUNS = (
    "Amulet", "Axe", "Boots", "Bow", "Cloak", "Crossbow", "Dagger", "Elixir", "Gauntlets",
    "Gem", "Hammer", "Helmet", "Key", "Lantern", "Map", "Potion", "Ring", "Scroll", "Shield",
    "Spear", "Staff", "Sword", "Tome", "Torch", "Wand",
)  # fmt: skip
# Names that break naive quoting, splitting and encoding; kept popular so every sample has them.
AWKWARD_NAMES = (
    "Épée de Lumière",
    "Dragon's Tooth",
    'Cloak of "Whispers"',
    "Salt; Pepper & Ash",
    "Bow, Long",
    "Bag  of  Holding",
    "Ōkami Charm 🐺",
    "Select * From Chest",
)
_AWKWARD_RANKS = (1, 3, 6, 9, 13, 18, 24, 31)

_RARITY_SHARE = (0.50, 0.25, 0.14, 0.08, 0.03)
_RESTOCK_LEVEL = (150, 80, 30, 12, 4)  # stock a delivery brings an item back up to
# Quantity = 1 + floor(Exp * scale). Removals take more per event than adds bring, so stock
# drifts down between deliveries and stays bounded although adds are the majority.
_ADD_SCALE = (1.5, 1.0, 0.6, 0.3, 0.0)
_REMOVE_SCALE = (4.0, 3.0, 2.5, 2.0, 1.8)
_P_ADD = 0.62  # share of candidate events that are adds (outside outages)
_P_DELIVERY = 0.1  # share of adds that are deliveries able to restock
_ZIPF_EXPONENT = 1.05
_OUTAGE_EVERY_DAYS = (20.0, 90.0)
_OUTAGE_DAYS = (1.0, 7.0)
_KEEP_ESTIMATE = 0.93  # share of candidates kept (the rest are removals from empty stock)
_CHUNK = 1 << 19  # candidates per internal chunk: memory bound and RNG unit
_LATE_DAYS = (1.0, 30.0)
_US_PER_HOUR = 3_600_000_000
_US_PER_DAY = 24 * _US_PER_HOUR
_NO_FLOOR = -(1 << 40)  # a plain add's floor: below any reachable floor - C_t


def generate(
    n_events: int,
    *,
    seed: int = 0,
    n_items: int = 1000,
    start: dt.datetime | dt.date = DEFAULT_START,
    days: int = 365,
    late_fraction: float = 0.01,
    batch_size: int = 1_000_000,
    progress: bool = False,
) -> Iterator[pl.DataFrame]:
    """Yield ``n_events`` inventory events in log order, in batches of at most ``batch_size``.

    Replaying the concatenated batches in order never takes an item's stock below zero,
    so they can be appended to a stock-checked inventory as they are. Stock carries across
    batches; memory holds one batch plus a few internal chunks of 2**19 candidates, whatever
    ``n_events``. ``late_fraction`` of events (adds only) are backdated 1-30 days, like
    imported history: they stay in log order but their ``occurred_at`` precedes their
    neighbours'. As only adds are backdated, stock as of any ``occurred_at`` is never
    negative either. Arguments are checked at the call, not at the first ``next``.

    Args:
        n_events: number of events to generate.
        seed: same seed and arguments, same events (``batch_size`` and ``progress`` aside).
        n_items: catalogue size; see :func:`catalog`.
        start: first instant; a date means midnight UTC, a naive datetime is taken as UTC.
        days: events spread over ``[start, start + days)``.
        late_fraction: share of backdated events, at most the share of adds (~60%).
        batch_size: rows per yielded batch (the last may be shorter).
        progress: show a tqdm progress bar.

    Example:
        >>> batches = list(generate(2500, batch_size=1000))
        >>> [b.height for b in batches]
        [1000, 1000, 500]
        >>> batches[0].columns
        ['event_type', 'item', 'quantity', 'rarity', 'origin', 'occurred_at']
    """
    _check_args(n_events, n_items, days, late_fraction, batch_size)
    chunks = _chunks(n_events, _catalog(n_items, seed), _Clock(_to_utc(start), days), seed, late_fraction)
    return _with_progress(_rebatch(chunks, batch_size), n_events, progress)


def _with_progress(batches: Iterator[pl.DataFrame], total: int, shown: bool) -> Iterator[pl.DataFrame]:
    if not shown:
        yield from batches
        return
    try:
        from tqdm.auto import tqdm  # the 'cli' extra: only a shown bar needs it
    except ImportError as exc:
        raise ImportError("progress=True draws a tqdm bar: pip install 'eventlog[cli]'", name="tqdm") from exc

    with tqdm(total=total, unit="ev", unit_scale=True) as bar:
        for batch in batches:
            bar.update(batch.height)
            yield batch


def generate_frame(n_events: int, **kwargs: Any) -> pl.DataFrame:
    """All of :func:`generate`'s events in one frame, for tests and small demos.

    Example:
        >>> generate_frame(10, seed=1).height
        10
    """
    frames = list(generate(n_events, **kwargs))
    return pl.concat(frames, rechunk=True) if frames else pl.DataFrame(schema=SCHEMA)


def write_parquet(path: str | os.PathLike[str], n_events: int, **kwargs: Any) -> Path:
    """Stream :func:`generate`'s events into one Parquet file (zstd), batch by batch."""
    import pyarrow.parquet as pq

    path = Path(path)
    schema = pl.DataFrame(schema=SCHEMA).to_arrow().schema
    with pq.ParquetWriter(path, schema, compression="zstd") as writer:
        for batch in generate(n_events, **kwargs):
            writer.write_table(batch.to_arrow())
    return path


def write_csv(path: str | os.PathLike[str], n_events: int, **kwargs: Any) -> Path:
    """Stream :func:`generate`'s events into one CSV file with a header; nulls are empty fields."""
    path = Path(path)
    with path.open("wb") as f:
        pl.DataFrame(schema=SCHEMA).write_csv(f)
        for batch in generate(n_events, **kwargs):
            batch.write_csv(f, include_header=False)
    return path


def original_example_items() -> list[dict[str, Any]]:
    """The original example's inventory as item_added events: the smallest realistic input.

    Example:
        >>> [e["item"] for e in original_example_items()]
        ['sword', 'sword', 'potion', 'bow', 'torch', 'scroll']
    """
    rows = [
        ("sword", 1, "common", "castle"),
        ("sword", 1, "common", "dungeon"),
        ("potion", 2, "common", "village"),
        ("bow", 1, "uncommon", "forest"),
        ("torch", 1, "common", "dungeon"),
        ("scroll", 1, "rare", "tower"),
    ]
    return [
        {"event_type": "item_added", "item": item, "quantity": qty, "rarity": rarity, "origin": origin}
        for item, qty, rarity, origin in rows
    ]


def next_day(
    day: dt.date,
    *,
    stock: pl.DataFrame,
    events_per_day: float,
    seed: int = 0,
    n_items: int = 1000,
    start: dt.datetime | dt.date = DEFAULT_START,
) -> pl.DataFrame:
    """One more business day of events, drawn as :func:`generate` drew the history before it.

    What for: a demo or a test that extends a generated store day by day, and should look
    like the days before (``make demo`` reruns). The same catalogue (``seed``, ``n_items``),
    the day's share of the traffic (weekday, season: ``events_per_day`` is the history's
    average, ``n_events / days``), the same mix of adds, deliveries and removals, the items'
    supply outages continued from ``start``, and removals taken from ``stock`` as it is, so
    a removal never exceeds what the store holds. Events occur within ``day`` (none are
    backdated) and are the same for the same arguments.

    Args:
        day: the business day (UTC) the events occur on.
        stock: the store's current stock, with columns ``item`` and ``quantity`` (e.g.
            ``Inventory.stock()``); items outside the catalogue are left alone.
        events_per_day: the history's average events per day.
        seed, n_items, start: those the history was generated with.

    Example:
        >>> history = generate_frame(30_000, seed=1, n_items=50, days=30)
        >>> stock = history.group_by("item").agg(
        ...     quantity=pl.when(pl.col("event_type") == "item_added").then("quantity").otherwise(-pl.col("quantity")).sum())
        >>> day = next_day(dt.date(2024, 1, 31), stock=stock, events_per_day=1000, seed=1, n_items=50)
        >>> 700 < day.height < 1300, day["occurred_at"].dt.date().unique().to_list()
        (True, [datetime.date(2024, 1, 31)])
    """
    if events_per_day <= 0:
        raise ValidationError("must be > 0", field="events_per_day")
    cat = _catalog(n_items, seed)
    begin = _to_utc(day)
    rate = _hourly_rate(_epoch_us(begin), 1)
    wanted = max(1, round(events_per_day * rate.sum() / (24 * _MEAN_HOURLY_RATE)))
    cursor = _Cursor(stock=_stock_by_code(cat, stock))
    index = (begin.date() - _to_utc(start).date()).days  # the day in the outage schedule
    rng = _rng(seed, 3, index)
    items, changes = [], []
    while cursor.kept < wanted:  # removals from empty stock are dropped: draw until the day is full
        m = math.ceil((wanted - cursor.kept) / _KEEP_ESTIMATE * 1.02) + 64
        item, change = _realise(_draw(cat, rng, np.full(m, index, dtype=np.int64)), cursor, wanted - cursor.kept)
        items.append(item)
        changes.append(change)
    item, change = np.concatenate(items), np.concatenate(changes)
    return _build(cat, _Clock(begin, 1), rng, item, change, 0, len(item), 0.0)


def _stock_by_code(cat: _Catalog, stock: pl.DataFrame) -> np.ndarray:
    codes = pl.DataFrame({"item": cat.names, "code": np.arange(cat.n_items)})
    held = codes.join(stock.select("item", "quantity"), on="item", how="left").sort("code")
    return held.get_column("quantity").fill_null(0).clip(lower_bound=0).to_numpy().astype(np.int64)


def catalog(n_items: int = 1000, *, seed: int = 0) -> pl.DataFrame:
    """The items :func:`generate` draws from, most popular first, with the same ``seed``.

    Columns: ``item``, ``rarity``, ``origins`` (the 1-3 places its adds come from),
    ``popularity`` (expected share of events, Zipf-like) and ``restock_level``.

    Example:
        >>> catalog(5).select("item", "rarity").row(1)
        ('Épée de Lumière', 'common')
    """
    cat = _catalog(n_items, seed)
    used = zip(cat.origins.tolist(), cat.n_origins.astype(int).tolist())
    origins = [[ORIGINS[o] for o in row[:k]] for row, k in used]
    return pl.DataFrame(
        {
            "item": cat.names,
            "rarity": [RARITIES[r] for r in cat.rarity.tolist()],
            "origins": origins,
            "popularity": cat.popularity,
            "restock_level": cat.level,
        },
        schema_overrides={"origins": pl.List(pl.String())},
    )


# --- the catalogue ------------------------------------------------------------------------


@dataclass(frozen=True)
class _Catalog:
    """Per-item arrays, and tables indexed by ``item * 3 + kind`` (0 remove, 1 add, 2 delivery)."""

    names: pl.Series
    rarity: np.ndarray  # int8 index into RARITIES
    origins: np.ndarray  # (n_items, 3) int8 index into ORIGINS; the first n_origins are used
    n_origins: np.ndarray  # float32, 1-3
    popularity: np.ndarray
    level: np.ndarray  # int64 restock level
    slots: np.ndarray  # item codes, each repeated in proportion to its popularity
    scale: np.ndarray  # float32 quantity scale by item and kind
    floor: np.ndarray  # int64 floor of the stock map by item and kind
    outage_every: np.ndarray  # days (of average volume) between outage starts
    outage_days: np.ndarray
    outage_phase: np.ndarray
    rarity_names: pl.Series  # by item
    origin_names: pl.Series  # by item * 3 + pick

    @property
    def n_items(self) -> int:
        return len(self.rarity)


def _catalog(n_items: int, seed: int) -> _Catalog:
    rng = np.random.default_rng([seed, 0])
    rarity = rng.choice(len(RARITIES), size=n_items, p=_RARITY_SHARE).astype(np.int8)
    origins = np.argsort(rng.random((n_items, len(ORIGINS))), axis=1)[:, :3].astype(np.int8)
    weights = 1.0 / np.arange(1, n_items + 1) ** _ZIPF_EXPONENT
    popularity = weights / weights.sum()
    level = np.asarray(_RESTOCK_LEVEL, dtype=np.int64)[rarity]
    add, remove = (np.asarray(s, dtype=np.float32)[rarity] for s in (_ADD_SCALE, _REMOVE_SCALE))
    every = rng.uniform(*_OUTAGE_EVERY_DAYS, n_items)
    return _Catalog(
        names=pl.Series("item", _item_names(n_items, rng), dtype=pl.String()),
        rarity=rarity,
        origins=origins,
        n_origins=rng.integers(1, 4, n_items).astype(np.float32),
        popularity=popularity,
        level=level,
        slots=_popularity_slots(popularity),
        scale=np.stack([remove, add, add], axis=1).ravel(),
        floor=np.stack([np.zeros_like(level), np.full_like(level, _NO_FLOOR), level], axis=1).ravel(),
        outage_every=every,
        outage_days=rng.uniform(*_OUTAGE_DAYS, n_items),
        outage_phase=rng.uniform(0.0, every),
        rarity_names=pl.Series([RARITIES[r] for r in rarity.tolist()], dtype=pl.String()),
        origin_names=pl.Series([ORIGINS[o] for o in origins.ravel().tolist()], dtype=pl.String()),
    )


def _item_names(n_items: int, rng: np.random.Generator) -> list[str]:
    """Adjective + noun in a seeded order, " 2", " 3"... only once the pairs run out."""
    pairs = [f"{a} {n}" for a in _ADJECTIVES for n in _NOUNS]
    pairs = [pairs[i] for i in rng.permutation(len(pairs))]
    awkward = {rank: name for rank, name in zip(_AWKWARD_RANKS, AWKWARD_NAMES) if rank < n_items}
    plain = n_items - len(awkward)
    names = [pairs[i % len(pairs)] + (f" {i // len(pairs) + 1}" if i >= len(pairs) else "") for i in range(plain)]
    for rank in sorted(awkward):
        names.insert(rank, awkward[rank])
    return names


def _popularity_slots(popularity: np.ndarray) -> np.ndarray:
    """A lookup table for sampling: one random index and one gather per event.

    Shares are rounded to 1/2**20 (at least one slot each), 2.5x cheaper than an alias
    table and exact enough for a synthetic Zipf. 16-bit codes make the later stable
    argsort by item a radix sort.
    """
    n = len(popularity)
    slots = np.maximum(1, np.rint(popularity * max(1 << 20, 16 * n))).astype(np.int64)
    return np.repeat(np.arange(n, dtype=np.uint16 if n <= 1 << 16 else np.int64), slots)


# --- time ---------------------------------------------------------------------------------


class _Clock:
    """Maps a position in [0, 1) of the event stream to a time, through the event rate.

    The rate is hourly: weekends x1.6, a yearly cosine peaking mid-December (x1.35 vs
    x0.65 in June), and an evening peak in the day. Positions are inverted through the
    cumulative rate, so busy hours get proportionally more events.
    """

    def __init__(self, start: dt.datetime, days: int) -> None:
        self.start_us = _epoch_us(start)
        cum = np.concatenate(([0.0], np.cumsum(_hourly_rate(self.start_us, days))))
        self.cum = cum / cum[-1]
        self.width = np.diff(self.cum)

    def at(self, position: np.ndarray) -> np.ndarray:
        """Microseconds since the epoch for sorted ``position``; exactly non-decreasing.

        Counts events per hour by searching the hour edges in the positions (not the other
        way round: 20x cheaper), then adds an integer offset from a fraction that is monotone
        within the hour. No interpolation wobble, so chunks need no shared state to stay in order.
        """
        counts = np.diff(np.searchsorted(position, self.cum))
        hours = np.flatnonzero(counts)
        per_hour = counts[hours]
        base = np.repeat(self.start_us + hours * _US_PER_HOUR, per_hour)
        frac = (position - np.repeat(self.cum[hours], per_hour)) * np.repeat(_US_PER_HOUR / self.width[hours], per_hour)
        return base + frac.astype(np.int64)


def _hourly_rate(start_us: int, days: int) -> np.ndarray:
    """The relative event rate of each hour of ``days`` days from ``start_us``.

    Weekends x1.6, a yearly cosine peaking mid-December, an evening peak at 20:00 UTC.
    Averaged over whole years it is ``_MEAN_HOURLY_RATE`` (the cosines average out).
    """
    t_days = start_us / _US_PER_DAY + (np.arange(days * 24) + 0.5) / 24  # since 1970-01-01, a Thursday
    weekday = (np.floor(t_days).astype(np.int64) + 3) % 7  # Monday = 0
    rate = np.where(weekday >= 5, 1.6, 1.0)
    rate *= 1.0 + 0.35 * np.cos(2 * np.pi * (t_days - 348.0) / 365.2425)  # Dec 15 peak
    rate *= 1.0 + 0.4 * np.cos(2 * np.pi * (t_days % 1.0 - 20 / 24))  # 20:00 UTC peak
    return rate


_MEAN_HOURLY_RATE = (5 * 1.0 + 2 * 1.6) / 7


def _to_utc(start: dt.datetime | dt.date) -> dt.datetime:
    if not isinstance(start, dt.datetime):
        return dt.datetime(start.year, start.month, start.day, tzinfo=dt.UTC)
    return start.replace(tzinfo=dt.UTC) if start.tzinfo is None else start.astimezone(dt.UTC)


def _epoch_us(t: dt.datetime) -> int:
    delta = t - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


# --- events -------------------------------------------------------------------------------
# Each chunk runs in three steps: draw candidates (pure), realise them against the stock
# (sequential, cheap), build the frame (pure). A two-thread pool overlaps the pure steps of
# neighbouring chunks with the sequential one; numpy and polars release the GIL.


@dataclass
class _Cursor:
    """What carries from one chunk to the next."""

    stock: np.ndarray  # int64 per item
    candidates: int = 0  # candidates drawn so far: the clock of the outages
    kept: int = 0  # events emitted so far: their position in time


@dataclass(frozen=True)
class _Candidates:
    item: np.ndarray
    change: np.ndarray  # signed quantity asked for
    floor: np.ndarray  # of the stock map x -> max(floor, x + change)


def _chunks(n_events: int, cat: _Catalog, clock: _Clock, seed: int, late: float) -> Iterator[pl.DataFrame]:
    """The event stream in chunks whose sizes depend only on ``n_events`` and the draws."""
    if n_events == 0:
        return
    cursor = _Cursor(stock=np.zeros(cat.n_items, dtype=np.int64))
    per_day = n_events / (_KEEP_ESTIMATE * len(clock.width) / 24)  # candidates per day

    def size() -> int:
        return min(_CHUNK, math.ceil((n_events - cursor.kept) / _KEEP_ESTIMATE * 1.02) + 64)

    pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="datagen")
    try:
        drawing = pool.submit(_draw, cat, _rng(seed, 1, 0), _volume_days(0, size(), per_day))
        building: Future[pl.DataFrame] | None = None
        k = 0
        while cursor.kept < n_events:
            offset = cursor.kept
            item, change = _realise(drawing.result(), cursor, n_events - offset)
            if cursor.kept < n_events:  # the next draw first: it is on the critical path
                drawing = pool.submit(_draw, cat, _rng(seed, 1, k + 1), _volume_days(cursor.candidates, size(), per_day))
            built = pool.submit(_build, cat, clock, _rng(seed, 2, k), item, change, offset, n_events, late)
            k += 1
            if building is not None:
                yield building.result()
            building = built
        if building is not None:
            yield building.result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _rng(seed: int, stream: int, k: int) -> np.random.Generator:
    """The random stream of one step (1 draw, 2 build, 3 next day) of chunk or day ``k``."""
    return np.random.default_rng([seed, stream, k])


def _volume_days(first: int, m: int, per_day: float) -> np.ndarray:
    """The (volume-)day of candidates ``first .. first + m``: what the outage schedule is kept in."""
    return (np.arange(first, first + m) / per_day).astype(np.int64)


def _draw(cat: _Catalog, rng: np.random.Generator, day: np.ndarray) -> _Candidates:
    """One candidate per entry of ``day`` (its day, for outages): items, kinds, quantities, floors."""
    m = len(day)
    item = cat.slots[rng.integers(0, len(cat.slots), m)]
    supplied = ~_in_outage(cat, item, day)
    u = rng.random(m, dtype=np.float32)
    kind = ((u < _P_ADD).astype(np.uint8) + (u < _P_ADD * _P_DELIVERY)) * supplied  # 0 remove, 1 add, 2 delivery
    at = item.astype(np.uint32) * 3 + kind
    qty = 1 + (rng.standard_exponential(m, dtype=np.float32) * cat.scale[at]).astype(np.int64)
    return _Candidates(item, np.where(kind > 0, qty, -qty), cat.floor[at])


def _in_outage(cat: _Catalog, item: np.ndarray, day: np.ndarray) -> np.ndarray:
    """Whether each candidate's item has no supply that (volume-)day."""
    first, span = int(day[0]), int(day[-1] - day[0]) + 1
    n_items = cat.n_items
    if n_items * span > 2 * len(day):  # a table would cost more than computing per event
        return (day + cat.outage_phase[item]) % cat.outage_every[item] < cat.outage_days[item]
    days = np.arange(first, first + span)
    table = (days + cat.outage_phase[:, None]) % cat.outage_every[:, None] < cat.outage_days[:, None]
    return table.ravel()[item.astype(np.int64) * span + (day - first)]


def _realise(cand: _Candidates, cursor: _Cursor, need: int) -> tuple[np.ndarray, np.ndarray]:
    """Apply candidates to the stock: the first ``need`` events that change it, in log order."""
    change, after = _realised_changes(cand.item, cand.change, cand.floor, cursor.stock)
    kept = np.flatnonzero(change)[:need]
    used = int(kept[-1]) + 1 if len(kept) == need else len(change)
    if used < len(change):  # the stream ends inside this chunk: count only what was used
        used_change = np.bincount(cand.item[:used], weights=change[:used], minlength=len(after))
        after = cursor.stock + used_change.astype(np.int64)
    cursor.stock = after
    cursor.candidates += used
    cursor.kept += len(kept)
    return cand.item[kept], change[kept]


def _realised_changes(
    item: np.ndarray, change: np.ndarray, floor: np.ndarray, stock: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """What each candidate ``x -> max(floor, x + change)`` really changes (log order), and the
    stock after all of them.

    ``floor`` is 0 for removals, ``_NO_FLOOR`` for plain adds and the restock level for
    deliveries. A zero change is a removal that found no stock.
    """
    order = np.argsort(item, kind="stable")
    counts = np.bincount(item, minlength=len(stock))
    starts = np.cumsum(counts) - counts
    present = counts > 0
    first, last = starts[present], starts[present] + counts[present] - 1
    c = np.cumsum(change[order])
    before = np.zeros_like(stock)  # running sum before each item's run
    before[present] = c[first] - change[order[first]]
    c -= np.repeat(before, counts)  # per-item running sum C_t
    # v = floor_j - C_j; below 0 it never beats x_0 >= 0, so clip it to keep the lift small.
    v = floor[order]
    v -= c
    np.maximum(v, -1, out=v)
    v[first] = np.maximum(v[first], stock[present])  # x_0 joins the max
    # A per-item running max in one pass: lift each item's run above every earlier run.
    lift = np.repeat(np.arange(len(stock), dtype=np.int64) * (int(v.max(initial=0)) + 2), counts)
    v += lift
    np.maximum.accumulate(v, out=v)
    v -= lift
    x = np.add(v, c, out=v)  # stock after each event
    after = stock.copy()
    after[present] = x[last]
    step = np.empty_like(x)
    np.subtract(x[1:], x[:-1], out=step[1:])
    step[first] = x[first] - stock[present]
    out = np.empty_like(x)
    out[order] = step
    return out, after


def _build(
    cat: _Catalog,
    clock: _Clock,
    rng: np.random.Generator,
    item: np.ndarray,
    change: np.ndarray,
    offset: int,
    n_events: int,
    late: float,
) -> pl.DataFrame:
    """The frame of events ``offset ..``: strings gathered from small vocabularies, not built."""
    added = change > 0
    code = item.astype(np.uint32)
    pick = (rng.random(len(item), dtype=np.float32) * cat.n_origins[item]).astype(np.uint32)
    columns = {"added": added, "item": code, "origin": code * 3 + pick, "quantity": np.abs(change)}
    columns["occurred_at"] = _occurred_at(clock, rng, offset, added, n_events, late)
    # One select: polars runs the columns in parallel, and a null index (removals) gathers
    # a null at the cost of a validity bitmap, half the cost of gathering a null entry.
    add = pl.col("added")
    return pl.DataFrame(columns).select(
        event_type=pl.when(add).then(pl.lit(EVENT_TYPES[0])).otherwise(pl.lit(EVENT_TYPES[1])),
        item=pl.lit(cat.names).gather("item"),
        quantity=pl.col("quantity").cast(pl.Int64()),
        rarity=pl.lit(cat.rarity_names).gather(pl.when(add).then("item")),
        origin=pl.lit(cat.origin_names).gather(pl.when(add).then("origin")),
        occurred_at=pl.col("occurred_at").cast(pl.Datetime("us", "UTC")),
    )


def _occurred_at(
    clock: _Clock, rng: np.random.Generator, offset: int, added: np.ndarray, n_events: int, late: float
) -> np.ndarray:
    """Stratified positions in time, then ``late`` of the events backdated 1-30 days.

    Event ``i`` sits at ``(i + U)/n_events`` of the rate: in order, and evenly spread. Only
    adds are backdated (never before ``start``): an earlier add only raises earlier stock,
    so stock as of any ``occurred_at`` is never negative either, not only in log order.
    """
    n = len(added)
    us = clock.at((offset + np.arange(n) + rng.random(n)) / n_events)
    share = min(1.0, late * n / max(1, int(np.count_nonzero(added))))  # of adds, for ``late`` of all
    late_at = np.flatnonzero(added & (rng.random(n) < share))
    elapsed = us[late_at] - clock.start_us
    lo, hi = (int(d * _US_PER_DAY) for d in _LATE_DAYS)
    late_at, elapsed = late_at[elapsed >= lo], elapsed[elapsed >= lo]
    us[late_at] -= lo + (rng.random(len(late_at)) * (np.minimum(elapsed, hi) - lo)).astype(np.int64)
    return us


def _rebatch(chunks: Iterator[pl.DataFrame], batch_size: int) -> Iterator[pl.DataFrame]:
    """Cut a stream of frames into frames of exactly ``batch_size`` rows (the last may be short)."""
    pending: list[pl.DataFrame] = []
    held = 0
    for chunk in chunks:
        pending.append(chunk)
        held += chunk.height
        if held < batch_size:
            continue
        buffer = pl.concat(pending) if len(pending) > 1 else pending[0]
        full = held // batch_size * batch_size
        for offset in range(0, full, batch_size):
            yield buffer.slice(offset, batch_size)
        pending, held = [buffer.slice(full)], held - full
    if held:
        yield pl.concat(pending) if len(pending) > 1 else pending[0]


def _check_args(n_events: int, n_items: int, days: int, late_fraction: float, batch_size: int) -> None:
    checks = (
        ("n_events", n_events >= 0, "must be >= 0"),
        ("n_items", n_items >= 1, "must be >= 1"),
        ("days", days >= 1, "must be >= 1"),
        ("late_fraction", 0.0 <= late_fraction <= 1.0, "must be between 0 and 1"),
        ("batch_size", batch_size >= 1, "must be >= 1"),
    )
    for field, ok, message in checks:
        if not ok:
            raise ValidationError(message, field=field)
