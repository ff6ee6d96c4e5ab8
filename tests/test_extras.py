"""matplotlib and tqdm are extras: without them the library and the command still work.

Each test runs a fresh interpreter in which the extra's module cannot be imported
(``sys.modules[name] = None`` makes ``import name`` raise ImportError).
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path


def run_without(module: str, code: str) -> subprocess.CompletedProcess[str]:
    script = f"import sys\nsys.modules[{module!r}] = None\n" + textwrap.dedent(code)
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, check=False)


def test_plot_without_matplotlib_says_which_extra_to_install() -> None:
    done = run_without("matplotlib", """
        try:
            import eventlog.plot
        except ImportError as exc:
            print(exc)
        import eventlog, eventlog.cli  # the rest of the package does not need it
    """)
    assert done.returncode == 0, done.stderr
    assert "pip install 'eventlog[plot]'" in done.stdout


def test_the_command_runs_without_tqdm(tmp_path: Path) -> None:
    store = tmp_path / "store"
    done = run_without("tqdm", f"""
        from click.testing import CliRunner
        from eventlog.cli import main
        for args in (["add", "sword"], ["generate", "50", "--items", "5"], ["project", "update"], ["verify"]):
            result = CliRunner().invoke(main, ["--store", {str(store)!r}, *args])
            assert result.exit_code == 0, (args, result.output)
        print("ok")
    """)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "ok\n"
