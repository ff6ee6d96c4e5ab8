"""What the log and the layers above need of an events store, and nothing more.

``DeltaEvents`` (the Delta Lake table) is the real one; ``MemoryEvents`` keeps the same
promises in memory and is the reference the contract tests (``tests/test_store_contract.py``)
hold both to. Everything is stated in neutral terms: a version per commit, data files with
their seq range and day, commit metadata, idempotency transactions.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

if TYPE_CHECKING:
    import polars as pl
    import pyarrow as pa

#: Prefix of the keys a store puts the caller's commit metadata under in ``history()``.
META_PREFIX = "eventlog."

#: The columns of ``files()``, one row per live data file. ``path`` is relative to the store's
#: ``path``; the seq and recorded_at bounds are null for a file written without statistics
#: (such a file may hold any seq); ``day`` is the partition date every event of the file shares.
FILE_COLUMNS = ("path", "size_bytes", "rows", "min_seq", "max_seq", "max_recorded_at", "day")


class FileCover(NamedTuple):
    """The data files that can hold a seq range, as absolute paths.

    ``inside`` is True when every one of them lies wholly inside the range, so a reader
    of these files needs no seq predicate (and need not read the seq column at all).
    """

    paths: list[str]
    inside: bool


@dataclass(frozen=True)
class CommitFileProblem:
    """A commit file that no longer holds its commit (emptied or rewritten)."""

    version: int
    problem: str  # e.g. "is empty", "holds no commit information"
    file: str  # relative to the store's path


class Rows(Protocol):
    """The rows of one append with every stored column (``pa.Table`` is one; so is the writer's
    ``AssignedRows``, which builds the rows asked for only when asked)."""

    @property
    def num_rows(self) -> int: ...

    @property
    def schema(self) -> pa.Schema: ...

    def column(self, name: str) -> pa.Array | pa.ChunkedArray: ...

    def slice(self, offset: int, length: int) -> pa.Table: ...

    def take(self, indices: pa.Array) -> pa.Table: ...


#: The write policy's compaction threshold (``EventStore.fragmented``): a Delta commit's cost
#: grows with the table's live files (measured at 100M events: a one-row append took 84 ms over
#: 3,285 files, 44 ms over the same events in 414), so a table past this many files per day
#: partition (and past MIN_FILES) is compacted after the append that found it so.
FILES_PER_DAY = 4
MIN_FILES = 256
#: The bytes of small files such a compaction merges at most per append (the most fragmented
#: days first), or twice what the append wrote if more: the rest waits for the next appends, so
#: no append holds the lock for long, and compaction keeps up with appends of any size.
COMPACT_BUDGET = 256 * 1024 * 1024


class EventStore(Protocol):
    """The storage seam: one table of events, versioned per commit.

    Appends commit whole batches; every commit gets the next version and a history entry
    (newest first) with ``version``, ``timestamp`` (ms since the epoch), ``operation`` and
    the caller's metadata under ``META_PREFIX``. Reads see the version this object was
    last moved to (``refresh``, or its own commits).
    """

    path: Path
    #: The bytes of the data files this object's last append wrote (0 before any).
    appended_bytes: int

    @classmethod
    def create(cls, path: Path, schema: pa.Schema) -> EventStore: ...

    def refresh(self) -> None:
        """Catch up with commits made elsewhere."""

    @property
    def version(self) -> int: ...

    def table_id(self) -> str:
        """An id the table keeps for life: a cache key that a new table at the same path does not share."""
        ...

    def columns(self) -> dict[str, pl.DataType]:
        """Every stored column in stored order, the partition column included."""
        ...

    def files(self) -> pl.DataFrame:
        """One row per live data file, with ``FILE_COLUMNS``."""
        ...

    def files_covering(self, *, after: int, cut: int, day_max: dt.date | None = None) -> FileCover:
        """The files that can hold events with after < seq <= cut (and day <= day_max)."""
        ...

    def head_and_last_recorded(self) -> tuple[int, dt.datetime | None]:
        """The last seq (0 when empty) and the last recorded_at."""
        ...

    def scan(self, *, after: int = 0, cut: int | None = None) -> pl.LazyFrame:
        """Every event of this version, with every stored column (older files read new ones as null).

        With ``after``/``cut``, exactly the events with after < seq <= cut (files that cannot
        hold any are not read).
        """
        ...

    def history(self, limit: int | None = None) -> list[dict[str, Any]]: ...

    def transaction_version(self, app_id: str) -> int | None:
        """The version last committed for ``app_id`` with ``append(transactions=...)``, if any."""
        ...

    def check_commit_files(self) -> CommitFileProblem | None:
        """The first commit record that lost its content, if any (a store without files has none)."""
        ...

    def append(self, data: Rows, *, metadata: dict[str, str] | Callable[[], dict[str, str]],
               transactions: dict[str, int]) -> int:
        """Commit ``data`` (all stored columns; a ``pa.Table`` or rows built on demand) as one version
        and return it; callers hold the writer lock.

        ``metadata`` may be a function: it is called once, while the data is being written.
        """
        ...

    def add_columns(self, columns: dict[str, pl.DataType], *, metadata: dict[str, str]) -> int:
        """Add nullable columns in one commit; columns already there are left alone."""
        ...

    def compact(self, *, target_size: int | None = None, budget: int | None = None) -> dict[str, Any]:
        """Merge small files; every scan result stays the same. Returns counts
        ``numFilesAdded`` and ``numFilesRemoved`` (among others for Delta). With ``budget``:
        at most about that many bytes of them, the runs of the most files first."""
        ...

    def fragmented(self) -> bool:
        """Whether the table holds so many files that compacting it is part of the next write:
        more than ``FILES_PER_DAY`` per day partition on average, and more than ``MIN_FILES``."""
        ...

    def vacuum(self, *, retention_hours: float, dry_run: bool) -> list[str]:
        """Delete files no version younger than the retention needs; returns their paths."""
        ...
