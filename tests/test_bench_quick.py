"""The benchmark harness still runs end to end, and its agreement checks pass.

Runs ``python -m benchmarks.run`` on a tiny store in a temporary data and output folder.
It asserts what the run produced, never how fast anything was: timings belong to
``make bench``, not to tests.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.slow  # about 40-60 s: it builds a store and runs every benchmark once or twice

EVENTLOG_OPS = {"cold_stock", "warm_stock", "as_of_seq", "as_of_date", "get_count", "rebuild", "incremental",
                "record", "add_item", "memory_cold_stock", "memory_rebuild", "memory_record"}


@pytest.fixture(scope="module")
def bench_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess[str]]:
    base = tmp_path_factory.mktemp("bench")
    out = base / "results"
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.run", "--quick", "--sizes", "20k", "--runs", "2", "--peer-budget", "1",
         "--record-memory", "20k", "--out", str(out), "--data-dir", str(base / "data")],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    return out, proc


def _run_json(out: Path) -> dict:
    files = sorted(out.glob("*-quick.json"))
    assert len(files) == 1, files
    return json.loads(files[0].read_text())


def test_quick_harness_completes(bench_run: tuple[Path, subprocess.CompletedProcess[str]]) -> None:
    out, proc = bench_run
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (out / "latest.md").read_text().startswith("# eventlog benchmarks (quick run)")
    assert not list(out.glob("*.tmp"))


def test_results_have_the_expected_keys(bench_run: tuple[Path, subprocess.CompletedProcess[str]]) -> None:
    run = _run_json(bench_run[0])
    assert {"schema_version", "mode", "started_at", "config", "machine", "results", "checks",
            "all_checks_passed", "goals"} <= set(run)
    assert {"cpu_model", "cores", "ram_gib", "python", "versions", "git_commit"} <= set(run["machine"])
    assert run["config"]["sizes"] == ["20k"]
    for row in run["results"]:
        assert {"size", "op", "impl", "unit", "events", "samples", "median", "min", "max"} <= set(row)
        assert len(row["samples"]) == row["runs"] >= 1
    measured = {(r["op"], r["impl"]) for r in run["results"]}
    assert {(op, "eventlog") for op in EVENTLOG_OPS} <= measured
    for peer in ("duckdb", "polars", "python", "eventsourcing", "delta"):
        assert any(impl == peer for _, impl in measured), peer


def test_every_agreement_check_passed(bench_run: tuple[Path, subprocess.CompletedProcess[str]]) -> None:
    run = _run_json(bench_run[0])
    assert run["all_checks_passed"] is True
    assert run["checks"] and all(c["passed"] for c in run["checks"])
    checked = " ".join(c["check"] for c in run["checks"])
    for what in ("cold stock()", "stock(as_of=seq)", "stock(as_of=date)", "get_count", "full rebuild",
                 "incremental update", "warm stock()", "eventsourcing", "Python objects", "record()", "add_item()"):
        assert what in checked, what
