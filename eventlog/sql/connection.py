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
import os
import threading
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import polars as pl

from eventlog.core.frames import narrow_integers
from eventlog.errors import OutputFileError, QueryLimitError, ReadOnlyError, ValidationError
from eventlog.log import EventLog
from eventlog.model.schema import is_inventory
from eventlog.sql.lockdown import check_params, check_select, lock_down, run, run_script
from eventlog.projector import Projector
from eventlog.sql.pin import read_pin
from eventlog.sql.views import stale_projection
from eventlog.sql.views import Sources, statements
from eventlog.store.atomic import atomic_file

#: A store: its path, its EventLog, or a domain object holding one as ``.log`` (an Inventory).
Store = Any
#: query()'s limits unless the caller gives others: a mistaken cross join stops, a real report fits.
DEFAULT_TIMEOUT_S = 300.0
DEFAULT_MEMORY_LIMIT = "4GB"


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
    projector = _projector_of(store)
    pin = read_pin(log, is_inventory, projector)
    con = duckdb.connect()
    try:
        run(con, "SET TimeZone = 'UTC'")
        # The files never change under their names (Delta, snapshots and projections all
        # write new files): their footers, read for union_by_name, can be kept.
        run(con, "SET parquet_metadata_cache = true")
        # No spilling: DuckDB would write temp files into ./.tmp of whatever folder the process
        # is in (1.2 GB seen after SET memory_limit='50MB'). A query that does not fit in
        # memory_limit fails instead, and the lock keeps temp_directory from being set again.
        run(con, "SET temp_directory = ''")
        sources = Sources(con, readable=None, tag="c", uniform=log.schema_version == 1)
        run_script(con, statements(pin, sources))
        lock_down(con, sorted(sources.files))
    except BaseException:
        con.close()
        raise
    with _REGISTRY_LOCK:
        _REGISTRY[con] = _Handle(log, is_inventory, frozenset(sources.files), pin.version, projector)
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
    pin = read_pin(handle.log, handle.inventory, handle.projector)
    handle.generation += 1
    sources = Sources(con, readable=handle.readable, tag=f"r{handle.generation}",
                       uniform=handle.log.schema_version == 1)
    run(con, "BEGIN TRANSACTION")
    try:
        run_script(con, statements(pin, sources))
        run(con, "COMMIT")
    except BaseException:
        run(con, "ROLLBACK")
        for name in sources.registered:
            con.unregister(name)
        raise
    for name in handle.registered:
        con.unregister(name)
    handle.registered, handle.version = sources.registered, pin.version
    return pin.version


def query(
    store: Store,
    query: str,
    params: Sequence[Any] | Mapping[str, Any] | None = None,
    *,
    timeout: float | None = DEFAULT_TIMEOUT_S,
    memory_limit: str | None = DEFAULT_MEMORY_LIMIT,
) -> pl.DataFrame:
    """Run one SELECT over the store's current version and return its rows.

    Values go in ``params`` (``$name`` or ``?`` placeholders), never into the text.

    Args:
        timeout: seconds the query may run before it is stopped (None: no limit).
        memory_limit: DuckDB's memory limit for the query, e.g. ``"8GB"`` (None: DuckDB's
            default, 80% of RAM). Nothing spills to disk: a query that needs more fails.

    Raises:
        ReadOnlyError: the statement is not a SELECT, or it tried to reach a file.
        ValidationError: the SQL does not parse or bind (DuckDB's message included), or
            ``params`` is neither a list nor a dict.
        QueryLimitError: the query ran past ``timeout`` or out of ``memory_limit``.

    Example:
        >>> import tempfile
        >>> from eventlog import Inventory
        >>> inv = Inventory.open(tempfile.mkdtemp() + "/store")
        >>> _ = inv.add_item("o'brien; ✓", 3)
        >>> query(inv, "SELECT quantity FROM inventory WHERE item = $item", {"item": "o'brien; ✓"}).item()
        3
    """
    log, _ = _open(store)
    check_params(params)
    con = connect(store if isinstance(getattr(store, "log", None), EventLog) else log)
    try:
        try:
            run(con, "SET enable_progress_bar = false")  # a library call prints nothing
        except duckdb.InvalidInputException:
            pass  # in a Jupyter kernel without ipywidgets DuckDB refuses the setting; it is cosmetic
        check_select(con, query)
        if memory_limit is not None:
            try:
                con.execute("SET memory_limit = $limit", {"limit": str(memory_limit)}).fetchall()
            except duckdb.Error as exc:
                raise ValidationError(f"{memory_limit!r} is not a memory limit ({exc})", field="memory_limit") from exc
        timer = threading.Timer(timeout, con.interrupt) if timeout is not None else None
        try:
            if timer is not None:
                timer.daemon = True
                timer.start()
            result = con.sql(query, params=params).pl() if params is not None else con.sql(query).pl()
            return narrow_integers(result)  # a SUM of BIGINT is a HUGEINT in DuckDB: BIGINT again where it fits
        except duckdb.InterruptException as exc:
            raise QueryLimitError(f"the query ran longer than its timeout of {timeout} s and was stopped; pass a "
                                  "larger timeout= (or None) to let it run", limit="time", value=timeout) from exc
        except duckdb.OutOfMemoryException as exc:
            raise QueryLimitError(f"the query needs more memory than its limit of {memory_limit} and was stopped "
                                  f"(nothing spills to disk): pass a larger memory_limit= ({str(exc).splitlines()[0]})",
                                  limit="memory", value=memory_limit) from exc
        except duckdb.PermissionException as exc:
            raise ReadOnlyError(
                f"the SQL surface of {log.path} reads the store's committed files only: {exc}"
            ) from exc
        except duckdb.Error as exc:
            refused = stale_projection(exc)
            if refused is not None:  # a projection view that cannot show current numbers
                raise refused from exc
            if isinstance(exc, duckdb.ProgrammingError):
                raise ValidationError(str(exc), field="query") from exc
            raise
        finally:
            if timer is not None:
                timer.cancel()
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
    pin = read_pin(log, is_inventory, _projector_of(store))
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
                run_script(con, statements(pin, Sources(con, readable=None, tag="x", uniform=log.schema_version == 1)))
                run(con, "CHECKPOINT")
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
    return "\n".join(statements(read_pin(log, is_inventory, _projector_of(store)), Sources(None, readable=None, tag="d",
                                                                    uniform=log.schema_version == 1)))


@dataclass
class _Handle:
    """What refresh needs to know about a connection made by connect()."""

    log: EventLog
    inventory: bool
    readable: frozenset[str]
    version: int
    projector: Projector | None = None
    generation: int = 0
    registered: list[str] = field(default_factory=list)


_REGISTRY: weakref.WeakKeyDictionary[duckdb.DuckDBPyConnection, _Handle] = weakref.WeakKeyDictionary()
_REGISTRY_LOCK = threading.Lock()


def _projector_of(store: Store) -> Projector | None:
    """The projections an Inventory has registered (its own ones included); None for a path or
    log, whose views then cover the built-ins of an inventory store and the tables on disk."""
    projector = getattr(store, "projector", None)
    return projector if isinstance(projector, Projector) else None


def _open(store: Store) -> tuple[EventLog, bool]:
    log = getattr(store, "log", None)
    if isinstance(log, EventLog):  # an Inventory (or another domain over a log)
        return log, is_inventory(log)
    if not isinstance(store, (str, os.PathLike, EventLog)):
        raise ValidationError(f"a store is a path, an EventLog or an Inventory, not {type(store).__name__}",
                              field="store")
    log = store if isinstance(store, EventLog) else EventLog.open(store)
    return log, is_inventory(log)


__all__ = ["connect", "definitions", "export_duckdb", "query", "refresh"]
