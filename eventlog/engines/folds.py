"""Several declarative projections from one read of the events, on any engine.

``core/foldplan.py`` says which projections share a fold at finer keys; this runs that plan
with an engine's ordinary ``fold`` (the regroup folds the fine table as if it were events)
and casts each result to the stored schema it would have had folded alone, so callers
cannot tell the difference.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import polars as pl

from eventlog.core import foldplan
from eventlog.core.definitions import Projection
from eventlog.engines._polars import stored_schema
from eventlog.engines.base import Engine, Events


def fold_many(engine: Engine, projections: Sequence[Projection], events: Events,
              schema: pl.Schema) -> dict[str, pl.DataFrame]:
    """The stored form of each projection (by name), reading ``events`` once per group of the plan.

    ``schema`` is the events' schema: the stored schemas follow from it.
    """
    return dict(folds(engine, projections, events, schema))


def folds(engine: Engine, projections: Sequence[Projection], events: Events,
          schema: pl.Schema) -> Iterator[tuple[str, pl.DataFrame]]:
    """(name, stored form) of each projection as soon as it is computed: a caller can commit the
    fine fold's own table while the others are regrouped from it."""
    for group in foldplan.plan(projections):
        if group.fine is None:
            proj = group.parts[0].projection
            yield proj.name, engine.fold(proj, events)
            continue
        fine = engine.fold(group.fine, events)
        for part in group.parts:
            target = stored_schema(part.projection, schema)
            if part.rename is not None:  # the finest member itself: only its names change
                table = fine.select(pl.col(a).alias(b) for a, b in part.rename.items())
            else:
                table = engine.fold(part.regroup or part.projection, fine)
            yield part.projection.name, table.select(target.names()).cast(target)
