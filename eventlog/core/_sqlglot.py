"""The sqlglot half of ``eventlog.core.sqlrender``: parsing user expressions and building the
statements. Loaded on the first rendering that the process's cache does not hold, so that a
process that renders nothing (a warm ``stock()`` on Polars) never imports sqlglot (0.2-0.3 s).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError, UnsupportedError

from eventlog.core._sqlproto import SOURCE_DIALECT, Agg, Definition
from eventlog.errors import ProjectionError, UnsupportedExpressionError

#: DuckDB's null-including first/last by an order key, and what each other dialect calls them.
_FIRST_LAST = {"first": "arg_min_null", "last": "arg_max_null"}
_PORTABLE_FIRST_LAST = {"first": exp.ArgMin, "last": exp.ArgMax}


def fold(defn: Definition, source: str, where: Sequence[str], dialect: str) -> str:
    r = _Renderer(defn, dialect)
    keys = [(out, r.expression(text)) for out, text in defn.keys.items()]
    columns = [exp.alias_(e, r.ident(out)) for out, e in keys]
    for out, agg in defn.aggregates.items():
        columns += r.partial(out, agg)
    query = exp.select(*columns).from_(r.source(source))
    conditions = r.filters(where)
    if conditions is not None:
        query = query.where(conditions)
    if keys:
        query = query.group_by(*[e.copy() for _, e in keys])
    return r.sql(query)


def merge(defn: Definition, stored: Sequence[str], dialect: str) -> str:
    r = _Renderer(defn, dialect)
    if not stored:
        raise ProjectionError(f"projection {defn.name!r}: merge needs at least one stored form")
    parts = [exp.select(*r.stored_columns()).from_(r.source(s)) for s in stored]
    union: exp.Expr = parts[0]
    for part in parts[1:]:
        union = exp.union(union, part, distinct=False)
    keys = [exp.column(r.ident(k)) for k in defn.keys]
    columns: list[exp.Expr] = [exp.alias_(k.copy(), k.this.copy()) for k in keys]
    for out, agg in defn.aggregates.items():
        columns += r.merged(out, agg)
    query = exp.select(*columns).from_(exp.Subquery(this=union, alias=exp.TableAlias(this=r.ident("stored"))))
    if keys:
        query = query.group_by(*[k.copy() for k in keys])
    return r.sql(query)


def finish(defn: Definition, stored: str, dialect: str, casts: Mapping[str, str] | None) -> str:
    r = _Renderer(defn, dialect)
    names = [*defn.keys, *defn.aggregates]
    columns: list[exp.Expr] = [r.cast(exp.column(r.ident(n)), (casts or {}).get(n), n) for n in names]
    columns += [r.cast(r.expression(text), (casts or {}).get(out), out) if (casts or {}).get(out)
                else exp.alias_(r.expression(text), r.ident(out)) for out, text in defn.derived.items()]
    query: exp.Select = exp.select(*columns).from_(r.source(stored))
    if defn.having:
        inner = query.subquery(alias="finished")
        query = exp.select(*[exp.column(r.ident(n)) for n in [*names, *defn.derived]]).from_(inner)
        query = query.where(r.expression(defn.having))
    order = [exp.Ordered(this=exp.column(r.ident(k)), nulls_first=False) for k in defn.keys]
    if order:
        query = query.order_by(*order)
    return r.sql(query)


def check(defn: Definition, dialect: str) -> None:
    """Raise UnsupportedExpressionError if any expression of ``defn`` cannot be rendered for ``dialect``."""
    r = _Renderer(defn, dialect)
    texts = [*defn.keys.values(), defn.where, defn.having, *defn.derived.values()]
    texts += [t for agg in defn.aggregates.values() for t in (agg.expr, agg.where)]
    for text in texts:
        if text:
            r.expression(text)


def transpile(text: str, *, dialect: str, owner: str) -> str:
    """One expression in DuckDB's SQL rendered for ``dialect`` (see ``sqlrender.transpile``)."""
    return _parse(text, dialect, owner=owner, name=owner).sql(dialect=dialect)


def _parse(text: str, dialect: str, *, owner: str, name: str) -> exp.Expr:
    try:
        parsed = sqlglot.parse_one(text, read=SOURCE_DIALECT)
    except ParseError as exc:
        raise ProjectionError(f"{owner}: cannot parse {text!r}: {exc}") from None
    if dialect != SOURCE_DIALECT:
        unknown = sorted({f.name for f in parsed.find_all(exp.Anonymous)})
        if unknown:
            raise UnsupportedExpressionError(
                f"{owner}: the expression {text!r} uses {', '.join(unknown)}, which cannot be rendered for "
                f"{dialect}; write it with standard SQL functions",
                projection=name, expression=text, dialect=dialect)
        try:
            parsed.sql(dialect=dialect, unsupported_level=sqlglot.ErrorLevel.RAISE)
        except UnsupportedError as exc:
            raise UnsupportedExpressionError(
                f"{owner}: the expression {text!r} cannot be rendered for {dialect}: {exc}",
                projection=name, expression=text, dialect=dialect) from None
    return parsed


class _Renderer:
    """Renders the pieces of one definition for one dialect, checking each user expression."""

    def __init__(self, defn: Definition, dialect: str) -> None:
        self.defn = defn
        self.dialect = dialect

    def ident(self, name: str) -> exp.Identifier:
        return exp.to_identifier(name, quoted=True)

    def expression(self, text: str) -> exp.Expr:
        """A user expression, parsed as DuckDB SQL; refused if the dialect cannot have it."""
        return _parse(text, self.dialect, owner=f"projection {self.defn.name!r}", name=self.defn.name)

    def source(self, text: str) -> exp.Expr:
        """A FROM item written in the target dialect (a table, a table function, a subquery)."""
        return sqlglot.parse_one(f"SELECT * FROM {text}", read=self.dialect).args["from_"].this

    def filters(self, extra: Sequence[str]) -> exp.Expr | None:
        conditions: list[exp.Expr] = []
        if self.defn.event_types is not None:
            types = [exp.Literal.string(t) for t in self.defn.event_types]
            conditions.append(exp.In(this=exp.column("event_type"), expressions=types))
        if self.defn.where:
            conditions.append(exp.Paren(this=self.expression(self.defn.where)))
        conditions += [exp.Paren(this=sqlglot.parse_one(c, read=SOURCE_DIALECT)) for c in extra]
        return exp.and_(*conditions) if conditions else None

    def partial(self, out: str, agg: Agg) -> list[exp.Expr]:
        cond = self.expression(agg.where) if agg.where else None
        name = self.ident(out)
        if agg.kind == "count":
            return [exp.alias_(self._filtered(exp.Count(this=exp.Star()), cond), name)]
        value = self.expression(agg.expr or "NULL")
        if agg.kind == "sum":
            total = self._filtered(exp.Sum(this=value), cond)
            return [exp.alias_(exp.Coalesce(this=total, expressions=[exp.Literal.number(0)]), name)]
        if agg.kind in ("min", "max"):
            func = exp.Min if agg.kind == "min" else exp.Max
            return [exp.alias_(self._filtered(func(this=value), cond), name)]
        if agg.kind in ("first", "last"):
            by = exp.column(agg.by)
            bound = exp.Min if agg.kind == "first" else exp.Max
            return [
                exp.alias_(self._filtered(self._pick(agg.kind, value, by), cond), name),
                exp.alias_(self._filtered(bound(this=by.copy()), cond), self.ident(self.defn.hidden(out))),
            ]
        if agg.kind == "distinct":
            gathered = self._filtered(exp.ArrayAgg(this=value), cond)
            return [exp.alias_(self._sorted_set(gathered), name)]
        raise ProjectionError(f"projection {self.defn.name!r}: unknown aggregate kind {agg.kind!r}")

    def merged(self, out: str, agg: Agg) -> list[exp.Expr]:
        col = exp.column(self.ident(out))
        name = self.ident(out)
        if agg.kind in ("count", "sum"):
            return [exp.alias_(exp.Sum(this=col), name)]
        if agg.kind in ("min", "max"):
            func = exp.Min if agg.kind == "min" else exp.Max
            return [exp.alias_(func(this=col), name)]
        if agg.kind in ("first", "last"):
            hidden = exp.column(self.ident(self.defn.hidden(out)))
            bound = exp.Min if agg.kind == "first" else exp.Max
            return [exp.alias_(self._pick(agg.kind, col, hidden), name),
                    exp.alias_(bound(this=hidden.copy()), self.ident(self.defn.hidden(out)))]
        if agg.kind == "distinct":
            return [exp.alias_(self._sorted_set(exp.Flatten(this=exp.ArrayAgg(this=col))), name)]
        raise ProjectionError(f"projection {self.defn.name!r}: unknown aggregate kind {agg.kind!r}")

    def stored_columns(self) -> list[exp.Expr]:
        names = [*self.defn.keys]
        for out, agg in self.defn.aggregates.items():
            names.append(out)
            if agg.kind in ("first", "last"):
                names.append(self.defn.hidden(out))
        return [exp.column(self.ident(n)) for n in names]

    def cast(self, column: exp.Expr, to: str | None, name: str) -> exp.Expr:
        if to is None:
            return column
        return exp.alias_(exp.cast(column, exp.DataType.build(to, dialect=self.dialect)), self.ident(name))

    def sql(self, query: exp.Expr) -> str:
        return query.sql(dialect=self.dialect, pretty=True)

    def _pick(self, kind: str, value: exp.Expr, by: exp.Expr) -> exp.Expr:
        """The value at the lowest/highest order key, a null value included (not skipped)."""
        if self.dialect == SOURCE_DIALECT:
            return exp.Anonymous(this=_FIRST_LAST[kind], expressions=[value, by])
        # Spark's min_by/max_by return the value at the extreme key, null or not: the same meaning.
        return _PORTABLE_FIRST_LAST[kind](this=value, expression=by)

    def _filtered(self, agg: exp.Expr, cond: exp.Expr | None) -> exp.Expr:
        return agg if cond is None else exp.Filter(this=agg, expression=exp.Where(this=cond.copy()))

    def _sorted_set(self, gathered: exp.Expr) -> exp.Expr:
        """Sorted distinct non-null values; an empty list (not null) for a group with none."""
        unique = exp.ArraySort(this=exp.ArrayDistinct(this=gathered))
        empty = exp.Array(expressions=[])
        return exp.Coalesce(this=unique, expressions=[empty])
