"""The ``eventlog`` command: a thin layer over the library.

Each command parses its options, calls one library function and formats the result.
Every error raised on purpose by the library (an ``EventLogError``) becomes one line
``error: <message>`` on stderr and exit code 1, in one place (``_Group.invoke``);
anything else is a bug and keeps its traceback.

Example:
    $ eventlog --store data/store add sword --quantity 2 --rarity rare
    $ eventlog stock --as-of 2024-03-01
    $ eventlog import events.csv
"""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
import polars as pl

from eventlog.core.cuts import parse_point
from eventlog.core.text import is_utf8
from eventlog.errors import (
    EventLogError,
    InputFileError,
    OutputFileError,
    ReadOnlyError,
    StoreExistsError,
    ValidationError,
)
from eventlog.importers import FORMATS, Format, import_file, read_schema
from eventlog.inventory.inventory import Inventory, Item
from eventlog.model.schema import INVENTORY_SCHEMA, is_inventory
from eventlog.log import AppendResult, EventLog

if TYPE_CHECKING:
    from collections.abc import Callable

    from eventlog.store.snapshots import SnapshotInfo


class _Group(click.Group):
    """A group that turns library errors into one line on stderr and exit code 1."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        # --store belongs to the group, but people write it after the command too.
        return super().parse_args(ctx, _store_option_first(args))

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except EventLogError as exc:
            click.echo(f"error: {_one_line(str(exc))}", err=True)
            ctx.exit(1)


def _store_option_first(args: list[str]) -> list[str]:
    """``eventlog verify --store S`` as ``eventlog --store S verify`` (arguments after ``--`` stay)."""
    end = args.index("--") if "--" in args else len(args)
    store: list[str] = []
    rest: list[str] = []
    i = 0
    while i < end:
        if args[i] == "--store" and i + 1 < end:
            store += args[i : i + 2]
            i += 2
            continue
        (store if args[i].startswith("--store=") else rest).append(args[i])
        i += 1
    return store + rest + args[end:]


class _CutType(click.ParamType):
    """A cut of the log, read by the library's own parser (the grammar the SQL macros share).

    A text that is no cut raises the library's ValidationError, naming the option's field
    (``as_of``, ``known_at``): one ``error:`` line and exit code 1, as from the library.
    """

    name = "SEQ|DATE|TIMESTAMP"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        return parse_point(value, name=param.name if param is not None and param.name else "as_of")


_CUT = _CutType()


def _utf8(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """Refuse an argument with bytes that are not UTF-8 (Python keeps them as surrogate escapes)."""
    if value is not None and not is_utf8(value):
        raise ValidationError(f"{value!r} holds bytes that are not UTF-8; pass UTF-8 text", field=param.name)
    return value


class _Store:
    """The store selected by ``--store``, opened on demand by the command that needs it."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def log(self) -> EventLog:
        return EventLog.open(self.path)

    def inventory(self) -> Inventory:
        """The store as an inventory, created when there is none (a store of another schema is refused)."""
        return Inventory.open(self.path)

    def target(self) -> EventLog | Inventory:
        """The existing store, as an Inventory when it holds one (the predicate the SQL views use)."""
        log = self.log()
        return Inventory(log) if is_inventory(log) else log


def _format_option(*choices: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    return click.option(
        "--format", "fmt", type=click.Choice(choices), default=choices[0], show_default=True, help="Output format."
    )


_as_of_option = click.option(
    "--as-of",
    type=_CUT,
    default=None,
    help="A seq (events with seq <= N), an ISO date (the end of that UTC day) or an ISO "
    "timestamp with an offset (events that occurred by then).",
)


@click.group(cls=_Group, name="eventlog", context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--store",
    type=click.Path(file_okay=False, path_type=Path),
    default="data/store",
    envvar="EVENTLOG_STORE",
    show_default=True,
    show_envvar=True,
    help="Directory of the event store.",
)
@click.version_option(package_name="eventlog")
@click.pass_context
def main(ctx: click.Context, store: Path) -> None:
    """An event log on a date-partitioned Delta Lake table, with an inventory on top.

    Inventory commands (stock, count, history, add, remove, snapshot, generate) create
    the store when there is none; the others need one made by `eventlog init`.
    """
    ctx.obj = _Store(store)


# --- the log ---------------------------------------------------------------------------------


@main.command()
@click.option(
    "--schema",
    "schema_file",
    type=click.Path(path_type=Path),
    help="Event schema as JSON (EventSchema.to_json format). Default: the inventory schema.",
)
@click.pass_obj
def init(store: _Store, schema_file: Path | None) -> None:
    """Create a new store."""
    schema = INVENTORY_SCHEMA if schema_file is None else read_schema(schema_file)
    if EventLog.exists(store.path):  # EventLog.create's own hint speaks of the Python API
        raise StoreExistsError(f"{store.path} already holds an event store; pick another --store")
    log = EventLog.create(store.path, schema)
    click.echo(f"created {schema.name!r} store at {log.path}")


@main.command("import")
@click.argument("file", type=click.Path(path_type=Path))  # checked by read_file: one error line
@click.option(
    "--format",
    "fmt",
    type=click.Choice(list(FORMATS)),
    help="Input format. Default: from the extension.",
)
@click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    help="Commit every N rows separately. Default: the whole file in one all-or-nothing batch.",
)
@click.pass_obj
def import_(store: _Store, file: Path, fmt: Format | None, batch_size: int | None) -> None:
    """Append the events in FILE (CSV, Parquet or NDJSON).

    In an inventory store the columns are event_type, item, quantity, rarity, origin,
    occurred_at, event_id; otherwise event_type, stream_id, occurred_at, event_id and
    the schema's fields. Timestamps need an offset (e.g. 2024-03-01T12:00:00+00:00).
    """
    results = list(import_file(store.target(), file, format=fmt, batch_size=batch_size).batches)
    batches = f" in {_plural(len(results), 'batch')}" if len(results) > 1 else ""
    click.echo(f"imported {_events(results)} from {file.name}{batches}{_seq_range(results)}")


@main.command()
@click.option("-n", "--lines", "n", type=click.IntRange(min=0), default=10, show_default=True, help="How many events.")
@_format_option("table", "csv", "json")
@click.pass_obj
def tail(store: _Store, n: int, fmt: str) -> None:
    """Show the last N events in seq order."""
    log = store.log()
    head = log.head()
    frame = log.scan(as_of=head).filter(pl.col("seq") > head - n).collect()
    _emit(frame, fmt)


@main.command()
@_format_option("table", "json")
@click.pass_obj
def info(store: _Store, fmt: str) -> None:
    """Summarise the store.

    Head seq, Delta version, data files and bytes, streams, events by type and, for
    an inventory, snapshots.
    """
    log = store.log()
    facts = _store_info(log)
    if fmt == "json":
        click.echo(json.dumps(facts, indent=2))
        return
    by_type = facts.pop("events_by_type")
    summary = pl.DataFrame({"property": list(facts), "value": [_text(v) for v in facts.values()]})
    _emit(summary, "table")
    _emit(pl.DataFrame({"event_type": list(by_type), "events": list(by_type.values())},
                       schema={"event_type": pl.String, "events": pl.Int64}), "table")


@main.command()
@click.pass_obj
def compact(store: _Store) -> None:
    """Merge small data files (query results stay the same)."""
    metrics = store.log().compact()
    removed, added = metrics.get("numFilesRemoved", 0), metrics.get("numFilesAdded", 0)
    click.echo(f"compacted {removed} files into {added}")


@main.command()
@click.option(
    "--retention-hours",
    type=click.FloatRange(min=0),
    default=168,
    show_default=True,
    help="Keep files any version younger than this still needs.",
)
@click.option("--dry-run", is_flag=True, help="List what would be deleted; delete nothing.")
@click.pass_obj
def vacuum(store: _Store, retention_hours: float, dry_run: bool) -> None:
    """Delete data files no longer needed by recent versions."""
    files = store.log().vacuum(retention_hours=retention_hours, dry_run=dry_run)
    click.echo(f"{'would delete' if dry_run else 'deleted'} {_plural(len(files), 'file')}")
    for name in files:
        click.echo(f"  {name}")


# --- the inventory ---------------------------------------------------------------------------


@main.command()
@_as_of_option
@click.option("--known-at", type=_CUT, default=None, help="What the log had recorded by then: a seq or a timestamp.")
@_format_option("table", "csv", "json")
@click.pass_obj
def stock(store: _Store, as_of: int | str | None, known_at: int | str | None, fmt: str) -> None:
    """Show every item in stock."""
    _emit(store.inventory().stock(as_of, known_at=known_at), fmt)


@main.command()
@click.argument("item", callback=_utf8)
@_as_of_option
@click.pass_obj
def count(store: _Store, item: str, as_of: int | str | None) -> None:
    """Print how many of ITEM are in stock."""
    click.echo(store.inventory().get_count(item, as_of))


@main.command()
@click.argument("item", callback=_utf8)
@_format_option("table", "csv", "json")
@click.pass_obj
def history(store: _Store, item: str, fmt: str) -> None:
    """Show ITEM's events with the running stock."""
    _emit(store.inventory().history(item), fmt)


@main.command()
@click.argument("item", callback=_utf8)
@click.option("--quantity", type=int, default=1, show_default=True)
@click.option("--rarity", callback=_utf8)
@click.option("--origin", callback=_utf8)
@click.pass_obj
def add(store: _Store, item: str, quantity: int, rarity: str | None, origin: str | None) -> None:
    """Record that QUANTITY of ITEM came into stock."""
    result = store.inventory().add_item(Item(item, rarity=rarity, origin=origin), quantity)
    click.echo(f"added {quantity} of {item!r} (seq {result.last_seq})")


@main.command()
@click.argument("item", callback=_utf8)
@click.option("--quantity", type=int, default=1, show_default=True)
@click.pass_obj
def remove(store: _Store, item: str, quantity: int) -> None:
    """Record that QUANTITY of ITEM left.

    More than is in stock is refused and nothing is written.
    """
    result = store.inventory().remove_item(item, quantity)
    click.echo(f"removed {quantity} of {item!r} (seq {result.last_seq})")


@main.command()
@click.option("--list", "list_", is_flag=True, help="List the snapshots instead of taking one.")
@click.option("--prune", is_flag=True, help="Apply the retention and list what was removed.")
@click.pass_obj
def snapshot(store: _Store, list_: bool, prune: bool) -> None:
    """Snapshot the current stock (or list or prune snapshots)."""
    if list_ and prune:
        raise click.UsageError("--list and --prune cannot be combined")
    inventory = store.inventory()
    if list_:
        _emit(_snapshot_frame(inventory.snapshots.list()), "table")
    elif prune:
        removed = inventory.prune_snapshots()
        click.echo(f"removed {_plural(len(removed), 'snapshot')}")
        for info_ in removed:
            click.echo(f"  seq {info_.seq}: {info_.file}")
    else:
        taken = inventory.snapshot()
        click.echo(f"snapshot at seq {taken.seq} ({_plural(taken.rows, 'item')}): {taken.file}")


@main.command()
@click.argument("n", type=click.IntRange(min=1))
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--items", "n_items", type=click.IntRange(min=1), default=1000, show_default=True, help="Distinct items.")
@click.option("--days", type=click.IntRange(min=1), default=365, show_default=True, help="Span of occurred_at.")
@click.option(
    "--batch-size", type=click.IntRange(min=1), default=1_000_000, show_default=True, help="Events per commit or write."
)
@click.option(
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write FILE.parquet or FILE.csv instead of recording into the store.",
)
@click.pass_obj
def generate(
    store: _Store, n: int, seed: int, n_items: int, days: int, batch_size: int, output: Path | None
) -> None:
    """Generate N synthetic inventory events into the store or a file.

    The events are reproducible for a seed and never take an item below zero stock.
    """
    from eventlog import datagen  # another layer's module: only this command needs it

    options: dict[str, Any] = {"seed": seed, "n_items": n_items, "days": days, "batch_size": batch_size}
    if output is not None:
        writers = {".parquet": datagen.write_parquet, ".csv": datagen.write_csv}
        write = writers.get(output.suffix.lower())
        if write is None:
            raise InputFileError(f"{output}: generate writes a .parquet or a .csv file; rename the output")
        write(output, n, progress=_progress_shown(), **options)
        click.echo(f"wrote {_plural(n, 'event')} to {output}")
        return
    inventory = store.inventory()
    results = []
    with _progress(total=n, unit="events", desc="generate") as bar:
        for batch in datagen.generate(n, **options):
            results.append(inventory.record(batch))
            bar.update(batch.height)
    click.echo(f"recorded {_events(results)} in {store.path}{_seq_range(results)}")


# --- helpers ---------------------------------------------------------------------------------


@main.command()
@click.pass_obj
def verify(store: _Store) -> None:
    """Recompute the hash chain and check every invariant; exit 1 at the first violation."""
    target = store.target()
    log = target.log if isinstance(target, Inventory) else target
    with _progress(total=log.head(), unit="events", desc="verify") as bar:
        report = target.verify(progress=bar.update)
    click.echo(str(report))
    report.raise_if_failed()


# --- projections -----------------------------------------------------------------------------


@main.group()
def project() -> None:
    """Projections: analytic tables kept up to date from the log."""


@project.command("list")
@click.pass_obj
def project_list(store: _Store) -> None:
    """List the registered projections with their mode and description."""
    projector = store.inventory().projector
    rows = [{"name": n, "mode": p.mode, "source": p.source, "description": p.description}
            for n, p in projector.registry.items()]
    _emit(pl.DataFrame(rows), "table")


@project.command("status")
@_format_option("table", "json")
@click.pass_obj
def project_status(store: _Store, fmt: str) -> None:
    """Checkpoint, lag, rows, last build and mode of every projection."""
    statuses = store.inventory().projections_status()
    _emit(pl.DataFrame([s.as_dict() for s in statuses]), fmt)


@project.command("update")
@click.argument("name", required=False)
@click.pass_obj
def project_update(store: _Store, name: str | None) -> None:
    """Bring NAME (default: every projection) up to the head of the log."""
    _run_projections(store.inventory(), name, rebuild=False)


@project.command("rebuild")
@click.argument("name", required=False)
@click.pass_obj
def project_rebuild(store: _Store, name: str | None) -> None:
    """Rebuild NAME (default: every projection) from the whole log."""
    _run_projections(store.inventory(), name, rebuild=True)


@project.command("show")
@click.argument("name")
@_as_of_option
@click.option("--top", "top", type=click.IntRange(min=1), default=None, help="Only the N highest-ranked rows.")
@_format_option("table", "csv", "json")
@click.pass_obj
def project_show(store: _Store, name: str, as_of: int | str | None, top: int | None, fmt: str) -> None:
    """Print the table of projection NAME."""
    handle = store.inventory().projection(name)
    _emit(handle.top(top, as_of=as_of) if top else handle.read(as_of), fmt)


def _run_projections(inventory: Inventory, name: str | None, *, rebuild: bool) -> None:
    names = None if name is None else [name]
    if name is not None:
        inventory.projector.get(name)  # unknown names fail before any work
    total = len(inventory.projector.registry) if name is None else 1
    with _progress(total=total, unit="table", desc="rebuild" if rebuild else "update") as bar:
        statuses = inventory.update_projections(names, rebuild=rebuild, progress=lambda _name: bar.update(1))
    for status in statuses.values():
        click.echo(f"{status.name}: checkpoint {status.checkpoint}, {status.rows} rows ({status.mode})")


# --- SQL ---------------------------------------------------------------------------------------


@main.command("sql")
@click.argument("query", required=False)
@click.option("-f", "--file", "query_file", type=click.Path(dir_okay=False, path_type=Path), help="Read the query from a file.")
@_format_option("table", "csv", "json", "parquet")
@click.option("--output", type=click.Path(dir_okay=False, path_type=Path), help="Write the result to a file.")
@click.pass_obj
def sql_(store: _Store, query: str | None, query_file: Path | None, fmt: str, output: Path | None) -> None:
    """Run one read-only SQL query (argument, -f FILE, or standard input) over the store's views."""
    from eventlog.sql.connection import query as run_query

    if output is not None:
        _check_output(output, store.path)
    result = run_query(store.log(), _query_text(query, query_file))
    if output is None:
        if fmt == "parquet":
            raise InputFileError("--format parquet writes a file: add --output FILE")
        _emit(result, fmt)
        return
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
    click.echo(f"wrote {_plural(result.height, 'row')} to {output}")


@main.command("export-duckdb")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.pass_obj
def export_duckdb(store: _Store, file: Path) -> None:
    """Write a DuckDB database FILE whose views read this store (pinned to its current version)."""
    from eventlog.sql.connection import export_duckdb as export

    path = export(store.log(), file)
    click.echo(f"wrote {path}; it shows Delta version {store.log().version} — export again to refresh")


def _query_text(query: str | None, query_file: Path | None) -> str:
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


def _check_output(output: Path, store: Path) -> None:
    """An --output file goes into an existing folder outside the store (the store holds only its own files)."""
    if output.resolve().is_relative_to(store.resolve()):
        raise ReadOnlyError(f"{output} lies inside the store {store}; write the result outside it")
    if not output.parent.is_dir():
        raise OutputFileError(f"{output}: {output.parent} is not an existing folder; create it first")


def _one_line(message: str) -> str:
    return re.sub(r"\s*\n\s*", " ", message.strip())


def _plural(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}{'es' if noun.endswith('ch') else 's'}"


def _events(results: list[AppendResult]) -> str:
    return _plural(sum(r.count for r in results), "event")


def _seq_range(results: list[AppendResult]) -> str:
    return f" (seq {results[0].first_seq}..{results[-1].last_seq})" if results else ""


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def _emit(frame: pl.DataFrame, fmt: str) -> None:
    """Write a frame to stdout as a full table, CSV or JSON (a list of row objects)."""
    if fmt == "csv":
        click.echo(frame.write_csv(), nl=False)
    elif fmt == "json":
        click.echo(frame.write_json())
    else:
        # Generous limits: a CLI table that hides rows or cuts ids is worse than a wide one.
        with pl.Config(tbl_rows=-1, tbl_cols=-1, fmt_str_lengths=1000, tbl_width_chars=-1):
            click.echo(str(frame))


def _store_info(log: EventLog) -> dict[str, Any]:
    head = log.head()
    files = log.files()
    events = log.scan(as_of=head, ordered=False)
    by_type = events.group_by("event_type").len().sort("event_type").collect()
    streams = events.select(pl.col("stream_id").n_unique()).collect().item()
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
        "events_by_type": dict(by_type.rows()),
    }


def _snapshot_frame(infos: list[SnapshotInfo]) -> pl.DataFrame:
    columns = ["seq", "delta_version", "rows", "created_at", "max_occurred_at", "file"]
    rows = [{k: asdict(i)[k] for k in columns} for i in infos]
    return pl.DataFrame(rows, schema={"seq": pl.Int64, "delta_version": pl.Int64, "rows": pl.Int64,
                                      "created_at": pl.String, "max_occurred_at": pl.String, "file": pl.String})


def _progress_shown() -> bool:
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


def _progress(*, total: int, unit: str, desc: str) -> Any:
    """A progress bar on stderr, or a stand-in when none is shown (the command works without tqdm)."""
    if not _progress_shown():
        return _NoBar()
    from tqdm import tqdm

    return tqdm(total=total, unit=unit, desc=desc, file=sys.stderr, unit_scale=True)
