"""Machine facts, the JSON record of a run, the markdown tables and the scaling chart."""

from __future__ import annotations

import importlib.metadata
import json
import os
import platform
import subprocess
from collections import defaultdict
from pathlib import Path
from typing import Any


# --- machine ----------------------------------------------------------------------------------


def machine_info(repo: Path) -> dict[str, Any]:
    def cpu_model() -> str:
        try:
            for line in Path("/proc/cpuinfo").read_text().splitlines():
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
        except OSError:
            pass
        return platform.processor() or "unknown"

    def ram_gib() -> float | None:
        try:
            for line in Path("/proc/meminfo").read_text().splitlines():
                if line.startswith("MemTotal:"):
                    return round(int(line.split()[1]) / 1024**2, 1)
        except OSError:
            pass
        return None

    def git(*args: str) -> str | None:
        try:
            return subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, check=True).stdout.strip()
        except (OSError, subprocess.CalledProcessError):
            return None

    versions = {}
    for dist in ("eventlog", "polars", "duckdb", "deltalake", "pyarrow", "numpy", "eventsourcing", "matplotlib"):
        try:
            versions[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            versions[dist] = None
    changed = git("status", "--porcelain", "--untracked-files=no")
    return {
        "cpu_model": cpu_model(),
        "cores": os.cpu_count(),
        "cores_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "ram_gib": ram_gib(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "versions": versions,
        "git_commit": git("rev-parse", "HEAD"),
        "git_dirty_files": len(changed.splitlines()) if changed else 0,
        "load_average_start": os.getloadavg(),
    }


# --- formatting -------------------------------------------------------------------------------


def fmt_s(x: float) -> str:
    if x < 1e-3:
        return f"{x * 1e6:.0f} µs"
    if x < 1:
        return f"{x * 1e3:.3g} ms"
    return f"{x:.3g} s"


def fmt_rate(events: int, seconds: float) -> str:
    rate = events / seconds
    if rate >= 1e6:
        return f"{rate / 1e6:.3g}M ev/s"
    if rate >= 1e3:
        return f"{rate / 1e3:.3g}k ev/s"
    return f"{rate:.3g} ev/s"


def fmt_ratio(r: float) -> str:
    return f"{r:.3g}×" if r >= 0.01 else f"{r:.2g}×"


LABELS = {
    ("stock", "cold"): "eventlog cold `stock()`, in the same runs",
    ("rebuild", ""): "eventlog full rebuild of the same store, in the same runs",
    ("duckdb", "qty"): "DuckDB by hand, quantity only",
    ("duckdb", "state"): "DuckDB by hand, same columns",
    ("polars", "qty"): "Polars by hand, quantity only",
    ("polars", "state"): "Polars by hand, same columns",
    ("python", "load+replay"): "Python objects + Counter: load + replay",
    ("python", "load"): "… of which loading into objects",
    ("python", "replay"): "… of which the Counter replay (in memory)",
    ("eventsourcing", "reconstruct"): "eventsourcing (SQLite): reconstruct all aggregates",
    ("eventsourcing", ""): "eventsourcing (SQLite)",
    ("delta", ""): "raw write_deltalake, no checks",
    ("input", ""): "the input frame (`estimated_size()`)",
    ("copy", ""): "copying the events table (no links)",
    ("eventlog-mid", "mid-commit"): "eventlog, at a seq inside the last commit",
    ("sqlite", "state"): "SQLite state table: `SELECT *` into a DataFrame (new connection)",
    ("sqlite", "in-process"): "SQLite state table: `SELECT *` into a DataFrame, new connection",
    ("in-process", ""): "eventlog warm `stock()`",
    ("log", ""): "`EventLog.verify()`, in the same runs",
    ("local", ""): "eventlog on DuckDB (`Inventory.stock()`, no snapshot)",
    ("spark-files", ""): "eventlog.spark, Spark's Parquet files committed",
    ("local-duckdb", "state"): "local rebuild, DuckDB engine",
    ("local-polars", ""): "local rebuild, Polars engine",
}
OP_TITLES = {
    "cold_stock": "cold `stock()`",
    "warm_stock": "warm `stock()`: snapshot + 1% tail",
    "warm_stock_process": "a new process doing a warm `stock()`, end to end",
    "as_of_seq": "`stock(as_of=seq)`",
    "as_of_date": "`stock(as_of=date)`",
    "get_count": "`get_count(item)`",
    "sql_inventory": "`sql.query('SELECT * FROM inventory')`",
    "get_count_cold": "`get_count(item)`, no snapshot",
    "verify": "`EventLog.verify()` (whole log)",
    "branch": "`Inventory.branch()` (zero copy)",
    "compare": "`origin.compare(branch)`",
    "verify_tail": "`EventLog.verify()` after +1%",
    "verify_deep": "`EventLog.verify(deep=True)` (whole log)",
    "inventory_verify": "`Inventory.verify()`",
    "inventory_verify_deep": "`Inventory.verify(deep=True)`",
    "rebuild": "full rebuild of all projections",
    "incremental": "incremental projection update after +1%",
    "record": "`record()` batch",
    "add_item": "single `add_item()` latency",
    "memory_cold_stock": "peak memory of cold `stock()`",
    "memory_rebuild": "peak memory of full rebuild",
    "memory_record": "peak memory of `record()` above its start",
    "memory_baseline": "process baseline (imports + open)",
    "spark_stock": "Spark local: `eventlog.spark.stock()`",
    "spark_rebuild": "Spark local: rebuild of one projection",
}
OP_ORDER = list(OP_TITLES)


def _by(rows: list[dict[str, Any]]) -> dict[tuple[str, str, str, str], dict[str, Any]]:
    return {(r["size"], r["op"], r["impl"], r["variant"]): r for r in rows}


def _stat(row: dict[str, Any]) -> float:
    """The figure compared: the p50 of latencies, else the median."""
    return row.get("p50", row["median"])


def _per_event(row: dict[str, Any]) -> float:
    return _stat(row) / max(1, row["events"])


def _figure(row: dict[str, Any]) -> str:
    if row["unit"] == "MiB":
        return f"{row['median']:.0f} MiB ({row['min']:.0f}–{row['max']:.0f})"
    if row["op"] == "add_item":
        return f"p50 {fmt_s(row['p50'])}, p99 {fmt_s(row['p99'])}" if "p50" in row else fmt_s(row["median"])
    text = f"{fmt_s(row['median'])} ({fmt_s(row['min'])}–{fmt_s(row['max'])})"
    if row["op"] in ("record", "es_append") or row["impl"] in ("python", "eventsourcing"):
        text += f" = {fmt_rate(row['events'], row['median'])}"
    return text


#: Operations measured for several variants (batch sizes), each its own line.
_BY_VARIANT = {"memory_record"}
#: Operations whose limit rows are those measured for another operation on the same data.
_LIMITS_OF = {"sql_inventory": "cold_stock"}


def _comparisons(size: str, op: str, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows an eventlog figure is compared with: limits first, then peers."""
    here = [r for r in rows if r["size"] == size]
    if op in _LIMITS_OF:
        return [r for r in here if r["op"] == _LIMITS_OF[op] and r["impl"] in ("duckdb", "polars")]
    same = [r for r in here if r["op"] == op and r["impl"] != "eventlog"]
    if op == "cold_stock":
        same += [r for r in here if r["op"] in ("python_load", "python_replay")]
    if op == "record":
        same += [r for r in here if r["op"] == "es_append"]
    order = {"stock": 0, "duckdb": 0, "polars": 1, "delta": 2, "python": 3, "eventsourcing": 4}
    variants = {"state": 0, "qty": 1, "load+replay": 0, "load": 1, "replay": 2}
    return sorted(same, key=lambda r: (order.get(r["impl"], 9), variants.get(r["variant"], 0)))


def markdown(run: dict[str, Any]) -> str:
    rows = run["results"]
    m = run["machine"]
    sizes = list(dict.fromkeys(r["size"] for r in rows))
    v = m["versions"]
    dirty = f" + {m['git_dirty_files']} changed files" if m["git_dirty_files"] else ""
    load_end = m.get("load_average_end", [float("nan")])[0]
    lines = [
        f"# eventlog benchmarks ({run['mode']} run)",
        "",
        f"{run['started_at']} · {m['cpu_model']}, {m['cores']} cores, {m['ram_gib']} GiB RAM · Python {m['python']} · "
        f"polars {v['polars']}, duckdb {v['duckdb']}, deltalake {v['deltalake']}, pyarrow {v['pyarrow']}, "
        f"eventsourcing {v['eventsourcing']} · git {str(m['git_commit'])[:10]}"
        f"{dirty} · load average {m['load_average_start'][0]:.1f} at start, {load_end:.1f} at end (1 min)",
        "",
        f"Each figure is the median of {run['config']['runs']} runs (min–max in brackets), measured in one run of "
        "`python -m benchmarks.run` on the same data, with the implementations interleaved. Every figure was "
        f"reported only after the implementations agreed on the result ({sum(c['passed'] for c in run['checks'])} "
        "checks passed). **eventlog ÷ it** is eventlog's time divided by the other's (per event when they "
        "processed different numbers of events): below 1 eventlog is faster. The hand-written DuckDB and Polars "
        "queries open the Delta table, list its files (`file_uris()`) and aggregate exactly those Parquet files; "
        "cold eventlog reads open a new `Inventory` with no snapshot on disk. Peers that would not fit the time "
        "budget were measured on a prefix of the log, named in the row. Peak memory is the RSS high-water mark of "
        "a fresh process running only that operation, minus that of a process that only imports and opens the store; "
        "for `record()` it is the call's own peak (the high-water mark is reset once the batch is generated) above "
        "the RSS just before it, into a new store.",
        "",
        "## Goals",
        "",
        "| Goal | Target | " + " | ".join(sizes) + " |",
        "|---|---|" + "---|" * len(sizes),
    ]
    for goal in run["goals"]:
        cells = []
        for s in sizes:
            g = goal["by_size"].get(s)
            cells.append("—" if g is None else f"{g['text']} {'✅' if g['met'] else '❌' if g['met'] is False else ''}".strip())
        lines.append(f"| {goal['goal']} | {goal['target']} | " + " | ".join(cells) + " |")
    for size in sizes:
        n = next(r["n_events"] for r in rows if r["size"] == size)
        lines += ["", f"## {size} events ({n:,})", "",
                  "| Operation | eventlog | Compared with | its figure | eventlog ÷ it |", "|---|---|---|---|---|"]
        for op, el in ((op, r) for op in OP_ORDER for r in rows
                       if r["size"] == size and r["op"] == op and r["impl"] == "eventlog"):
            if op not in _BY_VARIANT and el is not next(r for r in rows if r["size"] == size and r["op"] == op
                                                        and r["impl"] == "eventlog"):
                continue
            comps = _comparisons(size, op, rows)
            if op in _BY_VARIANT:  # one eventlog row per variant, each compared with its own
                comps = [c for c in comps if c["variant"] == el["variant"]]
            title = OP_TITLES[op] + (f" ({el['note']})" if el["note"] else "")
            if not comps:
                lines.append(f"| {title} | {_figure(el)} | — | — | — |")
            for i, c in enumerate(comps):
                label = LABELS.get((c["impl"], "" if op in _BY_VARIANT else c["variant"]),
                                   f"{c['impl']} {c['variant']}".strip())
                if c["op"] == "es_append":
                    label = "eventsourcing (SQLite): append"
                if c["op"] == "add_item" and c["impl"] == "eventsourcing":
                    label = "eventsourcing (SQLite): save one event"
                if c["note"]:
                    label += f" ({c['note']})"
                if c["unit"] == "MiB":
                    ratio = el["median"] / c["median"] if c["median"] > 0 else float("nan")
                else:
                    ratio = _per_event(el) / _per_event(c)
                lines.append(f"| {title if i == 0 else ''} | {_figure(el) if i == 0 else ''} | {label} | "
                             f"{_figure(c)} | {fmt_ratio(ratio)} |")
    if run.get("notes"):
        lines += ["", "Notes:", ""] + [f"- {n}" for n in run["notes"]]
    return "\n".join(lines) + "\n"


# --- goals --------------------------------------------------------------------------------------


def goals(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    idx = _by(rows)
    sizes = list(dict.fromkeys(r["size"] for r in rows))

    def get(s: str, op: str, impl: str = "eventlog", variant: str = "") -> dict[str, Any] | None:
        return idx.get((s, op, impl, variant))

    out = []

    def goal(name: str, target: str, fn: Any) -> None:
        by_size = {}
        for s in sizes:
            try:
                value = fn(s)
            except (TypeError, KeyError, ZeroDivisionError):
                value = None
            if value is not None:
                by_size[s] = value
        out.append({"goal": name, "target": target, "by_size": by_size})

    def ratio(a: dict | None, b: dict | None, limit: float | None, pct: bool = False) -> dict[str, Any] | None:
        if a is None or b is None:
            return None
        r = _per_event(a) / _per_event(b) if a["events"] != b["events"] else _stat(a) / _stat(b)
        text = f"{r * 100:.2g}%" if pct else f"{r:.2f}×"
        return {"value": r, "text": text, "met": None if limit is None else r <= limit}

    goal("cold `stock()` ÷ hand-written DuckDB, same columns", "≤ 1.1×",
         lambda s: ratio(get(s, "cold_stock"), get(s, "cold_stock", "duckdb", "state"), 1.1))
    goal("cold `stock()` ÷ hand-written DuckDB, quantity only", "≤ 2×",
         lambda s: ratio(get(s, "cold_stock"), get(s, "cold_stock", "duckdb", "qty"), 2.0))
    goal("cold `stock()` ÷ hand-written Polars, same columns", "(reference)",
         lambda s: ratio(get(s, "cold_stock"), get(s, "cold_stock", "polars", "state"), None))
    # The warm read covers 1% more events than the cold one: compared as measured, not per event.
    goal("warm `stock()` (snapshot + 1% tail) ÷ cold `stock()`", "≤ 3%",
         lambda s: _plain_ratio(get(s, "warm_stock"), get(s, "cold_stock"), 0.03, pct=True))
    goal("warm `stock()` ÷ SQLite state table `SELECT *` (each in a new process, after its imports)", "≤ 2×",
         lambda s: _plain_ratio(get(s, "warm_stock"), get(s, "warm_stock", "sqlite", "state"), 2.0))
    goal("… the same, whole processes (interpreter start + imports + read)", "(reference)",
         lambda s: _plain_ratio(get(s, "warm_stock_process"), get(s, "warm_stock_process", "sqlite", "state"), None))
    goal("… the same, both in the benchmark's process (imports done)", "(reference)",
         lambda s: _plain_ratio(get(s, "warm_stock", "in-process"), get(s, "warm_stock", "sqlite", "in-process"), None))

    goal("`record()` ÷ raw `write_deltalake` of the same rows (interleaved)", "≤ 1.25×",
         lambda s: _plain_ratio(get(s, "record"), get(s, "record", "delta"), 1.25))
    goal("`add_item()` p50 ÷ raw one-row `write_deltalake` p50 (same table, interleaved)", "≤ 1.2×",
         lambda s: _p50_ratio(get(s, "add_item"), get(s, "add_item", "delta"), 1.2))

    def add_flat(s: str) -> dict[str, Any] | None:
        measured = [x for x in sizes if get(x, "add_item") is not None]
        if len(measured) < 2 or s not in measured or s == measured[0]:
            return None
        r = _p50_ratio(get(s, "add_item"), get(measured[0], "add_item"), 1.3)
        return None if r is None else {**r, "text": f"{r['text']} of {measured[0]}'s"}

    goal("`add_item()` p50 flat with table size: ÷ the smallest size's p50", "≤ 1.3×", add_flat)

    def writers(s: str) -> dict[str, Any] | None:
        one, eight = get(s, "writers", variant="1"), get(s, "writers", variant="8")
        if one is None or eight is None or "events_per_s" not in one or "events_per_s" not in eight:
            return None
        r = eight["events_per_s"] / one["events_per_s"]
        text = (f"{r:.2f}× ({eight['events_per_s']:.0f} vs {one['events_per_s']:.0f} events/s; p50 "
                f"{_stat(eight) * 1e3:.0f} vs {_stat(one) * 1e3:.0f} ms)")
        return {"value": r, "text": text, "met": r >= 5.0}

    goal("8 writers ÷ 1 writer events/s (processes appending single events)", "≥ 5×", writers)

    def record_memory(s: str) -> dict[str, Any] | None:
        parts = []
        for r in (r for r in rows if r["size"] == s and r["op"] == "memory_record" and r["impl"] == "eventlog"):
            frame = get(s, "memory_record", "input", r["variant"])
            if frame is not None:
                parts.append((r["variant"], r["median"] / frame["median"], frame["median"]))
        if not parts:
            return None
        text = "; ".join(f"{v} rows: {x:.2f}× ({m:.0f} MiB frame)" for v, x, m in parts)
        return {"value": max(x for _, x, _ in parts), "text": text, "met": all(x <= 4.0 for _, x, _ in parts)}

    goal("`record()` peak RSS above its start ÷ the input frame's `estimated_size()`", "≤ 4× (1M and 20M rows)",
         record_memory)
    goal("`verify()` ÷ cold `stock()` (same runs; sealed by an earlier verify)", "≤ 1.5×",
         lambda s: _plain_ratio(get(s, "verify"), get(s, "verify", "stock", "cold"), 1.5))
    def seconds(s: str, op: str, limit: float) -> dict[str, Any] | None:
        r = get(s, op)
        return None if r is None else {"value": r["median"], "text": fmt_s(r["median"]), "met": r["median"] <= limit}

    goal("`branch()` at the head, no data copied", "≤ 1 s", lambda s: seconds(s, "branch", 1.0))
    goal("`origin.compare(branch)` ÷ cold `stock()` (same runs)", "≤ 2×",
         lambda s: _plain_ratio(get(s, "compare"), get(s, "compare", "stock", "cold"), 2.0))
    goal("`verify()` after +1% (sealed before) ÷ cold `stock()`", "≤ 1.5×",
         lambda s: _plain_ratio(get(s, "verify_tail"), get(s, "verify_tail", "stock", "cold"), 1.5))
    goal("`verify(deep=True)` ÷ cold `stock()` (every value recomputed)", "(reference)",
         lambda s: _plain_ratio(get(s, "verify_deep"), get(s, "verify_deep", "stock", "cold"), None))
    goal("`Inventory.verify()` ÷ `EventLog.verify()` (same runs, sealed)", "≤ 1.3×",
         lambda s: _plain_ratio(get(s, "inventory_verify"), get(s, "inventory_verify", "log"), 1.3))
    goal("`Inventory.verify(deep=True)` ÷ `EventLog.verify(deep=True)`", "≤ 1.3×",
         lambda s: _plain_ratio(get(s, "inventory_verify_deep"), get(s, "inventory_verify_deep", "log"), 1.3))
    goal("full rebuild of all projections ÷ cold `stock()` (same runs)", "≤ 2×",
         lambda s: _plain_ratio(get(s, "rebuild"), get(s, "rebuild", "stock", "cold") or get(s, "cold_stock"), 2.0))
    goal("incremental update after +1% ÷ full rebuild (same runs)", "≤ 5%",
         lambda s: _plain_ratio(get(s, "incremental"), get(s, "incremental", "rebuild") or get(s, "rebuild"),
                                0.05, pct=True))

    def memory(op: str) -> Any:
        def fn(s: str) -> dict[str, Any] | None:
            r = get(s, op)
            if r is None:
                return None
            duck = get(s, "memory_cold_stock", "duckdb", "state")
            extra = f" (DuckDB by hand {duck['median']:.0f} MiB)" if duck and op == "memory_cold_stock" else ""
            return {"value": r["median"], "text": f"{r['median']:.0f} MiB{extra}", "met": None}
        return fn

    goal("peak memory above baseline: cold `stock()`", "(report)", memory("memory_cold_stock"))
    goal("peak memory above baseline: full rebuild", "(report)", memory("memory_rebuild"))
    return out


def _p50_ratio(a: dict | None, b: dict | None, limit: float) -> dict[str, Any] | None:
    """Latencies compared by their p50 (the median when too few samples had a p50)."""
    if a is None or b is None:
        return None
    r = _stat(a) / _stat(b)
    return {"value": r, "text": f"{r:.2f}× ({fmt_s(_stat(a))} vs {fmt_s(_stat(b))})", "met": r <= limit}


def _plain_ratio(a: dict | None, b: dict | None, limit: float | None, *, pct: bool = False) -> dict[str, Any] | None:
    if a is None or b is None:
        return None
    r = a["median"] / b["median"]
    return {"value": r, "text": f"{r * 100:.2g}%" if pct else f"{r:.2f}×", "met": None if limit is None else r <= limit}


# --- chart --------------------------------------------------------------------------------------

CHART_SERIES = [
    ("cold_stock", "eventlog", "", "eventlog cold stock()"),
    ("warm_stock", "eventlog", "", "eventlog warm stock() (snapshot + 1%)"),
    ("as_of_seq", "eventlog", "", "eventlog stock(as_of=seq)"),
    ("as_of_date", "eventlog", "", "eventlog stock(as_of=date)"),
    ("get_count", "eventlog", "", "eventlog get_count()"),
    ("rebuild", "eventlog", "", "eventlog rebuild all projections"),
    ("incremental", "eventlog", "", "eventlog incremental update (+1%)"),
    ("cold_stock", "duckdb", "state", "DuckDB by hand, same columns"),
    ("cold_stock", "polars", "state", "Polars by hand, same columns"),
    ("cold_stock", "python", "load+replay", "Python objects: load + replay"),
    ("cold_stock", "eventsourcing", "reconstruct", "eventsourcing: reconstruct all"),
]


def chart(rows: list[dict[str, Any]], path: Path) -> bool:
    """Events vs seconds, log-log, one line per operation; only when several sizes were measured."""
    if len({r["size"] for r in rows}) < 2:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series: dict[str, list[tuple[int, float]]] = defaultdict(list)
    for op, impl, variant, label in CHART_SERIES:
        for r in rows:
            if (r["op"], r["impl"], r["variant"]) == (op, impl, variant):
                series[label].append((r["events"], r["median"]))
    fig, ax = plt.subplots(figsize=(11, 6))
    colors = plt.get_cmap("tab20").colors
    for i, (label, points) in enumerate(series.items()):
        points.sort()
        xs, ys = zip(*points, strict=True)
        peer = not label.startswith("eventlog")
        ax.plot(xs, ys, marker="s" if peer else "o", linestyle="--" if peer else "-", color=colors[(2 * i) % 20 + i // 10],
                label=label)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("events (peers: the prefix actually measured)")
    ax.set_ylabel("seconds (median)")
    ax.set_title("eventlog scaling against the hand-written limit and peers")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


def write_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str))
    tmp.replace(path)
