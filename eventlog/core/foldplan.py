"""One fold for several declarative projections: a shared fine fold, then a regroup per projection.

Every aggregate of a :class:`~eventlog.core.definitions.Projection` merges, so a projection
whose keys are a subset of another's can be computed from a fold at the finer keys: fold the
events once by the finer keys, then fold that small table again by each projection's own keys
(sums of sums, counts summed, minimum of minimums, first by the order key kept in the hidden
column). Filters move into the aggregates: a projection that reads only some event types
gets its aggregates conditioned on them, plus a count of its events per fine group so that a
group none of its events fell into is dropped. The built-ins then read the log once instead of
four times (``daily_flows``' keys include every other one's).

Pure definitions in, definitions out: every engine runs a plan with its ordinary ``fold``
(the regroup folds the fine table as if it were events), so no engine needs to know of it.
A projection that cannot take part (a distinct set of a value that is not a fine key, or keys
that are not a subset) gets a group of its own, folded as before.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from eventlog.core.definitions import Agg, Projection


@dataclass(frozen=True)
class Part:
    """How one projection comes out of its group's fine fold.

    ``regroup`` folds the fine table into the projection's stored form (its columns renamed
    to the projection's); None when the projection is the group's only member and is folded
    from the events directly.
    """

    projection: Projection
    regroup: Projection | None
    #: fine column -> stored column, when the regroup would change nothing but names (the
    #: projection has the fine keys, reads every event and has no distinct set).
    rename: Mapping[str, str] | None = None


@dataclass(frozen=True)
class Group:
    """Projections computed from one fold of the events (``fine``; None: a group of one)."""

    fine: Projection | None
    parts: tuple[Part, ...]


def plan(projections: Sequence[Projection]) -> list[Group]:
    """Groups of projections that share one read of the events, finest keys first.

    Example:
        >>> from eventlog.core.definitions import Agg, Projection
        >>> daily = Projection("d", keys={"item": "stream_id", "day": "CAST(occurred_at AS DATE)"},
        ...                    aggregates={"n": Agg.count()})
        >>> per_item = Projection("i", keys={"item": "stream_id"}, aggregates={"n": Agg.count()})
        >>> [[p.projection.name for p in g.parts] for g in plan([per_item, daily])]
        [['d', 'i']]
    """
    members: list[list[Projection]] = []
    for proj in sorted(projections, key=lambda p: -len(p.keys)):  # stable: the given order among equals
        for group in members:
            if _fits(proj, group[0]):
                group.append(proj)
                break
        else:
            members.append([proj])
    return [_group(g) for g in members]


def _fits(proj: Projection, finest: Projection) -> bool:
    keys = set(finest.keys.values())
    if not set(proj.keys.values()) <= keys:
        return False
    return all(a.kind != "distinct" or a.expr in keys for a in [*proj.aggregates.values(), *finest.aggregates.values()])


def _group(projections: list[Projection]) -> Group:
    if len(projections) == 1:
        return Group(None, (Part(projections[0], None),))
    finest = projections[0]
    key_names = {expr: f"k_{i}" for i, expr in enumerate(dict.fromkeys(finest.keys.values()))}
    aggregates: dict[Agg, str] = {}

    def fine_column(agg: Agg) -> str:
        return aggregates.setdefault(agg, f"a_{len(aggregates)}")

    parts = []
    for proj in projections:
        scope = _filter(proj)
        regrouped: dict[str, Agg] = {}
        rename = {key_names[expr]: out for out, expr in proj.keys.items()}
        for out, agg in proj.aggregates.items():
            where = _and(scope, agg.where)
            if agg.kind == "distinct":  # a fine key: its values are the set, where any event matched
                seen = fine_column(Agg.count(where=where))
                regrouped[out] = Agg.distinct(_ident(key_names[agg.expr or ""]), where=f"{_ident(seen)} > 0")
                continue
            column = fine_column(Agg(agg.kind, agg.expr, where, agg.by))
            regrouped[out] = _regroup(agg, column)
            rename[column] = out
            if agg.kind in ("first", "last"):
                rename[f"__{column}_seq"] = proj.hidden(out)
        rows = None if scope is None else f"{_ident(fine_column(Agg.count(where=scope)))} > 0"
        regroup = Projection(
            proj.name,
            keys={out: _ident(key_names[expr]) for out, expr in proj.keys.items()},
            aggregates=regrouped,
            where=rows,
        )
        same = (scope is None and len(set(proj.keys.values())) == len(key_names) == len(proj.keys)
                and all(a.kind != "distinct" for a in proj.aggregates.values())
                and len(rename) == len(proj.keys) + sum(2 if a.kind in ("first", "last") else 1
                                                        for a in proj.aggregates.values()))
        parts.append(Part(proj, regroup, rename if same else None))
    scopes = [_filter(p) for p in projections]
    fine = Projection(
        f"{finest.name}_fine",
        keys={name: expr for expr, name in key_names.items()},
        aggregates={name: agg for agg, name in aggregates.items()},
        # Events no member reads are not read at all (when every member filters).
        where=None if any(s is None for s in scopes) else " OR ".join(f"({s})" for s in dict.fromkeys(scopes)),
    )
    return Group(fine, tuple(parts))


def _regroup(agg: Agg, column: str) -> Agg:
    """The aggregate that combines the partial aggregates of the fine fold's ``column``."""
    col = _ident(column)
    if agg.kind in ("count", "sum"):
        return Agg.sum(col)
    if agg.kind in ("min", "max"):
        return Agg(agg.kind, col)
    # first/last: the partial's order key is the fine table's hidden column; a fine group with
    # no matching event has none (and no value), and must not be picked.
    order = f"__{column}_seq"
    return Agg(agg.kind, col, f"{_ident(order)} IS NOT NULL", order)


def _filter(proj: Projection) -> str | None:
    """The projection's event filter (types and ``where``) as one SQL condition (None: every event)."""
    types = None
    if proj.event_types is not None:
        quoted = ["'" + t.replace("'", "''") + "'" for t in proj.event_types]
        # One type as `=`, the way definitions write it, so that equal aggregates of two
        # projections (a sum of added quantities) become one column of the fine fold.
        types = f"event_type = {quoted[0]}" if len(quoted) == 1 else f"event_type IN ({', '.join(quoted)})"
        if not quoted:
            types = "FALSE"
    return _and(types, proj.where)


def _and(*conditions: str | None) -> str | None:
    present = [c for c in conditions if c]
    if not present:
        return None
    return present[0] if len(present) == 1 else " AND ".join(f"({c})" for c in present)


def _ident(name: str) -> str:
    return f'"{name}"'
