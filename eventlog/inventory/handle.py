"""A handle on one projection of an inventory: read it (now or at a cut), update, rebuild, rank."""

from __future__ import annotations

import datetime as dt
import warnings
from pathlib import Path
from typing import Protocol, Union

import polars as pl

from eventlog._display import html_table
from eventlog.core.cuts import Cut, parse_point
from eventlog.core.definitions import AnyProjection, ProjectionStatus
from eventlog.errors import ProjectionError, StaleProjectionWarning, ValidationError
from eventlog.inventory.branches import compare_tables
from eventlog.projector import Projector


class ProjectionOwner(Protocol):
    """What a handle reads of its inventory (an ``Inventory``, which imports this module)."""

    @property
    def path(self) -> Path: ...

    @property
    def projector(self) -> Projector: ...

    @property
    def projection_reads(self) -> str: ...


class HasProjections(Protocol):
    """Another inventory, as ``ProjectionHandle.compare`` reads it."""

    def projection(self, name: str) -> ProjectionHandle: ...


class ProjectionHandle:
    """One projection of an inventory."""

    def __init__(self, inventory: ProjectionOwner, name: str) -> None:
        self._inventory = inventory
        self.name = name

    @property
    def definition(self) -> AnyProjection:
        return self._inventory.projector.get(self.name)

    def read(self, as_of: Cut = None, *, version: int | None = None) -> pl.DataFrame:
        """The table now (kept up to date per the inventory's ``projection_reads``) or at a cut of the log.

        ``version`` reads the projection's own Delta table as an older build stored it (time
        travel of the table; ``status().version`` is the newest), instead of recomputing a cut.
        """
        projector = self._inventory.projector
        if version is not None:
            if as_of is not None:
                raise ValidationError("give as_of (a cut of the log) or version (of the table), not both",
                                      field="version")
            return projector.read(self.name, version=version)
        point = parse_point(as_of, name="as_of")
        if point is not None:
            return projector.read(self.name, as_of=point)
        if self._inventory.projection_reads == "update":
            projector.update([self.name])
            return projector.read(self.name)
        status = projector.status(self.name)
        if status.checkpoint is None or status.stale_definition:
            projector.update([self.name])
        elif status.lag:
            warnings.warn(f"projection {self.name!r} is {status.lag} events behind the log", StaleProjectionWarning,
                          stacklevel=2)
        return projector.read(self.name, head=projector.status(self.name).checkpoint)

    def top(self, n: int = 10, *, as_of: Cut = None) -> pl.DataFrame:
        """The ``n`` rows with the largest ``rank_by`` column (ties broken by the keys)."""
        by = self.definition.rank_by or next(iter(getattr(self.definition, "aggregates", {})), None)
        if by is None:
            raise ProjectionError(f"projection {self.name!r} has no rank_by column for top()")
        table = self.read(as_of)
        keys = [k for k in self.definition.keys if k in table.columns]
        # maintain_order: a projection without keys (a function's table) keeps its own order among ties.
        return table.sort([by, *keys], descending=[True] + [False] * len(keys), nulls_last=True,
                          maintain_order=True).head(n)

    def compare(self, other: Union[ProjectionHandle, HasProjections, Cut] = None, *, as_of: Cut = None) -> pl.DataFrame:
        """This projection (at ``as_of``) beside the same projection elsewhere: another inventory (a
        branch, its origin), another handle, or a cut of this log (default: now).

        Rows are matched by the projection's keys: the keys, each value column and
        ``other_<column>``, then ``status`` (``added``, ``removed``, ``changed``, ``same``, read
        from this side to the other). A projection without keys (``stockouts``) is compared by
        whole rows: each row once, ``added``, ``removed`` or ``same``.
        """
        this = self.read(as_of)
        if other is None or isinstance(other, (int, str, dt.date)):
            that = self.read(other)
        elif isinstance(other, ProjectionHandle):
            that = other.read()
        else:
            that = other.projection(self.name).read()
        return compare_tables(this, that, list(self.definition.keys))

    def update(self) -> ProjectionStatus:
        return self._inventory.projector.update([self.name])[self.name]

    def rebuild(self) -> ProjectionStatus:
        return self._inventory.projector.update([self.name], rebuild=True)[self.name]

    def status(self) -> ProjectionStatus:
        return self._inventory.projector.status(self.name)

    def __repr__(self) -> str:
        return f"<projection {self.name!r} of {self._inventory.path}>"

    def _repr_html_(self) -> str:
        return html_table(f"Projection {self.name}", list(self.status().as_dict().items()))
