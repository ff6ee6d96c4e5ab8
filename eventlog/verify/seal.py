"""The seal: what a passing verify found, kept so that the next verify need not recompute it.

Recomputing the hash chain means decoding every stored value and feeding its canonical
encoding (about 160 bytes an event) to SHA-256: at ~600 MB/s here that alone is twice a cold
``stock()``, so it cannot be the price of every check. After the log's checks pass, verify
writes a seal to ``<store>/cache/verified/``:

- the head H it checked, the tip of the chain there, and a digest of the metadata of every
  append commit up to H (version, seq range, the three hashes, schema version, recorded_at);
- every data file holding seq <= H: its path, size, the SHA-256 of its bytes, and the seq
  range and day the Delta log listed for it (checked against its content in that pass);
- what the envelope checks carry past H: each stream's last version, the last recorded_at,
  and the 64-bit hash of every event id (sorted, in a ``.npy`` file).

The next verify uses the seal only when it still describes the log exactly: the same table,
the same commits up to H, the same files up to H, each one's bytes hashed again now (the I/O
speed part) and equal; Polars of the same version (its id hashes are not stable across
versions). Then the values up to H are the values that were checked, and only the commits
after H are recomputed, starting from the carried state. Anything else — a file changed,
compacted, deleted or added below H, a commit rewritten, a seal damaged or missing — and the
whole log is recomputed, as ``verify(deep=True)`` always does. Every violation is therefore
reported by the same check, with the same location, as by a full recomputation.

What the seal cannot do: it is a file in the store, so someone who rewrites a data file *and*
the seal to match (knowing this format) passes a verify that trusts it — as someone who
rewrites the data and recomputes the chain after it passes a verify without ``expect``. A
verify with ``expect`` (an anchor published elsewhere) or ``deep=True`` never reads the seal.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import secrets
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from eventlog.core.chain import ENCODING_VERSION
from eventlog.errors import StorePathWarning
from eventlog.store.atomic import atomic_file, remove_stale, temp_files, write_json_atomically
from eventlog.store.paths import folder_outside, outside
from eventlog.verify.report import VerifiedLog

FORMAT = 1
_NAME = "log.json"
#: Threads hashing data files (hashlib releases the GIL on large buffers).
_THREADS = 2
_FILE_COLUMNS = ("path", "size_bytes", "min_seq", "max_seq", "day")


@dataclass
class Carry:
    """What the envelope checks carry from the events up to ``head`` to the ones after it."""

    head: int
    tip: str | None
    streams: pl.DataFrame  # stream_id, base: each stream's last version
    last_recorded: dt.datetime | None
    id_hashes: np.ndarray  # uint64, sorted: the 64-bit hash of every event id up to head


@dataclass
class LogSeal:
    """A seal that still describes the log: its values up to ``carry.head`` need no recomputation."""

    carry: Carry
    files: pl.DataFrame  # the sealed files with their digests (path, sha256)


def folder(log: VerifiedLog) -> Path:
    return log.path / "cache" / "verified"


def commits_digest(commits: pl.DataFrame) -> str:
    """A digest of the append commits' metadata (the rows ``append_commits`` gives)."""
    return hashlib.sha256(json.dumps(commits.rows(), default=str).encode()).hexdigest()


def file_digests(root: Path, paths: list[str]) -> list[str]:
    """SHA-256 of each file's bytes, two files at a time."""
    def one(path: str) -> str:
        with open(root / path, "rb") as fh:
            return hashlib.file_digest(fh, "sha256").hexdigest()

    if len(paths) < 2:
        return [one(p) for p in paths]
    with ThreadPoolExecutor(max_workers=_THREADS) as pool:
        return list(pool.map(one, paths))


def load(log: VerifiedLog, head: int, commits: pl.DataFrame) -> LogSeal | None:
    """The seal, if one exists and still describes the log (see the module docstring); else None."""
    base = folder(log)
    if not (base / _NAME).is_file() or folder_outside(log.path, base.parent) or folder_outside(log.path, base):
        return None
    try:
        data = json.loads((base / _NAME).read_text(encoding="utf-8"))
        if not isinstance(data, dict) or data.get("format") != FORMAT or data.get("encoding") != ENCODING_VERSION:
            return None
        if data.get("polars") != pl.__version__ or data.get("table_id") != log.storage.table_id():
            return None
        sealed_head = int(data["head"])
        if not 0 < sealed_head <= head:
            return None
        prefix = commits.filter(pl.col("last_seq") <= sealed_head)
        if prefix.height != int(data["commits"]) or commits_digest(prefix) != data["commits_digest"]:
            return None
        if prefix.item(-1, "last_seq") != sealed_head or prefix.item(-1, "hash") != data["tip"]:
            return None
        sealed = pl.DataFrame(data["files"], schema={"path": pl.String, "size_bytes": pl.Int64, "sha256": pl.String,
                                                     "min_seq": pl.Int64, "max_seq": pl.Int64, "day": pl.String},
                              orient="row")
        listed = log.storage.files()
        below = listed.filter(pl.col("min_seq").is_null() | pl.col("max_seq").is_null()
                              | (pl.col("min_seq") <= sealed_head))
        now = below.select(*_FILE_COLUMNS).with_columns(pl.col("day").cast(pl.String)).sort("path")
        if not now.equals(sealed.select(*_FILE_COLUMNS).sort("path")):
            return None  # a file of the sealed range was added, removed, rewritten or compacted
        paths = sealed.get_column("path").to_list()
        if any(outside(log.storage.path, p) for p in paths):
            return None
        if file_digests(log.storage.path, paths) != sealed.get_column("sha256").to_list():
            return None  # some bytes changed since: the full recomputation says what
        streams = _read_companion(base, data["streams"], lambda p: pl.read_parquet(p))
        ids = _read_companion(base, data["ids"], lambda p: np.load(p, allow_pickle=False))
    except (OSError, ValueError, TypeError, KeyError, IndexError, pl.exceptions.PolarsError):
        return None  # a damaged seal is no seal: everything is recomputed
    if (streams is None or ids is None or ids.dtype != np.uint64 or ids.shape != (sealed_head,)
            or bool((ids[1:] < ids[:-1]).any())):
        return None
    if streams.columns != ["stream_id", "base"]:
        return None
    last = data.get("last_recorded_at")
    carry = Carry(sealed_head, data["tip"], streams.cast({"stream_id": pl.String, "base": pl.Int64}),
                  dt.datetime.fromisoformat(last) if last else None, ids)
    return LogSeal(carry, sealed.select("path", "sha256"))


def _read_companion(base: Path, name: object, read: Any) -> Any:
    if not isinstance(name, str) or outside(base, name) or "/" in name:
        return None
    return read(base / name)


def save(log: VerifiedLog, commits: pl.DataFrame, carry: Carry, known: pl.DataFrame | None) -> None:
    """Seal what a passing verify checked; ``known`` holds digests already computed (path, sha256).

    Only a cache: a store that cannot be written (read-only media, a full disk) is verified
    in full next time.
    """
    if carry.head == 0:
        return
    listed = log.storage.files()
    files = listed.select(*_FILE_COLUMNS).with_columns(pl.col("day").cast(pl.String))
    if files.get_column("max_seq").null_count() or files.get_column("min_seq").null_count():
        return  # files without statistics cannot be matched to a seq range
    files = files.filter(pl.col("min_seq") <= carry.head)
    if known is not None:
        files = files.join(known, on="path", how="left")
    else:
        files = files.with_columns(sha256=pl.lit(None, pl.String))
    missing = files.filter(pl.col("sha256").is_null()).get_column("path").to_list()
    if missing:
        digests = dict(zip(missing, file_digests(log.storage.path, missing), strict=True))
        files = files.with_columns(pl.col("sha256").fill_null(pl.col("path").replace_strict(digests, default=None)))
    base = folder(log)
    tag = f"{carry.head:015d}-{secrets.token_hex(4)}"
    try:
        base.mkdir(parents=True, exist_ok=True)
        why = folder_outside(log.path, base.parent) or folder_outside(log.path, base)
        if why is not None:
            warnings.warn(f"the verify seal is not written to {base}: {why}; remove it", StorePathWarning, stacklevel=4)
            return
        streams, ids = f"streams-{tag}.parquet", f"ids-{tag}.npy"
        with atomic_file(base / streams) as tmp:
            carry.streams.write_parquet(tmp)
        with atomic_file(base / ids) as tmp, open(tmp, "wb") as fh:
            np.save(fh, carry.id_hashes.astype(np.uint64, copy=False), allow_pickle=False)
        prefix = commits.filter(pl.col("last_seq") <= carry.head)
        write_json_atomically(base / _NAME, {
            "format": FORMAT, "encoding": ENCODING_VERSION, "polars": pl.__version__,
            "table_id": log.storage.table_id(), "delta_version": log.version, "head": carry.head,
            "tip": carry.tip, "commits": prefix.height, "commits_digest": commits_digest(prefix),
            "last_recorded_at": carry.last_recorded.isoformat() if carry.last_recorded is not None else None,
            "files": files.select("path", "size_bytes", "sha256", "min_seq", "max_seq", "day").rows(),
            "streams": streams, "ids": ids,
        })  # the commit point: the companions it names are in place
        _prune(base, keep={streams, ids})
    except OSError:
        pass  # a cache: the next verify recomputes everything


def _prune(base: Path, keep: set[str]) -> None:
    """Companions of earlier seals (a concurrent verify's newer seal keeps its own: it names them)."""
    try:
        current = json.loads((base / _NAME).read_text(encoding="utf-8"))
        keep |= {current.get("streams"), current.get("ids")}
    except (OSError, ValueError):
        pass
    old = [p for p in [*base.glob("streams-*.parquet"), *base.glob("ids-*.npy")] if p.name not in keep]
    for path in old:
        path.unlink(missing_ok=True)
    remove_stale(temp_files(base))
