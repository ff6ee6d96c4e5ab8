"""Store paths with awkward characters, and a damaged Delta log.

A store path either works end to end (record, stock, time travel, compact, vacuum, verify,
SQL, reopen and record again) or is refused by create and open with a StorePathError that
names the path and the character, before anything is written. A damaged Delta log is
reported as a StorageError naming the file at fault, never as deltalake's own error.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from urllib.parse import unquote

import polars as pl
import pytest
from deltalake import DeltaTable

import eventlog.sql
import eventlog.writer
from eventlog import INVENTORY_SCHEMA, EventLog, Inventory, SnapshotWarning
from eventlog.errors import CommitError, ProjectionWarning, SnapshotError, StorageError, StorePathError, StorePathWarning

# --- paths that work --------------------------------------------------------------------------

WORKING = {
    "percent": "100%",  # "%" not followed by two hex digits is taken literally
    "space": "with space",
    "accented": "café",
    "cjk": "日本",
    "dot-dot": "nowhere/../up",
    "single quote": "o'brien",
    "double quote": 'say "hi"',
    "semicolon": "a;b; DROP TABLE events; --",
    "equals": "run=3",  # polars reads "key=value" folders as hive columns, the root's too
    "braces, comma, tilde": "{a,b} ~c",
}


def _use_end_to_end(path: Path) -> None:
    inv = Inventory.open(path)
    inv.add_item("apple", 3)
    inv.add_item("pear", 2)
    inv.remove_item("apple", 1)
    assert inv.get_items() == [("apple", 2), ("pear", 2)]
    assert inv.get_items(as_of=2) == [("apple", 3), ("pear", 2)]
    inv.log.compact()
    inv.log.vacuum(retention_hours=0)
    assert inv.verify().ok
    con = eventlog.sql.connect(inv)
    try:
        assert con.sql("SELECT item, quantity FROM inventory ORDER BY item").fetchall() == [("apple", 2), ("pear", 2)]
        assert con.sql("SELECT count(*) FROM events_as_of(2)").fetchall() == [(2,)]
    finally:
        con.close()
    # A new process: the hash chain is read back from the Delta history, then extended.
    reopened = Inventory.open(path)
    assert reopened.log.scan(as_of=1).collect()["stream_id"].to_list() == ["apple"]
    assert reopened.add_item("plum").last_seq == 4
    assert reopened.get_items() == [("apple", 2), ("pear", 2), ("plum", 1)]
    assert Inventory.open(path).verify().ok


@pytest.mark.parametrize("name", WORKING.values(), ids=WORKING.keys())
def test_a_store_path_with_this_character_works_end_to_end(tmp_path: Path, name: str) -> None:
    _use_end_to_end(tmp_path / name / "store")
    real = Path(os.path.realpath(tmp_path / name / "store"))
    assert (real / "events" / "_delta_log").is_dir()
    assert [p.name for p in tmp_path.iterdir()] == [real.relative_to(tmp_path).parts[0]]  # nothing written elsewhere


def test_dot_dot_after_a_symlink_goes_where_the_os_puts_it(tmp_path: Path) -> None:
    # The OS follows the link before "..": a store at link/../store lives beside the link's target.
    (tmp_path / "real" / "deep").mkdir(parents=True)
    (tmp_path / "link").symlink_to(tmp_path / "real" / "deep")
    path = tmp_path / "link" / ".." / "store"
    _use_end_to_end(path)
    assert EventLog.exists(tmp_path / "real" / "store")
    assert not (tmp_path / "store").exists()


# --- paths that are refused -------------------------------------------------------------------

REFUSED = {
    "open bracket": "a[1", "close bracket": "a]1", "caret": "a^b", "pipe": "a|b",  # deltalake panics
    "hash": "tag#1", "question mark": "what?",  # deltalake's history comes back empty
    "backslash": "back\\slash",  # deltalake reads it as "/"
    "percent escape": "a%41b",  # deltalake reads it as "aAb"
    "asterisk": "star*",  # DuckDB reads it as a wildcard
    "tab": "tab\tname", "delete": "del\x7fname",  # deltalake refuses control characters
}


def _offending(name: str) -> str:
    return "%41" if "%41" in name else next(c for c in name if not (c.isalnum() or c in " ._-"))


@pytest.mark.parametrize("name", REFUSED.values(), ids=REFUSED.keys())
@pytest.mark.parametrize("how", ["EventLog.create", "Inventory.open", "in a parent folder"])
def test_a_store_path_with_this_character_is_refused_before_anything_is_written(
    tmp_path: Path, name: str, how: str
) -> None:
    path = tmp_path / name / "store" if how == "in a parent folder" else tmp_path / name
    with pytest.raises(StorePathError) as caught:
        if how == "EventLog.create":
            EventLog.create(path, INVENTORY_SCHEMA)
        else:
            Inventory.open(path)
    message = str(caught.value)
    assert str(path) in message and repr(_offending(name)) in message and "rename" in message
    assert isinstance(caught.value, ValueError)
    assert list(tmp_path.iterdir()) == []


def test_opening_a_store_moved_under_a_refused_path_is_refused_not_a_panic(tmp_path: Path) -> None:
    Inventory.open(tmp_path / "fine").add_item("apple")
    (tmp_path / "fine").rename(tmp_path / "moved[1]")
    with pytest.raises(StorePathError, match=r"'\['"):
        EventLog.open(tmp_path / "moved[1]")
    with pytest.raises(StorePathError):
        Inventory.open(tmp_path / "moved[1]")


# --- a damaged Delta log ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Two small stores: commits 0..4 only, and the same with a checkpoint at 4 and commit 5."""
    stores = {}
    for kind in ("plain", "checkpointed"):
        path = tmp_path_factory.mktemp(kind) / "store"
        inv = Inventory.open(path, snapshot_every=1_000_000)
        for i in range(4):
            inv.add_item(f"item {i}", i + 1)
        if kind == "checkpointed":
            DeltaTable(str(path / "events")).create_checkpoint()
            inv.add_item("after the checkpoint")
        stores[kind] = path
    return stores


def _commit(version: int) -> str:
    return f"events/_delta_log/{version:020d}.json"


def _truncate(relative: str) -> Callable[[Path], str]:
    def damage(store: Path) -> str:
        data = (store / relative).read_bytes()
        (store / relative).write_bytes(data[: len(data) // 2])
        return relative

    return damage


def _overwrite(relative: str, data: bytes) -> Callable[[Path], str]:
    def damage(store: Path) -> str:
        (store / relative).write_bytes(data)
        return relative

    return damage


def _delete(relative: str) -> Callable[[Path], str]:
    def damage(store: Path) -> str:
        target = store / relative
        shutil.rmtree(target) if target.is_dir() else target.unlink()
        return relative

    return damage


def _garbage_checkpoint(store: Path) -> str:
    checkpoint = next((store / "events" / "_delta_log").glob("*.checkpoint.parquet"))
    checkpoint.write_bytes(b"not parquet at all")
    return checkpoint.relative_to(store).as_posix()


DAMAGES: dict[str, tuple[str, Callable[[Path], str]]] = {
    "latest commit truncated": ("plain", _truncate(_commit(4))),
    "middle commit truncated": ("plain", _truncate(_commit(2))),
    "commit overwritten with binary": ("plain", _overwrite(_commit(3), b"\x00\xff\xfe garbage")),
    "middle commit missing": ("plain", _delete(_commit(2))),
    "first commit missing": ("plain", _delete(_commit(0))),
    "commit after the checkpoint truncated": ("checkpointed", _truncate(_commit(5))),
    "checkpoint is garbage": ("checkpointed", _garbage_checkpoint),
    "_delta_log deleted": ("plain", _delete("events/_delta_log")),
    "eventlog.json truncated": ("plain", _truncate("eventlog.json")),
    "eventlog.json nested too deeply": ("plain", _overwrite("eventlog.json", b"[" * 100_000 + b"]" * 100_000)),
    "eventlog.json schema is text": ("plain", _overwrite("eventlog.json", b'{"format": 1, "schema": "x"}')),
    "eventlog.json schema is a list": ("plain", _overwrite("eventlog.json", b'{"format": 1, "schema": [1, 2]}')),
    "eventlog.json unknown format": ("plain", _overwrite("eventlog.json", b'{"format": 99, "schema": {}}')),
    "eventlog.json event_types a number": (
        "plain", _overwrite("eventlog.json", b'{"format": 1, "schema": {"name": "x", "event_types": 5}}')),
    "eventlog.json 50 MB": ("plain", _overwrite("eventlog.json", b'{"format": 1, "pad": "' + b"x" * 50 * 2**20 + b'"}')),
}


@pytest.mark.parametrize("kind, damage", DAMAGES.values(), ids=DAMAGES.keys())
def test_a_damaged_log_is_a_storage_error_naming_the_file(
    tmp_path: Path, pristine: dict[str, Path], kind: str, damage: Callable[[Path], str]
) -> None:
    store = Path(os.path.realpath(tmp_path)) / "store"
    shutil.copytree(pristine[kind], store)
    opened_before = EventLog.open(store)
    culprit = str(store / damage(store))
    attempts = {
        "open": lambda: EventLog.open(store),
        "scan": lambda: opened_before.scan().collect(),
        "stock": lambda: Inventory.open(store).stock(),
    }
    for what, attempt in attempts.items():
        try:
            attempt()
        except StorageError as error:
            assert (error.file, error.store) == (culprit, str(store)), what
            assert culprit in str(error) and "backup" in str(error) and "eventlog verify" in str(error), what
            assert isinstance(error, OSError)
        else:  # only an object that loaded its version before the damage may still read it
            assert what == "scan", f"{what} read a damaged store without an error"


def test_a_commit_missing_under_an_open_log_is_a_storage_error_on_its_next_read(
    tmp_path: Path, pristine: dict[str, Path]
) -> None:
    store = tmp_path / "store"
    shutil.copytree(pristine["plain"], store)
    log = EventLog.open(store)
    EventLog.open(store).append([{"event_type": "item_added", "stream_id": "late", "quantity": 1}])
    (store / _commit(3)).unlink()
    with pytest.raises(StorageError, match=r"00000000000000000003\.json is missing"):
        log.head()


# --- a damaged data file, read through the inventory -----------------------------------------


def _first_data_file(store: Path) -> Path:
    log = EventLog.open(store)
    return log.path / "events" / log.files().sort("min_seq").item(0, "path")


@pytest.mark.parametrize("damage", ["deleted", "garbage", "garbled footer"])
def test_a_damaged_data_file_is_a_storage_error_naming_it(pristine: dict[str, Path], tmp_path: Path, damage: str) -> None:
    store = tmp_path / "store"
    shutil.copytree(pristine["plain"], store)
    target = _first_data_file(store)
    if damage == "deleted":
        target.unlink()
    elif damage == "garbage":
        target.write_bytes(b"not a parquet file at all")
    else:  # the same size, some bytes of the footer flipped
        data = bytearray(target.read_bytes())
        data[-20:-14] = bytes(b ^ 0xFF for b in data[-20:-14])
        target.write_bytes(bytes(data))
    with pytest.raises(StorageError, match="eventlog verify") as caught:
        Inventory.open(store, snapshot_every=1_000_000).stock()
    assert caught.value.file is not None and caught.value.file.endswith(target.name)


# --- paths read from the store lead inside it ---------------------------------------------------


def _snapshotted(tmp_path: Path) -> tuple[Inventory, Path]:
    """A store with one snapshot, and a victim file beside (outside) the store."""
    inv = Inventory.open(tmp_path / "store", snapshot_every=1_000_000)
    inv.add_item("apple", 3)
    inv.snapshot()
    victim = tmp_path / "victim.txt"
    victim.write_text("not the store's")
    return inv, victim


def _forge_manifest(inv: Inventory, **changes: object) -> Path:
    """A copy of the store's newest manifest under a new name, with ``changes``."""
    folder = inv.path / "snapshots"
    manifest = sorted(folder.glob("*.json"))[-1]
    data = {**json.loads(manifest.read_text()), **changes}
    forged = folder / f"v1-seq{999_999_999:015d}.json"
    forged.write_text(json.dumps(data))
    return forged


@pytest.mark.parametrize("file", ["../victim.txt", "ABSOLUTE", "v1-seq000000000000001.parquet"],
                         ids=["dot-dot", "absolute", "another snapshot's file"])
def test_a_manifest_naming_another_file_is_ignored_and_nothing_outside_is_deleted(tmp_path: Path, file: str) -> None:
    inv, victim = _snapshotted(tmp_path)
    named = str(victim) if file == "ABSOLUTE" else file
    _forge_manifest(inv, file=named, sha256="0" * 64, seq=2, state_version=99)  # wrong checksum, another version
    inv.add_item("pear")
    reopened = Inventory.open(inv.path, snapshot_every=1_000_000)
    with pytest.warns(StorePathWarning, match="ignored"):
        assert reopened.get_items() == [("apple", 3), ("pear", 1)]
        reopened.snapshot()  # its prune removes other versions' snapshots
        reopened.prune_snapshots()
    assert victim.read_text() == "not the store's"


def test_a_symlinked_snapshot_file_is_never_read_or_removed(tmp_path: Path) -> None:
    inv, victim = _snapshotted(tmp_path)
    data = sorted((inv.path / "snapshots").glob("*.parquet"))[-1]
    data.unlink()
    data.symlink_to(victim)
    with pytest.warns(StorePathWarning, match="symlink"):
        assert Inventory.open(inv.path).get_items() == [("apple", 3)]
    assert victim.read_text() == "not the store's"


def test_a_symlinked_snapshot_folder_is_never_written_through(tmp_path: Path) -> None:
    inv, _victim = _snapshotted(tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    shutil.rmtree(inv.path / "snapshots")
    (inv.path / "snapshots").symlink_to(elsewhere)
    reopened = Inventory.open(inv.path, snapshot_every=1)
    with pytest.warns(StorePathWarning, match="symlink"), pytest.warns(SnapshotWarning, match="will not write"):
        reopened.add_item("pear")
        assert reopened.get_items() == [("apple", 3), ("pear", 1)]
    with pytest.raises(SnapshotError, match="symlink"), pytest.warns(StorePathWarning):
        reopened.snapshot()
    assert list(elsewhere.iterdir()) == []


# --- durability: an acknowledged append is on disk ----------------------------------------------


@pytest.fixture
def synced(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The paths every os.fsync call synced, in order."""
    seen: list[str] = []
    real = os.fsync

    def spy(fd: int) -> None:
        # a data file is synced under its staged name ("<name>#1"), before the rename and the commit
        seen.append(re.sub(r"#\d+$", "", os.readlink(f"/proc/self/fd/{fd}")))
        real(fd)

    monkeypatch.setattr(os, "fsync", spy)
    return seen


def _must_be_synced(events: Path, version: int) -> set[str]:
    commit = events / "_delta_log" / f"{version:020d}.json"
    added = [json.loads(line)["add"]["path"] for line in commit.read_text().splitlines() if '"add"' in line]
    files = {str(events / unquote(p)) for p in added}
    return {*files, str(commit), str(events / "_delta_log"), str(events), *(os.path.dirname(f) for f in files)}


def test_an_acknowledged_append_has_its_data_files_commit_and_folders_synced(
    tmp_path: Path, synced: list[str]
) -> None:
    inv = Inventory.open(Path(os.path.realpath(tmp_path)) / "store")
    synced.clear()
    result = inv.record([{"event_type": "item_added", "item": "a", "occurred_at": "2024-01-01T00:00:00+00:00"},
                         {"event_type": "item_added", "item": "b", "occurred_at": "2024-02-01T00:00:00+00:00"}])
    want = _must_be_synced(inv.path / "events", result.version)
    assert want <= set(synced), want - set(synced)
    assert len([p for p in want if p.endswith(".parquet")]) == 2  # one file per day


@pytest.mark.parametrize("op", ["compact", "checkpoint"])
def test_compaction_and_checkpoints_are_synced(tmp_path: Path, synced: list[str], op: str) -> None:
    inv = Inventory.open(Path(os.path.realpath(tmp_path)) / "store")
    for i in range(3):
        inv.add_item("a")
    events = inv.path / "events"
    if op == "checkpoint":
        DeltaTable(str(events)).alter.set_table_properties({"delta.checkpointInterval": "1"})
    synced.clear()
    if op == "compact":
        inv.log.compact()
    else:
        inv.add_item("b")
    version = DeltaTable(str(events)).version()
    want = _must_be_synced(events, version)
    if op == "checkpoint":
        want |= {str(events / "_delta_log" / f"{version:020d}.checkpoint.parquet"),
                 str(events / "_delta_log" / "_last_checkpoint")}
    # the day's partition folder was there (a compaction merges files of existing days): the table folder gained no entry
    want.discard(str(events))
    assert want <= set(synced), want - set(synced)


def test_a_failing_sync_after_the_commit_is_a_commit_error_saying_it_is_committed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    inv = Inventory.open(tmp_path / "store")
    inv.add_item("a")

    real = os.fsync

    def broken(fd: int) -> None:  # the data files sync; the commit file, written after them, does not
        if "_delta_log" in os.readlink(f"/proc/self/fd/{fd}"):
            raise OSError(5, "injected I/O error")
        real(fd)

    monkeypatch.setattr(os, "fsync", broken)
    with pytest.raises(CommitError, match="committed and visible.*power loss.*do not retry"):
        inv.add_item("b")
    monkeypatch.undo()
    assert Inventory.open(tmp_path / "store").get_items() == [("a", 1), ("b", 1)]


def test_a_data_file_replaced_by_a_symlink_leading_out_is_never_read(tmp_path: Path) -> None:
    inv = Inventory.open(tmp_path / "store", snapshot_every=1_000_000)
    inv.add_item("apple")
    secret = tmp_path / "secret.txt"
    secret.write_text("root:x:0:0")
    data = _first_data_file(inv.path)
    data.unlink()
    data.symlink_to(secret)
    for attempt in (lambda: Inventory.open(inv.path).stock(), lambda: eventlog.sql.connect(inv.path)):
        with pytest.raises(StorageError, match="symlink") as caught:
            attempt()
        assert caught.value.file == str(data) and "root:x" not in str(caught.value)


def test_a_tail_file_replaced_by_a_symlink_leading_out_is_never_read_by_a_warm_read(tmp_path: Path) -> None:
    """A read from a snapshot checks the files it reads (the tail), as a cold read checks them all."""
    inv = Inventory.open(tmp_path / "store", snapshot_every=1_000_000)
    inv.add_item("apple")
    inv.snapshot()
    inv.add_item("pear")
    outside = tmp_path / "outside.parquet"
    tail = inv.path / "events" / EventLog.open(inv.path).files().sort("min_seq").item(-1, "path")
    shutil.copy(tail, outside)
    tail.unlink()
    tail.symlink_to(outside)
    with pytest.raises(StorageError, match="symlink") as caught:
        Inventory.open(inv.path).stock()
    assert caught.value.file == str(tail)


@pytest.mark.parametrize("named", ["../../outside.parquet", "/etc/outside.parquet", "file:///etc/outside.parquet"])
def test_a_delta_log_naming_a_data_file_outside_the_table_is_a_storage_error(tmp_path: Path, named: str) -> None:
    inv = Inventory.open(tmp_path / "store", snapshot_every=1_000_000)
    inv.add_item("apple")
    commit = inv.path / _commit(1)
    lines = [json.loads(line) for line in commit.read_text().splitlines()]
    for action in lines:
        if "add" in action:
            action["add"]["path"] = named
    commit.write_text("".join(json.dumps(a) + "\n" for a in lines))
    with pytest.raises(StorageError, match="outside the store|URL|absolute|'\\.\\.'"):
        Inventory.open(inv.path).stock()


def test_a_manifest_naming_a_parquet_file_outside_with_its_checksum_is_not_served_by_sql(tmp_path: Path) -> None:
    inv, _victim = _snapshotted(tmp_path)
    own = sorted((inv.path / "snapshots").glob("*.parquet"))[-1]
    fake = tmp_path / "fake.parquet"
    pl.read_parquet(own).with_columns(quantity=pl.lit(999, dtype=pl.Int64)).write_parquet(fake)
    _forge_manifest(inv, file=str(fake), sha256=hashlib.sha256(fake.read_bytes()).hexdigest(), seq=1)
    with pytest.warns(StorePathWarning, match="ignored"):
        con = eventlog.sql.connect(inv.path)
    try:
        assert con.sql("SELECT item, quantity FROM inventory").fetchall() == [("apple", 3)]
    finally:
        con.close()


def test_a_symlinked_events_folder_is_refused_saying_to_replace_the_link(tmp_path: Path) -> None:
    Inventory.open(tmp_path / "store").add_item("apple")
    (tmp_path / "store" / "events").rename(tmp_path / "elsewhere")
    (tmp_path / "store" / "events").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(StorePathError, match="is a symlink") as caught:
        Inventory.open(tmp_path / "store")
    assert "Replace the link" in str(caught.value) and "rename" not in str(caught.value)


def test_a_symlinked_stream_version_cache_is_neither_read_nor_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(eventlog.writer.StreamVersions, "PERSIST_AFTER", 1)
    inv = Inventory.open(tmp_path / "store")
    inv.add_item("apple")
    inv.add_item("apple")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    lie = elsewhere / f"streams-{2:015d}.parquet"
    pl.DataFrame({"stream_id": ["apple"], "version": [99]}).write_parquet(lie)
    shutil.rmtree(inv.path / "cache", ignore_errors=True)
    (inv.path / "cache").symlink_to(elsewhere)
    log = EventLog.open(inv.path)
    with pytest.warns(StorePathWarning, match="stream-version cache"):
        assert log.stream_version("apple") == 2
    log.append([{"event_type": "item_added", "stream_id": "apple", "quantity": 1}], expected_versions={"apple": 2})
    assert sorted(p.name for p in elsewhere.iterdir()) == [lie.name]


def test_a_stream_version_cache_polars_cannot_write_never_fails_an_append(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    inv = Inventory.open(tmp_path / "store")
    inv.add_item("apple")
    monkeypatch.setattr(eventlog.writer.StreamVersions, "PERSIST_AFTER", 1)

    def full(*args: object, **kwargs: object) -> None:
        raise pl.exceptions.ComputeError("No space left on device (os error 28)")

    monkeypatch.setattr(pl.DataFrame, "write_parquet", full)
    log = EventLog.open(inv.path)
    assert log.append([{"event_type": "item_added", "stream_id": "apple", "quantity": 1}]).last_seq == 2


def _projected(tmp_path: Path) -> tuple[Inventory, Path]:
    inv = Inventory.open(tmp_path / "store", snapshot_every=1_000_000)
    inv.add_item("apple", 2)
    inv.update_projections()
    table = inv.path / "projections" / "most_collected_items"
    return inv, table


def test_a_projection_data_file_replaced_by_a_symlink_leading_out_is_never_read(tmp_path: Path) -> None:
    inv, table = _projected(tmp_path)
    outside = tmp_path / "outside.parquet"
    data = next(table.rglob("*.parquet"))
    pl.read_parquet(data).with_columns(count=pl.lit(999, dtype=pl.Int64)).write_parquet(outside)
    data.unlink()
    data.symlink_to(outside)
    with pytest.raises(StorageError, match="symlink") as caught:
        Inventory.open(inv.path).projection("most_collected_items").read()
    assert caught.value.file == str(data) and "999" not in str(caught.value)


@pytest.mark.parametrize("named", ["../../outside.parquet", "/etc/outside.parquet"])
def test_a_projection_log_naming_a_data_file_outside_the_table_is_a_storage_error(tmp_path: Path, named: str) -> None:
    inv, table = _projected(tmp_path)
    commit = max((table / "_delta_log").glob("*.json"))
    lines = [json.loads(line) for line in commit.read_text().splitlines()]
    assert any("add" in action for action in lines)
    for action in lines:
        if "add" in action:
            action["add"]["path"] = named
    commit.write_text("".join(json.dumps(a) + "\n" for a in lines))
    with pytest.raises(StorageError, match="outside the store") as caught:
        Inventory.open(inv.path).projection("most_collected_items").read()
    assert "most_collected_items" in str(caught.value)
    inv.add_item("apple")  # an update reads the stored table first: refused there
    with pytest.raises(StorageError, match="outside the store") as caught:
        Inventory.open(inv.path).update_projections()
    assert "most_collected_items" in str(caught.value)
    tables = Inventory.open(inv.path).projector.tables  # the merge of touched keys reads the files holding them
    with pytest.raises(StorageError, match="outside the store"):
        tables.merge_keys("most_collected_items", pl.DataFrame({"item": ["apple"]}), ["item"], {}, total_rows=1)
    with pytest.raises(StorageError, match="outside the store"):  # compaction reads the files it merges
        tables.compact("most_collected_items")
    with pytest.raises(StorageError, match="outside the store"):  # SQL would read the file list
        tables.files("most_collected_items", tables.manifest("most_collected_items"))  # type: ignore[arg-type]
    with pytest.warns(ProjectionWarning, match="most_collected_items"):
        con = eventlog.sql.connect(inv.path)
    con.close()


def test_a_projection_data_file_with_a_column_its_table_lacks_is_a_storage_error_naming_it(tmp_path: Path) -> None:
    inv, table = _projected(tmp_path)
    data = next(table.rglob("*.parquet"))
    pl.read_parquet(data).with_columns(intruder=pl.lit("x")).write_parquet(data)
    with pytest.raises(StorageError, match="'intruder', which the table does not have") as caught:
        Inventory.open(inv.path).projection("most_collected_items").read()
    assert caught.value.file == str(data)
