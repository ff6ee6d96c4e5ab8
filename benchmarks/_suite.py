"""All measurements for one store size, on one working copy of the cached store.

The order matters, because later steps change the store:

A. the store holds the first n events:
   cold stock(), peers (Python objects, eventsourcing), time travel by seq and by date,
   get_count, the SQL surface (if eventlog.sql exists), verify, peak memory, projection
   rebuilds;
B. the 1% tail is appended: warm stock() from a snapshot, incremental projection updates;
C. record() batches, then single add_item() calls.

Every timed eventlog call uses a new ``Inventory`` object (its in-memory cache is empty)
unless said otherwise, and the snapshots on disk are reset before each run so that every
run sees the same state. Runs of the implementations compared are interleaved (and their
order rotated) so that a noisy neighbour slows them all alike.
"""

from __future__ import annotations

import datetime as dt
import os
import random
import shutil
import tempfile
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from benchmarks import _limits, _peers, _reads, _spark, _writers, branching
from benchmarks._data import Dataset, size_label
from benchmarks._measure import Results, peak_rss_mib, quantities, same_frames, same_quantities, timed
from eventlog import EventLog, Inventory, Projection


@dataclass(frozen=True)
class Config:
    mode: str
    runs: int
    record_batch: int
    adds: int
    peer_budget_s: float
    memory_runs: int
    spark: bool = False  # Spark local vs DuckDB (benchmarks/_spark.py): a session costs 15-90 s
    #: Batch sizes whose record() peak memory is measured (once per run, on a new store: see _child).
    record_memory: tuple[int, ...] = (1_000_000,)
    #: Only the write path (record, add_item, record's memory) on each store: for iterating on it.
    writes_only: bool = False


QUICK = Config("quick", runs=3, record_batch=200_000, adds=50, peer_budget_s=10.0, memory_runs=1)
FULL = Config("full", runs=5, record_batch=1_000_000, adds=200, peer_budget_s=60.0, memory_runs=2, spark=True,
              record_memory=(1_000_000, 20_000_000))

STATE_KEYS = ["item"]


class SizeBench:
    def __init__(self, ds: Dataset, cfg: Config, results: Results, work_root: Path) -> None:
        self.ds, self.cfg, self.res = ds, cfg, results
        self.n = ds.n
        self.label = ds.label
        self.work = work_root / f".work-{ds.root.name}"
        self.store = self.work / "store"
        self.events = self.store / "events"
        self.rng = random.Random(f"{ds.seed}-{ds.n}")
        self.say = results.say
        self.times: dict[str, Any] = {}

    # --- plumbing ---------------------------------------------------------------------------

    def add(self, op: str, impl: str, samples: list[float], **kw: Any) -> dict[str, Any]:
        return self.res.add(self.label, self.n, op, impl, samples, **kw)

    def check(self, name: str, result: tuple[bool, str]) -> None:
        self.res.check(self.label, name, *result)

    def set_snapshots(self, saved: Path | None) -> None:
        """Make the store's snapshots/ exactly ``saved`` (None: no snapshot at all)."""
        shutil.rmtree(self.store / "snapshots", ignore_errors=True)
        if saved is not None:
            shutil.copytree(saved, self.store / "snapshots")

    def interleaved(self, runs: int, impls: dict[str, Callable[[int], Any]],
                    before: Callable[[int], None] | None = None) -> dict[str, tuple[list[float], list[Any]]]:
        """Run each implementation ``runs`` times, interleaved, rotating who goes first.

        ``before`` (untimed) runs before each eventlog call: it sets the store's state
        (snapshots, projection tables) that the call must find. The store is left as the
        last eventlog call left it, so its output can be checked afterwards.
        """
        out: dict[str, tuple[list[float], list[Any]]] = {k: ([], []) for k in impls}
        names = list(impls)
        for i in range(runs):
            shift = i % len(names)
            for name in names[shift:] + names[:shift]:
                if before is not None and name == "eventlog":
                    before(i)
                t, value = timed(lambda: impls[name](i))  # noqa: B023 (called at once)
                out[name][0].append(t)
                out[name][1].append(value)
        return out

    # --- the run ------------------------------------------------------------------------------

    def run(self) -> None:
        shutil.rmtree(self.work, ignore_errors=True)
        self.work.mkdir(parents=True)
        try:
            shutil.copytree(self.ds.store, self.store, ignore=shutil.ignore_patterns("snapshots", "projections"))
            self.say(f"  [{self.label}] {len(_limits.delta_files(self.events))} data files")
            if self.cfg.writes_only:
                self.snap_n = self.save_snapshot_at_head()
                self.append_tail()
                self.record()
                self.add_item()
                _writers.run(self)
                self.record_memory()
                return
            self.warm_up()
            self.cold_stock()
            self.python_objects()
            self.eventsourcing()
            self.snap_n = self.save_snapshot_at_head()
            self.as_of_seq()
            self.as_of_date()
            self.get_count()
            _reads.get_count_cold(self)
            self.sql_surface()
            _reads.verify(self)
            branching.run(self)
            self.memory()
            self.record_memory()
            self.rebuild()
            _reads.inventory_verify(self)
            _spark.run(self)
            self.append_tail()
            self.warm_stock()
            _reads.verify_tail(self)
            self.incremental()
            self.record()
            self.add_item()
            _writers.run(self)
        finally:
            shutil.rmtree(self.work, ignore_errors=True)

    def warm_up(self) -> None:
        """Read every file once (OS page cache) and import the engines, untimed."""
        _limits.duckdb_stock(self.events, shape="qty")
        _limits.polars_stock(self.events, shape="qty")

    # --- A: the store holds n events ------------------------------------------------------------

    def cold_stock(self) -> None:
        out = self.interleaved(
            self.cfg.runs,
            {
                "eventlog": lambda i: Inventory.open(self.store).stock(),
                "duckdb/state": lambda i: _limits.duckdb_stock(self.events, shape="state"),
                "duckdb/qty": lambda i: _limits.duckdb_stock(self.events, shape="qty"),
                "polars/state": lambda i: _limits.polars_stock(self.events, shape="state"),
                "polars/qty": lambda i: _limits.polars_stock(self.events, shape="qty"),
            },
            before=lambda i: self.set_snapshots(None),
        )
        self.state_n = out["eventlog"][1][0]
        for i, state in enumerate(out["eventlog"][1]):
            for impl in ("duckdb", "polars"):
                self.check(f"cold stock() run {i + 1} = {impl} same columns",
                           same_frames(state, out[f"{impl}/state"][1][i], STATE_KEYS))
                self.check(f"cold stock() run {i + 1} quantities = {impl} quantity-only",
                           same_quantities(quantities(state), quantities(out[f"{impl}/qty"][1][i])))
        for name, (samples, _) in out.items():
            impl, _, variant = name.partition("/")
            self.add("cold_stock", impl, samples, variant=variant,
                     note="new Inventory, no snapshot" if impl == "eventlog" else "")

    def expected_at(self, seq: int) -> dict[str, int]:
        """eventlog's quantities at ``seq`` (untimed, snapshots restored afterwards)."""
        before = self.work / "snapshots-before"
        shutil.rmtree(before, ignore_errors=True)
        has = (self.store / "snapshots").exists()
        if has:
            shutil.copytree(self.store / "snapshots", before)
        try:
            return quantities(Inventory.open(self.store).stock(as_of=seq))
        finally:
            self.set_snapshots(before if has else None)
            shutil.rmtree(before, ignore_errors=True)

    def prefix_for(self, per_event_s: float) -> int:
        """The most events whose runs fit the peer budget (all of them if they fit)."""
        affordable = self.cfg.peer_budget_s / (self.cfg.runs * max(per_event_s, 1e-9))
        if affordable >= self.n:
            return self.n
        digits = len(str(int(affordable))) - 2
        return max(1000, int(affordable) // 10**digits * 10**digits)

    def python_objects(self) -> None:
        cal = min(self.n, 50_000)
        t_load, events = timed(lambda: _peers.load_events(self.events, cal))
        t_replay, _ = timed(lambda: _peers.replay(events))
        del events
        prefix = self.prefix_for((t_load + t_replay) / cal)
        note = "" if prefix == self.n else f"first {size_label(prefix)} of {self.label} events (time budget)"
        loads, replays, totals = [], [], []
        counters = []
        for _ in range(self.cfg.runs):
            t_load, events = timed(lambda: _peers.load_events(self.events, prefix))
            t_replay, counter = timed(lambda: _peers.replay(events))  # noqa: B023
            del events
            loads.append(t_load)
            replays.append(t_replay)
            totals.append(t_load + t_replay)
            counters.append(counter)
        expected = self.expected_at(prefix)
        for i, counter in enumerate(counters):
            self.check(f"Python objects + Counter run {i + 1} = eventlog stock(as_of={prefix})",
                       same_quantities(expected, _peers.in_stock(counter)))
        self.add("cold_stock", "python", totals, variant="load+replay", events=prefix, note=note)
        self.add("python_load", "python", loads, variant="load", events=prefix, note=note)
        self.add("python_replay", "python", replays, variant="replay", events=prefix, note=note)

    def eventsourcing(self) -> None:
        base = Path(tempfile.mkdtemp(dir=self.work, prefix="es-"))
        try:
            cal = min(self.n, 3000)
            rows = _peers.es_rows(self.events, cal)
            app = _peers.es_app(base / "cal.db")
            t_app, _ = timed(lambda: _peers.es_append(app, rows))
            names = sorted({r[1] for r in rows})
            t_rec, _ = timed(lambda: _peers.es_reconstruct(_peers.es_app(base / "cal.db"), names))
            prefix = self.prefix_for((t_app + t_rec) / cal)
            note = "" if prefix == self.n else f"first {size_label(prefix)} of {self.label} events (time budget)"
            rows = _peers.es_rows(self.events, prefix)
            names = sorted({r[1] for r in rows})
            expected = self.expected_at(prefix)
            appends, rebuilds = [], []
            aggregates: dict[str, Any] = {}
            for i in range(self.cfg.runs):
                db = base / f"run{i}.db"
                app = _peers.es_app(db)
                t_app, aggregates = timed(lambda: _peers.es_append(app, rows))  # noqa: B023
                t_rec, got = timed(lambda: _peers.es_reconstruct(_peers.es_app(db), names))  # noqa: B023
                self.check(f"eventsourcing run {i + 1} reconstructed = eventlog stock(as_of={prefix})",
                           same_quantities(expected, got))
                appends.append(t_app)
                rebuilds.append(t_rec)
            self.add("es_append", "eventsourcing", appends, events=prefix,
                     note=(note + "; " if note else "") + f"aggregates in memory, one save per {_peers.ES_SAVE_EVERY} events")
            self.add("cold_stock", "eventsourcing", rebuilds, variant="reconstruct", events=prefix,
                     note=(note + "; " if note else "") + "repository.get of every item")
            if names:
                lat = _peers.es_single_saves(app, aggregates[names[0]], self.cfg.adds)
                self.add("add_item", "eventsourcing", lat, events=1, note="one event per save, aggregate in memory")
        finally:
            shutil.rmtree(base, ignore_errors=True)

    def save_snapshot_at_head(self) -> Path:
        self.set_snapshots(None)
        Inventory.open(self.store).snapshot()
        saved = self.work / "snapshot-at-n"
        shutil.copytree(self.store / "snapshots", saved)
        return saved

    def as_of_seq(self) -> None:
        cuts = [self.rng.randint(1, self.n) for _ in range(self.cfg.runs)]
        out = self.interleaved(
            self.cfg.runs,
            {
                "eventlog": lambda i: Inventory.open(self.store).stock(as_of=cuts[i]),
                "duckdb/state": lambda i: _limits.duckdb_stock(self.events, seq=cuts[i]),
                "polars/state": lambda i: _limits.polars_stock(self.events, seq=cuts[i]),
            },
            before=lambda i: self.set_snapshots(self.snap_n),
        )
        self._check_cuts("stock(as_of=seq)", out, cuts)
        for name, (samples, _) in out.items():
            impl, _, variant = name.partition("/")
            self.add("as_of_seq", impl, samples, variant=variant,
                     note="random seq per run; snapshot only at head" if impl == "eventlog" else "")

    def as_of_date(self) -> None:
        first = self.state_n.get_column("first_added_at").min().date()  # type: ignore[union-attr]
        last = self.state_n.get_column("last_changed_at").max().date()  # type: ignore[union-attr]
        days = [first + dt.timedelta(days=self.rng.randint(0, (last - first).days)) for _ in range(self.cfg.runs)]
        ends = [dt.datetime(d.year, d.month, d.day, tzinfo=dt.UTC) + dt.timedelta(days=1, microseconds=-1) for d in days]
        out = self.interleaved(
            self.cfg.runs,
            {
                "eventlog": lambda i: Inventory.open(self.store).stock(as_of=days[i]),
                "duckdb/state": lambda i: _limits.duckdb_stock(self.events, until=ends[i]),
                "polars/state": lambda i: _limits.polars_stock(self.events, until=ends[i]),
            },
            before=lambda i: self.set_snapshots(self.snap_n),
        )
        self._check_cuts("stock(as_of=date)", out, [d.isoformat() for d in days])
        for name, (samples, _) in out.items():
            impl, _, variant = name.partition("/")
            self.add("as_of_date", impl, samples, variant=variant,
                     note="random day per run; snapshot only at head" if impl == "eventlog" else "")

    def _check_cuts(self, what: str, out: dict[str, tuple[list[float], list[Any]]], cuts: list[Any]) -> None:
        for i, state in enumerate(out["eventlog"][1]):
            for impl in ("duckdb", "polars"):
                self.check(f"{what} {cuts[i]} = {impl}", same_frames(state, out[f"{impl}/state"][1][i], STATE_KEYS))

    def get_count(self) -> None:
        names = self.state_n.get_column("item").to_list()
        items = [self.rng.choice(names) for _ in range(self.cfg.runs)]
        out = self.interleaved(
            self.cfg.runs,
            {
                "eventlog": lambda i: Inventory.open(self.store).get_count(items[i]),
                "duckdb/qty": lambda i: _limits.duckdb_count(self.events, items[i]),
                "polars/qty": lambda i: _limits.polars_count(self.events, items[i]),
            },
            before=lambda i: self.set_snapshots(self.snap_n),
        )
        for i, count in enumerate(out["eventlog"][1]):
            for impl in ("duckdb/qty", "polars/qty"):
                got = out[impl][1][i]
                self.check(f"get_count({items[i]!r}) = {impl}", (count == got, f"{count} vs {got}"))
        for name, (samples, _) in out.items():
            impl, _, variant = name.partition("/")
            self.add("get_count", impl, samples, variant=variant,
                     note="new Inventory, snapshot at head" if impl == "eventlog" else "")

    def sql_surface(self) -> None:
        """``eventlog.sql.query(store, 'SELECT * FROM inventory')``, when that module exists."""
        try:
            from eventlog import sql as el_sql
        except ImportError as exc:
            self.say(f"    (eventlog.sql not available: {exc}; skipped)")
            return
        if not hasattr(el_sql, "query"):
            self.say("    (eventlog.sql has no query(); skipped)")
            return
        try:
            self.set_snapshots(None)
            el_sql.query(self.store, "SELECT * FROM inventory")
        except Exception as exc:  # the module is young: a failure to run is reported, not fatal
            self.say(f"    (eventlog.sql.query failed, skipped: {type(exc).__name__}: {exc})")
            self.res.notes.append(f"[{self.label}] eventlog.sql.query failed: {type(exc).__name__}: {exc}")
            return
        out = self.interleaved(
            self.cfg.runs,
            {"eventlog": lambda i: el_sql.query(self.store, "SELECT * FROM inventory")},
            before=lambda i: self.set_snapshots(None),
        )
        for i, frame in enumerate(out["eventlog"][1]):
            self.check(f"sql.query inventory run {i + 1} = stock()", same_frames(self.state_n, frame, STATE_KEYS))
        self.add("sql_inventory", "eventlog", out["eventlog"][0], note="no snapshot")

    def memory(self) -> None:
        runs = self.cfg.memory_runs
        peaks: dict[str, list[float]] = {k: [] for k in ("baseline", "cold_stock", "rebuild", "duckdb_state", "polars_state")}
        for _ in range(runs):
            for op in peaks:
                if op == "cold_stock":
                    self.set_snapshots(None)
                mib, info = peak_rss_mib(op, self.store)
                expected = 0 if op in ("baseline", "rebuild") else self.state_n.height
                if op != "rebuild":
                    self.check(f"memory child {op} did the work", (info["rows"] == expected, f"{info['rows']} rows"))
                peaks[op].append(mib)
        base = min(peaks["baseline"])
        self.add("memory_baseline", "eventlog", peaks["baseline"], unit="MiB",
                 note="fresh process: imports + Inventory.open (subtracted from the others)")
        for op, impl in (("cold_stock", "eventlog"), ("duckdb_state", "duckdb"), ("polars_state", "polars")):
            self.add("memory_cold_stock", impl, [p - base for p in peaks[op]], unit="MiB",
                     variant="" if impl == "eventlog" else "state")
        self.add("memory_rebuild", "eventlog", [p - base for p in peaks["rebuild"]], unit="MiB")

    def record_memory(self) -> None:
        """Peak RSS of one ``record()`` above the RSS before the call, ÷ the batch's in-memory size.

        On a new store, so it does not depend on the store size: measured once per run.
        """
        if any(r["op"] == "memory_record" for r in self.res.rows):
            return
        for batch in self.cfg.record_memory:
            target = self.work / f"record-memory-{batch}"
            shutil.rmtree(target, ignore_errors=True)
            try:
                _, info = peak_rss_mib(f"record:{batch}", target)
            finally:
                shutil.rmtree(target, ignore_errors=True)
            self.check(f"memory child record:{batch} committed the batch", (info["rows"] == batch, f"{info['rows']} rows"))
            above = (info["peak_kib"] - info["rss_before_kib"]) / 1024
            self.add("memory_record", "eventlog", [above], unit="MiB", variant=size_label(batch), events=batch,
                     note=f"{size_label(batch)}-event batch into a new store: peak RSS during the call minus RSS before it")
            self.add("memory_record", "input", [info["input_bytes"] / 2**20], unit="MiB", variant=size_label(batch),
                     events=batch, note="the batch frame's estimated_size()")

    def cold_stock_once(self) -> pl.DataFrame:
        self.set_snapshots(None)  # ~1 ms: a cold stock() writes a snapshot the next one would use
        return Inventory.open(self.store).stock()

    def declarative(self) -> dict[str, Projection]:
        inv = Inventory.open(self.store)
        return {n: p for n, p in inv.projector.registry.items() if isinstance(p, Projection)}

    def duckdb_projections(self) -> dict[str, pl.DataFrame]:
        sql = {n: p.to_sql(source="read_parquet($files)") for n, p in self.declarative().items()}
        return _limits.duckdb_projections(self.events, sql)

    def _check_projections(self, what: str, expected: dict[str, pl.DataFrame]) -> None:
        inv = Inventory.open(self.store)
        for name, proj in self.declarative().items():
            got = inv.projection(name).read()
            self.check(f"{what}: projection {name} = DuckDB to_sql", same_frames(got, expected[name], list(proj.keys)))

    def rebuild(self) -> None:
        out = self.interleaved(
            self.cfg.runs,
            {
                "eventlog": lambda i: Inventory.open(self.store).update_projections(rebuild=True),
                "duckdb/state": lambda i: self.duckdb_projections(),
                "stock/cold": lambda i: self.cold_stock_once(),  # the goal's baseline, in the same runs
            },
        )
        self._check_projections("full rebuild", out["duckdb/state"][1][-1])
        self.add("rebuild", "stock", out["stock/cold"][0], variant="cold", note="new Inventory, no snapshot")
        n_decl = len(self.declarative())
        n_all = len(Inventory.open(self.store).projector.registry)
        self.add("rebuild", "eventlog", out["eventlog"][0], note=f"update_projections(rebuild=True): all {n_all} built-ins")
        self.add("rebuild", "duckdb", out["duckdb/state"][0], variant="state",
                 note=f"the {n_decl} declarative ones' to_sql(), one query each")
        self.n_projections = n_all
        self.proj_n = self.work / "projections-at-n"
        shutil.copytree(self.store / "projections", self.proj_n)

    # --- B: the 1% tail ---------------------------------------------------------------------------

    def append_tail(self) -> None:
        self.set_snapshots(self.snap_n)
        Inventory.open(self.store).record(self.ds.tail_events())

    def warm_stock(self) -> None:
        _reads.warm_stock(self)

    def incremental(self) -> None:
        def restore(i: int) -> None:
            shutil.rmtree(self.store / "projections")
            shutil.copytree(self.proj_n, self.store / "projections")

        out = self.interleaved(
            self.cfg.runs,
            {
                "eventlog": lambda i: Inventory.open(self.store).update_projections(),
                "duckdb/state": lambda i: self.duckdb_projections(),
                # The goal's baseline in the same runs: a full rebuild of the same store (+1%).
                "rebuild": lambda i: Inventory.open(self.store).update_projections(rebuild=True),
            },
            before=restore,
        )
        self.add("incremental", "rebuild", out["rebuild"][0], events=self.n + self.ds.tail,
                 note="update_projections(rebuild=True) of the same store")
        restore(0)  # the checks below look at an incremental update, whichever ran last
        Inventory.open(self.store).update_projections()
        tables = Inventory.open(self.store).projector.tables
        manifests = {n: tables.manifest(n) for n in self.declarative()}
        full = [n for n, m in manifests.items() if m is None or m.full_build]
        self.check("incremental update merged (no full build)", (not full, f"full builds: {full}" if full else "all merged"))
        self._check_projections("incremental update", out["duckdb/state"][1][-1])
        self.add("incremental", "eventlog", out["eventlog"][0], events=self.n + self.ds.tail,
                 note=f"update_projections() after +{size_label(self.ds.tail)} events")
        self.add("incremental", "duckdb", out["duckdb/state"][0], variant="state", events=self.n + self.ds.tail,
                 note="full recompute of the declarative ones")

    # --- C: writes ----------------------------------------------------------------------------------

    def raw_copy(self) -> Path:
        """A copy of the events table for the raw ``write_deltalake`` baselines: the same files (hard
        links: Delta never changes a data file) and a copy of its log, so both write to a table alike."""
        target = self.work / "raw-delta"
        shutil.rmtree(target, ignore_errors=True)

        def place(src: str, dst: str) -> None:
            if src.endswith(".parquet") and "/_delta_log/" not in src:
                os.link(src, dst)
            else:
                shutil.copy2(src, dst)

        shutil.copytree(self.events, target, copy_function=place)
        return target

    def record(self) -> None:
        from deltalake import WriterProperties, write_deltalake

        size = min(self.cfg.record_batch, self.n)
        batches = self.ds.record_batches(self.cfg.runs, size)
        inv = Inventory.open(self.store)
        inv.stock()  # a long-lived ingester: its state at head is in memory before the first batch
        scratch = self.raw_copy()
        props = WriterProperties(compression="ZSTD", compression_level=1)
        eventlog_t, raw_t = [], []
        for batch in batches:
            t, result = timed(lambda: inv.record(batch))  # noqa: B023
            eventlog_t.append(t)
            rows = (pl.scan_delta(str(self.events)).filter(pl.col("seq").is_between(result.first_seq, result.last_seq))
                    .collect().to_arrow())
            t, _ = timed(lambda: write_deltalake(str(scratch), rows, mode="append", partition_by=["occurred_on"],  # noqa: B023
                                                 writer_properties=props))
            raw_t.append(t)
        head = Inventory.open(self.store).log.head()
        want = self.n + self.ds.tail + len(batches) * size
        self.check("record(): every event committed", (head == want, f"head {head}, expected {want}"))
        self.check("record(): stock = DuckDB after the batches",
                   same_quantities(quantities(Inventory.open(self.store).stock()),
                                   quantities(_limits.duckdb_stock(self.events, shape="qty"))))
        raw_rows = pl.scan_delta(str(scratch)).select(pl.len()).collect().item()
        self.check("raw Delta append: every row committed", (raw_rows == want, f"{raw_rows} rows, expected {want}"))
        self.add("record", "eventlog", eventlog_t, events=size,
                 note=f"batches of {size_label(size)}: validation + stock check + commit; one Inventory for all "
                      "batches (the first also scans the log for stream versions)")
        self.add("record", "delta", raw_t, events=size,
                 note="write_deltalake of the same rows on a copy of the same table, interleaved; envelope "
                      "precomputed, no checks")
        self.raw_scratch = scratch

    def add_item(self) -> None:
        from deltalake import write_deltalake

        inv = Inventory.open(self.store)
        before = Counter(quantities(inv.stock()))
        names = sorted(before) or ["x"]
        picks = [self.rng.choice(names) for _ in range(self.cfg.adds)]
        one = (pl.scan_delta(str(self.events)).filter(pl.col("seq") == inv.log.head()).collect().to_arrow())
        lat, raw = [], []
        for name in picks:  # interleaved: each add_item() beside a one-row write on a table of the same size
            t, _ = timed(lambda: inv.add_item(name))  # noqa: B023
            lat.append(t)
            t, _ = timed(lambda: write_deltalake(str(self.raw_scratch), one, mode="append", partition_by=["occurred_on"]))
            raw.append(t)
        expected = dict(before + Counter(picks))
        self.check("add_item(): eventlog stock = before + adds",
                   same_quantities(expected, quantities(Inventory.open(self.store).stock())))
        self.check("add_item(): DuckDB = before + adds",
                   same_quantities(expected, quantities(_limits.duckdb_stock(self.events, shape="qty"))))
        self.add("add_item", "eventlog", lat, events=1, note="one add_item() each: stock check + Delta commit")
        self.add("add_item", "delta", raw, events=1,
                 note="write_deltalake of one row on a copy of the same table, interleaved")
