"""Generate the tutorial notebooks from this file, so they are reviewed as Python.

Run from anywhere::

    .venv/bin/python notebooks/_build.py

Each notebook is written without outputs and with stable cell ids, so rerunning this
script changes a ``.ipynb`` only when its cells changed. Edit the cells here, not in
JupyterLab (or copy a change made there back into this file).

Every notebook builds its own store in a fresh temporary directory from the embedded
datasets in ``data/`` and never touches ``data/store``.
"""

from __future__ import annotations

from pathlib import Path
from textwrap import dedent

import nbformat
from nbformat import NotebookNode

HERE = Path(__file__).resolve().parent

# The first code cell of every notebook: imports, where the data is, a scratch folder.
SETUP = '''
import datetime as dt
import tempfile
import time
from pathlib import Path

import polars as pl

import eventlog
import eventlog.notebook
from eventlog import Inventory

# The embedded datasets live in the repository's data/ folder, beside the package.
DATA = Path(eventlog.__file__).resolve().parent.parent / "data"
# Every store made here goes to a fresh temporary folder: data/store is never touched.
WORK = Path(tempfile.mkdtemp(prefix="eventlog-{slug}-"))
pl.Config.set_tbl_rows(12)
pl.Config.set_fmt_str_lengths(40)
eventlog.notebook.plain_tables()  # tables below show strings as text, without polars' quotes
'''


def md(text: str) -> NotebookNode:
    return nbformat.v4.new_markdown_cell(dedent(text).strip())


def code(text: str) -> NotebookNode:
    return nbformat.v4.new_code_cell(dedent(text).strip())


def setup(slug: str, extra: str = "") -> NotebookNode:
    return code(SETUP.replace("{slug}", slug) + dedent(extra))


# --- 01 -------------------------------------------------------------------------------------


def quickstart() -> list[NotebookNode]:
    return [
        md("""
        # Quickstart: an inventory that remembers

        The original example keeps a game inventory: add a sword, add a potion, drink the
        potion, ask what is in the bag. This notebook tells the same story on the real
        `eventlog` package. The one difference is underneath: every change is kept as an
        immutable **event** in a Delta Lake table, and "what is in the bag" is *computed*
        from those events. We will see what that buys.
        """),
        setup("quickstart", """
        from eventlog import Item
        from eventlog.errors import InsufficientStockError
        """),
        md("""
        ## 1. Events, not rows

        `Inventory.open` opens a store (a folder), creating it when there is none. Each
        `add_item` / `remove_item` appends one event to the log; nothing is ever updated in
        place. The call returns where the event landed: its `seq`, the global position in
        the log.
        """),
        code("""
        inv = Inventory.open(WORK / "bag")
        for name in ["sword", "potion", "bow", "shield", "torch"]:
            inv.add_item(name)
        inv.remove_item("potion")
        """),
        md("""
        Removing what is not there is refused, and the log stays as it was: the stock check
        and the append happen together, under the writer lock.
        """),
        code("""
        try:
            inv.remove_item("potion")
        except InsufficientStockError as exc:  # also a ValueError
            print("refused:", exc)
        print("events in the log:", inv.log.head())
        """),
        md("""
        ## 2. Replay: the state is computed from the log

        There is no table of current items to read. `get_items()` *replays* the log: for each
        item, units added minus units removed.
        """),
        code("""
        inv.get_items()
        """),
        md("""
        The log itself is a Polars `LazyFrame` away. It has no guaranteed row order, so sort
        by `seq` when order matters.
        """),
        code("""
        inv.log.scan().sort("seq").select("seq", "event_type", "stream_id", "quantity", "occurred_at").collect()
        """),
        md("""
        The replay is not a Python loop over events: it is one vectorised group-by (DuckDB over
        the Parquet files). Written by hand in Polars, it looks like this and gives the same
        answer:
        """),
        code("""
        signed = pl.when(pl.col("event_type") == "item_added").then("quantity").otherwise(-pl.col("quantity"))
        (
            inv.log.scan()
            .group_by(pl.col("stream_id").alias("item"))
            .agg(signed.sum().alias("quantity"))
            .filter(pl.col("quantity") > 0)
            .sort("item")
            .collect()
            .rows()
        )
        """),
        md("""
        ## 3. Caching: snapshots and repeated reads

        Replaying millions of events for every question would be slow, so there are two
        caches. Repeated reads at the same position are served from memory. A **snapshot**
        stores the state at one `seq` as a Parquet file with a checksum; later reads start
        from the newest snapshot and fold only the events after it. Snapshots are written
        automatically after large replays, or on request:
        """),
        code("""
        info = inv.snapshot()
        info
        """),
        code("""
        inv.add_item("lantern")               # one event after the snapshot
        fresh = Inventory.open(WORK / "bag")  # a new object has an empty memory cache, like a new process
        t0 = time.perf_counter()
        items = fresh.get_items()             # snapshot at seq 6, plus a fold of seq 7
        first = time.perf_counter() - t0
        t0 = time.perf_counter()
        fresh.get_items()                     # same position again: from memory
        again = time.perf_counter() - t0
        print(items)
        print(f"first read {first * 1000:.1f} ms, repeated read {again * 1000:.2f} ms")
        """),
        md("""
        A cache may be deleted at any time: the log is the truth, snapshots only save work.
        Notebook 02 measures what they save on 100,000 events.

        ## 4. Items with a rarity and an origin

        The second half of the original example uses `Item` objects: two swords (from the
        castle and the dungeon), two potions from the village, a bow from the forest, a torch
        from the dungeon and a scroll from the tower; then a potion is drunk and the torch
        burns out. The embedded file `data/original_example.csv` holds exactly that story as
        events, each with the business time at which it happened in the game, so time travel
        by date gives the same answers on every run.
        """),
        code("""
        story = pl.read_csv(DATA / "original_example.csv", try_parse_dates=True)
        story
        """),
        code("""
        game = Inventory.open(WORK / "game")
        for row in story.iter_rows(named=True):
            item = Item(row["item"], rarity=row["rarity"], origin=row["origin"])
            if row["event_type"] == "item_added":
                game.add_item(item, row["quantity"], occurred_at=row["occurred_at"])
            else:
                game.remove_item(item, row["quantity"], occurred_at=row["occurred_at"])
        game.stock()
        """),
        md("""
        `stock()` is the full state per item in stock: the quantity, the latest rarity and
        origin, when it was first added and last changed.

        One call per event is fine for a handful. For real data, `record` appends a whole
        frame in one commit, all or nothing (a removal that would go below zero rejects the
        batch and names the row). The same story in one call gives the same state:
        """),
        code("""
        bulk = Inventory.open(WORK / "game-bulk")
        print(bulk.record(story))
        bulk.stock().equals(game.stock())
        """),
        md("""
        ## 5. Projections

        A projection is an analytic table derived from the log and kept up to date from its
        tail. Two built-ins answer the original example's questions: which items were
        collected most, and where each item came from.
        """),
        code("""
        game.projection("most_collected_items").top()
        """),
        code("""
        game.projection("item_origins").read()
        """),
        md("""
        Projections count history, not stock: the torch was collected once although none is
        left, and the potions count 2 although one was drunk. Notebook 03 defines its own.

        ## 6. The lesson: history, audit and time travel for free

        A table that overwrites rows knows only the present. The log knows everything that
        led to it, like Git. The history of one item, with the running stock:
        """),
        code("""
        game.history("potion").select("seq", "event_type", "quantity", "change", "stock", "origin", "occurred_at")
        """),
        md("""
        **Audit**: every event has an id, a position, the business time at which it happened
        (`occurred_at`) and the time the log learned it (`recorded_at`); every commit is in the
        Delta history.
        """),
        code("""
        game.log.scan().sort("seq").select("seq", "event_id", "event_type", "stream_id", "occurred_at", "recorded_at").collect()
        """),
        code("""
        pl.DataFrame(
            [
                {k: commit.get(k) for k in ("version", "eventlog.first_seq", "eventlog.last_seq", "eventlog.recorded_at")}
                for commit in game.log.history()
            ]
        )
        """),
        md("""
        **Time travel**: `as_of` takes a log position (`seq`: the first n events) or a business
        time (a date means the end of that UTC day).
        """),
        code("""
        print("after 3 events:      ", game.get_items(as_of=3))
        print("at the end of 2 Jan: ", game.get_items(as_of="2024-01-02"))
        print("now:                 ", game.get_items())
        print("torches on 4 Jan:", game.get_count("torch", as_of=dt.date(2024, 1, 4)), "- now:", game.get_count("torch"))
        """),
        md("""
        **Any table in**: `record` takes a batch from whatever holds it — a Polars DataFrame or
        LazyFrame, pandas, pyarrow, a DuckDB relation (anything with the Arrow stream interface),
        or a list of dicts — through one conversion, with the same checks:
        """),
        code("""
        import duckdb

        bag = Inventory.open(WORK / "any-table")
        bag.record(duckdb.sql("SELECT 'item_added' AS event_type, 'lantern' AS item, 2 AS quantity"))
        bag.record(pl.LazyFrame({"event_type": ["item_added", "item_removed"], "item": ["rope", "lantern"], "quantity": [1, 1]}))
        bag.record([{"event_type": "item_added", "item": "map", "quantity": 1}])
        bag.stock().select("item", "quantity")
        """),
        md("""
        Nothing extra was stored for any of this: history, audit and time travel are reads of
        the same log. Next: [02 — time travel and snapshots](02_time_travel_and_snapshots.ipynb)
        on 100,000 events, [03 — projections and charts](03_projections_and_charts.ipynb),
        [04 — SQL for analysts](04_sql_for_analysts.ipynb).
        """),
    ]


# --- 02 -------------------------------------------------------------------------------------


def time_travel() -> list[NotebookNode]:
    return [
        md("""
        # Time travel and snapshots

        The quickstart showed `as_of` on eight events. Here we use the embedded sample of
        100,000 synthetic events (300 items over 2024, `data/sample_events.parquet`) to look at
        the three kinds of question a log answers about the past, and at what snapshots do
        and cost.
        """),
        setup("time-travel", """
        from dataclasses import asdict

        from eventlog.errors import ValidationError
        """),
        md("""
        ## Load the sample in two batches

        The events are in log order and never take an item below zero, so `record` accepts
        them as they are. We load them in two batches, like two nightly imports: each batch
        is one Delta commit, checked and written all or nothing.
        """),
        code("""
        events = pl.read_parquet(DATA / "sample_events.parquet")
        print(f"{events.height:,} events, {events['item'].n_unique()} items, "
              f"{events['occurred_at'].min():%Y-%m-%d} .. {events['occurred_at'].max():%Y-%m-%d}")
        events.head()
        """),
        code("""
        inv = Inventory.open(WORK / "store")
        imports = [inv.record(batch) for batch in events.iter_slices(50_000)]
        imports
        """),
        md("""
        ## `as_of` a position: the log as it was after n events

        `as_of=50_000` is the state right after the first import. A cut by `seq` is exact and
        cheap: it is a prefix of the log.
        """),
        code("""
        ITEM = "Dragon's Tooth"  # item names may hold quotes, commas, accents: nothing to escape
        then = inv.stock(as_of=imports[0].last_seq).select("item", pl.col("quantity").alias("after import 1"))
        now = inv.stock().select("item", pl.col("quantity").alias("now"))
        then.join(now, on="item", how="full", coalesce=True).fill_null(0).sort("now", descending=True).head(8)
        """),
        md("""
        ## `as_of` a business time: the stock at the end of each month

        A date means the end of that UTC day; a datetime must carry a time zone (an ISO string
        with an offset works too). These reads cut on `occurred_at`, the time things happened.
        """),
        code("""
        month_ends = [dt.date(2024, m + 1, 1) - dt.timedelta(days=1) for m in range(1, 12)] + [dt.date(2024, 12, 31)]
        pl.DataFrame({"end of month": month_ends, ITEM: [inv.get_count(ITEM, as_of=d) for d in month_ends]})
        """),
        md("""
        A time without a zone is ambiguous, so it is refused, with a hint:
        """),
        code("""
        try:
            inv.stock(as_of=dt.datetime(2024, 6, 30, 12, 0))
        except ValidationError as exc:
            print(exc)
        inv.stock(as_of="2024-06-30T12:00:00+02:00").height
        """),
        md("""
        ## `known_at`: what did we believe, and when?

        Two clocks run in an event log: `occurred_at`, when something happened, and
        `recorded_at`, when the log learned it. They differ whenever history arrives late: some
        600 of the sample's deliveries were recorded 1 to 30 days after they happened.

        Suppose that today a forgotten delivery note turns up: three items arrived on 15 March.
        We record it now, with the business time at which it happened.
        """),
        code("""
        known_before = inv.log.head()
        late = pl.DataFrame({
            "event_type": ["item_added"] * 3,
            "item": [ITEM, "Bow, Long", "Épée de Lumière"],
            "quantity": [40, 25, 10],
            "origin": ["shipwreck"] * 3,
            "occurred_at": [dt.datetime(2024, 3, 15, 12, 0, tzinfo=dt.timezone.utc)] * 3,
        })
        late_import = inv.record(late)
        late_import
        """),
        md("""
        The stock at the end of March is now different from what any report produced before
        this import said. `known_at` asks the question as of an earlier state of knowledge (a
        `seq`, or a time compared with `recorded_at`), so both answers stay available:
        """),
        code("""
        END_OF_MARCH = "2024-03-31"
        believed = inv.stock(as_of=END_OF_MARCH, known_at=known_before)
        known_now = inv.stock(as_of=END_OF_MARCH)
        (
            believed.select("item", pl.col("quantity").alias("believed before the import"))
            .join(known_now.select("item", pl.col("quantity").alias("known now")), on="item", how="full", coalesce=True)
            .fill_null(0)
            .filter(pl.col("believed before the import") != pl.col("known now"))
        )
        """),
        md("""
        `known_at` also takes a time: anything recorded after it is ignored. Just before the
        late import was recorded, we believed the same as at `known_before`:
        """),
        code("""
        just_before = late_import.recorded_at - dt.timedelta(microseconds=1)
        inv.stock(as_of=END_OF_MARCH, known_at=just_before).equals(believed)
        """),
        md("""
        This is what makes old reports reproducible: "stock at the end of March, as we knew it
        on the day we closed the books" gives the same answer forever, however much history
        arrives later.

        ## Snapshots: what they do and what they cost

        The state is `snapshot ⊕ fold(events after it)`. A snapshot is written automatically
        when a read had to fold more than `snapshot_every` events (default 1,000,000), so this
        small store has none yet:
        """),
        code("""
        inv.snapshots.list()
        """),
        md("""
        To measure a *cold* read we open a new `Inventory` each time (an empty memory cache,
        as in a new process) and take the best of three.
        """),
        code("""
        def cold_read(**cut) -> tuple[float, pl.DataFrame]:
            best, state = float("inf"), None
            for _ in range(3):
                fresh = Inventory.open(inv.path)
                t0 = time.perf_counter()
                state = fresh.stock(**cut)
                best = min(best, time.perf_counter() - t0)
            return best, state

        no_snapshot, state_replayed = cold_read()
        print(f"cold stock() replaying {inv.log.head():,} events: {no_snapshot * 1000:.0f} ms")
        """),
        code("""
        t0 = time.perf_counter()
        info = inv.snapshot()
        print(f"snapshot written in {(time.perf_counter() - t0) * 1000:.0f} ms: {info.rows} rows, "
              f"{(inv.path / 'snapshots' / info.file).stat().st_size / 1024:.1f} KiB")

        with_snapshot, state_from_snapshot = cold_read()
        print(f"cold stock() from the snapshot: {with_snapshot * 1000:.0f} ms "
              f"({no_snapshot / with_snapshot:.1f}x faster), same state: {state_from_snapshot.equals(state_replayed)}")
        """),
        md("""
        New events after the snapshot are folded on top of it: the read stays fast as the log
        grows, and the next large fold writes a newer snapshot.
        """),
        code("""
        inv.record(pl.DataFrame({"event_type": ["item_added", "item_removed"], "item": [ITEM, ITEM], "quantity": [5, 2]}))
        tail_read, _ = cold_read()
        print(f"cold stock() = snapshot at seq {info.seq:,} + {inv.log.head() - info.seq} tail events: {tail_read * 1000:.0f} ms")
        """),
        md("""
        The honest limit: a snapshot serves a business-time cut only if every event in it had
        happened by then (its manifest records the latest `occurred_at`). For a date in the
        past, with late events around, the read folds from the start:
        """),
        code("""
        past, _ = cold_read(as_of="2024-06-30")
        print(f"cold stock(as_of='2024-06-30'): {past * 1000:.0f} ms (no snapshot can serve it)")
        """),
        md("""
        ### The snapshot on disk

        Each snapshot is a Parquet file plus a JSON manifest beside it: the seq it stands for,
        the Delta version, a sha256 of the file and the state version (a snapshot made by an
        older definition of the state is never used). A snapshot whose file does not match its
        checksum is ignored, with a warning, and the state is recomputed from the log.
        """),
        code("""
        pl.DataFrame([asdict(s) for s in inv.snapshots.list()])
        """),
        code("""
        print((inv.path / "snapshots" / info.file).with_suffix(".json").read_text())
        """),
        md("""
        And the whole store: the schema, the Delta table of events (partitioned by the UTC date
        of `occurred_at`, plus the Delta log of commits), the snapshots and any projections.
        """),
        code("""
        def area(relative: Path) -> str:
            top, *rest = relative.parts
            if top == "events" and rest:
                return "events/_delta_log" if rest[0] == "_delta_log" else "events/occurred_on=*"
            return f"{top}/" if rest else top

        files = pl.DataFrame(
            [{"area": area(p.relative_to(inv.path)), "bytes": p.stat().st_size} for p in inv.path.rglob("*") if p.is_file()]
        )
        files.group_by("area").agg(pl.len().alias("files"), (pl.col("bytes").sum() / 1024).round(1).alias("KiB")).sort("area")
        """),
        md("""
        Many small files come from the backdated events (each writes into an old date
        partition) and from small commits; `inv.log.compact()` merges them without changing
        any answer. Snapshot retention keeps the newest few plus a ladder of older ones
        (`Inventory.open(..., keep_snapshots=3)`, `inv.prune_snapshots()`).
        """),
    ]


# --- 03 -------------------------------------------------------------------------------------


def projections() -> list[NotebookNode]:
    return [
        md("""
        # Projections and charts

        A projection is an analytic table derived from the log and kept up to date from its
        tail: after new events arrive, only those are folded and merged into the stored table.
        This notebook tours the built-in projections, defines its own, watches an incremental
        update, and draws the charts of `eventlog.plot`.
        """),
        setup("projections", """
        import duckdb

        from eventlog import Agg, FunctionProjection, Projection, plot

        %matplotlib inline
        """),
        md("""
        We load 90,000 of the sample's 100,000 events now and keep the last 10,000 for later,
        to watch an incremental update.
        """),
        code("""
        events = pl.read_parquet(DATA / "sample_events.parquet")
        first, later = events.head(90_000), events.tail(10_000)
        inv = Inventory.open(WORK / "store")
        inv.record(first)
        """),
        md("""
        ## The built-in projections

        Every inventory has these. Nothing is built until asked: a status without a
        `checkpoint` has no table yet.
        """),
        code("""
        def status_table(statuses) -> pl.DataFrame:
            return pl.DataFrame([s.as_dict() for s in statuses]).select(
                "name", "mode", "checkpoint", "lag", "rows", "duration_s", "stale_definition")

        pl.DataFrame(
            [{"name": name, "mode": inv.projection(name).definition.mode,
              "description": inv.projection(name).definition.description}
             for name in inv.projector.registry]
        )
        """),
        code("""
        status_table(inv.projections_status())
        """),
        md("""
        `update_projections()` builds them all, reading the log once for all of them.
        `daily_stock` stores only the days on which an item changed; `stockouts` and
        `top_movers` are small summaries rebuilt from it.
        """),
        code("""
        t0 = time.perf_counter()
        built = inv.update_projections()
        print(f"built {len(built)} projections over {inv.log.head():,} events in {time.perf_counter() - t0:.2f} s")
        status_table(built.values())
        """),
        code("""
        inv.projection("most_collected_items").top(5)
        """),
        code("""
        inv.projection("daily_flows").read().head()
        """),
        code("""
        inv.projection("stockouts").read().sort("days", descending=True, nulls_last=True).head()
        """),
        code("""
        inv.projection("top_movers").top(5)
        """),
        md("""
        ## Your own projection

        A declarative `Projection` is group keys plus aggregates, all written as SQL
        expressions over the event columns (`stream_id` is the item's name). The aggregates
        come from a mergeable family (`count`, `sum`, `min`, `max`, `first`/`last` by log
        order, `distinct`), which is what lets the table be updated from the tail alone.
        Units added by origin and rarity:
        """),
        code("""
        units_by_origin = Projection(
            "units_by_origin_rarity",
            keys={"origin": "origin", "rarity": "rarity"},
            event_types=["item_added"],
            aggregates={
                "units": Agg.sum("quantity"),
                "adds": Agg.count(),
                "big_adds": Agg.count(where="quantity >= 10"),
                "last_item": Agg.last("stream_id"),
            },
            rank_by="units",
            description="Units added per origin and rarity.",
        )
        mine = inv.register(units_by_origin)
        mine.top(8)
        """),
        md("""
        The same definition compiles to one SQL query, for DuckDB or any engine that can read
        the events. Run over the events, it gives the same table (DuckDB sums to a wider
        integer type, hence the cast):
        """),
        code("""
        print(units_by_origin.to_sql())
        """),
        code("""
        log_events = inv.log.scan().collect()
        from_sql = duckdb.sql(units_by_origin.to_sql("log_events")).pl()
        from_sql.cast(mine.read().schema).equals(mine.read())
        """),
        md("""
        ## Incremental update

        Now the remaining 10,000 events arrive. The stored table is behind by exactly those
        (`lag`); an update folds only them and merges the groups they touch.
        """),
        code("""
        inv.record(later)
        status_table([mine.status()])
        """),
        code("""
        updated = mine.update()
        rebuilt = mine.rebuild()
        print(f"incremental update: {updated.duration_s * 1000:.0f} ms, full rebuild: {rebuilt.duration_s * 1000:.0f} ms")
        status_table([updated])
        """),
        md("""
        By default `read()` brings a projection up to date before answering, so you rarely call
        `update()` yourself; `Inventory.open(path, projection_reads="stale")` serves the stored
        table instead and warns how far behind it is. Past cuts work too:
        """),
        code("""
        mine.read(as_of="2024-03-31").sort("units", descending=True).head(3)
        """),
        md("""
        ## A function projection

        When a question does not fit keys and mergeable aggregates, a `FunctionProjection` is
        any function from the events (a Polars `LazyFrame`) to a table. It is rebuilt whenever
        the log moved, so keep it cheap, or base it on another projection with
        `source="<name>"`. Removals by weekday — the weekend rush:
        """),
        code("""
        def removals_by_weekday(events: pl.LazyFrame) -> pl.LazyFrame:
            return (
                events.filter(pl.col("event_type") == "item_removed")
                .group_by(pl.col("occurred_at").dt.weekday().alias("weekday"))  # 1 = Monday
                .agg(pl.col("quantity").sum().alias("units_removed"), pl.len().alias("removals"))
                .sort("weekday")
            )

        weekdays = inv.register(FunctionProjection("removals_by_weekday", removals_by_weekday, rank_by="units_removed"))
        weekdays.read()
        """),
        code("""
        status_table([weekdays.status()])
        """),
        md("""
        ## Charts

        `eventlog.plot` draws from the projections (never replaying the log itself) and
        returns matplotlib Figures, so they display inline, save with `fig.savefig(...)` and
        need no GUI. Stock over the year for the three most collected items:
        """),
        code("""
        leaders = inv.projection("most_collected_items").top(3)["item"].to_list()
        plot.stock_history(inv, leaders)
        """),
        code("""
        plot.daily_flows(inv)
        """),
        code("""
        plot.top_items(inv.projection("most_collected_items").top(15), value="total_added", title="Most collected items")
        """),
        md("""
        `top_items` takes any ranked table; our projection has two keys, so we join them into
        one label:
        """),
        code("""
        ranked = mine.top(12).with_columns(label=pl.concat_str("origin", "rarity", separator=" / "))
        plot.top_items(ranked, value="units", label="label", title="Units added by origin and rarity")
        """),
        code("""
        plot.stock_heatmap(inv, top=15)
        """),
        code("""
        plot.event_rate(inv, every="1w")
        """),
    ]


# --- 04 -------------------------------------------------------------------------------------


def sql() -> list[NotebookNode]:
    return [
        md("""
        # SQL for analysts

        Everything in the store is plain Parquet and Delta, so any SQL engine can read it.
        `eventlog.connect(store)` (the same as `eventlog.sql.connect`) gives a DuckDB connection already set up with views over
        the store: `events` (the log), `inventory` (the current state), `commits`, `snapshots`
        and one view per projection, plus the time-travel table macros `events_as_of(x)` and
        `inventory_as_of(x)`.
        """),
        setup("sql"),
        md("""
        A store from the embedded data: the original example's story, then the 100,000-event
        sample, with the projections built.
        """),
        code("""
        inv = Inventory.open(WORK / "store")
        inv.record(pl.read_csv(DATA / "original_example.csv"))
        inv.record(pl.read_parquet(DATA / "sample_events.parquet"))
        inv.update_projections()
        con = eventlog.connect(inv.path)
        """),
        md("""
        ## The views

        DuckDB lists them like tables; `DESCRIBE` shows a view's columns.
        """),
        code("""
        con.sql("SELECT table_name, table_type FROM information_schema.tables ORDER BY table_name").pl()
        """),
        code("""
        con.sql("DESCRIBE events").pl().select("column_name", "column_type")
        """),
        code("""
        con.sql("SELECT * FROM inventory ORDER BY quantity DESC LIMIT 5").pl()
        """),
        code("""
        con.sql("SELECT * FROM commits").pl()
        """),
        md("""
        ## Queries

        Top items by units collected, straight from the log:
        """),
        md("""
        `inv.sql(...)` (like `eventlog.sql.query`) runs one read-only query and returns a Polars
        frame; its integer sums are `i64`, where a raw connection's `SUM` is DuckDB's 128-bit
        `HUGEINT` (a `decimal[38,0]` in Polars).
        """),
        code("""
        inv.sql('''
            SELECT stream_id AS item,
                   SUM(quantity) FILTER (WHERE event_type = 'item_added')   AS collected,
                   SUM(quantity) FILTER (WHERE event_type = 'item_removed') AS used,
                   COUNT(*) AS events
            FROM events
            GROUP BY ALL
            ORDER BY collected DESC NULLS LAST, item
            LIMIT 10
        ''')
        """),
        md("""
        The same ranking is already maintained as a projection, and every projection is a view:
        """),
        code("""
        con.sql("SELECT * FROM most_collected_items ORDER BY total_added DESC, item LIMIT 5").pl()
        """),
        md("""
        Daily totals by business day (`occurred_at` is UTC), with a 7-day moving average:
        """),
        code("""
        inv.sql('''
            WITH daily AS (
                SELECT CAST(occurred_at AS DATE) AS day,
                       SUM(quantity) FILTER (WHERE event_type = 'item_added')   AS added,
                       SUM(quantity) FILTER (WHERE event_type = 'item_removed') AS removed,
                       COUNT(*) AS events
                FROM events
                GROUP BY ALL
            )
            SELECT day, added, removed, events,
                   ROUND(AVG(events) OVER (ORDER BY day ROWS BETWEEN 6 PRECEDING AND CURRENT ROW), 1) AS events_7d_avg
            FROM daily
            ORDER BY day
        ''').tail(7)
        """),
        md("""
        ## Time travel in SQL

        `events_as_of(x)` and `inventory_as_of(x)` take a `seq` (the first x events) or a
        business time, like `as_of` in Python: a `DATE` means the end of that UTC day, a
        `TIMESTAMPTZ` or an ISO string with an offset an instant. Seq 8 is the end of the
        original example's story, loaded first:
        """),
        code("""
        con.sql("SELECT COUNT(*) AS events, MAX(seq) AS last_seq FROM events_as_of(1000)").pl()
        """),
        code("""
        con.sql("SELECT * FROM inventory_as_of(8) ORDER BY item").pl()
        """),
        code("""
        con.sql("SELECT * FROM inventory_as_of(DATE '2024-06-30') ORDER BY quantity DESC, item LIMIT 5").pl()
        """),
        md("""
        The SQL and the Python API agree:
        """),
        code("""
        from_sql = con.sql("SELECT item, quantity FROM inventory_as_of(DATE '2024-06-30') ORDER BY item").pl()
        from_python = inv.stock(as_of="2024-06-30").select("item", "quantity").sort("item")
        from_sql.equals(from_python)
        """),
        md("""
        ## Bound parameters

        `eventlog.sql.query(store, sql, params)` runs one query and returns a Polars frame.
        Pass values as parameters (`$name`), never by pasting them into the SQL text: item
        names here contain quotes, semicolons and accents.
        """),
        code("""
        eventlog.sql.query(
            inv.path,
            '''
            SELECT seq, event_type, quantity, origin, occurred_at
            FROM events
            WHERE stream_id = $item AND occurred_at < $until
            ORDER BY seq
            LIMIT 5
            ''',
            {"item": "Dragon's Tooth", "until": dt.datetime(2024, 2, 1, tzinfo=dt.timezone.utc)},
        )
        """),
        code("""
        eventlog.sql.query(
            inv.path,
            "SELECT item, quantity FROM inventory_as_of($cut) WHERE item IN ($a, $b) ORDER BY item",
            {"cut": dt.date(2024, 3, 31), "a": "Salt; Pepper & Ash", "b": "Épée de Lumière"},
        )
        """),
        md("""
        ## Your own data, and saving results

        The connection is read-only by construction: it may open the store's files and no
        others, so `COPY ... TO`, `ATTACH` or `read_csv('other.csv')` are refused, and so is
        DuckDB's habit of finding Python variables by name. Bring your own data in with
        `con.register`, and save a result from Python:
        """),
        code("""
        prices = pl.DataFrame({"item": ["Dusty Shield", "Épée de Lumière", "Dragon's Tooth"], "price": [12.5, 80.0, 45.0]})
        con.register("prices", prices)
        value = con.sql('''
            SELECT item, quantity, price, quantity * price AS stock_value
            FROM inventory JOIN prices USING (item)
            ORDER BY stock_value DESC
        ''').pl()
        value.write_parquet(WORK / "stock_value.parquet")
        value
        """),
        md("""
        Writes go through the Python API (`Inventory.record`), which checks the stock and keeps
        the log append-only. A connection shows the store as it was when it was made;
        `eventlog.sql.refresh(con)` moves it to the latest commit.
        """),
    ]


# --- 05 -------------------------------------------------------------------------------------


def what_if() -> list[NotebookNode]:
    return [
        md("""
        # What if? Branches of the log

        The story this package starts from ends on "a log is like Git". We have Git's history,
        hashes and time travel; this notebook adds its most used feature: **branches**. We fork
        the store, record a hypothetical restock on the branch, compare its stockouts with the
        original, and then promote the branch into the store, or throw it away. The original
        never changes until we promote.
        """),
        setup("what-if", """
        import os
        import shutil

        import matplotlib.pyplot as plt

        from eventlog.errors import PromoteConflictError

        %matplotlib inline
        """),
        md("""
        The store: the 100,000 sample events of one year.
        """),
        code("""
        inv = Inventory.open(WORK / "store")
        inv.record(pl.read_parquet(DATA / "sample_events.parquet"))
        print(f"{inv.log.head():,} events, head hash {inv.log.head_hash()[:16]}…")
        """),
        md("""
        ## A branch costs no copy

        `branch()` makes a new store whose history is this one's up to a cut (a seq, a date, or
        the head by default). Its data files are the original's, shared by hard links: the same
        files on disk, not copies. It has its own Delta log, snapshots and projections, and its
        hash chain continues from the fork.
        """),
        code("""
        t0 = time.perf_counter()
        what_if = inv.branch(WORK / "what-if")
        elapsed = time.perf_counter() - t0
        lineage = what_if.log.lineage
        shared = sum(
            os.stat(inv.path / "events" / p).st_ino == os.stat(what_if.path / "events" / p).st_ino
            for p in what_if.log.files()["path"]
        )
        print(f"branched at seq {lineage.fork_seq:,} in {elapsed:.2f} s: {shared} of "
              f"{what_if.log.files().height} data files shared, {lineage.copied} copied, {lineage.rewritten} rewritten")
        print("its first commit continues from the original's hash:", lineage.fork_hash == inv.log.head_hash())
        """),
        md("""
        ## A hypothetical restock

        Which items were out of stock in the last four weeks of the year? On the branch we
        restock the twenty that were out longest, with 50 each on Monday 2 December.
        """),
        code("""
        monday = dt.datetime(2024, 12, 2, 9, 0, tzinfo=dt.timezone.utc)
        stockouts = inv.projection("stockouts").read()
        late = stockouts.filter(pl.col("end_day").is_null() | (pl.col("end_day") >= monday.date()))
        twenty = (late.with_columns(until=pl.col("end_day").fill_null(dt.date(2024, 12, 31)))
                  .group_by("item").agg((pl.col("until") - pl.max_horizontal("start_day", pl.lit(monday.date())))
                                         .dt.total_days().sum().alias("days_out"))
                  .sort(["days_out", "item"], descending=[True, False]).head(20))
        restock = twenty.select("item", event_type=pl.lit("item_added"), quantity=pl.lit(50),
                                occurred_at=pl.lit(monday))
        what_if.record(restock)
        twenty.head()
        """),
        md("""
        `compare` puts the two side by side, item by item: the quantity here, there, and the
        change (there minus here). Only the restocked items moved.
        """),
        code("""
        inv.compare(what_if).filter(pl.col("change") != 0).head()
        """),
        md("""
        ## Which stockouts go away?

        Every projection compares the same way, matched by its keys (`stockouts` has none, so
        whole rows are matched): `removed` rows are stockouts only the original has.
        """),
        code("""
        diff = inv.projection("stockouts").compare(what_if)
        print(diff.group_by("status").len().sort("status"))
        diff.filter(pl.col("status") == "removed").head()
        """),
        code("""
        def days_out(table: pl.DataFrame) -> pl.DataFrame:
            return (table.filter(pl.col("item").is_in(twenty["item"].implode()))
                    .with_columns(until=pl.col("end_day").fill_null(dt.date(2024, 12, 31)))
                    .filter(pl.col("until") >= monday.date())
                    .group_by("item").agg((pl.col("until") - pl.max_horizontal("start_day", pl.lit(monday.date())))
                                          .dt.total_days().sum().alias("days")))

        both = (twenty.select("item")
                .join(days_out(inv.projection("stockouts").read()), on="item", how="left")
                .join(days_out(what_if.projection("stockouts").read()), on="item", how="left", suffix="_what_if")
                .fill_null(0).sort("days", descending=True))
        fig, ax = plt.subplots(figsize=(9, 4.5))
        x = range(both.height)
        ax.bar([i - 0.2 for i in x], both["days"], width=0.4, label="as it was")
        ax.bar([i + 0.2 for i in x], both["days_what_if"], width=0.4, label="restocked on 2 Dec")
        ax.set_xticks(list(x), both["item"].to_list(), rotation=70, ha="right")
        ax.set_ylabel("days out of stock since 2 Dec")
        ax.set_title("Stockouts of the twenty items, original vs branch")
        ax.legend()
        fig.tight_layout()
        """),
        md("""
        ## The original did not change

        Writes to the branch never reach the original, and the other way round. `verify()` of
        a branch checks its own chain back to the fork and that the original still holds the
        history it was made from (the same anchor as `verify(expect=...)`).
        """),
        code("""
        item = twenty["item"][0]
        print(f"{item!r}: {inv.get_count(item)} in the store, {what_if.get_count(item)} on the branch")
        print(what_if.verify())
        """),
        md("""
        ## Then vs now

        One store at two cuts compares the same way, and SQL has the macro
        `inventory_compare(x, y)` over two cuts.
        """),
        code("""
        inv.compare(as_of="2024-06-30").sort("change").head()
        """),
        code("""
        inv.sql("SELECT * FROM inventory_compare('2024-06-30', $head) ORDER BY change LIMIT 5",
                {"head": inv.log.head()})
        """),
        md("""
        ## Promote, or discard

        A branch that is not wanted is just a folder to delete. Promoting appends the branch's
        events after the fork to the original, all or nothing. When the original moved
        meanwhile, every event is checked again against its head, and the first that no
        longer fits is named, with nothing written:
        """),
        code("""
        best_seller = inv.stock().sort("quantity", descending=True)["item"][0]
        sell_out = inv.branch(WORK / "sell-out")
        sell_out.remove_item(best_seller, sell_out.get_count(best_seller))  # the branch sells every unit...
        inv.remove_item(best_seller, 1)                                      # ...while the store sells one
        try:
            inv.promote(sell_out)
        except PromoteConflictError as exc:
            print(exc)
        shutil.rmtree(sell_out.path)  # discarded
        """),
        md("""
        The restock still fits: it only adds. A retried promote appends nothing (it is
        idempotent by the branch's commit hashes). What still differs afterwards is the unit
        the store sold after the fork.
        """),
        code("""
        result = inv.promote(what_if)
        print(f"promoted seq {result.first_seq:,}..{result.last_seq:,}; again: duplicate={inv.promote(what_if).duplicate}")
        print(inv.verify())
        inv.compare(what_if).filter(pl.col("change") != 0)
        """),
    ]


NOTEBOOKS = {
    "01_quickstart": quickstart,
    "02_time_travel_and_snapshots": time_travel,
    "03_projections_and_charts": projections,
    "04_sql_for_analysts": sql,
    "05_what_if": what_if,
}


def build() -> dict[str, str]:
    """Each notebook's file name and its JSON text (no outputs, stable cell ids)."""
    out = {}
    for stem, cells in NOTEBOOKS.items():
        nb = nbformat.v4.new_notebook()
        nb.cells = cells()
        for i, cell in enumerate(nb.cells, start=1):
            cell.id = f"{stem[:2]}-{i:02d}"
        nb.metadata = {
            "kernelspec": {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"},
            "language_info": {"name": "python"},
        }
        nbformat.validate(nb)
        out[f"{stem}.ipynb"] = nbformat.writes(nb) + "\n"
    return out


def main() -> None:
    for name, text in build().items():
        path = HERE / name
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
            print(f"wrote {path.relative_to(HERE.parent)}")


if __name__ == "__main__":
    main()
