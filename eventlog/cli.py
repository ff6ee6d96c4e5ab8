"""The ``eventlog`` command: a thin layer over the library.

Each command parses its options, calls one library function and formats the result.
Every error raised on purpose by the library (an ``EventLogError``) becomes one line
``error: <message>`` on stderr and exit code 1, in one place (``_Group.invoke``);
anything else is a bug and keeps its traceback. A command line click cannot parse (an
unknown option, a missing argument) is click's usage error: a usage line, a hint and
``Error: ...`` on stderr, exit code 2.

Only ``init``, ``add``, ``import`` and ``generate`` create a store; every other command
needs one, so a mistyped ``--store`` fails with one line instead of making an empty store.

This module imports nothing heavy at the top (polars, DuckDB, Delta load inside the
commands, through ``_cli_format``), so ``eventlog --help`` answers at once.

Example:
    $ eventlog --store data/store add sword --quantity 2 --rarity rare
    $ eventlog stock --as-of 2024-03-01
    $ eventlog import data/original_example.csv
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from eventlog.core.text import is_utf8
from eventlog.errors import EventLogError, InputFileError, StoreExistsError, StoreNotFoundError, ValidationError

if TYPE_CHECKING:
    from collections.abc import Callable

    from eventlog.importers import Format
    from eventlog.inventory.inventory import Inventory
    from eventlog.log import EventLog

#: The input formats of ``eventlog import``; the same as ``eventlog.importers.FORMATS`` (a test
#: checks), named here so that ``--help`` need not import the readers.
IMPORT_FORMATS = ("csv", "parquet", "ndjson")


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


def _one_line(message: str) -> str:
    return re.sub(r"\s*\n\s*", " ", message.strip())


class _CutType(click.ParamType):
    """A cut of the log, read by the library's own parser (the grammar the SQL macros share).

    A text that is no cut raises the library's ValidationError, naming the option's field
    (``as_of``, ``known_at``): one ``error:`` line and exit code 1, as from the library.
    """

    name = "SEQ|DATE|TIMESTAMP"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        from eventlog.core.cuts import parse_point

        return parse_point(value, name=param.name if param is not None and param.name else "as_of")


_CUT = _CutType()


def _utf8(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """Refuse an argument with bytes that are not UTF-8 (Python keeps them as surrogate escapes)."""
    if value is not None and not is_utf8(value):
        raise ValidationError(f"{value!r} holds bytes that are not UTF-8; pass UTF-8 text", field=param.name)
    return value


class _Store:
    """The store selected by ``--store``, opened on demand by the command that needs it.

    Only the commands that create a store (init, add, import, generate) may find none; every
    other one fails with one line, creating nothing, so a mistyped path makes no empty store.
    """

    def __init__(self, path: Path) -> None:
        self.path = path

    def _require(self) -> None:
        from eventlog.log import EventLog

        if not EventLog.exists(self.path):
            raise StoreNotFoundError(
                f"no event store at {self.path}; check --store (or EVENTLOG_STORE), "
                "or create one with `eventlog init` (add, import and generate create an inventory store)"
            )

    def log(self) -> EventLog:
        from eventlog.log import EventLog

        self._require()
        return EventLog.open(self.path)

    def inventory(self, *, create: bool = False) -> Inventory:
        """The store as an inventory (a store of another schema is refused); ``create`` makes one when there is none."""
        from eventlog.inventory.inventory import Inventory

        if create:
            return Inventory.open(self.path)
        return Inventory(self.log())

    def target(self, *, create: bool = False) -> EventLog | Inventory:
        """The store, as an Inventory when it holds one (the predicate the SQL views use)."""
        from eventlog.inventory.inventory import Inventory
        from eventlog.log import EventLog
        from eventlog.model.schema import is_inventory

        if create and not EventLog.exists(self.path):
            return Inventory.open(self.path)
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

    `init` creates a store of any schema; `add`, `import` and `generate` create an
    inventory store when there is none. Every other command needs an existing store.
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
    from eventlog.importers import read_schema
    from eventlog.log import EventLog
    from eventlog.model.schema import INVENTORY_SCHEMA

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
    type=click.Choice(IMPORT_FORMATS),
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
    Without a store, an inventory store is created.
    """
    from eventlog._cli_format import events, plural, seq_range
    from eventlog.importers import import_file
    from eventlog.log import EventLog

    if not EventLog.exists(store.path) and not file.is_file():  # a mistyped FILE makes no store
        raise InputFileError(f"{file}: {'is a directory' if file.is_dir() else 'no such file'}")
    target = store.target(create=True)
    results = list(import_file(target, file, format=fmt, batch_size=batch_size).batches)
    batches = f" in {plural(len(results), 'batch')}" if len(results) > 1 else ""
    click.echo(f"imported {events(results)} from {file.name}{batches}{seq_range(results)}")


@main.command()
@click.option("-n", "--lines", "n", type=click.IntRange(min=0), default=10, show_default=True, help="How many events.")
@_format_option("table", "csv", "json")
@click.pass_obj
def tail(store: _Store, n: int, fmt: str) -> None:
    """Show the last N events in seq order."""
    import polars as pl

    from eventlog._cli_format import emit

    log = store.log()
    head = log.head()
    emit(log.scan(as_of=head).filter(pl.col("seq") > head - n).collect(), fmt)


@main.command()
@_format_option("table", "json")
@click.pass_obj
def info(store: _Store, fmt: str) -> None:
    """Summarise the store.

    Head seq, Delta version, data files and bytes, streams, events by type and, for
    an inventory, snapshots.
    """
    from eventlog._cli_format import emit_info

    emit_info(store.log(), fmt)


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
    from eventlog._cli_format import plural

    files = store.log().vacuum(retention_hours=retention_hours, dry_run=dry_run)
    click.echo(f"{'would delete' if dry_run else 'deleted'} {plural(len(files), 'file')}")
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
    from eventlog._cli_format import emit

    emit(store.inventory().stock(as_of, known_at=known_at), fmt)


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
    from eventlog._cli_format import emit

    emit(store.inventory().history(item), fmt)


@main.command()
@click.argument("item", callback=_utf8)
@click.option("--quantity", type=int, default=1, show_default=True)
@click.option("--rarity", callback=_utf8)
@click.option("--origin", callback=_utf8)
@click.pass_obj
def add(store: _Store, item: str, quantity: int, rarity: str | None, origin: str | None) -> None:
    """Record that QUANTITY of ITEM came into stock.

    Without a store, an inventory store is created.
    """
    from eventlog.inventory.inventory import Item

    result = store.inventory(create=True).add_item(Item(item, rarity=rarity, origin=origin), quantity)
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
    from eventlog._cli_format import emit, plural, snapshot_frame

    inventory = store.inventory()
    if list_:
        emit(snapshot_frame(inventory.snapshots.list()), "table")
    elif prune:
        removed = inventory.prune_snapshots()
        click.echo(f"removed {plural(len(removed), 'snapshot')}")
        for info_ in removed:
            click.echo(f"  seq {info_.seq}: {info_.file}")
    else:
        taken = inventory.snapshot()
        click.echo(f"snapshot at seq {taken.seq} ({plural(taken.rows, 'item')}): {taken.file}")


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
    Without a store (and without --output), an inventory store is created.
    """
    from eventlog import datagen  # another layer's module: only this command needs it
    from eventlog._cli_format import events, plural, progress, progress_shown, seq_range

    options: dict[str, Any] = {"seed": seed, "n_items": n_items, "days": days, "batch_size": batch_size}
    if output is not None:
        writers = {".parquet": datagen.write_parquet, ".csv": datagen.write_csv}
        write = writers.get(output.suffix.lower())
        if write is None:
            raise InputFileError(f"{output}: generate writes a .parquet or a .csv file; rename the output")
        write(output, n, progress=progress_shown(), **options)
        click.echo(f"wrote {plural(n, 'event')} to {output}")
        return
    inventory = store.inventory(create=True)
    results = []
    with progress(total=n, unit="events", desc="generate") as bar:
        for batch in datagen.generate(n, **options):
            results.append(inventory.record(batch))
            bar.update(batch.height)
    click.echo(f"recorded {events(results)} in {store.path}{seq_range(results)}")


# --- branches --------------------------------------------------------------------------------


@main.command()
@click.argument("new", type=click.Path(file_okay=False, path_type=Path))
@click.option("--at", type=_CUT, default=None,
              help="Fork at a seq, or at an ISO date or timestamp (the longest prefix of the log that happened by "
              "then). Default: the head.")
@click.pass_obj
def branch(store: _Store, new: Path, at: int | str | None) -> None:
    """Make NEW a branch of the store: its history up to --at, data files shared, not copied.

    Write to the branch, compare it with `eventlog compare`, bring it back with `eventlog promote`,
    or delete its folder to discard it: the store itself never changes.
    """
    from eventlog.inventory.inventory import Inventory

    made = store.target().branch(new, at=at)
    log = made.log if isinstance(made, Inventory) else made
    lineage = log.lineage
    if lineage is None:  # pragma: no cover - branch() always writes its record
        raise ValidationError(f"{log.path} was made without a branch record", field="branch")
    click.echo(f"branched {store.path} at seq {lineage.fork_seq} into {log.path} ({lineage.linked} data files "
               f"shared, {lineage.copied} copied, {lineage.rewritten} rewritten)")


@main.command()
@click.argument("other", required=False, type=click.Path(file_okay=False, path_type=Path))
@_as_of_option
@click.option("--other-as-of", type=_CUT, default=None, help="The cut of OTHER (or of this store); default: its head.")
@_format_option("table", "csv", "json")
@click.pass_obj
def compare(store: _Store, other: Path | None, as_of: int | str | None, other_as_of: int | str | None, fmt: str) -> None:
    """Stock here (at --as-of) beside stock in OTHER (default: this store) at --other-as-of.

    One row per item: quantity, other_quantity and change (other minus here). Without OTHER
    it is "then vs now": `eventlog compare --as-of 2024-12-31`.
    """
    from eventlog._cli_format import emit

    theirs = _Store(other).inventory() if other is not None else None
    emit(store.inventory().compare(theirs, as_of=as_of, other_as_of=other_as_of), fmt)


@main.command()
@click.argument("branch_path", metavar="BRANCH", type=click.Path(file_okay=False, path_type=Path))
@click.pass_obj
def promote(store: _Store, branch_path: Path) -> None:
    """Append BRANCH's events after its fork to this store (its origin), all or nothing.

    A fast-forward when the store has not moved since the fork; otherwise every event is
    checked again and the first that no longer fits is named, with nothing written. A
    retried promote appends nothing.
    """
    from eventlog._cli_format import plural

    target = store.target()
    result = target.promote(_Store(branch_path).target())  # type: ignore[arg-type]
    events, seqs = plural(result.count, "event"), f"seq {result.first_seq}..{result.last_seq}"
    if result.count == 0:
        click.echo(f"nothing to promote: {branch_path} has no events after its fork")
    elif result.duplicate:
        click.echo(f"already promoted: {events} at {seqs}")
    else:
        click.echo(f"promoted {events} from {branch_path} ({seqs})")


# --- helpers ---------------------------------------------------------------------------------


@main.command()
@click.option("--expect", metavar="HASH", default=None,
              help="A hash from `eventlog head` the log must still hold (catches a truncated tail); implies --deep.")
@click.option("--deep", is_flag=True, default=False,
              help="Recompute every value, also those an earlier verify sealed (their files unchanged).")
@click.pass_obj
def verify(store: _Store, expect: str | None, deep: bool) -> None:
    """Recompute the hash chain and check every invariant; exit 1 at the first violation."""
    from eventlog._cli_format import progress
    from eventlog.inventory.inventory import Inventory

    target = store.target()
    log = target.log if isinstance(target, Inventory) else target
    with progress(total=log.head(), unit="events", desc="verify") as bar:
        report = target.verify(deep=deep, progress=bar.update, expect=expect)
    click.echo(str(report))
    report.raise_if_failed()


@main.command()
@click.pass_obj
def head(store: _Store) -> None:
    """Print the newest commit's hash: publish it, check it later with verify --expect."""
    anchor = store.log().head_hash()
    if anchor is None:
        raise ValidationError("the log is empty: it has no commit hash yet", field="head")
    click.echo(anchor)


# --- projections -----------------------------------------------------------------------------


@main.group()
def project() -> None:
    """Projections: analytic tables kept up to date from the log."""


@project.command("list")
@click.pass_obj
def project_list(store: _Store) -> None:
    """List the registered projections with their mode and description."""
    from eventlog._cli_format import emit_rows

    projector = store.inventory().projector
    emit_rows([{"name": n, "mode": p.mode, "source": p.source, "description": p.description}
               for n, p in projector.registry.items()], "table")


@project.command("status")
@_format_option("table", "json")
@click.pass_obj
def project_status(store: _Store, fmt: str) -> None:
    """Checkpoint, lag, rows, last build and mode of every projection."""
    from eventlog._cli_format import emit_rows

    emit_rows([s.as_dict() for s in store.inventory().projections_status()], fmt)


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
    from eventlog._cli_format import emit

    handle = store.inventory().projection(name)
    emit(handle.top(top, as_of=as_of) if top else handle.read(as_of), fmt)


def _run_projections(inventory: Inventory, name: str | None, *, rebuild: bool) -> None:
    from eventlog._cli_format import progress

    names = None if name is None else [name]
    if name is not None:
        inventory.projector.get(name)  # unknown names fail before any work
    total = len(inventory.projector.registry) if name is None else 1
    with progress(total=total, unit="table", desc="rebuild" if rebuild else "update") as bar:
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
    from eventlog._cli_format import check_output, emit, plural, query_text, write_result
    from eventlog.sql import query as run_query

    if output is not None:
        check_output(output, store.path)
    result = run_query(store.log(), query_text(query, query_file))
    if output is None:
        if fmt == "parquet":
            raise InputFileError("--format parquet writes a file: add --output FILE")
        emit(result, fmt)
        return
    write_result(result, fmt, output)
    click.echo(f"wrote {plural(result.height, 'row')} to {output}")


@main.command("export-duckdb")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.pass_obj
def export_duckdb(store: _Store, file: Path) -> None:
    """Write a DuckDB database FILE whose views read this store (pinned to its current version)."""
    from eventlog.sql import export_duckdb as export

    log = store.log()
    path = export(log, file)
    click.echo(f"wrote {path}; it shows Delta version {log.version} — export again to refresh")
