"""Timing, agreement checks and peak-memory measurement in child processes."""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl
from polars.testing import assert_frame_equal


class AgreementError(AssertionError):
    """Two implementations gave different answers: no time is reported for either."""


def summarize(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    out = {"median": statistics.median(ordered), "min": ordered[0], "max": ordered[-1]}
    if len(ordered) >= 20:
        out["p50"] = _percentile(ordered, 50)
        out["p99"] = _percentile(ordered, 99)
    return out


def _percentile(ordered: list[float], pct: float) -> float:
    """Nearest-rank percentile."""
    rank = max(1, min(len(ordered), round(pct / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


@dataclass
class Results:
    """Everything one run measured and checked, in the order it happened."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    checks: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    say: Callable[[str], None] = print

    def add(self, size: str, n_events: int, op: str, impl: str, samples: list[float], *, unit: str = "s",
            events: int | None = None, note: str = "", variant: str = "") -> dict[str, Any]:
        row = {"size": size, "n_events": n_events, "op": op, "impl": impl, "variant": variant, "unit": unit,
               "events": n_events if events is None else events, "runs": len(samples),
               "samples": [round(s, 7) for s in samples], **summarize(samples), "note": note}
        self.rows.append(row)
        tag = f"{impl}{'/' + variant if variant else ''}"
        extra = f" p50 {row['p50'] * 1e3:.1f} ms p99 {row['p99'] * 1e3:.1f} ms" if "p50" in row else ""
        shown = f"{row['median']:.1f} MiB" if unit == "MiB" else f"{row['median']:.4f} s"
        self.say(f"    {op:<22} {tag:<24} median {shown}{extra}{'  (' + note + ')' if note else ''}")
        return row

    def check(self, size: str, name: str, ok: bool, detail: str = "") -> None:
        self.checks.append({"size": size, "check": name, "passed": bool(ok), "detail": detail})
        if not ok:
            raise AgreementError(f"[{size}] {name}: {detail}")


def same_frames(left: pl.DataFrame, right: pl.DataFrame, keys: list[str]) -> tuple[bool, str]:
    """Same rows (order aside), same values; numeric types may differ between engines."""
    if set(left.columns) != set(right.columns):
        return False, f"columns differ: {sorted(left.columns)} vs {sorted(right.columns)}"
    right = right.select(left.columns)
    casts = {c: left.schema[c] for c in left.columns if left.schema[c] != right.schema[c]}
    try:
        right = right.cast(casts)  # type: ignore[arg-type]
    except Exception as exc:  # a cast that fails is itself a disagreement
        return False, f"cannot compare types {casts}: {exc}"
    try:
        assert_frame_equal(left.sort(keys, nulls_last=True), right.sort(keys, nulls_last=True), check_row_order=True)
    except AssertionError as exc:
        return False, f"{left.height} vs {right.height} rows: {str(exc)[:600]}"
    return True, f"{left.height} rows equal"


def same_quantities(left: dict[str, int], right: dict[str, int]) -> tuple[bool, str]:
    if left == right:
        return True, f"{len(left)} items, {sum(left.values())} units"
    keys = sorted(set(left) | set(right))
    diff = [(k, left.get(k), right.get(k)) for k in keys if left.get(k) != right.get(k)]
    return False, f"{len(diff)} items differ, e.g. {diff[:5]}"


def quantities(frame: pl.DataFrame) -> dict[str, int]:
    return dict(zip(frame.get_column("item").to_list(), frame.get_column("quantity").to_list(), strict=True))


# --- peak memory ----------------------------------------------------------------------------


def peak_rss_mib(op: str, store: Path, *, timeout: float = 1800) -> tuple[float, dict[str, Any]]:
    """Run ``op`` on ``store`` in a fresh process (see ``benchmarks._child``); its peak RSS in MiB."""
    proc = subprocess.run([sys.executable, "-m", "benchmarks._child", op, str(store)], capture_output=True, text=True,
                          cwd=Path(__file__).resolve().parent.parent, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"memory child {op!r} failed ({proc.returncode}): {proc.stderr[-2000:]}")
    info = json.loads(proc.stdout.strip().splitlines()[-1])
    return info["maxrss_kib"] / 1024, info  # ru_maxrss is in KiB on Linux
