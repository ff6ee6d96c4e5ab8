"""Atomic files: a reader sees a file's old content or its new content, never part of one.

Every file eventlog writes outside Delta's own (snapshots and their manifests, projection
tables and theirs, the store's ``eventlog.json``, the stream-version cache, a DuckDB export)
goes through ``atomic_file``: written to a temp file in the target's folder, fsynced, renamed
over the target (the commit point), then the folder fsynced so that the rename survives a
power loss. A crash at any moment leaves the old file or the new one, plus at most a temp
file named ``.tmp-<target name>.<random>``, which ``remove_stale`` deletes once no writer
can still be writing it.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

#: Every temp file starts with this, so that one glob finds the leftovers of crashed writers.
TEMP_PREFIX = ".tmp-"
#: A temp file older than this is a crashed writer's: no write takes an hour.
STALE_AFTER_S = 3600.0


@contextlib.contextmanager
def atomic_file(path: Path) -> Iterator[Path]:
    """Yield a temp path beside ``path``; what the block writes there becomes ``path`` when it ends.

    The temp file exists (empty) when the block starts. When the block ends normally, the temp
    file is fsynced and renamed over ``path``, then the folder is fsynced. If the block or any
    of those steps raises, the temp file is removed and the error propagates, so that a full
    disk does not fill up further with every retry. An error fsyncing the folder comes after
    the rename: readers already see the new file, but it may not survive a power loss.

    Example:
        >>> import tempfile
        >>> target = Path(tempfile.mkdtemp()) / "table.parquet"
        >>> with atomic_file(target) as tmp:
        ...     _ = tmp.write_text("whole")
        >>> target.read_text(), [p.name for p in target.parent.iterdir()]
        ('whole', ['table.parquet'])
    """
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f"{TEMP_PREFIX}{path.name}.")
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        fsync_file(tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise
    fsync_folder(path.parent)


def write_json_atomically(path: Path, data: Any, *, default: Callable[[Any], Any] | None = None) -> None:
    """Write ``data`` as indented JSON to ``path`` through ``atomic_file``.

    Example:
        >>> import tempfile
        >>> target = Path(tempfile.mkdtemp()) / "current.json"
        >>> write_json_atomically(target, {"checkpoint": 3})
        >>> json.loads(target.read_text())
        {'checkpoint': 3}
    """
    with atomic_file(path) as tmp, open(tmp, "w", encoding="utf-8") as fh:
        json.dump(data, fh, indent=2, default=default)


def temp_files(folder: Path) -> list[Path]:
    """The temp files in ``folder``: of writers at work, or of writers that failed or were killed."""
    return list(folder.glob(f"{TEMP_PREFIX}*"))


def remove_stale(paths: Iterable[Path], *, older_than_s: float = STALE_AFTER_S) -> None:
    """Remove each of ``paths`` last modified over ``older_than_s`` ago (never a file a writer is still writing).

    A file that went away meanwhile (renamed into place or removed by another process) is skipped.
    """
    stale = time.time() - older_than_s
    for path in paths:
        try:
            if path.stat().st_mtime < stale:
                path.unlink(missing_ok=True)
        except FileNotFoundError:
            continue


def fsync_file(path: Path) -> None:
    """Make ``path``'s content durable (a file deltalake or we wrote)."""
    with open(path, "rb") as fh:
        os.fsync(fh.fileno())


def fsync_folder(folder: Path) -> None:
    """Make the names created, renamed or removed in ``folder`` durable."""
    if not hasattr(os, "O_DIRECTORY"):  # Windows cannot open a folder to fsync it
        return
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.ENOTSUP):  # file systems that cannot fsync a folder
            raise
    finally:
        os.close(fd)
