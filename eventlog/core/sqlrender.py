"""A projection definition rendered as SQL text for a dialect, through sqlglot.

Pure text generation — nothing runs here — so it sits in the core beside the definitions;
the DuckDB engine and the SQL views run the ``duckdb`` rendering, the Spark engine the
``spark`` one. Three statements make every read: ``fold`` (partial aggregates of events,
the stored form with the order keys of first/last), ``merge`` (stored forms combined, as a
snapshot or a stored table ⊕ the fold of a tail) and ``finish`` (derived columns, the
``having`` filter, hidden columns dropped, sorted by the keys).

User expressions are written in DuckDB's SQL (as ``pl.sql_expr`` also reads them) and
parsed once by sqlglot; identifiers and literals are quoted by sqlglot for the target.
sqlglot passes functions it does not know through unchanged, so for any other dialect
such a function is refused here with :class:`UnsupportedExpressionError`, naming the
projection and the expression, rather than failing later inside the engine.

sqlglot itself is loaded on the first statement this process has not rendered yet
(``eventlog.core._sqlglot``): a process that reads its state on Polars never imports it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from eventlog.core._sqlproto import SOURCE_DIALECT, Definition
from eventlog.errors import ProjectionError

__all__ = ["SOURCE_DIALECT", "Definition", "check", "finish", "fold", "merge", "substitute", "to_sql", "transpile"]


#: Rendered statements by (statement, definition fingerprint, arguments): rendering parses every
#: expression with sqlglot (~15 ms for the state), and a cold stock() renders the same fold again.
_RENDERED: dict[tuple[Any, ...], str] = {}
_RENDERED_MAX = 512


def _remembered(key: tuple[Any, ...], render: Callable[[], str]) -> str:
    text = _RENDERED.get(key)
    if text is None:
        if len(_RENDERED) >= _RENDERED_MAX:
            _RENDERED.clear()
        text = _RENDERED[key] = render()
    return text


def fold(defn: Definition, source: str, *, where: Sequence[str] = (), dialect: str = SOURCE_DIALECT) -> str:
    """Partial aggregates of the events in ``source`` (a FROM item in ``dialect``), grouped by the keys.

    ``where`` adds conditions (in the source dialect) to the definition's own filters.
    """
    key = ("fold", defn.fingerprint(), source, tuple(where), dialect)
    return _remembered(key, lambda: _render().fold(defn, source, where, dialect))


def merge(defn: Definition, stored: Sequence[str], *, dialect: str = SOURCE_DIALECT) -> str:
    """Stored forms (FROM items with the fold's columns) combined into one, group by group."""
    return _remembered(("merge", defn.fingerprint(), tuple(stored), dialect), lambda: _render().merge(defn, stored, dialect))


def finish(defn: Definition, stored: str, *, dialect: str = SOURCE_DIALECT,
           casts: Mapping[str, str] | None = None) -> str:
    """The user-facing table from a stored form: derived columns, ``having``, sorted by the keys.

    ``casts`` (column -> type in ``dialect``) fixes output types where engines differ
    (DuckDB sums integers into HUGEINT).
    """
    key = ("finish", defn.fingerprint(), stored, dialect, tuple(sorted((casts or {}).items())))
    return _remembered(key, lambda: _render().finish(defn, stored, dialect, casts))


def to_sql(defn: Definition, source: str, *, dialect: str = SOURCE_DIALECT) -> str:
    """The finished projection as one query over the events in ``source``."""
    return finish(defn, f"({fold(defn, source, dialect=dialect)}) AS folded", dialect=dialect)


def check(defn: Definition, dialect: str) -> None:
    """Raise UnsupportedExpressionError if any expression of ``defn`` cannot be rendered for ``dialect``."""
    _render().check(defn, dialect)


def transpile(text: str, *, dialect: str, owner: str) -> str:
    """One expression in DuckDB's SQL (an upcaster's, a read default) rendered for ``dialect``.

    Refused as a projection's expressions are, with ``owner`` (e.g. ``"Upcaster('a', 'b', 'c')"``)
    named in the error.

    Example:
        >>> transpile('coalesce("größe", 0)', dialect="spark", owner="a default")
        'COALESCE(`größe`, 0)'
    """
    return _render().transpile(text, dialect=dialect, owner=owner)


def _render() -> Any:
    """The sqlglot half, imported on first use."""
    from eventlog.core import _sqlglot

    return _sqlglot


def substitute(sql: str, sources: Mapping[str, str]) -> str:
    """``sql`` rendered over placeholder table names, with each placeholder replaced by its FROM item.

    For sources too long to go through the parser (a view's literal list of a thousand
    Parquet files took 0.4 s to parse): render over a short name such as ``__events``, then
    substitute. Placeholders must be identifiers that appear nowhere else in ``sql``.
    """
    for name, item in sources.items():
        if sql.count(name) != 1:
            raise ProjectionError(f"placeholder {name!r} appears {sql.count(name)} times in the rendered SQL")
        sql = sql.replace(name, item)
    return sql
