"""SQL for analysts: DuckDB views and table macros over one pinned version of a store.

``connect(store)`` returns a DuckDB connection with these views and macros:

- ``events``: the committed log, envelope then payload columns in the schema's order (unordered:
  add ``ORDER BY seq``); after a schema evolution, old events read as ``EventLog.scan`` shows
  them (added fields null or their default, upcasters applied, in SQL);
- ``inventory``: current stock, the rows of ``Inventory.stock()`` ordered by item (inventory
  stores only), computed as newest usable snapshot ⊕ fold of the tail from the state's one
  definition (``model.state.STATE``), rendered for DuckDB;
- ``commits``: one row per Delta commit with eventlog's commit metadata (null seqs for
  create, compact and vacuum);
- ``snapshots``: one row per snapshot manifest, with whether the SQL layer may start from it;
- ``projections``: one row per materialised projection (name, checkpoint, file, manifest), and
  one view per projection, named as its folder ``<store>/projections/<name>/``, over the table
  its ``current.json`` names (as built at its checkpoint, which may be behind the log);
- ``events_as_of(x)`` and ``inventory_as_of(x)``: ``x`` is a seq (``seq <= x``) or business
  time (a TIMESTAMPTZ, a TIMESTAMP read as UTC, a DATE meaning the end of that UTC day, or an
  ISO string), exactly the ``as_of`` of the Python API. The scalar macros ``as_of_seq(x)`` and
  ``as_of_time(x)`` say which cut an argument means.

Every view reads the store's Parquet files through ``read_parquet`` with the file list of
one Delta version written into its definition, so a connection keeps showing that version
until ``refresh(con)``. The connection can read those files and nothing else: it cannot
write any file (see ``connect``).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import os
import threading
import warnings
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
import pyarrow.parquet as pq

from eventlog.core import cuts
from eventlog.core.evolution import SchemaHistory
from eventlog.core import sqlrender
from eventlog.core.definitions import columns_read
from eventlog.model.state import STATE, STATE_SCHEMA, STATE_VERSION, STORED_SCHEMA, state_fingerprint
from eventlog.core.text import is_utf8
from eventlog.errors import CommitError, OutputFileError, ReadOnlyError, ValidationError
from eventlog.model.schema import is_inventory
from eventlog.log import EventLog
from eventlog.errors import ProjectionWarning, SnapshotWarning
from eventlog.store.atomic import atomic_file
from eventlog.store.snapshots import SnapshotInfo, SnapshotStore

#: A store: its path, its EventLog, or a domain object holding one as ``.log`` (an Inventory).
Store = Any

#: Views every connection defines; a projection of the same name gets no view.
BUILT_IN_VIEWS = ("events", "inventory", "commits", "snapshots", "projections")
#: Settings an analyst may still change on a locked connection: none of them names a file.
_TUNABLE = ("threads", "memory_limit", "enable_progress_bar", "enable_progress_bar_print",
            "progress_bar_time", "preserve_insertion_order")
_MAX_SEQ = "9223372036854775807"
_NO_TIME = "TIMESTAMPTZ 'infinity'"
_COMMIT_COLUMNS = {
    "version": pl.Int64(),
    "first_seq": pl.Int64(),
    "last_seq": pl.Int64(),
    "event_count": pl.Int64(),
    "recorded_at": pl.Datetime("us", "UTC"),
    "operation": pl.String(),
    "committed_at": pl.Datetime("us", "UTC"),
    "idempotency_key": pl.String(),
}
_SNAPSHOT_COLUMNS = {
    "seq": pl.Int64(),
    "delta_version": pl.Int64(),
    "rows": pl.Int64(),
    "state_version": pl.Int64(),
    "created_at": pl.Datetime("us", "UTC"),
    "max_occurred_at": pl.Datetime("us", "UTC"),
    "file": pl.String(),
    "sha256": pl.String(),
    "usable": pl.Boolean(),
}
_PROJECTION_COLUMNS = {
    "name": pl.String(),
    "checkpoint": pl.Int64(),
    "file": pl.String(),
    "manifest": pl.String(),
}
# The as_of argument, by its type. Typed overloads (``as_of_seq(x BIGINT)``, ...) dispatch
# well in plain queries, but DuckDB binds a table macro's body with x untyped and then finds
# every overload ambiguous; so each macro branches on typeof(x), with casts that bind for
# any type. A constant argument folds to one constant cut before the scans are planned.
_INTS = ", ".join(
    f"'{t}'" for t in ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER",
                       "UBIGINT", "UHUGEINT")
)
_TIMES = "'TIMESTAMP', 'TIMESTAMP_S', 'TIMESTAMP_MS', 'TIMESTAMP_NS'"
# Text follows the one grammar of eventlog.core.cuts: its blanks and its patterns, as SQL.
_TEXT = "trim(CAST(x AS VARCHAR), E'" + "".join(f"\\x{ord(c):02x}" for c in cuts.BLANKS) + "')"
_SEQ_RE, _DATE_RE, _NAIVE_RE, _TIMESTAMP_RE = (
    "'" + p.replace("'", "''") + "'"
    for p in (cuts.SEQ_PATTERN, cuts.DATE_PATTERN, cuts.NAIVE_TIMESTAMP_PATTERN, cuts.TIMESTAMP_PATTERN)
)
_END_OF_DAY = "timezone('UTC', CAST({date} AS TIMESTAMP) + INTERVAL 1 DAY - INTERVAL 1 MICROSECOND)"
_AS_OF_SEQ = f"""\
CREATE OR REPLACE MACRO as_of_seq(x) AS CASE
    WHEN x IS NULL THEN CAST(NULL AS BIGINT)
    WHEN typeof(x) IN ({_INTS}) THEN CASE
        WHEN TRY_CAST(x AS HUGEINT) < 0 THEN error('as_of=' || CAST(x AS VARCHAR) || ': a seq cut cannot be negative')
        ELSE TRY_CAST(x AS BIGINT)  -- NULL beyond BIGINT: no cut
    END
    WHEN typeof(x) = 'VARCHAR' AND regexp_full_match({_TEXT}, {_SEQ_RE}) THEN TRY_CAST({_TEXT} AS BIGINT)
    WHEN typeof(x) IN ('VARCHAR', 'DATE', 'TIMESTAMP WITH TIME ZONE', {_TIMES}) THEN CAST(NULL AS BIGINT)
    ELSE error('as_of is a seq (an integer), a TIMESTAMPTZ, a TIMESTAMP (read as UTC), a DATE or an ISO string, not '
               || typeof(x))
END;
"""
_AS_OF_TIME = f"""\
CREATE OR REPLACE MACRO as_of_time(x) AS CASE
    WHEN x IS NULL OR typeof(x) NOT IN ('VARCHAR', 'DATE', 'TIMESTAMP WITH TIME ZONE', {_TIMES})
        THEN CAST(NULL AS TIMESTAMPTZ)
    WHEN typeof(x) = 'TIMESTAMP WITH TIME ZONE' THEN TRY_CAST(x AS TIMESTAMPTZ)
    WHEN typeof(x) IN ({_TIMES}) THEN timezone('UTC', TRY_CAST(x AS TIMESTAMP))
    WHEN typeof(x) = 'DATE' THEN {_END_OF_DAY.format(date="TRY_CAST(x AS DATE)")}
    WHEN regexp_full_match({_TEXT}, {_SEQ_RE}) THEN CAST(NULL AS TIMESTAMPTZ)
    WHEN regexp_full_match({_TEXT}, {_DATE_RE}) AND TRY_CAST({_TEXT} AS DATE) IS NOT NULL
        THEN {_END_OF_DAY.format(date=f"TRY_CAST({_TEXT} AS DATE)")}
    WHEN regexp_full_match({_TEXT}, {_TIMESTAMP_RE}) AND TRY_CAST({_TEXT} AS TIMESTAMPTZ) IS NOT NULL
        THEN TRY_CAST({_TEXT} AS TIMESTAMPTZ)
    WHEN regexp_full_match({_TEXT}, {_NAIVE_RE}) AND TRY_CAST({_TEXT} AS TIMESTAMP) IS NOT NULL
        THEN error('as_of=''' || CAST(x AS VARCHAR) || ''' has no time zone; add one, e.g. ' || {_TEXT} || '+00:00')
    ELSE error('as_of=''' || CAST(x AS VARCHAR) || ''' {cuts.NOT_A_CUT}')
END;
"""


# --- public API ------------------------------------------------------------------------------


def connect(store: Store, /) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection with the store's views and macros, pinned to its current version.

    The connection shows one Delta version until ``refresh(con)``. TimeZone is UTC.

    It is read-only by construction: external access is off, with an exception for exactly
    the files its views read, and the configuration is locked. So ``COPY ... TO``, ``ATTACH``,
    ``EXPORT DATABASE``, ``INSTALL``, or reading any other file fail with DuckDB's
    ``PermissionException``, wherever they point; views refuse INSERT, UPDATE and DELETE.
    Tables of your own live in memory. To save a result, fetch it (``.pl()``) and write it
    from Python. Limit: a ``COPY ... TO`` naming one of the readable files itself with
    ``USE_TMP_FILE false`` is not refused by DuckDB; ``query()`` refuses every statement but
    SELECT.

    Example:
        >>> import tempfile
        >>> from eventlog import Inventory
        >>> inv = Inventory.open(tempfile.mkdtemp() + "/store")
        >>> _ = inv.add_item("sword", 2)
        >>> con = connect(inv)
        >>> con.sql("SELECT item, quantity FROM inventory").fetchall()
        [('sword', 2)]
        >>> con.sql("SELECT count(*) FROM events_as_of(0)").fetchall()
        [(0,)]
    """
    log, is_inventory = _open(store)
    pin = _pin(log, is_inventory)
    con = duckdb.connect()
    try:
        _run(con, "SET TimeZone = 'UTC'")
        # The files never change under their names (Delta, snapshots and projections all
        # write new files): their footers, read for union_by_name, can be kept.
        _run(con, "SET parquet_metadata_cache = true")
        sources = _Sources(con, readable=None, tag="c", uniform=log.schema_version == 1)
        _run_script(con, _definitions(pin, sources))
        _lock(con, sorted(sources.files))
    except BaseException:
        con.close()
        raise
    with _REGISTRY_LOCK:
        _REGISTRY[con] = _Handle(log, is_inventory, frozenset(sources.files), pin.version)
    return con


def refresh(con: duckdb.DuckDBPyConnection, /) -> int:
    """Re-create the views of a ``connect()`` connection from the store's latest version.

    DuckDB cannot widen the set of files a locked connection may open, so files committed
    after ``connect`` are read through Arrow datasets registered on this connection (views
    over them work on this connection, not on its cursors); the files it could read from
    the start stay in ``read_parquet``. Snapshots written after ``connect`` are not used as
    a base: the state is the same, folded from an older one.

    Returns:
        The Delta version the connection shows now.

    Example:
        >>> import tempfile
        >>> from eventlog import Inventory
        >>> inv = Inventory.open(tempfile.mkdtemp() + "/store")
        >>> con = connect(inv)
        >>> _ = inv.add_item("shield")
        >>> con.sql("SELECT count(*) FROM events").fetchall()
        [(0,)]
        >>> refresh(con) == inv.log.version
        True
        >>> con.sql("SELECT item FROM inventory").fetchall()
        [('shield',)]
    """
    with _REGISTRY_LOCK:
        handle = _REGISTRY.get(con)
    if handle is None:
        raise ValidationError("refresh() takes a connection made by eventlog.sql.connect()", field="con")
    pin = _pin(handle.log, handle.inventory)
    handle.generation += 1
    sources = _Sources(con, readable=handle.readable, tag=f"r{handle.generation}",
                       uniform=handle.log.schema_version == 1)
    _run(con, "BEGIN TRANSACTION")
    try:
        _run_script(con, _definitions(pin, sources))
        _run(con, "COMMIT")
    except BaseException:
        _run(con, "ROLLBACK")
        for name in sources.registered:
            con.unregister(name)
        raise
    for name in handle.registered:
        con.unregister(name)
    handle.registered, handle.version = sources.registered, pin.version
    return pin.version


def query(store: Store, query: str, params: Sequence[Any] | Mapping[str, Any] | None = None) -> pl.DataFrame:
    """Run one SELECT over the store's current version and return its rows.

    Values go in ``params`` (``$name`` or ``?`` placeholders), never into the text.

    Raises:
        ReadOnlyError: the statement is not a SELECT, or it tried to reach a file.
        ValidationError: the SQL does not parse or bind (DuckDB's message included), or
            ``params`` is neither a list nor a dict.

    Example:
        >>> import tempfile
        >>> from eventlog import Inventory
        >>> inv = Inventory.open(tempfile.mkdtemp() + "/store")
        >>> _ = inv.add_item("o'brien; ✓", 3)
        >>> query(inv, "SELECT quantity FROM inventory WHERE item = $item", {"item": "o'brien; ✓"}).item()
        3
    """
    log, _ = _open(store)
    _check_params(params)
    con = connect(store if isinstance(getattr(store, "log", None), EventLog) else log)
    try:
        try:
            _run(con, "SET enable_progress_bar = false")  # a library call prints nothing
        except duckdb.InvalidInputException:
            pass  # in a Jupyter kernel without ipywidgets DuckDB refuses the setting; it is cosmetic
        _check_select(con, query)
        try:
            return con.sql(query, params=params).pl() if params is not None else con.sql(query).pl()
        except duckdb.PermissionException as exc:
            raise ReadOnlyError(
                f"the SQL surface of {log.path} reads the store's committed files only: {exc}"
            ) from exc
        except duckdb.ProgrammingError as exc:
            raise ValidationError(str(exc), field="query") from exc
    finally:
        con.close()


def export_duckdb(store: Store, file: str | os.PathLike[str], /) -> Path:
    """Write a DuckDB database file with the views and macros of ``connect``; returns its path.

    The views read the store's files by absolute path and are pinned to the version current
    now: they do not see later commits, and after a vacuum they fail on the files it removed.
    To refresh, export again (the file is replaced atomically). The file cannot lock down the
    sessions that open it: open it with ``duckdb.connect(path, read_only=True)``, and set
    ``enable_external_access = false`` there for the same safety as ``connect``. The file may
    not lie inside the store, and an existing file is replaced only if it is a DuckDB database
    (or empty): a mistyped path does not overwrite other data.

    Raises:
        ReadOnlyError: ``file`` lies inside the store.
        OutputFileError: ``file`` is a folder or another kind of file, or its folder cannot be made.

    Example:
        >>> import tempfile, duckdb
        >>> from eventlog import Inventory
        >>> inv = Inventory.open(tempfile.mkdtemp() + "/store")
        >>> _ = inv.add_item("sword")
        >>> path = export_duckdb(inv, tempfile.mkdtemp() + "/inventory.duckdb")
        >>> duckdb.connect(str(path), read_only=True).sql("SELECT count(*) FROM events").fetchall()
        [(1,)]
    """
    log, is_inventory = _open(store)
    target = Path(file).resolve()
    root = log.path.resolve()
    if target.is_relative_to(root):
        raise ReadOnlyError(f"{target} lies inside the store {root}; export to a file outside it")
    if target.is_dir():
        raise OutputFileError(f"{target} is a folder; export to a file path, e.g. {target / 'store.duckdb'}")
    if not _replaceable(target):
        raise OutputFileError(f"{target} exists and is not a DuckDB database; export to a new file or delete it first")
    pin = _pin(log, is_inventory)
    with contextlib.ExitStack() as placing:
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = placing.enter_context(atomic_file(target))
        except (FileExistsError, NotADirectoryError):  # a file where a folder should be
            raise OutputFileError(f"cannot write {target}: {target.parent} is not a folder") from None
        except OSError as exc:
            raise OutputFileError(f"cannot write {target}: {exc.strerror or exc}") from None
        tmp.unlink()  # DuckDB creates the database file itself
        try:
            con = duckdb.connect(str(tmp))
            try:
                _run_script(con, _definitions(pin, _Sources(con, readable=None, tag="x", uniform=log.schema_version == 1)))
                _run(con, "CHECKPOINT")
            finally:
                con.close()
        finally:
            Path(f"{tmp}.wal").unlink(missing_ok=True)
    return target


def _replaceable(target: Path) -> bool:
    """Whether export may replace ``target``: it is missing, empty or a DuckDB database (magic at byte 8)."""
    try:
        with open(target, "rb") as fh:
            head = fh.read(12)
    except (FileNotFoundError, NotADirectoryError):
        return True
    except OSError:
        return False
    return head == b"" or head[8:12] == b"DUCK"


def definitions(store: Store, /) -> str:
    """The SQL script that ``connect`` and ``export_duckdb`` run for the store's current version.

    For reading what a view does, and for review: golden files keep it.

    Example:
        >>> import tempfile
        >>> from eventlog import Inventory
        >>> print(definitions(Inventory.open(tempfile.mkdtemp() + "/store")).splitlines()[0])
        CREATE OR REPLACE VIEW events AS
    """
    log, is_inventory = _open(store)
    return "\n".join(_definitions(_pin(log, is_inventory), _Sources(None, readable=None, tag="d",
                                                                    uniform=log.schema_version == 1)))


# --- the pinned version ----------------------------------------------------------------------


@dataclass(frozen=True)
class _Pin:
    """Everything the views of one Delta version need, read once."""

    root: Path
    version: int
    head: int
    columns: dict[str, pl.DataType]
    files: pl.DataFrame  # path (absolute), min_seq, max_seq
    commits: list[dict[str, Any]]
    snapshots: list[tuple[SnapshotInfo, bool]]
    projections: list[dict[str, Any]]  # name, checkpoint, file (absolute), manifest (JSON text)
    inventory: bool
    history: SchemaHistory  # schema versions: old events read through their read rules


@dataclass
class _Handle:
    """What refresh needs to know about a connection made by connect()."""

    log: EventLog
    inventory: bool
    readable: frozenset[str]
    version: int
    generation: int = 0
    registered: list[str] = field(default_factory=list)


_REGISTRY: weakref.WeakKeyDictionary[duckdb.DuckDBPyConnection, _Handle] = weakref.WeakKeyDictionary()
_REGISTRY_LOCK = threading.Lock()
_HISTORY: dict[tuple[str, str], list[dict[str, Any]]] = {}
_HISTORY_LOCK = threading.Lock()


def _open(store: Store) -> tuple[EventLog, bool]:
    log = getattr(store, "log", None)
    if isinstance(log, EventLog):  # an Inventory (or another domain over a log)
        return log, is_inventory(log)
    if not isinstance(store, (str, os.PathLike, EventLog)):
        raise ValidationError(f"a store is a path, an EventLog or an Inventory, not {type(store).__name__}",
                              field="store")
    log = store if isinstance(store, EventLog) else EventLog.open(store)
    return log, is_inventory(log)


def _pin(log: EventLog, is_inventory: bool) -> _Pin:
    """Files, head and commits of one version, with the snapshots and projections beside it."""
    events = log.storage
    root = log.path.resolve()
    log.reload_schema()  # before the table: an evolution commits its columns before its schema
    key = (str(root), events.table_id())
    for _ in range(20):
        events.refresh()
        version = events.version
        stats = events.files()
        head = events.head_and_last_recorded()[0]
        commits = _commits(events, key, version)
        events.refresh()
        # The storage labels history entries counting back from the version it has loaded, but
        # reads the newest commits: one landing in between would shift every label.
        if events.version == version:
            break
    else:
        raise CommitError(f"{log.path} kept changing while its commit history was read; try again")
    with _HISTORY_LOCK:
        if len(commits) > len(_HISTORY.get(key, [])):
            _HISTORY[key] = commits
    files = _file_table(stats, events.path)
    return _Pin(
        root=root,
        version=version,
        head=head,
        columns=dict(log.schema.columns()),
        files=files,
        commits=commits,
        snapshots=_snapshots(root, head, state_fingerprint(log)) if is_inventory else [],
        projections=_projections(root),
        inventory=is_inventory,
        history=log.schema_history,
    )


def _file_table(stats: pl.DataFrame, table_root: Path) -> pl.DataFrame:
    schema = {"path": pl.String(), "min_seq": pl.Int64(), "max_seq": pl.Int64()}
    if stats.height == 0:
        return pl.DataFrame(schema=schema)
    prefix = str(table_root) + "/"
    return (
        stats.select(
            (pl.lit(prefix) + pl.col("path")).alias("path"),
            "min_seq",
            "max_seq",
        )
        .cast(schema)  # type: ignore[arg-type]
        .sort("min_seq", "path", nulls_last=True)
    )


def _commits(events: Any, key: tuple[str, str], version: int) -> list[dict[str, Any]]:
    """One row per commit up to ``version``, oldest first: the new ones read, older ones cached.

    The history of a version never changes, and reading all of it costs a file per commit.
    """
    with _HISTORY_LOCK:
        known = list(_HISTORY.get(key, []))
    have = known[-1]["version"] if known else -1
    if have >= version:
        return [c for c in known if c["version"] <= version]
    fresh = [_commit_row(e) for e in events.history(version - have)]
    return known + sorted((c for c in fresh if have < c["version"] <= version), key=lambda c: c["version"])


def _commit_row(entry: dict[str, Any]) -> dict[str, Any]:
    def number(name: str) -> int | None:
        value = entry.get(f"eventlog.{name}")
        return None if value is None else int(value)

    committed = entry.get("timestamp")
    return {
        "version": int(entry["version"]),
        "first_seq": number("first_seq"),
        "last_seq": number("last_seq"),
        "event_count": number("count"),
        "recorded_at": entry.get("eventlog.recorded_at"),
        "operation": entry.get("eventlog.operation") or str(entry.get("operation", "")).lower() or None,
        "committed_at": None if committed is None
        else dt.datetime.fromtimestamp(committed / 1000, dt.timezone.utc).isoformat(),
        "idempotency_key": entry.get("eventlog.idempotency_key"),
    }


def _snapshots(root: Path, head: int, fingerprint: str) -> list[tuple[SnapshotInfo, bool]]:
    """Every manifest, and whether the state may start from it (this state definition, at or
    below head, its file matching its checksum)."""
    store = SnapshotStore(root / "snapshots", state_version=STATE_VERSION, fingerprint=fingerprint)
    out = []
    for info in store.list(all_versions=True):
        usable = store.accepts(info) and info.seq <= head and _intact(store.root / info.file, info)
        out.append((info, usable))
    return out


def _intact(path: Path, info: SnapshotInfo) -> bool:
    """Whether the snapshot file matches its checksum and holds the state's stored columns."""
    try:
        with open(path, "rb") as fh:
            digest = hashlib.file_digest(fh, "sha256").hexdigest()
    except OSError as exc:
        problem = f"cannot be read ({exc})"
    else:
        if digest != info.sha256:
            problem = "does not match its checksum"
        elif set(pq.read_schema(path).names) != set(STORED_SCHEMA):
            problem = "does not hold the state's columns"
        else:
            return True
    warnings.warn(f"snapshot {path} {problem}; the SQL views fold the log instead", SnapshotWarning, stacklevel=4)
    return False


def _projections(root: Path) -> list[dict[str, Any]]:
    """Each projection manifest that names a Parquet file inside its own folder."""
    out: list[dict[str, Any]] = []
    taken = set(BUILT_IN_VIEWS)
    for manifest in sorted((root / "projections").glob("*/current.json")):
        folder = manifest.parent
        name = folder.name
        try:
            text = manifest.read_text()
            data = json.loads(text)
            target = (folder / data["file"]).resolve()
            checkpoint = None if data.get("checkpoint") is None else int(data["checkpoint"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            warnings.warn(f"projection manifest {manifest} is unreadable ({exc!r}); no view {name!r}", ProjectionWarning,
                          stacklevel=4)
            continue
        if not target.is_relative_to(folder.resolve()) or not target.is_file():
            warnings.warn(f"projection manifest {manifest} names {target}, not a file in its folder; no view {name!r}",
                          ProjectionWarning, stacklevel=4)
            continue
        if name.lower() in taken:  # DuckDB matches names case-insensitively
            warnings.warn(f"projection {name!r} would hide another view of that name; no view for it", ProjectionWarning,
                          stacklevel=4)
            continue
        taken.add(name.lower())
        out.append({"name": name, "checkpoint": checkpoint, "file": str(target), "manifest": text})
    return out


# --- SQL generation --------------------------------------------------------------------------


class _Sources:
    """How views read Parquet files: a literal read_parquet list, or Arrow datasets for files
    a locked connection may not open (after refresh)."""

    def __init__(self, con: duckdb.DuckDBPyConnection | None, *, readable: frozenset[str] | None, tag: str,
                 uniform: bool = False) -> None:
        self._con = con
        self._readable = readable
        self._tag = tag
        # A store that never evolved writes every file with the same columns in the same order:
        # DuckDB then need not read every footer to unify them by name (a third of a full scan).
        self._union = "" if uniform else ", union_by_name = true"
        self.files: set[str] = set()
        self.registered: list[str] = []

    def can_read(self, path: str) -> bool:
        return self._readable is None or path in self._readable

    def parquet(self, files: Sequence[str], columns: Mapping[str, pl.DataType]) -> str:
        """A FROM item over ``files`` (an empty relation with ``columns`` when there are none)."""
        if not files:
            return f"(SELECT {_typed_nulls(columns)} LIMIT 0)"
        direct = [f for f in files if self.can_read(f)]
        other = [f for f in files if not self.can_read(f)]
        parts = []
        if direct:
            self.files.update(direct)
            parts.append(f"read_parquet({_list(direct)}, hive_partitioning = false{self._union})")
        if other:
            parts.append(_ident(self._register(other)))
        if len(parts) == 1:
            return parts[0]
        return "(SELECT * FROM " + " UNION ALL BY NAME SELECT * FROM ".join(parts) + ")"

    def _register(self, files: list[str]) -> str:
        import pyarrow as pa
        import pyarrow.dataset as pads
        import pyarrow.parquet as pq

        if self._con is None:
            raise RuntimeError("Arrow sources need a connection")
        name = f"__eventlog_{self._tag}_{len(self.registered)}"
        schema = pa.unify_schemas([pq.read_schema(f) for f in files])
        self._con.register(name, pads.dataset(files, format="parquet", schema=schema))
        self.registered.append(name)
        return name


def _definitions(pin: _Pin, sources: _Sources) -> list[str]:
    """CREATE statements for every view and macro, in dependency order."""
    columns = ", ".join(_ident(c) for c in pin.columns)
    out = [
        f"CREATE OR REPLACE VIEW events AS\nSELECT {columns}\n"
        f"FROM {pin.history.sql_source(sources.parquet(pin.files['path'].to_list(), pin.columns))};\n",
        _AS_OF_SEQ,
        _AS_OF_TIME,
        "CREATE OR REPLACE MACRO events_as_of(x) AS TABLE\nSELECT * FROM events\n"
        f"WHERE seq <= coalesce(as_of_seq(x), {_MAX_SEQ})\n"
        f"  AND occurred_at <= coalesce(as_of_time(x), {_NO_TIME});\n",
        f"CREATE OR REPLACE VIEW commits AS\n{_values(pin.commits, _COMMIT_COLUMNS)};\n",
        f"CREATE OR REPLACE VIEW snapshots AS\n{_snapshot_rows(pin)};\n",
    ]
    if pin.inventory:
        out += _inventory_definitions(pin, sources)
    out.append(f"CREATE OR REPLACE VIEW projections AS\n{_values(pin.projections, _PROJECTION_COLUMNS)};\n")
    for projection in pin.projections:
        source = sources.parquet([projection["file"]], {})
        out.append(f"CREATE OR REPLACE VIEW {_ident(projection['name'])} AS\nSELECT * FROM {source};\n")
    return [s.strip() + "\n" for s in out]


def _inventory_definitions(pin: _Pin, sources: _Sources) -> list[str]:
    bases = sorted(
        (
            (info.seq, info.max_occurred_at, str(pin.root / "snapshots" / info.file))
            for info, usable in pin.snapshots
            if usable and sources.can_read(str(pin.root / "snapshots" / info.file))
        ),
        reverse=True,
    )
    # The view starts from the newest base and reads only the files that can hold events
    # after it; when each lies wholly inside the range the seq column need not be read.
    after = bases[0][0] if bases else 0
    tail = pin.files.filter(pl.col("max_seq").is_null() | (pl.col("max_seq") > after))
    inside = tail.select((pl.col("min_seq") > after).fill_null(False).all()).item()
    view = _stock_sql(
        base=str(after),
        bases=bases[:1],
        where=[] if inside else [f"seq > {after}", f"seq <= {pin.head}"],
        events=_state_source(pin.history, sources.parquet(tail["path"].to_list(), pin.columns)),
        sources=sources,
    )
    # The macro picks its base from the cut: a CASE over the snapshots' literal seqs, so a
    # constant argument folds to one snapshot and one seq range before the scans are planned.
    seq, time = f"coalesce(as_of_seq(x), {_MAX_SEQ})", f"coalesce(as_of_time(x), {_NO_TIME})"
    arms = []
    for snap_seq, max_occurred, _ in bases:
        served_by = f" AND {_timestamp(max_occurred)} <= {time}" if max_occurred is not None else ""
        arms.append(f"WHEN {snap_seq} <= {seq}{served_by} THEN {snap_seq}")
    base = f"CASE {' '.join(arms)} ELSE 0 END" if arms else "0"
    macro = _stock_sql(
        base=base,
        bases=bases,
        where=[*([f"seq > {base}"] if bases else []), f"seq <= {seq}", f"occurred_at <= {time}"],
        events="events",
        sources=sources,
    )
    return [
        f"CREATE OR REPLACE VIEW inventory AS\n{view};\n",
        f"CREATE OR REPLACE MACRO inventory_as_of(x) AS TABLE\n{macro};\n",
    ]


def _stock_sql(
    *, base: str, bases: list[tuple[int, str | None, str]], where: list[str], events: str, sources: _Sources
) -> str:
    """Inventory.stock() as SQL: the base snapshot's rows ⊕ the fold of ``events`` under ``where``.

    ``base`` is the SQL expression of the base's seq (0: no snapshot); each snapshot in
    ``bases`` contributes its rows when ``base`` equals its seq. Fold, merge and finish are
    the state definition (``model.state.STATE``) rendered for DuckDB, as the engines run it.
    """
    stored = ", ".join(f"CAST({_ident(c)} AS {_duck_type(t)}) AS {_ident(c)}" for c, t in STORED_SCHEMA.items())
    base_rows = [
        f"SELECT {stored} FROM {sources.parquet([path], {})}"
        + ("" if base == str(snap_seq) else f" WHERE {base} = {snap_seq}")
        for snap_seq, _, path in bases
    ] or [f"SELECT {_typed_nulls(STORED_SCHEMA)} LIMIT 0"]
    tail = sqlrender.substitute(sqlrender.fold(STATE, "__events", where=where), {"__events": events})
    merged = sqlrender.merge(STATE, ["__base", "__tail"])
    casts = {c: _duck_type(t) for c, t in STATE_SCHEMA.items()}
    finished = sqlrender.finish(STATE, "(__merged) AS merged", casts=casts)
    return sqlrender.substitute(sqlrender.substitute(finished, {"__merged": merged}), {
        "__base": "(\n    " + "\n    UNION ALL\n    ".join(base_rows) + "\n) AS base",
        "__tail": f"(\n{_indent(tail)}\n) AS tail",
    })


def _state_source(history: SchemaHistory, source: str) -> str:
    """``source`` with the read rules that touch what the state reads applied (as it is when none do)."""
    columns, types = columns_read(STATE)
    rules = history.rules_for(columns, types) if history.rules else []
    return history.sql_source(source, rules) if rules else source


def _snapshot_rows(pin: _Pin) -> str:
    rows = [
        {**{k: getattr(info, k) for k in _SNAPSHOT_COLUMNS if k != "usable"}, "usable": usable}
        for info, usable in pin.snapshots
    ]
    return _values(rows, _SNAPSHOT_COLUMNS)


def _values(rows: list[dict[str, Any]], columns: Mapping[str, pl.DataType]) -> str:
    """A typed relation of literal rows (empty, with the right columns, when there are none)."""
    if not rows:
        return f"SELECT {_typed_nulls(columns)} LIMIT 0"
    names = ", ".join(_ident(c) for c in columns)
    values = ",\n    ".join("(" + ", ".join(_literal(row[c]) for c in columns) + ")" for row in rows)
    casts = ", ".join(f"CAST({_ident(c)} AS {_duck_type(t)}) AS {_ident(c)}" for c, t in columns.items())
    return f"SELECT {casts}\nFROM (VALUES\n    {values}\n) AS v({names})"


# --- lock-down and statements ----------------------------------------------------------------


def _lock(con: duckdb.DuckDBPyConnection, readable: list[str]) -> None:
    """Let the connection open exactly ``readable``, and nothing can change that afterwards."""
    _run(con, f"SET allowed_paths = {_list(readable)}::VARCHAR[]")
    _run(con, "SET enable_external_access = false")
    _run(con, f"SET allowed_configs = {_list(list(_TUNABLE))}::VARCHAR[]")
    _run(con, "SET lock_configuration = true")


def _check_select(con: duckdb.DuckDBPyConnection, text: str) -> None:
    if not isinstance(text, str):
        raise ValidationError(f"the query is SQL text, not {type(text).__name__}", field="query")
    if not is_utf8(text):
        raise ValidationError("the query holds bytes that are not UTF-8 (surrogate escapes); re-encode it as UTF-8",
                              field="query")
    try:
        statements = con.extract_statements(text)
    except duckdb.ParserException as exc:
        raise ValidationError(str(exc), field="query") from exc
    if len(statements) != 1:
        raise ValidationError(f"give exactly one SELECT statement, not {len(statements)}", field="query")
    kind = statements[0].type
    if kind != duckdb.StatementType.SELECT:
        raise ReadOnlyError(
            f"query() runs SELECT statements only, not {kind.name}: the store is changed through "
            "EventLog.append / Inventory.record"
        )


def _check_params(params: Any) -> None:
    """Refuse what DuckDB would misread (a string is a sequence of one-letter values) or crash on."""
    if params is None:
        return
    if isinstance(params, (str, bytes)) or not isinstance(params, (Sequence, Mapping)):
        raise ValidationError(f"params is a list (for ?) or a dict (for $name), not {type(params).__name__}",
                              field="params")
    for key, value in params.items() if isinstance(params, Mapping) else enumerate(params):
        if isinstance(value, str) and not is_utf8(value):
            raise ValidationError(f"params[{key!r}] holds bytes that are not UTF-8 (surrogate escapes)", field="params")


def _run(con: duckdb.DuckDBPyConnection, statement: str) -> None:
    con.execute(statement)
    con.fetchall()  # drain: an unread result blocks the next statement


def _run_script(con: duckdb.DuckDBPyConnection, statements: list[str]) -> None:
    for statement in statements:
        _run(con, statement)


# --- literals --------------------------------------------------------------------------------


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _string(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _list(items: Sequence[str]) -> str:
    if len(items) < 2:
        return "[" + "".join(_string(i) for i in items) + "]"
    return "[\n    " + ",\n    ".join(_string(i) for i in items) + "\n]"


def _literal(value: Any) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int):
        return str(value)
    return _string(str(value))


def _timestamp(iso: str) -> str:
    return f"CAST({_string(iso)} AS TIMESTAMPTZ)"


def _duck_type(dtype: pl.DataType) -> str:
    if isinstance(dtype, pl.Datetime):
        return "TIMESTAMPTZ" if dtype.time_zone else "TIMESTAMP"
    names = {pl.Int64: "BIGINT", pl.Float64: "DOUBLE", pl.String: "VARCHAR", pl.Boolean: "BOOLEAN", pl.Date: "DATE"}
    for polars_type, name in names.items():
        if dtype == polars_type:
            return name
    raise TypeError(f"no DuckDB type for {dtype}")


def _typed_nulls(columns: Mapping[str, pl.DataType]) -> str:
    if not columns:
        return "NULL AS empty"
    return ", ".join(f"CAST(NULL AS {_duck_type(t)}) AS {_ident(c)}" for c, t in columns.items())


def _indent(text: str) -> str:
    return "\n".join("    " + line if line else line for line in text.splitlines())


__all__ = ["connect", "definitions", "export_duckdb", "query", "refresh"]
