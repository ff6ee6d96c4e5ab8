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


def first_outside(root: Path, paths: list[str]) -> tuple[str, str] | None:
    """The first of ``paths`` (relative, as a table's log spells them) that does not lead inside
    ``root``, with why; None when all do.

    ``outside`` resolves every part of a path (a few stats each); for the thousands of files of
    a table, links are found by listing each folder once instead (``scandir`` reports an entry's
    type without a stat), and only paths with a link on the way, or that spell their way out,
    get the full check.
    """
    links = _links(root, paths)
    for relative in paths:
        # With no link in the table, only a path that spells its way out can lead out.
        why = _through_a_link(root, relative, links) if links or _may_spell_out(relative) else None
        if why is not None:
            return relative, why
    return None


def _links(root: Path, paths: list[str]) -> set[str]:
    """The paths among ``paths``, and their folders, that are symlinks (one listing per folder)."""
    folders = {""}
    for parent in {r.rpartition("/")[0] for r in paths}:  # a few hundred day folders for thousands of files
        parts = parent.split("/") if parent else []
        folders.update("/".join(parts[:depth]) for depth in range(1, len(parts) + 1))
    top = str(root)
    links: set[str] = set()
    for folder in sorted(folders, key=len):
        if links and any(folder == link or folder.startswith(link + "/") for link in links):
            continue
        try:
            with os.scandir(f"{top}/{folder}" if folder else top) as entries:
                for entry in entries:
                    if entry.is_symlink():
                        links.add(f"{folder}/{entry.name}" if folder else entry.name)
        except (FileNotFoundError, NotADirectoryError):
            continue  # a missing file is verify's and the reader's to report, not a path escape
    return links


def _may_spell_out(relative: str) -> bool:
    """A cheap superset of the paths ``_through_a_link`` refuses without a link: absolute, a
    backslash, a ``..`` part, a URL scheme."""
    return relative.startswith("/") or "\\" in relative or ".." in relative or ":" in relative


def _through_a_link(root: Path, relative: str, links: set[str]) -> str | None:
    """``outside``, with the full check (``realpath`` of every part) only for a path a link is on.

    With no ``..`` part and no absolute or URL form, only a symlink on the way can lead out.
    """
    if relative.startswith("/") or "\\" in relative or ".." in relative.split("/") or ":" in relative.split("/")[0]:
        return outside(root, relative)
    parts = relative.split("/")
    if any("/".join(parts[:depth]) in links for depth in range(1, len(parts) + 1)):
        return outside(root, relative)
    return None
