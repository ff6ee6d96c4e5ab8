"""Materialised projection tables under ``<store>/projections/<name>/``."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl
from filelock import FileLock

from eventlog.errors import ProjectionError
from eventlog.store.atomic import atomic_file, remove_stale, temp_files, write_json_atomically


@dataclass(frozen=True)
class _Manifest:
    file: str
    checkpoint: int
    fingerprint: str
    built_at: str
    duration_s: float
    rows: int
    mode: str
    name: str
    full_build: bool


class ProjectionTables:
    """The materialised tables under ``<store>/projections/<name>/``.

    Each build writes a new Parquet file, then swaps ``current.json`` to point at it with
    one atomic rename: readers see the old table or the new one, never a mix. The previous
    file is kept one generation so that a reader holding the old manifest can still read it.
    """

    def __init__(self, root: Path) -> None:
        self.root = root

    def folder(self, name: str) -> Path:
        return self.root / name

    def manifest(self, name: str) -> _Manifest | None:
        path = self.folder(name) / "current.json"
        try:
            return _Manifest(**json.loads(path.read_text()))
        except FileNotFoundError:
            return None
        except (ValueError, TypeError) as exc:
            raise ProjectionError(f"projection {name!r}: {path} is unreadable ({exc}); rebuild it") from exc

    def read(self, name: str, manifest: _Manifest) -> pl.DataFrame:
        return pl.read_parquet(self.folder(name) / manifest.file)

    def lock(self, name: str) -> FileLock:
        folder = self.folder(name)
        folder.mkdir(parents=True, exist_ok=True)
        return FileLock(str(folder / ".lock"))

    def write(self, name: str, table: pl.DataFrame, manifest: dict[str, Any]) -> _Manifest:
        folder = self.folder(name)
        folder.mkdir(parents=True, exist_ok=True)
        previous = self._current_file(name)
        stamp = f"{time.time_ns():020d}"
        final = f"t-{manifest['checkpoint']:015d}-{stamp}.parquet"
        info = _Manifest(file=final, rows=table.height, **manifest)
        with atomic_file(folder / final) as tmp:
            table.write_parquet(tmp, compression="zstd")
        write_json_atomically(folder / "current.json", info.__dict__)  # the commit point
        self._drop_old(folder, keep={final, previous})
        return info

    def _current_file(self, name: str) -> str | None:
        try:
            manifest = self.manifest(name)
        except ProjectionError:  # an unreadable manifest is replaced; its table is not worth keeping
            return None
        return manifest.file if manifest is not None else None

    def _drop_old(self, folder: Path, keep: set[str | None]) -> None:
        """Remove every table but ``keep``: the new one, and the one a reader may still hold a manifest of.

        The table before is named by the manifest that was current, not guessed by age: a build
        that failed between placing its table and its manifest leaves a newer file no one reads.
        """
        for path in folder.glob("t-*.parquet"):
            if path.name not in keep:
                path.unlink(missing_ok=True)
        remove_stale(temp_files(folder))  # files of builders that failed or were killed
