"""The tutorial notebooks run top to bottom, headless, and are committed clean.

Each notebook runs in a fresh kernel started with this interpreter (the virtualenv's), in
an empty temporary working directory, and must finish without a cell error. The committed
``.ipynb`` files carry no outputs and are exactly what ``notebooks/_build.py`` generates.
"""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from pathlib import Path
from types import ModuleType

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

NOTEBOOKS_DIR = Path(__file__).resolve().parent.parent / "notebooks"
NOTEBOOKS = sorted(NOTEBOOKS_DIR.glob("[0-9][0-9]_*.ipynb"))
EXPECTED = [
    "01_quickstart.ipynb",
    "02_time_travel_and_snapshots.ipynb",
    "03_projections_and_charts.ipynb",
    "04_sql_for_analysts.ipynb",
    "05_what_if.ipynb",
]
CELL_TIMEOUT = 120  # seconds; each whole notebook takes well under a minute
KERNEL_NAME = "eventlog-test-python"
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _build_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("notebooks_build", NOTEBOOKS_DIR / "_build.py")
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {NOTEBOOKS_DIR / '_build.py'}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def kernels_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A Jupyter data folder whose one kernelspec runs this very interpreter.

    The default ``python3`` spec would do under ``.venv/bin/pytest`` (jupyter_client swaps
    its ``python`` for ``sys.executable``), but a ``python3`` spec in the user's
    ``~/.local/share/jupyter`` takes precedence and may point at another Python. Folders
    on ``JUPYTER_PATH`` come before every other.
    """
    root = tmp_path_factory.mktemp("jupyter")
    spec_dir = root / "kernels" / KERNEL_NAME
    spec_dir.mkdir(parents=True)
    spec = {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "eventlog tests",
        "language": "python",
    }
    (spec_dir / "kernel.json").write_text(json.dumps(spec))
    return root


def test_every_notebook_is_found() -> None:
    assert [p.name for p in NOTEBOOKS] == EXPECTED


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_committed_without_outputs(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    dirty = [
        i for i, cell in enumerate(nb.cells)
        if cell.cell_type == "code" and (cell.outputs or cell.execution_count is not None)
    ]
    assert not dirty, f"{path.name}: cells {dirty} have outputs or an execution count; run notebooks/_build.py"


def test_notebooks_match_their_generator() -> None:
    generated = _build_module().build()
    assert sorted(generated) == EXPECTED
    stale = [name for name, text in generated.items() if (NOTEBOOKS_DIR / name).read_text(encoding="utf-8") != text]
    assert not stale, f"{stale} differ from notebooks/_build.py; run `.venv/bin/python notebooks/_build.py`"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_headless(
    path: Path, tmp_path: Path, kernels_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JUPYTER_PATH", str(kernels_path))
    nb = nbformat.read(path, as_version=4)
    # One extra cell, in memory only: which interpreter did the kernel run?
    nb.cells.append(nbformat.v4.new_code_cell("import sys; print(sys.prefix)"))
    # The client starts its own kernel manager, so it also shuts the kernel down and
    # closes its sockets (given a km, it leaves both to the caller).
    client = NotebookClient(
        nb, kernel_name=KERNEL_NAME, timeout=CELL_TIMEOUT, allow_errors=False,
        resources={"metadata": {"path": str(tmp_path)}},
    )
    try:
        client.execute()
    except CellExecutionError as exc:
        pytest.fail(f"{path.name} failed:\n{_ANSI.sub('', str(exc))}", pytrace=False)
    assert nb.cells[-1].outputs[0]["text"].strip() == sys.prefix
    assert not list(tmp_path.iterdir()), "the notebook wrote into its working directory"
    tables = [out["data"]["text/html"] for cell in nb.cells if cell.cell_type == "code"
              for out in cell.outputs if "text/html" in out.get("data", {})]
    quoted = [t for t in tables if "<td>&quot;" in t]
    assert not quoted, f"{path.name}: a table shows strings in quotes: {quoted[0][:300]}"
