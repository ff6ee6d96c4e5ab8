"""The Makefile: each target installs what it needs, and no more; `make lab` works as root."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")


def _plan(target: str, tmp_path: Path) -> str:
    """What ``make TARGET`` would run on a fresh clone (a venv that does not exist yet)."""
    return subprocess.run(["make", "-n", "-B", target, f"VENV={tmp_path / 'venv'}"], cwd=ROOT,
                          capture_output=True, text=True, check=True).stdout


def test_the_demo_installs_only_the_plot_extra(tmp_path: Path) -> None:
    plan = _plan("demo", tmp_path)
    assert "-e '.[plot]'" in plan
    assert "[dev]" not in plan and "[lab]" not in plan


@pytest.mark.parametrize(("target", "extra"), [("lab", "lab"), ("test", "dev"), ("bench-quick", "dev")])
def test_other_targets_install_their_extra(tmp_path: Path, target: str, extra: str) -> None:
    assert f"-e '.[{extra}]'" in _plan(target, tmp_path)


def test_jupyterlab_is_told_it_may_run_as_root(tmp_path: Path) -> None:
    lab = next(line for line in _plan("lab", tmp_path).splitlines() if "jupyter lab" in line)
    assert ("--allow-root" in lab) == (os.geteuid() == 0)


def test_the_extras_nest(tmp_path: Path) -> None:
    import tomllib

    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert "eventlog[plot,cli]" in extras["lab"] and "eventlog[lab]" in extras["dev"]
    assert not any("jupyter" in d or "pytest" in d for d in extras["plot"])
