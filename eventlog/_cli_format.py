"""What the ``eventlog`` command prints and writes: tables, summaries, progress bars.

Kept out of ``cli.py`` so that the command's own module imports nothing heavy: this one
(polars, the log) loads only when a command runs, never for ``--help``.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
import polars as pl

from eventlog.errors import InputFileError, OutputFileError, ReadOnlyError
from eventlog.inventory.inventory import Inventory
from eventlog.model.schema import is_inventory

if TYPE_CHECKING:
    from eventlog.log import AppendResult, EventLog
    from eventlog.store.snapshots import SnapshotInfo


def plural(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}{'es' if noun.endswith('ch') else 's'}"


def events(results: list[AppendResult]) -> str:
    return plural(sum(r.count for r in results), "event")


def seq_range(results: list[AppendResult]) -> str:
    return f" (seq {results[0].first_seq}..{results[-1].last_seq})" if results else ""


def emit(frame: pl.DataFrame, fmt: str) -> None:
    """Write a frame to stdout as a full table, CSV or JSON (a list of row objects)."""
    if fmt == "csv":
        click.echo(frame.write_csv(), nl=False)
    elif fmt == "json":
        click.echo(frame.write_json())
    else:
        # Generous limits: a CLI table that hides rows or cuts ids is worse than a wide one.
        with pl.Config(tbl_rows=-1, tbl_cols=-1, fmt_str_lengths=1000, tbl_width_chars=-1):
            click.echo(str(frame))


def emit_rows(rows: list[dict[str, Any]], fmt: str) -> None:
    emit(pl.DataFrame(rows), fmt)


def write_result(result: pl.DataFrame, fmt: str, output: Path) -> None:
    """Write a query result to ``output`` in ``fmt`` (table text, CSV, JSON or Parquet)."""
    try:
        if fmt == "table":
            output.write_text(str(result) + "\n", encoding="utf-8")
        elif fmt == "csv":
            result.write_csv(output)
        elif fmt == "json":
            result.write_json(output)
        else:
            result.write_parquet(output)
    except OSError as exc:
        raise OutputFileError(f"{output}: cannot write the result: {exc.strerror or exc}") from None


def check_output(output: Path, store: Path) -> None:
    """An --output file goes into an existing folder outside the store (the store holds only its own files)."""
    if output.resolve().is_relative_to(store.resolve()):
        raise ReadOnlyError(f"{output} lies inside the store {store}; write the result outside it")
    if not output.parent.is_dir():
        raise OutputFileError(f"{output}: {output.parent} is not an existing folder; create it first")


def query_text(query: str | None, query_file: Path | None) -> str:
    if query is not None and query_file is not None:
        raise InputFileError("give the query as an argument or with -f, not both")
    if query_file is not None:
        try:
            return query_file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise InputFileError(f"{query_file}: cannot read the query: {exc}") from None
    if query is not None:
        return query
    if sys.stdin.isatty():
        raise InputFileError("no query: pass it as an argument, with -f FILE, or on standard input")
    try:
        return sys.stdin.read()
    except UnicodeDecodeError as exc:
        raise InputFileError(f"standard input: cannot read the query: {exc}") from None


def emit_info(log: EventLog, fmt: str) -> None:
    """``eventlog info``: the summary as a property table and the events by type, or one JSON object."""
    facts = store_info(log)
    if fmt == "json":
        click.echo(json.dumps(facts, indent=2))
        return
    by_type = facts.pop("events_by_type")
    emit(pl.DataFrame({"property": list(facts), "value": ["" if v is None else str(v) for v in facts.values()]}),
         "table")
    emit(pl.DataFrame({"event_type": list(by_type), "events": list(by_type.values())},
                      schema={"event_type": pl.String, "events": pl.Int64}), "table")


def store_info(log: EventLog) -> dict[str, Any]:
    head = log.head()
    files = log.files()
    scanned = log.scan(as_of=head, ordered=False)
    by_type = scanned.group_by("event_type").len().sort("event_type").collect()
    streams = scanned.select(pl.col("stream_id").n_unique()).collect().item()
    snapshots = len(Inventory(log).snapshots.list()) if is_inventory(log) else None
    return {
        "store": str(log.path),
        "schema": log.schema.name,
        "head_seq": head,
        "delta_version": log.version,
        "data_files": files.height,
        "total_bytes": int(files.get_column("size_bytes").sum()) if files.height else 0,
        "streams": int(streams or 0),
        "snapshots": snapshots,
        **({"origin": log.lineage.origin, "fork_seq": log.lineage.fork_seq, "fork_hash": log.lineage.fork_hash}
           if log.lineage is not None else {}),
        "events_by_type": dict(by_type.rows()),
    }


def snapshot_frame(infos: list[SnapshotInfo]) -> pl.DataFrame:
    columns = ["seq", "delta_version", "rows", "created_at", "max_occurred_at", "file"]
    rows = [{k: asdict(i)[k] for k in columns} for i in infos]
    return pl.DataFrame(rows, schema={"seq": pl.Int64, "delta_version": pl.Int64, "rows": pl.Int64,
                                      "created_at": pl.String, "max_occurred_at": pl.String, "file": pl.String})


def progress_shown() -> bool:
    """Bars go to stderr when it is a terminal and tqdm (the ``cli`` extra) is installed."""
    return sys.stderr.isatty() and importlib.util.find_spec("tqdm") is not None


class _NoBar:
    """Stands in for a tqdm bar when none is shown: same calls, no output."""

    def __enter__(self) -> _NoBar:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def update(self, n: float = 1) -> None:
        return None


def progress(*, total: int, unit: str, desc: str) -> Any:
    """A progress bar on stderr, or a stand-in when none is shown (the command works without tqdm)."""
    if not progress_shown():
        return _NoBar()
    from tqdm import tqdm

    return tqdm(total=total, unit=unit, desc=desc, file=sys.stderr, unit_scale=True)
