"""Read and verify measurements beyond the basic ones: verify with and without a seal, the
inventory's verify against the log's, get_count with no snapshot, and the SQLite state-table
peer of a warm read. Each takes the ``SizeBench`` of the size being measured.

verify keeps a seal of what it checked (``eventlog.verify.seal``), so "verify" means three
things, all measured here against a cold ``stock()`` in the same runs:
- ``verify(deep=True)``: every value recomputed (what every verify did before the seal);
- ``verify()`` on a store an earlier verify sealed, nothing appended since (file bytes hashed);
- ``verify()`` after the 1% tail was appended to a store sealed before it (the tail recomputed).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl

from benchmarks import _peers
from benchmarks._data import size_label
from benchmarks._measure import same_frames, timed
from eventlog import EventLog, Inventory

if TYPE_CHECKING:
    from benchmarks._suite import SizeBench

_SEALS = ("cache", "verified")


def _seal_dir(b: SizeBench) -> Any:
    return b.store.joinpath(*_SEALS)


def _set_seal(b: SizeBench, saved: Any) -> None:
    shutil.rmtree(_seal_dir(b), ignore_errors=True)
    if saved is not None:
        shutil.copytree(saved, _seal_dir(b))


def _passes(b: SizeBench, what: str, reports: list[Any]) -> None:
    for i, report in enumerate(reports):
        b.check(f"{what} run {i + 1} passes", (report.ok, str(report)))


def verify(b: SizeBench) -> None:
    """Phase A: deep and sealed ``EventLog.verify()`` against cold ``stock()`` in the same runs."""
    _set_seal(b, None)
    out = b.interleaved(
        b.cfg.runs,
        {
            "eventlog": lambda i: Inventory.open(b.store).stock(),
            "verify": lambda i: EventLog.open(b.store).verify(deep=True),
        },
        before=lambda i: b.set_snapshots(None),
    )
    _passes(b, "verify(deep=True)", out["verify"][1])
    b.add("verify_deep", "eventlog", out["verify"][0], note="new EventLog, every value recomputed")
    b.add("verify_deep", "stock", out["eventlog"][0], variant="cold", note="new Inventory, no snapshot")
    EventLog.open(b.store).verify()  # untimed: the seal a later verify finds
    b.seal_n = b.work / "seal-at-n"
    shutil.rmtree(b.seal_n, ignore_errors=True)
    shutil.copytree(_seal_dir(b), b.seal_n)
    out = b.interleaved(
        b.cfg.runs,
        {
            "eventlog": lambda i: Inventory.open(b.store).stock(),
            "verify": lambda i: EventLog.open(b.store).verify(),
        },
        before=lambda i: b.set_snapshots(None),
    )
    _passes(b, "verify() with a seal", out["verify"][1])
    b.check("verify() used the seal", (all(r.sealed == b.n for r in out["verify"][1]), "sealed up to the head"))
    b.add("verify", "eventlog", out["verify"][0], note="new EventLog, seal of an earlier verify, nothing new")
    b.add("verify", "stock", out["eventlog"][0], variant="cold", note="new Inventory, no snapshot")


def inventory_verify(b: SizeBench) -> None:
    """Phase A, after the rebuild: ``Inventory.verify()`` against ``EventLog.verify()``, deep and sealed.

    The store holds a snapshot at its head and every built-in projection table.
    """
    b.set_snapshots(b.snap_n)
    for deep, op in ((True, "inventory_verify_deep"), (False, "inventory_verify")):
        if not deep:
            _set_seal(b, None)
            Inventory.open(b.store).verify()  # untimed: the seals (log and inventory) the timed runs find
        out = b.interleaved(
            b.cfg.runs,
            {
                "eventlog": lambda i, deep=deep: Inventory.open(b.store).verify(deep=deep),  # type: ignore[misc]
                "log": lambda i, deep=deep: EventLog.open(b.store).verify(deep=deep),  # type: ignore[misc]
            },
        )
        _passes(b, f"Inventory.verify(deep={deep})", out["eventlog"][1])
        _passes(b, f"EventLog.verify(deep={deep})", out["log"][1])
        how = "every value recomputed" if deep else "seals of an earlier verify, nothing new"
        b.add(op, "eventlog", out["eventlog"][0], note=f"new Inventory, snapshot + {b.n_projections} tables; {how}")
        b.add(op, "log", out["log"][0], note=f"EventLog.verify(deep={deep}), same runs")
    _set_seal(b, None)


def _interleaved(runs: int, impls: dict[str, tuple[Callable[[], None], Callable[[], Any]]]
                 ) -> dict[str, tuple[list[float], list[Any]]]:
    """Each implementation ``runs`` times, order rotated, each after its own untimed setup."""
    out: dict[str, tuple[list[float], list[Any]]] = {k: ([], []) for k in impls}
    names = list(impls)
    for i in range(runs):
        for name in names[i % len(names):] + names[:i % len(names)]:
            setup, run = impls[name]
            setup()
            t, value = timed(run)
            out[name][0].append(t)
            out[name][1].append(value)
    return out


def verify_tail(b: SizeBench) -> None:
    """Phase B: ``verify()`` after the 1% tail, from the seal made at n, against a cold ``stock()``."""
    out = _interleaved(b.cfg.runs, {
        "eventlog": (lambda: b.set_snapshots(None), lambda: Inventory.open(b.store).stock()),
        "verify": (lambda: _set_seal(b, b.seal_n), lambda: EventLog.open(b.store).verify()),
    })
    _passes(b, "verify() after the tail", out["verify"][1])
    b.check("verify() after the tail started from the seal",
            (all(r.sealed == b.n for r in out["verify"][1]), "sealed up to n"))
    b.add("verify_tail", "eventlog", out["verify"][0], events=b.n + b.ds.tail,
          note=f"new EventLog, seal at {b.label}, +{size_label(b.ds.tail)} events recomputed")
    b.add("verify_tail", "stock", out["eventlog"][0], variant="cold", events=b.n + b.ds.tail,
          note="new Inventory, no snapshot")
    _set_seal(b, None)


def get_count_cold(b: SizeBench) -> None:
    """``get_count(item)`` with no snapshot: only that item's stream is folded."""
    names = b.state_n.get_column("item").to_list()
    items = [b.rng.choice(names) for _ in range(b.cfg.runs)]
    from benchmarks import _limits

    out = b.interleaved(
        b.cfg.runs,
        {
            "eventlog": lambda i: Inventory.open(b.store).get_count(items[i]),
            "duckdb/qty": lambda i: _limits.duckdb_count(b.events, items[i]),
            "polars/qty": lambda i: _limits.polars_count(b.events, items[i]),
        },
        before=lambda i: b.set_snapshots(None),
    )
    for i, count in enumerate(out["eventlog"][1]):
        for impl in ("duckdb/qty", "polars/qty"):
            got = out[impl][1][i]
            b.check(f"get_count({items[i]!r}) with no snapshot = {impl}", (count == got, f"{count} vs {got}"))
    for name, (samples, _) in out.items():
        impl, _, variant = name.partition("/")
        b.add("get_count_cold", impl, samples, variant=variant,
              note="new Inventory, no snapshot" if impl == "eventlog" else "")


def sqlite_state(b: SizeBench, state: Any) -> Any:
    """The warm-read peer: the same current state kept in a SQLite table (built untimed); its path."""
    db = b.work / "state.sqlite"
    _peers.sqlite_write_state(db, state)
    return db


def fresh(b: SizeBench, op: str, source: Any) -> tuple[float, float, Any]:
    """``op`` of ``benchmarks._fresh`` in a new interpreter: (the read alone, the whole process, its result)."""
    out = b.work / f"fresh-{op}.parquet"
    start = time.time()
    proc = subprocess.run([sys.executable, "-m", "benchmarks._fresh", op, str(source), str(out)],
                          capture_output=True, text=True, cwd=Path(__file__).resolve().parent.parent, timeout=600)
    if proc.returncode != 0:
        raise RuntimeError(f"new-process {op!r} failed ({proc.returncode}): {proc.stderr[-2000:]}")
    info = json.loads(proc.stdout.strip().splitlines()[-1])
    frame = pl.read_parquet(out)
    out.unlink()
    return info["read_s"], info["end"] - start, frame


def warm_stock(b: SizeBench) -> None:
    """Phase B: ``stock()`` from the snapshot at n + the 1% tail, in a new process and in this one.

    The goal's figures are both taken in a new process (``benchmarks._fresh``), timed after the
    imports: eventlog's ``Inventory.open(store).stock()`` and SQLite's ``SELECT *`` into a
    DataFrame. The whole process (interpreter start, imports, read) is reported beside them,
    and so are the same reads in this process (imports done, DuckDB started, SQL rendered).
    """
    from benchmarks import _limits

    db = sqlite_state(b, _limits.duckdb_stock(b.events, shape="state"))
    process: dict[str, list[float]] = {"eventlog": [], "sqlite": []}

    def in_new_process(impl: str, op: str, source: Any) -> Callable[[int], Any]:
        def run(i: int) -> Any:
            read, whole, frame = fresh(b, op, source)
            process[impl].append(whole)
            return _Timed(read, frame)
        return run

    out = b.interleaved(
        b.cfg.runs,
        {
            "eventlog": in_new_process("eventlog", "warm_stock", b.store),
            "sqlite/state": in_new_process("sqlite", "sqlite_state", db),
            "in-process": lambda i: Inventory.open(b.store).stock(),
            "sqlite/in-process": lambda i: _peers.sqlite_read_state(db),
            "duckdb/state": lambda i: _limits.duckdb_stock(b.events, shape="state"),
            "polars/state": lambda i: _limits.polars_stock(b.events, shape="state"),
        },
        before=lambda i: b.set_snapshots(b.snap_n),
    )
    for name in ("eventlog", "sqlite/state"):  # the time measured inside the new process, not the spawn
        samples, values = out[name]
        out[name] = ([v.seconds for v in values], [v.value for v in values])
    b.set_snapshots(b.snap_n)  # "in-process" is checked against a fresh read too
    for i, state in enumerate(out["eventlog"][1]):
        for impl in ("duckdb/state", "polars/state", "sqlite/state", "in-process", "sqlite/in-process"):
            b.check(f"warm stock() in a new process, run {i + 1} = {impl}",
                    same_frames(state, out[impl][1][i], ["item"]))
    tail = b.ds.tail
    where = f"snapshot at {b.label} + {size_label(tail)} tail"
    notes = {
        "eventlog": f"a new process, timed after its imports; {where}",
        "sqlite/state": "a new process, timed after `import sqlite3, polars`",
        "in-process": f"this process: imports done, DuckDB started; new Inventory, {where}",
        "sqlite/in-process": "this process",
    }
    for name, (samples, _) in out.items():
        impl, _, variant = name.partition("/")
        b.add("warm_stock", impl, samples, variant=variant, events=b.n + tail, note=notes.get(name, ""))
    b.add("warm_stock_process", "eventlog", process["eventlog"], events=b.n + tail,
          note=f"interpreter start + `from eventlog import Inventory` + the read; {where}")
    b.add("warm_stock_process", "sqlite", process["sqlite"], variant="state", events=b.n + tail,
          note="interpreter start + `import sqlite3, polars` + the read")


class _Timed:
    """A result with the time its new process measured for it."""

    def __init__(self, seconds: float, value: Any) -> None:
        self.seconds, self.value = seconds, value
