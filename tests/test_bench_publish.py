"""Benchmark runs never dirty the tree: they land in an ignored folder; publishing is its own step."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from benchmarks import run

ROOT = Path(__file__).resolve().parent.parent


def test_a_run_writes_to_the_ignored_runs_folder_by_default() -> None:
    assert run.parse_args(["--quick"]).out == run.RUNS
    assert run.RUNS != run.PUBLISHED
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    probe = run.RUNS.relative_to(ROOT) / "20260101T000000Z-quick.md"
    assert subprocess.run(["git", "check-ignore", "-q", str(probe)], cwd=ROOT).returncode == 0
    kept = run.PUBLISHED.relative_to(ROOT) / "latest.md"
    assert subprocess.run(["git", "check-ignore", "-q", str(kept)], cwd=ROOT).returncode == 1


def test_publish_copies_the_newest_run_and_its_chart(tmp_path: Path) -> None:
    runs, published = tmp_path / "runs", tmp_path / "results"
    runs.mkdir()
    for stamp, text in (("20260101T000000Z-full", "old"), ("20260102T000000Z-quick", "new")):
        (runs / f"{stamp}.json").write_text("{}")
        (runs / f"{stamp}.md").write_text(f"# {text}\n")
    (runs / "20260102T000000Z-quick.png").write_bytes(b"png")
    assert run.publish(runs, published) == 0
    assert (published / "latest.md").read_text() == "# new\n"
    assert (published / "latest.png").read_bytes() == b"png"
    assert sorted(p.name for p in published.iterdir()) == [
        "20260102T000000Z-quick.json", "20260102T000000Z-quick.md", "latest.md", "latest.png"]


def test_publish_without_a_run_fails_and_writes_nothing(tmp_path: Path) -> None:
    assert run.publish(tmp_path / "runs", tmp_path / "results") == 1
    assert not (tmp_path / "results").exists()
