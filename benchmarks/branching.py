"""Branches: the time to branch a store, with no data copied, and compare against cold ``stock()``.

Called by ``_suite.SizeBench.run`` on each size (``branching.run(bench)``). Per run, in one
interleaved loop: ``Inventory.branch`` at the head (every data file shared by a hard link),
at a seq inside the last commit (the files across the cut rewritten), and, as the baseline,
copying the events table, synced to disk as the branch is (what a branch costs without links). Then ``origin.compare(branch)``
after one what-if event on the branch, beside a cold ``stock()`` in the same runs. Each
result is checked first: the branch's files are the origin's inodes, its head and stock are
the origin's, compare's totals add up.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from benchmarks._measure import timed
from eventlog import Inventory
from eventlog.store.atomic import fsync_file, fsync_folder

if TYPE_CHECKING:
    from benchmarks._suite import SizeBench


def _inodes(inv: Inventory) -> dict[str, int]:
    root = inv.path / "events"
    return {p: os.stat(root / p).st_ino for p in inv.log.files().get_column("path").to_list()}


def _copy_synced(source: str, destination: str) -> str:
    shutil.copy2(source, destination)
    fsync_file(Path(destination))
    return destination


def run(bench: SizeBench) -> None:
    """Measure branch, branch inside a commit, copy of the events table, compare and cold stock()."""
    root = bench.work / "branches"
    origin = Inventory.open(bench.store)
    head = origin.log.head()
    last_commit = next(e for e in origin.log.history() if e.get("eventlog.operation") == "append")
    inside = int(last_commit["eventlog.first_seq"]) + (int(last_commit["eventlog.count"]) // 2)

    def fresh(i: int, name: str) -> Path:
        path = root / f"{name}-{i}"
        shutil.rmtree(path, ignore_errors=True)
        return path

    def copy(i: int) -> Path:
        """A durable copy, as the branch is durable: each file and folder synced (no dirty pages left behind
        for the next measurement's syncs to wait for)."""
        target = Path(shutil.copytree(bench.events, fresh(i, "copy") / "events", copy_function=_copy_synced))
        for folder in sorted({p.parent for p in target.rglob("*")} | {target}, key=lambda f: len(f.parts), reverse=True):
            fsync_folder(folder)
        return target

    out = bench.interleaved(bench.cfg.runs, {
        "eventlog": lambda i: origin.branch(fresh(i, "head")),
        "mid-commit": lambda i: origin.branch(fresh(i, "mid"), at=inside),
        "copy": copy,
    })
    shared = _inodes(origin)
    for i, branch in enumerate(out["eventlog"][1]):
        lineage = branch.log.lineage
        same = lineage is not None and lineage.copied == 0 and lineage.rewritten == 0 and _inodes(branch) == shared
        bench.check(f"branch run {i + 1} shares every data file (same inodes)", (same, f"{len(shared)} files"))
    for i, branch in enumerate(out["mid-commit"][1]):
        lineage = branch.log.lineage
        ok = lineage is not None and branch.log.head() == inside and lineage.rewritten >= 1 and lineage.copied == 0
        bench.check(f"branch mid-commit run {i + 1} holds seq 1..{inside}, rewrote only files across it",
                    (ok, f"rewritten {lineage.rewritten if lineage else None}"))
    bench.add("branch", "eventlog", out["eventlog"][0], note=f"at the head, {len(shared)} files linked")
    bench.add("branch", "eventlog-mid", out["mid-commit"][0], variant="mid-commit",
              note=f"at seq {inside:,}, inside the last commit")
    bench.add("branch", "copy", out["copy"][0], note="shutil.copytree of the events table, synced")

    what_if: list[Inventory] = []
    for branch in out["eventlog"][1]:
        branch.add_item("what-if item", 7)
        what_if.append(branch)
    impls: dict[str, Any] = {
        "eventlog": lambda i: Inventory.open(bench.store).compare(Inventory.open(what_if[i].path)),
        "stock": lambda i: Inventory.open(bench.store).stock(),
    }
    compared: dict[str, tuple[list[float], list[Any]]] = {k: ([], []) for k in impls}
    for i in range(bench.cfg.runs):
        for name in (("eventlog", "stock") if i % 2 == 0 else ("stock", "eventlog")):
            for store in (bench.store, what_if[i].path):  # cold: no snapshot on either side
                shutil.rmtree(Path(store) / "snapshots", ignore_errors=True)
            t, value = timed(lambda: impls[name](i))  # noqa: B023 (called at once)
            compared[name][0].append(t)
            compared[name][1].append(value)
    for i, table in enumerate(compared["eventlog"][1]):
        stock = compared["stock"][1][i]
        ok = (int(table.get_column("quantity").sum()) == int(stock.get_column("quantity").sum())
              and table.filter(table["change"] != 0).rows() == [("what-if item", 0, 7, 7)])
        bench.check(f"compare run {i + 1}: origin totals as stock(), the what-if is the one change", (ok, str(table.shape)))
    bench.add("compare", "eventlog", compared["eventlog"][0], note="origin vs branch at the head, no snapshots")
    bench.add("compare", "stock", compared["stock"][0], variant="cold", note="new Inventory, no snapshot")
    shutil.rmtree(root, ignore_errors=True)


def main(argv: list[str] | None = None) -> None:
    """``python -m benchmarks.branching [--sizes 1M,10M] [--runs 5] [--data-dir DIR]``: these rows alone."""
    import argparse
    import json
    import tempfile

    from benchmarks import _data
    from benchmarks._measure import Results
    from benchmarks._suite import FULL, SizeBench

    p = argparse.ArgumentParser(prog="python -m benchmarks.branching", description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", default="1M,10M")
    p.add_argument("--runs", type=int, default=FULL.runs)
    p.add_argument("--data-dir", type=Path, default=Path(os.environ.get("EVENTLOG_BENCH_DATA", "benchmarks/.data")))
    p.add_argument("--out", type=Path, default=None, help="write the rows as JSON into this folder")
    args = p.parse_args(argv)
    results = Results()
    load = [os.getloadavg()[0]]
    for size in args.sizes.split(","):
        ds = _data.ensure(_data.parse_size(size), 42, args.data_dir)
        work = Path(tempfile.mkdtemp(prefix="eventlog-branching-", dir=args.data_dir))
        bench = SizeBench(ds, type(FULL)(**{**FULL.__dict__, "runs": args.runs}), results, work)
        try:
            bench.work.mkdir(parents=True)
            shutil.copytree(ds.store, bench.store, ignore=shutil.ignore_patterns("snapshots", "projections"))
            bench.warm_up()
            run(bench)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        load.append(os.getloadavg()[0])
    print(f"load average (1 min) at start and after each size: {', '.join(f'{x:.1f}' for x in load)}")
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "branching.json").write_text(json.dumps({"rows": results.rows, "checks": results.checks,
                                                              "load": load}, indent=2, default=str))


if __name__ == "__main__":
    main()
