"""Typed errors. Each also inherits the matching built-in so plain ``except ValueError`` works.

Messages say what was wrong and where (row, field, stream, file) and end with a hint
when there is an obvious fix.
"""

from __future__ import annotations


class SnapshotWarning(UserWarning):
    """A snapshot was unusable (corrupt or missing) or could not be written; the state was
    computed from the log."""


class StaleProjectionWarning(UserWarning):
    """A projection was served from its stored table, behind the log."""


class ProjectionWarning(UserWarning):
    """A projection's stored table gets no SQL view: its manifest is unreadable, names a file
    outside its folder, or its name is taken by another view."""


class StorePathWarning(UserWarning):
    """An entry of the store (a snapshot manifest, a cache file, a folder) names a path outside
    the store, or is a symlink leading out of it; it was ignored, and nothing there was read,
    written or deleted."""


class MaintenanceWarning(UserWarning):
    """The compaction that follows an append on a fragmented table failed; the append itself
    was committed, and the next append (or ``compact()``) tries again."""


class EventLogError(Exception):
    """Root of every error raised on purpose by eventlog."""


class ValidationError(EventLogError, ValueError):
    """A batch (or a query argument) does not fit the store's schema; nothing was written."""

    def __init__(self, message: str, *, row: int | None = None, field: str | None = None) -> None:
        where = []
        if row is not None:
            where.append(f"row {row}")
        if field is not None:
            where.append(f"field {field!r}")
        prefix = ", ".join(where)
        super().__init__(f"{prefix}: {message}" if prefix else message)
        self.row = row
        self.field = field


class ConcurrencyError(EventLogError):
    """An ``expected_versions`` check failed: the stream moved on; nothing was written."""

    def __init__(self, stream: str, expected: object, actual: int) -> None:
        super().__init__(
            f"stream {stream!r}: expected version {expected!r}, actual version {actual}; "
            "re-read the stream and retry"
        )
        self.stream = stream
        self.expected = expected
        self.actual = actual


class IdempotencyConflictError(EventLogError, ValueError):
    """An idempotency key already committed was given again with a different batch; nothing was written.

    ``key`` is the key, ``first_seq``/``last_seq`` where its first batch landed.
    """

    def __init__(self, key: str, first_seq: int, last_seq: int) -> None:
        super().__init__(
            f"idempotency key {key!r} was committed at seq {first_seq}..{last_seq} with a different batch; a retry "
            "must send the same events (the same rows, values and order), a new batch needs a new key"
        )
        self.key = key
        self.first_seq = first_seq
        self.last_seq = last_seq


class DuplicateEventError(ValidationError):
    """An ``event_id`` is already in the log or twice in the batch."""


class PromoteConflictError(EventLogError, ValueError):
    """An event of a branch no longer fits its origin; the promote wrote nothing.

    ``branch_seq`` and ``event_id`` name the first such event (its seq in the branch),
    ``stream`` its stream and ``reason`` what no longer holds.
    """

    def __init__(self, *, branch_seq: int, event_id: str, stream: str, reason: str) -> None:
        super().__init__(
            f"the branch's event at seq {branch_seq} (event_id {event_id!r}, stream {stream!r}) no longer fits the "
            f"origin: {reason}; nothing was promoted. Record it again on the origin, or branch again from its head"
        )
        self.branch_seq = branch_seq
        self.event_id = event_id
        self.stream = stream
        self.reason = reason


class InsufficientStockError(EventLogError, ValueError):
    """A removal would take an item's stock below zero; nothing was written."""

    def __init__(self, item: str, requested: int, available: int, *, row: int | None = None) -> None:
        at = f"row {row}: " if row is not None else ""
        super().__init__(
            f"{at}cannot remove {requested} of {item!r}: only {available} in stock"
        )
        self.item = item
        self.requested = requested
        self.available = available
        self.row = row


class StoreNotFoundError(EventLogError, FileNotFoundError):
    """No event store at the given path."""


class StoreExistsError(EventLogError, FileExistsError):
    """``create`` was asked for a path that already holds a store."""


class SchemaError(EventLogError, ValueError):
    """An event schema is defined wrongly (a ``Field``, ``EventType``, ``EventSchema`` or ``Upcaster``).

    ``event_type`` and ``field`` name what is at fault, when the definition knows them.
    """

    def __init__(self, message: str, *, event_type: str | None = None, field: str | None = None) -> None:
        super().__init__(message)
        self.event_type = event_type
        self.field = field


class SchemaMismatchError(EventLogError, ValueError):
    """The store was created with a different event schema than the caller expects."""


class SchemaEvolutionError(EventLogError, ValueError):
    """``EventLog.evolve`` was given a change that old events cannot be read under; nothing changed."""


class LockTimeoutError(EventLogError, TimeoutError):
    """The writer lock could not be taken in time (another writer is busy)."""


class CommitError(EventLogError, RuntimeError):
    """The storage layer refused a commit; nothing was written."""


class InputFileError(EventLogError, ValueError):
    """An input file (CSV, Parquet, NDJSON) cannot be read."""


class ImportRejectedError(InputFileError):
    """The store refused an input file's rows, or one batch of them; earlier batches stay committed.

    ``cause`` is the library's own error; ``row`` is the data row of the file it names
    (0-based, counting every batch) when it names one; ``batch_row`` is the first data row
    of the refused batch (None when the file went in as one batch); ``committed`` counts the
    events of the batches before it, and ``last_seq`` is where they end.
    """

    def __init__(
        self,
        file: str,
        cause: EventLogError,
        *,
        batch_row: int | None = None,
        committed: int = 0,
        seq_range: tuple[int, int] | None = None,
    ) -> None:
        where = f"{file}: " if batch_row is None else f"{file}, batch from data row {batch_row}: "
        if committed:
            seqs = f" (seq {seq_range[0]}..{seq_range[1]})" if seq_range else ""
            kept = f"{committed} event{'' if committed == 1 else 's'} before it stay committed{seqs}"
        else:
            kept = "nothing was imported"
        super().__init__(f"{where}{cause}; {kept}")
        self.file = file
        self.cause = cause
        in_batch = getattr(cause, "row", None)
        self.row = None if in_batch is None else (batch_row or 0) + in_batch
        self.field: str | None = getattr(cause, "field", None)
        self.batch_row = batch_row
        self.committed = committed
        self.last_seq = seq_range[1] if seq_range else None


class OutputFileError(EventLogError, OSError):
    """A file asked for as output (a query result, a DuckDB export) cannot be written there."""


class SnapshotError(EventLogError, RuntimeError):
    """A snapshot could not be written or read."""


class ProjectionError(EventLogError, ValueError):
    """A projection is unknown, badly defined, or failed to build."""


class StaleProjectionError(ProjectionError):
    """A SQL view of a projection that cannot show current numbers refused to show old ones."""

    def __init__(self, message: str, *, projection: str) -> None:
        super().__init__(message)
        self.projection = projection


class UnsupportedExpressionError(ProjectionError):
    """A projection's expression cannot be rendered for an engine's SQL dialect."""

    def __init__(self, message: str, *, projection: str, expression: str, dialect: str) -> None:
        super().__init__(message)
        self.projection = projection
        self.expression = expression
        self.dialect = dialect


class ReadOnlyError(EventLogError, PermissionError):
    """A SQL statement tried to change the store through a read-only surface."""


class QueryLimitError(EventLogError, RuntimeError):
    """A query ran past its time limit or out of its memory; it was stopped and wrote nothing.

    ``limit`` is ``"time"`` or ``"memory"``; ``value`` the limit it hit (seconds, or DuckDB's
    size text). The message says which option raises it.
    """

    def __init__(self, message: str, *, limit: str, value: object) -> None:
        super().__init__(message)
        self.limit = limit
        self.value = value


class IntegrityError(EventLogError):
    """``verify`` found the log, its hash chain or its derived tables inconsistent."""


class StorePathError(EventLogError, ValueError):
    """The store's path holds a character the storage layer cannot work with; nothing was written.

    Raised by ``create`` before anything is written, and by ``open`` before anything is read.
    """


class StorageError(EventLogError, OSError):
    """The store's files cannot be read (or, at create, written): its Delta log or ``eventlog.json`` is damaged or missing.

    ``store`` is the store's path; ``file`` the file at fault when it could be told, else None.
    """

    def __init__(self, message: str, *, store: str | None = None, file: str | None = None) -> None:
        super().__init__(message)  # one argument: str() is the message (OSError formats two as errno, text)
        self.store = store
        self.file = file


class NoSparkFormError(ProjectionError):
    """A projection (or a read rule of the store) cannot be computed on Spark: it is a Python
    function, or uses SQL that has no Spark rendering. ``name`` says which one."""

    def __init__(self, message: str, *, name: str) -> None:
        super().__init__(message)
        self.name = name
