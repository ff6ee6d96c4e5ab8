"""Paths read from the store's own files are data: each must lead to a place inside the store.

A snapshot manifest, a Delta log entry or a folder of the store names a file; a damaged or
hostile store could name ``../../victim.txt``, an absolute path, or a file (or folder) that
is a symlink leading out. eventlog never reads, writes or deletes such a path: each caller
ignores the entry with a ``StorePathWarning`` naming it (a cache), or refuses it with an
error naming it (the events themselves).
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath


def outside(root: Path, relative: str) -> str | None:
    """Why ``relative`` (a path as a store's file spells it) does not lead inside ``root``, or None.

    Refused: an absolute path, a ``..`` part, and a path whose real location (symlinks
    followed, of the file and of every folder on the way) is not under ``root``'s.

    Example:
        >>> import tempfile
        >>> root = Path(tempfile.mkdtemp())
        >>> outside(root, "a/b.parquet") is None, outside(root, "../b.parquet")
        (True, "it has a '..' part")
    """
    if "://" in relative or relative.startswith("file:"):
        return "it is a URL, not a path inside the store"
    pure = PurePosixPath(relative)
    if pure.is_absolute() or Path(relative).is_absolute() or "\\" in relative:
        return "it is an absolute path" if "\\" not in relative else "it holds a backslash"
    if ".." in pure.parts:
        return "it has a '..' part"
    real_root = os.path.realpath(root)
    real = os.path.realpath(root / relative)
    if real != real_root and not real.startswith(real_root.rstrip(os.sep) + os.sep):
        return f"it leads out of the store through a symlink (to {real})"
    return None


def folder_outside(store: Path, folder: Path) -> str | None:
    """Why the store's ``folder`` (``snapshots/``, ``cache/``) is not a real folder inside ``store``, or None."""
    if folder.is_symlink():
        return f"it is a symlink (to {os.path.realpath(folder)})"
    return outside(store, folder.relative_to(store).as_posix())
