"""Run the benchmarks: ``python -m benchmarks.run [--quick|--full] [--sizes 1M,10M] [--with-100m] [--out DIR]``.

``--only writes`` measures the write path alone on each store (``record()`` and ``add_item()``
each interleaved with a raw ``write_deltalake`` on a copy of the same table, and ``record()``'s
peak memory); ``--record-batch 1M`` sets the ``record()`` batch size.

``--quick`` (the default) measures 200k events, and 1M as well when the first size left
enough of the two-minute budget; ``--full`` measures 1M and 10M (and 100M with
``--with-100m``). Stores are built once per size and cached under ``--data-dir``
(default ``benchmarks/.data``, or ``$EVENTLOG_BENCH_DATA``).

Writes ``<out>/<timestamp>-<mode>.json`` and ``.md``, ``<out>/latest.md`` and, when more
than one size was measured, ``<out>/latest.png`` (the scaling chart, also kept stamped). ``<out>`` defaults to
``benchmarks/runs``, which git ignores, so a run never changes the repository. Exits with
status 1, writing no results, when any two implementations disagree on a result.

Publishing is a separate, deliberate step: ``python -m benchmarks.run --publish`` (``make
bench-publish``) copies the newest run of ``benchmarks/runs`` into ``benchmarks/results``,
the folder the repository keeps and the README links to.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, replace
from pathlib import Path

from benchmarks import _data, _report
from benchmarks._measure import AgreementError, Results
from benchmarks._suite import FULL, QUICK, Config, SizeBench

HERE = Path(__file__).resolve().parent
RUNS = HERE / "runs"  # every run lands here (ignored by git)
PUBLISHED = HERE / "results"  # what the repository keeps: copied by --publish only
QUICK_SIZES = [200_000]
QUICK_OPTIONAL = 1_000_000
QUICK_BUDGET_S = 110.0  # `make bench-quick` must finish within two minutes
FULL_SIZES = [1_000_000, 10_000_000]
SEED = 42


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.split("\n\n")[0])
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="200k events (+1M if time allows), 3 runs each")
    mode.add_argument("--full", action="store_true", help="1M and 10M events, 5 runs each")
    p.add_argument("--sizes", help="comma-separated sizes instead of the mode's, e.g. 20k or 1M,10M")
    p.add_argument("--with-100m", action="store_true", help="add 100M events (full mode; slow, ~10 GB on disk)")
    p.add_argument("--out", type=Path, default=RUNS, help="where results go (default benchmarks/runs, ignored by git)")
    p.add_argument("--publish", action="store_true",
                   help="measure nothing: copy the newest run of --out into benchmarks/results (the committed copy)")
    p.add_argument("--data-dir", type=Path, default=None,
                   help="cache of generated stores (default $EVENTLOG_BENCH_DATA or benchmarks/.data)")
    p.add_argument("--spark", action=argparse.BooleanOptionalAction, default=None,
                   help="Spark local vs DuckDB (default: in --full only; a session takes 15-90 s to start)")
    p.add_argument("--only", choices=["writes"], default=None,
                   help="writes: only record(), add_item() (each beside raw write_deltalake) and record()'s memory")
    p.add_argument("--record-batch", default=None, metavar="SIZE",
                   help="events per record() batch (default: quick 200k, full 1M; at most the store's size)")
    p.add_argument("--record-memory", default=None, metavar="SIZES",
                   help="batch sizes of the record() peak-memory measurement, once per run on a new store "
                        "(default: quick 1M, full 1M,20M)")
    p.add_argument("--seed", type=int, default=SEED)
    p.add_argument("--runs", type=int, default=None, help="runs per operation (default: quick 3, full 5)")
    p.add_argument("--peer-budget", type=float, default=None, metavar="SECONDS",
                   help="time budget per size for each slow peer (default: quick 10, full 60)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.publish:
        return publish(args.out, PUBLISHED)
    cfg = FULL if args.full else QUICK
    if args.peer_budget is not None:
        cfg = replace(cfg, peer_budget_s=args.peer_budget)
    if args.spark is not None:
        cfg = replace(cfg, spark=args.spark)
    if args.only == "writes":
        cfg = replace(cfg, writes_only=True)
    if args.record_batch is not None:
        batch = _data.parse_size(args.record_batch)
        if batch > _data.MAX_RECORD_BATCH:
            raise SystemExit(f"--record-batch is at most {_data.size_label(_data.MAX_RECORD_BATCH)} (the cached events)")
        cfg = replace(cfg, record_batch=batch)
    if args.record_memory is not None:
        cfg = replace(cfg, record_memory=tuple(_data.parse_size(x) for x in args.record_memory.split(",") if x.strip()))
    if args.runs is not None:
        if args.runs < 1:
            raise SystemExit("--runs is at least 1")
        cfg = replace(cfg, runs=args.runs)
    data_dir = args.data_dir or Path(os.environ.get("EVENTLOG_BENCH_DATA", HERE / ".data"))
    data_dir.mkdir(parents=True, exist_ok=True)
    args.out.mkdir(parents=True, exist_ok=True)
    if args.sizes:
        sizes = [_data.parse_size(s) for s in args.sizes.split(",") if s.strip()]
        optional: int | None = None
    else:
        sizes = list(FULL_SIZES if args.full else QUICK_SIZES)
        optional = None if args.full else QUICK_OPTIONAL
    if args.with_100m:
        sizes.append(100_000_000)

    start = time.perf_counter()
    started_at = dt.datetime.now(dt.UTC)

    def say(text: str) -> None:
        print(f"[{time.perf_counter() - start:6.1f}s] {text}", flush=True)

    results = Results(say=say)
    machine = _report.machine_info(HERE.parent)
    say(f"{cfg.mode} run: sizes {', '.join(_data.size_label(n) for n in sizes)}"
        f"{f' (+{_data.size_label(optional)} if time allows)' if optional else ''}; {cfg.runs} runs each")
    try:
        timings: dict[int, float] = {}
        for n in sizes:
            timings[n] = run_size(n, args.seed, data_dir, cfg, results, say)
        if optional is not None:
            measured = sizes[-1]
            # Peer baselines are capped by their budget; eventlog's own work scales with the events.
            estimate = (timings[measured] - 2 * cfg.peer_budget_s) * optional / measured + 2 * cfg.peer_budget_s
            if not cached(optional, args.seed, data_dir):
                estimate += 20.0
            elapsed = time.perf_counter() - start
            if elapsed + estimate <= QUICK_BUDGET_S:
                sizes.append(optional)
                run_size(optional, args.seed, data_dir, cfg, results, say)
            else:
                note = (f"{_data.size_label(optional)} skipped: {elapsed:.0f} s spent, about {estimate:.0f} s more "
                        f"needed, budget {QUICK_BUDGET_S:.0f} s")
                results.notes.append(note)
                say(note)
    except AgreementError as exc:
        print(f"\nBENCHMARK FAILED — implementations disagree, no results written:\n  {exc}\n"
              f"({sum(c['passed'] for c in results.checks)} checks had passed before this one)", file=sys.stderr)
        return 1

    machine["load_average_end"] = os.getloadavg()
    run = {
        "schema_version": 1,
        "mode": cfg.mode,
        "started_at": started_at.isoformat(timespec="seconds"),
        "duration_s": round(time.perf_counter() - start, 1),
        "argv": sys.argv[1:] if argv is None else argv,
        "config": {**asdict(cfg), "seed": args.seed, "sizes": [_data.size_label(n) for n in sizes],
                   "data_dir": str(data_dir)},
        "machine": machine,
        "results": results.rows,
        "checks": results.checks,
        "all_checks_passed": all(c["passed"] for c in results.checks) and bool(results.checks),
        "goals": _report.goals(results.rows),
        "notes": results.notes,
    }
    stamp = started_at.strftime("%Y%m%dT%H%M%SZ")
    md = _report.markdown(run)
    _report.write_json(args.out / f"{stamp}-{cfg.mode}.json", run)
    (args.out / f"{stamp}-{cfg.mode}.md").write_text(md)
    (args.out / "latest.md").write_text(md)
    chart = args.out / f"{stamp}-{cfg.mode}.png"
    if _report.chart(results.rows, chart):
        shutil.copy2(chart, args.out / "latest.png")
        say(f"chart: {chart}")
    say(f"results: {args.out / (stamp + '-' + cfg.mode + '.json')} and {args.out / 'latest.md'}")
    print()
    print(md)
    return 0


def publish(runs: Path, published: Path) -> int:
    """Copy the newest run in ``runs`` (its JSON, Markdown and chart) into ``published`` as the latest results."""
    newest = max(runs.glob("*.json"), default=None, key=lambda p: p.name)
    if newest is None:
        print(f"no run in {runs} to publish: run `make bench` first", file=sys.stderr)
        return 1
    published.mkdir(parents=True, exist_ok=True)
    report = newest.with_suffix(".md")
    for source in (newest, report):
        shutil.copy2(source, published / source.name)
    shutil.copy2(report, published / "latest.md")
    chart = newest.with_suffix(".png")
    if chart.exists():
        shutil.copy2(chart, published / "latest.png")
    print(f"published {newest.stem} into {published}; commit it to keep it")
    return 0


def cached(n: int, seed: int, data_dir: Path) -> bool:
    return (data_dir / f"{_data.size_label(n)}-{seed}" / "meta.json").exists()


def run_size(n: int, seed: int, data_dir: Path, cfg: Config, results: Results, say: Callable[[str], None]) -> float:
    """Measure one size; returns the seconds it took (data building excluded)."""
    say(f"== {_data.size_label(n)} events")
    ds = _data.ensure(n, seed, data_dir, say=say)
    start = time.perf_counter()
    SizeBench(ds, cfg, results, data_dir).run()
    return time.perf_counter() - start


if __name__ == "__main__":
    sys.exit(main())
