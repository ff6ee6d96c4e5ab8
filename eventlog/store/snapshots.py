"""Snapshot tables: the materialised state at a seq, the cache that saves replaying the log.

Each snapshot is an immutable Parquet file plus a JSON manifest beside it. The manifest is
written last (both by atomic rename), so a snapshot without one never existed; its sha256
catches a truncated or altered file, and its state fingerprint rules out snapshots made by
another definition of the state: ``v<state version>``, plus a hash of the schema upcasters
that change what the state reads, when there are any (manifests written before fingerprints
existed count as ``v<state version>``). A snapshot that fails either check is never used.
"""

from __future__ import annotations

import builtins
import datetime as dt
import hashlib
import json
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import polars as pl

from eventlog.errors import SnapshotError, SnapshotWarning, StorePathWarning
from eventlog.store.atomic import atomic_file, remove_stale, temp_files, write_json_atomically
from eventlog.store.paths import folder_outside, outside


@dataclass(frozen=True)
class SnapshotInfo:
    """The manifest of one snapshot."""

    seq: int
    delta_version: int
    rows: int
    sha256: str
    state_version: int
    created_at: str
    max_occurred_at: str | None
    file: str
    state_fingerprint: str | None = None

    @property
    def path(self) -> str:
        return self.file

    @property
    def fingerprint(self) -> str:
        """The state definition it was made with (older manifests: the state version alone)."""
        return self.state_fingerprint or f"v{self.state_version}"


class SnapshotStore:
    """The snapshots of one state definition under ``<store>/snapshots/``."""

    def __init__(self, root: Path, *, state_version: int, fingerprint: str | None = None) -> None:
        self.root = root
        self.state_version = state_version
        #: The state definition: ``v<state version>`` plus the hash of any upcasters it reads through.
        self.fingerprint = fingerprint or f"v{state_version}"

    def accepts(self, info: SnapshotInfo) -> bool:
        """Whether ``info`` was made by this definition of the state."""
        return info.state_version == self.state_version and info.fingerprint == self.fingerprint

    def list(self, *, all_versions: bool = False) -> list[SnapshotInfo]:
        """Manifests, oldest first (only this state definition unless ``all_versions``)."""
        if not self.root.exists() or not self._folder_is_inside(warn=True):
            return []
        out = []
        for manifest in sorted(self.root.glob("*.json")):
            try:
                info = self._read_manifest(manifest)
            except FileNotFoundError:  # pruned by another process since the glob
                continue
            except (OSError, ValueError, TypeError, RecursionError) as exc:
                warnings.warn(f"snapshot manifest {manifest} is unreadable ({exc}); ignoring it", SnapshotWarning,
                              stacklevel=2)
                continue
            if info is not None and (all_versions or self.accepts(info)):
                out.append(info)
        return sorted(out, key=lambda i: (i.state_version, i.seq))

    def _read_manifest(self, manifest: Path) -> SnapshotInfo | None:
        """The manifest's snapshot, or None (with a warning) when a path in it leads out of the folder.

        A manifest names its own data file, ``<its stem>.parquet``: any other name (``../x``, an
        absolute path, another snapshot's file) is never read, written or deleted.
        """
        for name in (manifest.name, f"{manifest.stem}.parquet"):
            why = outside(self.root, name)
            if why is not None:
                warnings.warn(f"snapshot {self.root / name} is ignored: {why}", StorePathWarning, stacklevel=3)
                return None
        data = json.loads(manifest.read_text(encoding="utf-8"))
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        info = SnapshotInfo(**data)
        if info.file != f"{manifest.stem}.parquet":
            warnings.warn(f"snapshot manifest {manifest} is ignored: it names the file {info.file!r}, not its own "
                          f"{manifest.stem + '.parquet'!r}", StorePathWarning, stacklevel=3)
            return None
        for name in ("seq", "delta_version", "rows", "state_version"):
            value = getattr(info, name)
            if not isinstance(value, int) or isinstance(value, bool):
                raise TypeError(f"{name} is {value!r}, not an integer")
        if not isinstance(info.sha256, str):
            raise TypeError(f"sha256 is {info.sha256!r}, not text")
        return info

    def _folder_is_inside(self, *, warn: bool) -> bool:
        """Whether ``snapshots/`` is a real folder of the store (a symlink may lead anywhere)."""
        why = folder_outside(self.root.parent, self.root)
        if why is not None and warn:
            warnings.warn(f"the snapshot folder {self.root} is ignored: {why}; remove it", StorePathWarning,
                          stacklevel=3)
        return why is None

    def exists(self, info: SnapshotInfo) -> bool:
        """Whether the snapshot is still there (its manifest is removed first when it goes)."""
        return (self.root / f"{Path(info.file).stem}.json").exists()

    def load(self, info: SnapshotInfo) -> pl.DataFrame | None:
        """The snapshot's rows, or None (with a warning) when its file fails the checks."""
        path = self.root / info.file
        why = outside(self.root, info.file)
        if why is not None:  # e.g. replaced by a symlink since it was listed
            warnings.warn(f"snapshot {path} is ignored: {why}", StorePathWarning, stacklevel=2)
            return None
        try:
            data = path.read_bytes()
        except OSError as exc:
            warnings.warn(f"snapshot {path} cannot be read ({exc}); recomputing from the log", SnapshotWarning, stacklevel=2)
            return None
        if hashlib.sha256(data).hexdigest() != info.sha256:
            warnings.warn(f"snapshot {path} does not match its checksum; recomputing from the log", SnapshotWarning, stacklevel=2)
            return None
        try:
            frame = pl.read_parquet(data)
        except Exception as exc:  # a file that matches its checksum but will not parse
            warnings.warn(f"snapshot {path} is not valid Parquet ({exc}); recomputing", SnapshotWarning, stacklevel=2)
            return None
        if frame.height != info.rows:
            warnings.warn(f"snapshot {path} has {frame.height} rows, manifest says {info.rows}", SnapshotWarning, stacklevel=2)
            return None
        return frame

    def write(self, state: pl.DataFrame, *, seq: int, delta_version: int) -> SnapshotInfo:
        """Write the state at ``seq`` atomically: readers see the whole snapshot or none."""
        tag = self.fingerprint.removeprefix(f"v{self.state_version}").lstrip("-")  # "" for the plain definition
        stem = f"v{self.state_version}-{tag + '-' if tag else ''}seq{seq:015d}"
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            why = folder_outside(self.root.parent, self.root)
            if why is not None:
                raise SnapshotError(f"will not write snapshot {stem} in {self.root}: {why}; remove it")
            with atomic_file(self.root / f"{stem}.parquet") as tmp:
                state.write_parquet(tmp, compression="zstd", statistics=True)
                digest = hashlib.sha256(tmp.read_bytes()).hexdigest()
            top = state.get_column("last_changed_at").max() if state.height else None
            info = SnapshotInfo(
                seq=seq,
                delta_version=delta_version,
                rows=state.height,
                sha256=digest,
                state_version=self.state_version,
                created_at=dt.datetime.now(dt.timezone.utc).isoformat(),
                max_occurred_at=top.isoformat() if top is not None else None,  # type: ignore[union-attr]
                file=f"{stem}.parquet",
                state_fingerprint=self.fingerprint,
            )
            write_json_atomically(self.root / f"{stem}.json", asdict(info))  # the commit point
        except SnapshotError:
            raise
        except (OSError, pl.exceptions.PolarsError) as exc:  # polars reports a full disk as a ComputeError
            raise SnapshotError(f"could not write snapshot {stem} in {self.root}: {exc}") from exc
        return info

    def remove(self, info: SnapshotInfo) -> None:
        """Remove a snapshot ``list()`` returned (whose file was checked to be its own, in this folder)."""
        stem = Path(info.file).stem
        if outside(self.root, info.file) is not None or info.file != f"{stem}.parquet":
            return  # never delete what a manifest names outside the folder
        (self.root / f"{stem}.json").unlink(missing_ok=True)  # manifest first: never a manifest without data
        (self.root / info.file).unlink(missing_ok=True)

    def prune(self, *, keep_latest: int = 3) -> builtins.list[SnapshotInfo]:  # list: the method above
        """Keep the newest ``keep_latest`` and a ladder of older ones, spaced ever wider apart.

        The ladder keeps time travel into the past cheap without keeping every snapshot:
        going back, each kept snapshot is at least twice as far from the previous kept one.
        Snapshots of other state definitions are removed. Returns what was removed.
        """
        removed = [s for s in self.list(all_versions=True) if not self.accepts(s)]
        snaps = self.list()[::-1]  # newest first
        kept = snaps[:keep_latest]
        gap = (kept[0].seq - kept[-1].seq) if len(kept) > 1 else 1
        for snap in snaps[keep_latest:]:
            if kept[-1].seq - snap.seq >= gap:
                kept.append(snap)
                gap *= 2
            else:
                removed.append(snap)
        try:
            for snap in removed:
                self.remove(snap)
            self._remove_leftovers()
        except OSError as exc:  # a snapshot's writer or reader gets a SnapshotError, never an OSError
            raise SnapshotError(f"could not prune snapshots in {self.root}: {exc}") from exc
        return removed

    def _remove_leftovers(self) -> None:
        """Files of writers that failed or were killed: temp files, and data whose manifest never came."""
        if not self._folder_is_inside(warn=False):
            return
        manifests = {p.stem for p in self.root.glob("*.json")}
        orphans = [p for p in self.root.glob("v*.parquet") if p.stem not in manifests]
        remove_stale([*temp_files(self.root), *orphans])


def covers(info: SnapshotInfo, business: dt.datetime | None) -> bool:
    """A snapshot serves a business-time cut only if every event in it happened by then."""
    if business is None:
        return True
    if info.max_occurred_at is None:
        return True
    return dt.datetime.fromisoformat(info.max_occurred_at) <= business
