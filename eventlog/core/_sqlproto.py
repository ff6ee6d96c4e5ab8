"""What SQL rendering reads of a declarative projection, and the dialect its expressions are in.

Apart from ``sqlrender`` so that the rendering itself (``eventlog.core._sqlglot``, which loads
sqlglot) and its front end can both name these types without importing each other.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

#: The dialect user expressions are written in.
SOURCE_DIALECT = "duckdb"


class Agg(Protocol):
    kind: str
    expr: str | None
    where: str | None
    by: str


class Definition(Protocol):
    """What rendering reads of a declarative projection (``eventlog.core.definitions.Projection``)."""

    # Read-only: a Projection is a frozen dataclass.
    @property
    def name(self) -> str: ...
    @property
    def keys(self) -> Mapping[str, str]: ...
    @property
    def aggregates(self) -> Mapping[str, Any]: ...
    @property
    def event_types(self) -> Sequence[str] | None: ...
    @property
    def where(self) -> str | None: ...
    @property
    def derived(self) -> Mapping[str, str]: ...
    @property
    def having(self) -> str | None: ...

    def hidden(self, out: str) -> str: ...

    def fingerprint(self) -> str: ...
