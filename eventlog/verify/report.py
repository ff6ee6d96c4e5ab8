"""What verify reports (``Violation``, ``VerifyReport``) and what it reads of a log (``VerifiedLog``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import polars as pl

from eventlog.errors import IntegrityError

if TYPE_CHECKING:
    from eventlog.core.evolution import SchemaHistory
    from eventlog.store.base import EventStore


class VerifiedLog(Protocol):
    """What verify reads of a log: it sits below ``EventLog`` (which calls it), so it names
    the methods it needs instead of importing the class."""

    path: Path
    storage: EventStore
    schema_history: SchemaHistory

    @property
    def version(self) -> int: ...

    def head(self) -> int: ...

    def history(self, limit: int | None = None) -> list[dict[str, Any]]: ...

    def inherited_commits(self) -> list[dict[str, Any]]:
        """A branch's commits inherited from its origin (oldest first; none for another log)."""
        ...

    def scan_range(self, cut: int, *, after: int = 0, streams: list[str] | None = None,
                   event_types: list[str] | None = None, upcast: bool = True) -> pl.LazyFrame: ...


@dataclass(frozen=True)
class Violation:
    """One broken promise, located as precisely as the check allows."""

    check: str
    message: str
    version: int | None = None
    seq: int | None = None
    file: str | None = None

    def __str__(self) -> str:
        where = [f"{k} {v}" for k, v in (("commit", self.version), ("seq", self.seq), ("file", self.file)) if v is not None]
        return f"{self.check}: {self.message}" + (f" ({', '.join(where)})" if where else "")


@dataclass
class VerifyReport:
    """The outcome of ``verify``: ``ok`` and the first violation, plus what was checked."""

    head: int
    version: int
    commits: int
    checks: list[str] = field(default_factory=list)
    violation: Violation | None = None
    #: Whether every value was recomputed (``deep=True``, or ``expect``) rather than a seal read.
    deep: bool = True
    #: The events up to this seq were vouched for by an earlier verify's seal, their files' bytes unchanged.
    sealed: int = 0

    @property
    def ok(self) -> bool:
        return self.violation is None

    def raise_if_failed(self) -> VerifyReport:
        if self.violation is not None:
            raise IntegrityError(str(self.violation))
        return self

    def __str__(self) -> str:
        state = "OK" if self.ok else f"FAILED — {self.violation}"
        how = (f"; seq 1..{self.sealed} as sealed by an earlier verify (file contents unchanged), the rest recomputed"
               if self.sealed else "")
        return (f"verify {state}: head {self.head}, Delta version {self.version}, {self.commits} append commits; "
                f"checked {', '.join(self.checks)}{how}")


#: A check: given the log and its head, the first violation it finds (None: none).
Check = Callable[[VerifiedLog, int], Violation | None]
