"""An engine by name: the one place that knows every local engine."""

from __future__ import annotations

from eventlog.engines._duckdb import DuckDBEngine
from eventlog.engines._polars import PolarsEngine
from eventlog.engines.base import Engine
from eventlog.errors import ValidationError

_ENGINES: dict[str, type[DuckDBEngine] | type[PolarsEngine]] = {"duckdb": DuckDBEngine, "polars": PolarsEngine}


def engine_named(name: str | Engine) -> Engine:
    """A new engine of that name (``"duckdb"`` or ``"polars"``), or ``name`` itself if it is one."""
    if not isinstance(name, str):
        return name
    try:
        return _ENGINES[name]()
    except KeyError:
        raise ValidationError(f"engine is one of {sorted(_ENGINES)}, not {name!r}", field="engine") from None
