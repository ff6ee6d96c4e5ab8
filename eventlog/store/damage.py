"""A store's damage and unusable paths, named: what deltalake's errors rarely say.

``check_store_path`` refuses, before anything is written, a path deltalake cannot keep a
table under; the others run only after a read failed, to name the file behind it.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from urllib.parse import unquote

import pyarrow as pa
import pyarrow.parquet as pq

from eventlog.core.text import is_utf8
from eventlog.errors import StorageError, StorePathError

_LOG = "_delta_log"

# What deltalake 1.6 does with a local table path holding these characters, found by trying
# each one (create, append, history, checkpoint, time travel, compact, vacuum), and what
# DuckDB does with the file names it is given. Every other character works, given the
# fallbacks in file_uris() and scan(): space, %, quotes, ;, =, {}, unicode letters... A ".."
# or a symlink is resolved before deltalake sees the path.
_UNUSABLE = {
    "[": "deltalake panics opening such a table (it parses the path as a URL host)",
    "]": "deltalake panics opening such a table (it parses the path as a URL host)",
    "^": "deltalake panics opening such a table (it parses the path as a URL host)",
    "|": "deltalake panics opening such a table (it parses the path as a URL host)",
    "#": "deltalake reads an empty commit history there (it takes the rest as a URL fragment), and "
         "appending after a reopen, verify and SQL need that history",
    "?": "deltalake reads an empty commit history there (it takes the rest as a URL query), and "
         "appending after a reopen, verify and SQL need that history",
    "\\": "deltalake reads a backslash as a folder separator, so it would use another folder",
    "*": "DuckDB (stock, SQL) reads it as a wildcard in the data file names, so it would read other "
         "folders' files too",
}
# "%" followed by two hex digits is decoded as a URL escape: "a%41" would be read at "aA".
_ESCAPE = re.compile(r"%[0-9A-Fa-f]{2}")


def check_store_path(root: Path) -> None:
    """Refuse a store path deltalake cannot work with (see _UNUSABLE), before anything is written."""
    text = str(root)
    if not is_utf8(text):
        raise StorePathError(
            f"cannot keep an event store at {text!r}: its path is not valid UTF-8, which deltalake needs; "
            "rename the folder to a UTF-8 name"
        )
    bad = next((c for c in text if c in _UNUSABLE or ord(c) < 0x20 or ord(c) == 0x7F), None)
    escape = _ESCAPE.search(text)
    if bad is None and escape is None:
        return
    if bad is not None:
        char, why = bad, _UNUSABLE.get(bad, "deltalake refuses control characters in a path")
    else:
        char = escape.group()  # type: ignore[union-attr]
        why = f"deltalake reads it as a URL escape, so it would use the folder {unquote(text)!r} instead"
    folder = next(part for part in root.parts if char in part)
    raise StorePathError(
        f"cannot keep an event store at {text}: the path contains {char!r}, and {why}; rename the folder "
        f"{folder!r} (or choose another path) without {char!r}"
    )


def first_unreadable(paths: list[str]) -> tuple[str, str] | None:
    """The first of ``paths`` that is missing or not a whole, valid Parquet file, and why.

    For error paths only: it reads every file in full (strings checked as UTF-8), to name
    the file behind an engine's error that does not say which one it was reading.
    """
    for path in paths:
        try:
            pq.read_table(path).validate(full=True)
        except FileNotFoundError:
            return path, "it is missing"
        except (pa.ArrowException, OSError) as exc:
            first = next((line for line in str(exc).splitlines() if line.strip()), type(exc).__name__)
            return path, f"it is not valid Parquet: {first.strip()}"
    return None


def storage_error(doing: str, table: Path, exc: Exception) -> StorageError:
    store = table.parent
    found = _damaged_file(table)
    detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    detail = detail if len(detail) <= 160 else detail[:159] + "…"  # deltalake's can run to a screen
    if found is None:
        return StorageError(
            f"{doing} the event store at {store} failed ({detail}); if it happens again, run `eventlog verify` and "
            "restore the store from a backup", store=str(store))
    file, problem = found
    return StorageError(
        f"{doing} the event store at {store} failed: {file} {problem} ({detail}). The store is damaged: restore "
        "it from a backup, then run `eventlog verify`", store=str(store), file=str(file))


def _damaged_file(table: Path) -> tuple[Path, str] | None:
    """The first Delta log file that keeps the table from loading, and what is wrong with it.

    Only run after deltalake failed, whose messages rarely name the file. It looks where
    deltalake does: the newest checkpoint, then every commit after it, in order.
    """
    log = table / _LOG
    if not log.is_dir():
        return log, "is missing"
    commits = {int(p.name[:20]): p for p in log.glob("*.json") if re.fullmatch(r"\d{20}\.json", p.name)}
    checkpoints: dict[int, list[Path]] = {}
    for p in log.glob("*.checkpoint*.parquet"):
        if re.fullmatch(r"\d{20}\.checkpoint(\.\d+\.\d+)?\.parquet", p.name):
            checkpoints.setdefault(int(p.name[:20]), []).append(p)
    start = 0
    if checkpoints:
        start = max(checkpoints) + 1
        for part in sorted(checkpoints[start - 1]):
            try:
                pq.read_metadata(part)
            except (OSError, pa.ArrowException):  # ArrowInvalid: not Parquet
                return part, "is not a readable checkpoint (Parquet)"
    if not commits and not checkpoints:
        return log / f"{0:020d}.json", "is missing (the log holds no commit)"
    for version in range(start, max(commits, default=start - 1) + 1):
        path = commits.get(version)
        if path is None:
            return log / f"{version:020d}.json", f"is missing (the log has later versions, up to {max(commits)})"
        problem = _commit_problem(path)
        if problem is not None:
            return path, problem
    return None


def _commit_problem(path: Path) -> str | None:
    try:
        lines = path.read_bytes().decode("utf-8").splitlines()
    except OSError as exc:
        return f"cannot be read ({exc.strerror or exc})"
    except UnicodeDecodeError:
        return "is not text (UTF-8)"
    if not any(line.strip() for line in lines):
        return "is empty"
    for number, line in enumerate(lines, start=1):
        try:
            ok = not line.strip() or isinstance(json.loads(line), dict)
        except json.JSONDecodeError:
            ok = False
        if not ok:
            return f"is not valid JSON at line {number} (truncated or overwritten)"
    return None
