"""Lock a connection down to reading its own files, and check what ``query()`` is given."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import duckdb

from eventlog.core.text import is_utf8
from eventlog.errors import ReadOnlyError, ValidationError
from eventlog.sql.literals import string_list

#: Settings an analyst may still change on a locked connection: none of them names a file.
_TUNABLE = ("threads", "memory_limit", "enable_progress_bar", "enable_progress_bar_print",
            "progress_bar_time", "preserve_insertion_order")


def lock_down(con: duckdb.DuckDBPyConnection, readable: list[str]) -> None:
    """Let the connection open exactly ``readable``, and nothing can change that afterwards."""
    run(con, f"SET allowed_paths = {string_list(readable)}::VARCHAR[]")
    run(con, "SET enable_external_access = false")
    run(con, f"SET allowed_configs = {string_list(list(_TUNABLE))}::VARCHAR[]")
    run(con, "SET lock_configuration = true")


def check_select(con: duckdb.DuckDBPyConnection, text: str) -> None:
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


def check_params(params: Any) -> None:
    """Refuse what DuckDB would misread (a string is a sequence of one-letter values) or crash on."""
    if params is None:
        return
    if isinstance(params, (str, bytes)) or not isinstance(params, (Sequence, Mapping)):
        raise ValidationError(f"params is a list (for ?) or a dict (for $name), not {type(params).__name__}",
                              field="params")
    for key, value in params.items() if isinstance(params, Mapping) else enumerate(params):
        if isinstance(value, str) and not is_utf8(value):
            raise ValidationError(f"params[{key!r}] holds bytes that are not UTF-8 (surrogate escapes)", field="params")


def run(con: duckdb.DuckDBPyConnection, statement: str) -> None:
    con.execute(statement)
    con.fetchall()  # drain: an unread result blocks the next statement


def run_script(con: duckdb.DuckDBPyConnection, statements: list[str]) -> None:
    for statement in statements:
        run(con, statement)
