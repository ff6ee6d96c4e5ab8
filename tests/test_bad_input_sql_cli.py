"""Bad input at the SQL surface and the command line: refused with a typed error, or the right answer.

Each table is one row per case: the input, then either the error (its type and fragments of
its message, which name the argument, field or item at fault) or the result it must give.
A refused case changes nothing: after it the store has the same head, Delta version and
files, and ``verify`` passes. On the command line a refused case is one ``error:`` line on
stderr and exit code 1 (or, for an option click itself cannot parse, click's usage error
and exit code 2), never a traceback.

Every test works on a copy of one small template store:

    seq 1  sword           +3 (rare)  occurred 2024-03-01 09:00Z
    seq 2  O'Brien's "sword" +2        occurred 2024-03-02 09:00Z   (snapshot after seq 2)
    seq 3  sword           -1          occurred 2024-03-03 09:00Z
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pytest
from click.testing import CliRunner, Result

from eventlog import EventLog, Inventory, Item
from eventlog.cli import main
from eventlog.errors import (
    EventLogError,
    OutputFileError,
    ReadOnlyError,
    StoreNotFoundError,
    ValidationError,
)
from eventlog.sql import connect, export_duckdb, query

UTC = dt.timezone.utc
QUOTED = 'O\'Brien\'s "sword"'
MAX_INT64 = 2**63 - 1

#: What each cut of the template shows: item -> quantity in stock, and how many events.
ALL = ({"sword": 2, QUOTED: 2}, 3)
NONE: tuple[dict[str, int], int] = ({}, 0)
BY_DAY_1 = ({"sword": 3}, 1)  # seq 1, or business time 2024-03-01 09:00Z .. 2024-03-02 08:59:59Z
BY_DAY_2 = ({"sword": 3, QUOTED: 2}, 2)  # seq 2, or business time 2024-03-02 09:00Z .. 2024-03-03 08:59:59Z

NOT_A_CUT = "is not a seq, an ISO date or an ISO timestamp"
NOT_A_TYPE = "as_of is a seq (an integer), a TIMESTAMPTZ, a TIMESTAMP (read as UTC), a DATE or an ISO string, not"


@dataclass(frozen=True)
class Err:
    """A refusal: the error type and fragments its message must hold."""

    type: type[Exception]
    fragments: tuple[str, ...]

    def __init__(self, type_: type[Exception], *fragments: str) -> None:
        object.__setattr__(self, "type", type_)
        object.__setattr__(self, "fragments", fragments)


def bad_cut(*fragments: str) -> Err:
    return Err(ValidationError, *fragments)


# --- fixtures and helpers ------------------------------------------------------------------


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("template") / "store 'x'; ✓"
    inv = Inventory.open(root)
    inv.add_item(Item("sword", rarity="rare"), 3, occurred_at=dt.datetime(2024, 3, 1, 9, tzinfo=UTC))
    inv.add_item(QUOTED, 2, occurred_at=dt.datetime(2024, 3, 2, 9, tzinfo=UTC))
    inv.snapshot()
    inv.remove_item("sword", 1, occurred_at=dt.datetime(2024, 3, 3, 9, tzinfo=UTC))
    return root


@pytest.fixture
def store(template: Path, tmp_path: Path) -> Path:
    """A fresh copy of the template store (a copy costs a millisecond; a new store, a second)."""
    path = tmp_path / template.name
    shutil.copytree(template, path)
    return path


@pytest.fixture
def inv(store: Path) -> Inventory:
    return Inventory.open(store)


@pytest.fixture
def paths(tmp_path: Path, store: Path) -> dict[str, str]:
    """Files and folders the CLI cases point at, by placeholder name."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (tmp_path / "a file").write_text("not a folder")
    (tmp_path / "notes.txt").write_text("my notes")
    (tmp_path / "latin-1.sql").write_bytes("SELECT 'café' AS x".encode("latin-1"))
    (tmp_path / "bom.sql").write_bytes(b"\xef\xbb\xbfSELECT count(*) AS n FROM events")
    return {
        "store": str(store),
        "outside": str(outside),
        "a_file": str(tmp_path / "a file"),
        "notes": str(tmp_path / "notes.txt"),
        "latin1_sql": str(tmp_path / "latin-1.sql"),
        "bom_sql": str(tmp_path / "bom.sql"),
        "missing": str(tmp_path / "no such folder"),
        "data_file": str(store / "events" / EventLog.open(store).files()["path"][0]),
    }


def store_state(store: Path) -> tuple[int, int, dict[str, str]]:
    """Head, Delta version (as a fresh reader sees them) and a digest of every file in the store."""
    log = EventLog.open(store)
    files = {
        str(p.relative_to(store)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(store.rglob("*"))
        if p.is_file() and p.name != ".writer.lock"
    }
    return log.head(), log.version, files


@contextmanager
def unchanged(store: Path) -> Iterator[None]:
    """Fails unless the block leaves head, version and every file of the store as they were."""
    before = store_state(store)
    inventory = Inventory.open(store)
    yield
    assert store_state(store) == before
    assert inventory.verify().ok


def check_error(exc: pytest.ExceptionInfo[Exception], expected: Err) -> None:
    assert type(exc.value) is expected.type, repr(exc.value)
    for fragment in expected.fragments:
        assert fragment in str(exc.value)


def stock_of(frame: Any) -> dict[str, int]:
    return dict(frame.select("item", "quantity").rows())


def esc(text: str) -> str:
    """Text for inside a SQL string literal (the store's path holds a quote on purpose)."""
    return text.replace("'", "''")


def fill(arg: str, paths: dict[str, str]) -> str:
    """A CLI argument with its {placeholders} filled: a path as it is, or inside SQL text as a literal's content."""
    if arg.startswith("{"):
        return arg.format(**paths)
    return arg.format(**{k: esc(v) for k, v in paths.items()})


def cli(store: Path, *args: str, input: str | bytes | None = None) -> Result:
    """``eventlog --store STORE ARGS``, in-process; an exception that is not an error line propagates."""
    return CliRunner().invoke(main, ["--store", str(store), *args], input=input, catch_exceptions=False)


def ok(store: Path, *args: str) -> str:
    result = cli(store, *args)
    assert result.exit_code == 0, result.output
    assert result.stderr == ""
    return result.stdout


def assert_refused(result: Result, code: int, *fragments: str) -> None:
    """Exit 1 with one ``error:`` line, or click's usage error (exit 2) ending in one ``Error:`` line."""
    assert result.exit_code == code, result.output
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    if code == 1:
        assert len(lines) == 1, result.stderr
        line = lines[0]
        assert line.startswith("error: ")
    else:
        line = lines[-1]
        assert line.startswith("Error: ")
    for fragment in fragments:
        assert fragment in line, line


# --- SQL: the as_of argument of the macros, written in the query ----------------------------

MACRO_ARGUMENTS = [
    # wrong types
    pytest.param("'not a date'", bad_cut(f"as_of='not a date' {NOT_A_CUT}"), id="text-not-a-date"),
    pytest.param("'2024-13-45'", bad_cut(f"as_of='2024-13-45' {NOT_A_CUT}"), id="impossible-date"),
    pytest.param("1.5", bad_cut(NOT_A_TYPE, "DECIMAL(2,1)"), id="decimal"),
    pytest.param("TRUE", bad_cut(NOT_A_TYPE, "BOOLEAN"), id="boolean"),
    pytest.param("INTERVAL 1 DAY", bad_cut(NOT_A_TYPE, "INTERVAL"), id="interval"),
    pytest.param("[3]", bad_cut(NOT_A_TYPE, "INTEGER[]"), id="list"),
    # null: no cut
    pytest.param("NULL", ALL, id="null"),
    # NaN and infinities
    pytest.param("CAST('nan' AS DOUBLE)", bad_cut(NOT_A_TYPE, "DOUBLE"), id="nan"),
    pytest.param("CAST('inf' AS DOUBLE)", bad_cut(NOT_A_TYPE, "DOUBLE"), id="inf-double"),
    pytest.param("'nan'", bad_cut(f"as_of='nan' {NOT_A_CUT}"), id="nan-text"),
    pytest.param("'infinity'", bad_cut(f"as_of='infinity' {NOT_A_CUT}"), id="infinity-text"),
    pytest.param("'epoch'", bad_cut(f"as_of='epoch' {NOT_A_CUT}"), id="epoch-text"),
    pytest.param("'infinity'::TIMESTAMP", ALL, id="infinite-timestamp"),
    pytest.param("TIMESTAMPTZ 'infinity'", ALL, id="infinite-timestamptz"),
    pytest.param("DATE 'infinity'", ALL, id="infinite-date"),
    pytest.param("'-infinity'::TIMESTAMP", NONE, id="minus-infinite-timestamp"),
    # zero, negative and huge seqs
    pytest.param("0", NONE, id="seq-zero"),
    pytest.param("-1", bad_cut("as_of=-1: a seq cut cannot be negative"), id="seq-negative"),
    pytest.param("'-1'", bad_cut(f"as_of='-1' {NOT_A_CUT}"), id="seq-negative-text"),
    pytest.param("99999999999999999999", ALL, id="seq-beyond-int64"),
    pytest.param("'99999999999999999999'", ALL, id="seq-beyond-int64-text"),
    pytest.param("9" * 5000, bad_cut(NOT_A_TYPE, "BIGNUM"), id="seq-5000-digits"),
    pytest.param("' 2 '", BY_DAY_2, id="seq-text-padded"),
    # empty and very long strings
    pytest.param("''", bad_cut(f"as_of='' {NOT_A_CUT}"), id="empty-text"),
    pytest.param("'   '", bad_cut(f"as_of='   ' {NOT_A_CUT}"), id="blank-text"),
    pytest.param("'" + "x" * 100_000 + "'", bad_cut("as_of='xxx", NOT_A_CUT), id="100k-text"),
    # naive timestamps, offsets (the same instant as UTC), and offsets that are not ones
    pytest.param("'2024-03-02T09:00:00'", bad_cut("as_of='2024-03-02T09:00:00' has no time zone"), id="naive-text"),
    pytest.param("TIMESTAMP '2024-03-02 09:00:00'", BY_DAY_2, id="naive-timestamp-is-utc"),
    pytest.param("'2024-03-02T09:00:00Z'", BY_DAY_2, id="utc-text"),
    pytest.param("'2024-03-02T14:30:00+05:30'", BY_DAY_2, id="plus-0530-same-instant"),
    pytest.param("'2024-03-02T14:29:59+05:30'", BY_DAY_1, id="plus-0530-a-second-before"),
    pytest.param("'2024-03-02T04:00:00-05:00'", BY_DAY_2, id="minus-0500-same-instant"),
    pytest.param("TIMESTAMPTZ '2024-03-02 14:30:00+05:30'", BY_DAY_2, id="timestamptz-plus-0530"),
    pytest.param("'2024-03-02T09:00:00+24:00'", bad_cut(NOT_A_CUT), id="offset-24h"),
    pytest.param("'2024-03-02 09:00:00 Europe/Paris'", bad_cut(NOT_A_CUT), id="zone-name"),
    pytest.param("'2024-03-02'", BY_DAY_2, id="date-text-end-of-utc-day"),
    # SQL injection through the argument: it is a value, never SQL
    pytest.param("'1; DROP VIEW events'", bad_cut(f"as_of='1; DROP VIEW events' {NOT_A_CUT}"), id="inject-semicolon"),
    pytest.param("'x''); DROP VIEW events; --'", bad_cut(f"as_of='x'); DROP VIEW events; --' {NOT_A_CUT}"),
                 id="inject-quote"),
]


@pytest.mark.parametrize(("argument", "expected"), MACRO_ARGUMENTS)
def test_macro_argument_in_the_query(inv: Inventory, store: Path, argument: str, expected: Any) -> None:
    with unchanged(store):
        for macro in ("inventory_as_of", "events_as_of"):
            sql = f"SELECT * FROM {macro}({argument})"
            if isinstance(expected, Err):
                with pytest.raises(EventLogError) as exc:
                    inv.sql(sql)
                check_error(exc, expected)
            elif macro == "inventory_as_of":
                assert stock_of(inv.sql(sql)) == expected[0]
            else:
                assert inv.sql(sql).height == expected[1]


# --- SQL: the as_of argument bound as a parameter -------------------------------------------

BOUND_ARGUMENTS = [
    pytest.param(None, ALL, id="none"),
    pytest.param("not a date", bad_cut(f"as_of='not a date' {NOT_A_CUT}"), id="text-not-a-date"),
    pytest.param(1.5, bad_cut(NOT_A_TYPE, "DOUBLE"), id="float"),
    pytest.param(float("nan"), bad_cut(NOT_A_TYPE, "DOUBLE"), id="nan"),
    pytest.param(float("inf"), bad_cut(NOT_A_TYPE, "DOUBLE"), id="inf"),
    pytest.param(True, bad_cut(NOT_A_TYPE, "BOOLEAN"), id="bool"),
    pytest.param(b"\xff", bad_cut(NOT_A_TYPE, "BLOB"), id="bytes"),
    pytest.param(0, NONE, id="zero"),
    pytest.param(-3, bad_cut("as_of=-3: a seq cut cannot be negative"), id="negative"),
    pytest.param(2**70, ALL, id="beyond-int64"),
    pytest.param("", bad_cut(f"as_of='' {NOT_A_CUT}"), id="empty"),
    pytest.param("bad\udcff", Err(ValidationError, "field 'params'", "params[0]", "not UTF-8"), id="surrogate-escape"),
    pytest.param(dt.datetime(2024, 3, 2, 9), BY_DAY_2, id="naive-datetime-is-utc"),
    pytest.param(dt.datetime(2024, 3, 2, 14, 30, tzinfo=dt.timezone(dt.timedelta(hours=5, minutes=30))), BY_DAY_2,
                 id="aware-plus-0530"),
    pytest.param(dt.date(2024, 3, 2), BY_DAY_2, id="date"),
    pytest.param("2024-03-02T14:29:59+05:30", BY_DAY_1, id="text-plus-0530"),
    pytest.param("1; DROP VIEW events", bad_cut(f"as_of='1; DROP VIEW events' {NOT_A_CUT}"), id="inject"),
]


@pytest.mark.parametrize(("value", "expected"), BOUND_ARGUMENTS)
def test_macro_argument_bound_as_a_parameter(inv: Inventory, store: Path, value: Any, expected: Any) -> None:
    with unchanged(store):
        for macro in ("inventory_as_of", "events_as_of"):
            sql = f"SELECT * FROM {macro}(?)"
            if isinstance(expected, Err):
                with pytest.raises(EventLogError) as exc:
                    inv.sql(sql, [value])
                check_error(exc, expected)
            elif macro == "inventory_as_of":
                assert stock_of(inv.sql(sql, [value])) == expected[0]
            else:
                assert inv.sql(sql, [value]).height == expected[1]


# --- SQL: statements that are not one SELECT, or that reach for files ------------------------

STATEMENTS = [
    # not exactly one statement
    pytest.param("", Err(ValidationError, "field 'query'", "exactly one SELECT statement, not 0"), id="empty"),
    pytest.param("-- a comment", Err(ValidationError, "field 'query'", "not 0"), id="comment-only"),
    pytest.param("SELECT 1; SELECT 2", Err(ValidationError, "field 'query'", "not 2"), id="two-selects"),
    pytest.param("SELECT 1; DROP VIEW events", Err(ValidationError, "field 'query'", "not 2"), id="select-then-drop"),
    pytest.param("SELEC 1", Err(ValidationError, "field 'query'", "syntax error"), id="syntax-error"),
    pytest.param("SELECT 'bad\udcff' AS x", Err(ValidationError, "field 'query'", "not UTF-8"), id="surrogate-escape"),
    # writes
    pytest.param("INSERT INTO events SELECT * FROM events", Err(ReadOnlyError, "SELECT statements only, not INSERT"),
                 id="insert"),
    pytest.param("UPDATE inventory SET quantity = 0", Err(ReadOnlyError, "not UPDATE"), id="update"),
    pytest.param("DELETE FROM events", Err(ReadOnlyError, "not DELETE"), id="delete"),
    pytest.param("CREATE TABLE t AS SELECT 1", Err(ReadOnlyError, "not CREATE"), id="create-table"),
    pytest.param("CREATE OR REPLACE VIEW events AS SELECT 1", Err(ReadOnlyError, "not CREATE"), id="replace-view"),
    pytest.param("DROP VIEW events", Err(ReadOnlyError, "not DROP"), id="drop"),
    pytest.param("COPY (SELECT 1 AS x) TO '{outside}/out.csv'", Err(ReadOnlyError, "not COPY"), id="copy-outside"),
    pytest.param("COPY (SELECT * FROM events) TO '{data_file}' (FORMAT parquet, USE_TMP_FILE false)",
                 Err(ReadOnlyError, "not COPY"), id="copy-over-a-data-file"),
    pytest.param("COPY (SELECT 1 AS x) TO '{store}/eventlog.json' (FORMAT json)", Err(ReadOnlyError, "not COPY"),
                 id="copy-over-the-manifest"),
    pytest.param("EXPORT DATABASE '{outside}/export'", Err(ReadOnlyError, "not EXPORT"), id="export-database"),
    pytest.param("ATTACH '{outside}/x.duckdb' AS x", Err(ReadOnlyError, "not ATTACH"), id="attach"),
    pytest.param("PRAGMA enable_profiling", Err(ReadOnlyError, "not PRAGMA"), id="pragma"),
    pytest.param("SET enable_external_access = true", Err(ReadOnlyError, "not SET"), id="set"),
    pytest.param("INSTALL httpfs", Err(ReadOnlyError, "SELECT statements only"), id="install"),
    pytest.param("LOAD httpfs", Err(ReadOnlyError, "SELECT statements only"), id="load"),
    pytest.param("CALL pragma_version()", Err(ReadOnlyError, "not CALL"), id="call"),
    # reads of files other than the store's committed ones
    pytest.param("SELECT * FROM read_csv('/etc/passwd')", Err(ReadOnlyError, "committed files only", "/etc/passwd"),
                 id="read-etc-passwd"),
    pytest.param("SELECT * FROM read_text('{store}/eventlog.json')", Err(ReadOnlyError, "committed files only"),
                 id="read-the-manifest"),
    pytest.param("SELECT * FROM glob('{store}/**')", Err(ReadOnlyError, "committed files only"), id="glob"),
    pytest.param("SELECT * FROM query('DROP VIEW events')", Err(ValidationError, "single SELECT"), id="query-function"),
]


@pytest.mark.parametrize(("template_sql", "expected"), STATEMENTS)
def test_statement_is_refused(
    inv: Inventory, store: Path, paths: dict[str, str], template_sql: str, expected: Err
) -> None:
    sql = template_sql.format(**{k: esc(v) for k, v in paths.items()})
    with unchanged(store):
        with pytest.raises(EventLogError) as exc:
            inv.sql(sql)
        check_error(exc, expected)
    assert not any(Path(paths["outside"]).iterdir())


# --- SQL: parameters ------------------------------------------------------------------------

PARAMS = [
    # what DuckDB would misread or crash on
    pytest.param("SELECT ? AS x", 5, Err(ValidationError, "field 'params'", "not int"), id="int"),
    pytest.param("SELECT ? AS x", "abc", Err(ValidationError, "field 'params'", "not str"), id="str"),
    pytest.param("SELECT ? AS x", [], Err(ValidationError, "not provided"), id="too-few"),
    pytest.param("SELECT ? AS x", [1, 2], Err(ValidationError, "mismatch"), id="too-many"),
    pytest.param("SELECT $a AS x", {"b": 1}, Err(ValidationError, "not provided", "a"), id="wrong-name"),
    pytest.param("SELECT $a AS x", {"a": "bad\udcff"}, Err(ValidationError, "params['a']", "not UTF-8"),
                 id="surrogate-escape"),
    # injection through a parameter: compared as a value, matches nothing
    pytest.param("SELECT item FROM inventory WHERE item = ?", ["x' OR '1'='1"], [], id="inject-or"),
    pytest.param("SELECT item FROM inventory WHERE item = $item", {"item": "sword'; DROP VIEW events; --"}, [],
                 id="inject-drop"),
    pytest.param("SELECT count(*) AS n FROM events WHERE stream_id = ?", ["sword"], [(2,)], id="plain"),
    pytest.param("SELECT quantity FROM inventory WHERE item = ?", [QUOTED], [(2,)], id="quotes"),
    pytest.param("SELECT ? AS x", [None], [(None,)], id="null"),
]


@pytest.mark.parametrize(("sql", "params", "expected"), PARAMS)
def test_parameters(inv: Inventory, store: Path, sql: str, params: Any, expected: Any) -> None:
    with unchanged(store):
        if isinstance(expected, Err):
            with pytest.raises(EventLogError) as exc:
                inv.sql(sql, params)
            check_error(exc, expected)
        else:
            assert inv.sql(sql, params).rows() == expected
        assert inv.sql("SELECT count(*) AS n FROM events").item() == 3


@pytest.mark.parametrize(
    ("store_arg", "expected"),
    [
        pytest.param(5, Err(ValidationError, "field 'store'", "not int"), id="int"),
        pytest.param(None, Err(ValidationError, "field 'store'", "not NoneType"), id="none"),
        pytest.param("{tmp}/no store here", Err(StoreNotFoundError, "no event store at"), id="missing"),
    ],
)
def test_store_argument(tmp_path: Path, store_arg: Any, expected: Err) -> None:
    if isinstance(store_arg, str):
        store_arg = store_arg.format(tmp=tmp_path)
    for call in (lambda: query(store_arg, "SELECT 1"), lambda: connect(store_arg)):
        with pytest.raises(EventLogError) as exc:
            call()
        check_error(exc, expected)


# --- export_duckdb: where the file may go ---------------------------------------------------

EXPORT_TARGETS = [
    pytest.param("{outside}", Err(OutputFileError, "is a folder"), id="a-folder"),
    pytest.param("{notes}", Err(OutputFileError, "notes.txt exists and is not a DuckDB database"), id="not-a-database"),
    pytest.param("{a_file}/x.duckdb", Err(OutputFileError, "a file is not a folder"), id="under-a-file"),
    pytest.param("{store}/x.duckdb", Err(ReadOnlyError, "lies inside the store"), id="inside-the-store"),
    pytest.param("{store}", Err(ReadOnlyError, "lies inside the store"), id="the-store-itself"),
]


@pytest.mark.parametrize(("target", "expected"), EXPORT_TARGETS)
def test_export_target_is_refused(inv: Inventory, store: Path, paths: dict[str, str], target: str,
                                  expected: Err) -> None:
    notes = Path(paths["notes"]).read_bytes()
    with unchanged(store):
        with pytest.raises(EventLogError) as exc:
            export_duckdb(inv, target.format(**paths))
        check_error(exc, expected)
    assert Path(paths["notes"]).read_bytes() == notes
    assert not any(Path(paths["outside"]).iterdir())


def test_export_replaces_an_earlier_export_and_creates_missing_folders(inv: Inventory, paths: dict[str, str]) -> None:
    target = Path(paths["missing"]) / "inventory.duckdb"
    export_duckdb(inv, target)
    inv.add_item("shield")
    export_duckdb(inv, target)
    with duckdb.connect(str(target), read_only=True) as con:
        assert con.sql("SELECT count(*) FROM events").fetchall() == [(4,)]


# --- awkward item names: stored with `eventlog add`, read back everywhere -------------------

AWKWARD_NAMES = [
    pytest.param('O\'Brien\'s "axe"', id="quotes"),
    pytest.param("a; DROP VIEW events", id="semicolon"),
    pytest.param("../../etc/passwd", id="dot-dot-slash"),
    pytest.param("a/b\\c", id="slashes"),
    pytest.param("..", id="dot-dot"),
    pytest.param("Ünïcødé ✓ 日本 🐺", id="unicode"),
    pytest.param("line\nbreak", id="newline"),
    pytest.param("tab\there", id="tab"),
    pytest.param("  padded  ", id="padded"),
    pytest.param("x" * 1024, id="1024-bytes"),
    pytest.param("é" * 512, id="1024-bytes-of-two-byte-chars"),
]


@pytest.mark.parametrize("name", AWKWARD_NAMES)
def test_awkward_name_round_trips(store: Path, name: str) -> None:
    assert ok(store, "add", name, "--quantity", "2") == f"added 2 of {name!r} (seq 4)\n"
    inv = Inventory.open(store)
    assert inv.sql("SELECT quantity FROM inventory WHERE item = ?", [name]).rows() == [(2,)]
    assert inv.sql("SELECT seq FROM events WHERE stream_id = $name", {"name": name}).rows() == [(4,)]
    assert inv.sql("SELECT count(*) AS n FROM events").item() == 4  # nothing else changed
    assert ok(store, "count", name) == "2\n"
    assert [(e["seq"], e["stock"]) for e in json.loads(ok(store, "history", name, "--format", "json"))] == [(4, 2)]
    assert {r["item"]: r["quantity"] for r in json.loads(ok(store, "stock", "--format", "json"))} == {**ALL[0], name: 2}
    assert inv.verify().ok


# --- the command line: refused --------------------------------------------------------------

CLI_REFUSED = [
    # --quantity: not an integer (click's usage error), or not a quantity (the library's)
    pytest.param(("add", "x", "--quantity", "abc"), 2, ("'--quantity'", "'abc' is not a valid integer"), id="qty-abc"),
    pytest.param(("add", "x", "--quantity", "nan"), 2, ("'--quantity'", "'nan'"), id="qty-nan"),
    pytest.param(("add", "x", "--quantity", "inf"), 2, ("'--quantity'", "'inf'"), id="qty-inf"),
    pytest.param(("add", "x", "--quantity", "1.5"), 2, ("'--quantity'", "'1.5'"), id="qty-float"),
    pytest.param(("add", "x", "--quantity", ""), 2, ("'--quantity'",), id="qty-empty"),
    pytest.param(("add", "x", "--quantity", "0"), 1, ("field 'quantity'", "at least 1 (got 0)"), id="qty-zero"),
    pytest.param(("add", "x", "--quantity", "-3"), 1, ("field 'quantity'", "at least 1 (got -3)"), id="qty-negative"),
    pytest.param(("add", "x", "--quantity", "99999999999999999999"), 1, ("field 'quantity'", "does not fit in int64"),
                 id="qty-huge"),
    pytest.param(("remove", "sword", "--quantity", "0"), 1, ("field 'quantity'", "got 0"), id="remove-zero"),
    pytest.param(("remove", "sword", "--quantity", "-3"), 1, ("field 'quantity'", "got -3"), id="remove-negative"),
    pytest.param(("remove", "sword", "--quantity", "3"), 1, ("cannot remove 3 of 'sword': only 2 in stock",),
                 id="remove-more-than-stock"),
    pytest.param(("remove", "never added"), 1, ("'never added'", "only 0 in stock"), id="remove-unknown"),
    # item names
    pytest.param(("add", ""), 1, ("field 'item'", "item is empty"), id="item-empty"),
    pytest.param(("add", "x" * 100_000), 1, ("field 'item'", "longer than 1024 bytes"), id="item-100k"),
    pytest.param(("add", "x" * 1025), 1, ("field 'item'", "longer than 1024 bytes"), id="item-1025"),
    pytest.param(("add", "bad\udcff"), 1, ("field 'item'", "not UTF-8"), id="add-surrogate"),
    pytest.param(("add", "x", "--rarity", "bad\udcff"), 1, ("field 'rarity'", "not UTF-8"), id="rarity-surrogate"),
    pytest.param(("add", "x", "--origin", "bad\udcff"), 1, ("field 'origin'", "not UTF-8"), id="origin-surrogate"),
    pytest.param(("remove", "bad\udcff"), 1, ("field 'item'", "not UTF-8"), id="remove-surrogate"),
    pytest.param(("count", "bad\udcff"), 1, ("field 'item'", "not UTF-8"), id="count-surrogate"),
    pytest.param(("history", "bad\udcff"), 1, ("field 'item'", "not UTF-8"), id="history-surrogate"),
    # cuts
    pytest.param(("stock", "--as-of", "yesterday"), 1, ("field 'as_of'", f"as_of='yesterday' {NOT_A_CUT}"),
                 id="as-of-yesterday"),
    pytest.param(("stock", "--as-of", "2024-01-01T00:00:00"), 1, ("field 'as_of'", "has no time zone"),
                 id="as-of-naive"),
    pytest.param(("stock", "--as-of", "2024-01-01T00:00:00+24:00"), 1, ("field 'as_of'", NOT_A_CUT),
                 id="as-of-offset-24h"),
    pytest.param(("stock", "--as-of", "nan"), 1, ("field 'as_of'", NOT_A_CUT), id="as-of-nan"),
    pytest.param(("stock", "--as-of", "inf"), 1, ("field 'as_of'", NOT_A_CUT), id="as-of-inf"),
    pytest.param(("stock", "--as-of", "-1"), 1, ("field 'as_of'", NOT_A_CUT), id="as-of-negative"),
    pytest.param(("stock", "--as-of", "1.5"), 1, ("field 'as_of'", NOT_A_CUT), id="as-of-float"),
    pytest.param(("stock", "--as-of", ""), 1, ("field 'as_of'", NOT_A_CUT), id="as-of-empty"),
    pytest.param(("stock", "--known-at", "yesterday"), 1, ("field 'known_at'", NOT_A_CUT), id="known-at-yesterday"),
    pytest.param(("count", "sword", "--as-of", "yesterday"), 1, ("field 'as_of'", NOT_A_CUT), id="count-as-of"),
    # sql: the query
    pytest.param(("sql", ""), 1, ("field 'query'", "not 0"), id="sql-empty"),
    pytest.param(("sql", "SELECT 1; SELECT 2"), 1, ("field 'query'", "not 2"), id="sql-two-statements"),
    pytest.param(("sql", "SELECT 1; DROP VIEW events"), 1, ("field 'query'", "not 2"), id="sql-select-then-drop"),
    pytest.param(("sql", "SELECT 'bad\udcff'"), 1, ("field 'query'", "not UTF-8"), id="sql-surrogate"),
    pytest.param(("sql", "-f", "{latin1_sql}"), 1, ("latin-1.sql: cannot read the query", "can't decode byte 0xe9"),
                 id="sql-file-not-utf8"),
    pytest.param(("sql", "-f", "{missing}/q.sql"), 1, ("q.sql: cannot read the query",), id="sql-file-missing"),
    pytest.param(("sql", "-f", "{outside}"), 2, ("'-f' / '--file'", "is a directory"), id="sql-file-is-a-folder"),
    pytest.param(("sql", "SELECT 1", "-f", "{bom_sql}"), 1, ("not both",), id="sql-argument-and-file"),
    pytest.param(("sql", "INSERT INTO events SELECT * FROM events"), 1, ("not INSERT",), id="sql-insert"),
    pytest.param(("sql", "UPDATE inventory SET quantity = 0"), 1, ("not UPDATE",), id="sql-update"),
    pytest.param(("sql", "DELETE FROM events"), 1, ("not DELETE",), id="sql-delete"),
    pytest.param(("sql", "CREATE TABLE t AS SELECT 1"), 1, ("not CREATE",), id="sql-create"),
    pytest.param(("sql", "COPY (SELECT * FROM events) TO '{data_file}' (FORMAT parquet, USE_TMP_FILE false)"), 1,
                 ("not COPY",), id="sql-copy-over-a-data-file"),
    pytest.param(("sql", "ATTACH '{outside}/x.duckdb'"), 1, ("not ATTACH",), id="sql-attach"),
    pytest.param(("sql", "PRAGMA enable_profiling"), 1, ("not PRAGMA",), id="sql-pragma"),
    pytest.param(("sql", "SET threads = 1"), 1, ("not SET",), id="sql-set"),
    pytest.param(("sql", "INSTALL httpfs"), 1, ("SELECT statements only",), id="sql-install"),
    pytest.param(("sql", "LOAD httpfs"), 1, ("SELECT statements only",), id="sql-load"),
    pytest.param(("sql", "SELECT * FROM read_csv('/etc/passwd')"), 1, ("committed files only", "/etc/passwd"),
                 id="sql-read-etc-passwd"),
    pytest.param(("sql", "SELECT * FROM inventory_as_of('not a date')"), 1, (f"as_of='not a date' {NOT_A_CUT}",),
                 id="sql-macro-text"),
    pytest.param(("sql", "SELECT * FROM inventory_as_of(1.5)"), 1, (NOT_A_TYPE, "DECIMAL"), id="sql-macro-decimal"),
    # sql: where the result goes
    pytest.param(("sql", "SELECT 1 AS x", "--output", "{outside}"), 2, ("'--output'", "is a directory"),
                 id="output-a-folder"),
    pytest.param(("sql", "SELECT 1 AS x", "--format", "csv", "--output", "{missing}/out.csv"), 1,
                 ("no such folder is not an existing folder",), id="output-in-a-missing-folder"),
    pytest.param(("sql", "SELECT 1 AS x", "--format", "parquet", "--output", "{a_file}/out.parquet"), 1,
                 ("a file is not an existing folder",), id="output-under-a-file"),
    pytest.param(("sql", "SELECT 1 AS x", "--format", "csv", "--output", "{store}/events/x.csv"), 1,
                 ("lies inside the store",), id="output-inside-the-store"),
    pytest.param(("sql", "SELECT 1 AS x", "--format", "parquet", "--output", "{data_file}"), 1,
                 ("lies inside the store",), id="output-over-a-data-file"),
    pytest.param(("sql", "SELECT 1 AS x", "--format", "parquet"), 1, ("add --output FILE",), id="parquet-to-stdout"),
    # export-duckdb
    pytest.param(("export-duckdb", "{outside}"), 2, ("'FILE'", "is a directory"), id="export-a-folder"),
    pytest.param(("export-duckdb", "{notes}"), 1, ("is not a DuckDB database",), id="export-over-a-text-file"),
    pytest.param(("export-duckdb", "{a_file}/x.duckdb"), 1, ("a file is not a folder",), id="export-under-a-file"),
    pytest.param(("export-duckdb", "{store}/x.duckdb"), 1, ("lies inside the store",), id="export-inside-the-store"),
]


@pytest.mark.parametrize(("args", "code", "fragments"), CLI_REFUSED)
def test_cli_refuses(store: Path, paths: dict[str, str], args: tuple[str, ...], code: int,
                     fragments: tuple[str, ...]) -> None:
    argv = [fill(a, paths) for a in args]
    notes = Path(paths["notes"]).read_bytes()
    with unchanged(store):
        assert_refused(cli(store, *argv), code, *fragments)
    assert Path(paths["notes"]).read_bytes() == notes
    assert not any(Path(paths["outside"]).iterdir())
    assert not Path(paths["missing"]).exists()


def test_cli_refuses_a_query_on_standard_input_that_is_not_utf8(store: Path) -> None:
    with unchanged(store):
        assert_refused(cli(store, "sql", input=b"SELECT '\xff' AS x"), 1, "standard input: cannot read the query")


# --- the command line: valid input gives the right answer -----------------------------------

CLI_STOCK_AS_OF = [
    pytest.param("2024-03-02T09:00:00Z", BY_DAY_2, id="utc"),
    pytest.param("2024-03-02T14:30:00+05:30", BY_DAY_2, id="plus-0530-same-instant"),
    pytest.param("2024-03-02T14:29:59+05:30", BY_DAY_1, id="plus-0530-a-second-before"),
    pytest.param("2024-03-02T04:00:00-05:00", BY_DAY_2, id="minus-0500-same-instant"),
    pytest.param("2024-03-02", BY_DAY_2, id="date-end-of-utc-day"),
    pytest.param("0", NONE, id="seq-zero"),
    pytest.param(" 2 ", BY_DAY_2, id="seq-padded"),
    pytest.param("99999999999999999999", ALL, id="seq-beyond-int64"),
    pytest.param("9" * 5000, ALL, id="seq-5000-digits"),  # past every head, as in Python and SQL
]


@pytest.mark.parametrize(("as_of", "expected"), CLI_STOCK_AS_OF)
def test_cli_stock_as_of(store: Path, as_of: str, expected: tuple[dict[str, int], int]) -> None:
    rows = json.loads(ok(store, "stock", "--as-of", as_of, "--format", "json"))
    assert {r["item"]: r["quantity"] for r in rows} == expected[0]
    sql = f"SELECT item, quantity FROM inventory_as_of('{as_of}') ORDER BY item"
    assert {r["item"]: r["quantity"] for r in json.loads(ok(store, "sql", sql, "--format", "json"))} == expected[0]
    assert ok(store, "count", "sword", "--as-of", as_of) == f"{expected[0].get('sword', 0)}\n"


CLI_ANSWERS = [
    pytest.param(("count", ""), "0\n", id="count-empty-name"),
    pytest.param(("count", "never added"), "0\n", id="count-unknown"),
    pytest.param(("history", "never added", "--format", "json"), "[]\n", id="history-unknown"),
    pytest.param(("sql", "SELECT count(*) AS n FROM inventory_as_of(NULL)", "--format", "csv"), "n\n2\n",
                 id="sql-macro-null"),
    pytest.param(("sql", "-f", "{bom_sql}", "--format", "csv"), "n\n3\n", id="sql-file-with-bom"),
    pytest.param(("sql", "SELECT 'a; DROP VIEW events' AS x", "--format", "json"), '[{"x":"a; DROP VIEW events"}]\n',
                 id="sql-semicolon-in-a-literal"),
]


@pytest.mark.parametrize(("args", "expected"), CLI_ANSWERS)
def test_cli_answers(store: Path, paths: dict[str, str], args: tuple[str, ...], expected: str) -> None:
    with unchanged(store):
        assert ok(store, *(fill(a, paths) for a in args)) == expected


def test_cli_add_takes_the_largest_int64_quantity(store: Path) -> None:
    ok(store, "add", "grain", "--quantity", str(MAX_INT64))
    assert ok(store, "count", "grain") == f"{MAX_INT64}\n"


def test_cli_output_writes_into_an_existing_folder_outside_the_store(store: Path, paths: dict[str, str]) -> None:
    target = Path(paths["outside"]) / "out 'x'.csv"
    with unchanged(store):
        ok(store, "sql", "SELECT item, quantity FROM inventory ORDER BY item", "--format", "csv", "--output", str(target))
    quoted = QUOTED.replace('"', '""')
    assert target.read_text() == f'item,quantity\n"{quoted}",2\nsword,2\n'


def test_a_stock_beyond_int64_is_refused(store: Path) -> None:
    ok(store, "add", "grain", "--quantity", str(MAX_INT64))
    with unchanged(store):
        assert_refused(cli(store, "add", "grain"), 1, "'grain'")
    assert ok(store, "count", "grain") == f"{MAX_INT64}\n"


def test_python_add_item_with_surrogate_escapes_is_a_validation_error(inv: Inventory, store: Path) -> None:
    with unchanged(store), pytest.raises(ValidationError, match="item"):
        inv.add_item("bad\udcff")


# --- the Python API below the SQL and CLI layers ------------------------------------------


def test_python_history_with_surrogate_escapes_is_empty_or_an_error(inv: Inventory) -> None:
    try:
        assert inv.history("bad\udcff").height == 0
    except EventLogError:
        pass


def test_python_as_of_with_5000_digits_is_the_head_or_an_error(inv: Inventory) -> None:
    try:
        assert stock_of(inv.stock(as_of="9" * 5000)) == ALL[0]
    except EventLogError:
        pass
