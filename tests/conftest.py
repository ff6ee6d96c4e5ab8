"""Shared fixtures: the schema, an empty and an existing store, a sample batch, every local engine."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from support import ADDED, AWKWARD_STREAMS, as_polars, make_schema, read_all, sample_records

from eventlog import EventLog, EventSchema
from eventlog.engines import LOCAL_ENGINES


@pytest.fixture(scope="session", params=LOCAL_ENGINES)
def engine(request: pytest.FixtureRequest) -> str:
    """Each local engine's name in turn: a state or projection test that takes it runs on every
    engine (``Inventory.open(path, engine=engine)``), and each run must agree with the reference.

    Session-scoped so that hypothesis tests may take it (it is a name, nothing to reset).
    """
    return str(request.param)


@pytest.fixture(scope="session")
def schema() -> EventSchema:
    return make_schema()


@pytest.fixture
def sample_batch() -> list[dict[str, Any]]:
    return sample_records()


@pytest.fixture
def store_path(tmp_path: Path) -> Path:
    return tmp_path / "store with spaces; 'quotes' ✓"


@pytest.fixture
def empty_log(store_path: Path, schema: EventSchema) -> EventLog:
    return EventLog.create(store_path, schema)


@pytest.fixture
def existing_log(empty_log: EventLog) -> EventLog:
    """Three committed batches (7 events) over several awkward streams."""
    records = sample_records()
    empty_log.append(records[:2])
    empty_log.append(as_polars(records[2:]))
    empty_log.append(
        [
            {"event_type": ADDED, "stream_id": s, "sku": f"sku {i}", "quantity": i + 1}
            for i, s in enumerate(AWKWARD_STREAMS[:2])
        ]
    )
    return empty_log


@pytest.fixture
def unchanged() -> Callable[[EventLog], Any]:
    """``with unchanged(log): ...`` fails unless head and the Delta version stay where they were."""

    @contextmanager
    def check(log: EventLog) -> Iterator[None]:
        head, version = log.head(), log.version
        before = read_all(log)
        yield
        assert (log.head(), log.version) == (head, version)
        assert read_all(log).equals(before)

    return check


@pytest.fixture(scope="session")
def spark(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """One local Spark session for every Spark test: starting one takes 15-90 s on these machines.

    Two cores, UTC, few shuffle partitions, no UI or progress bar, and every folder Spark
    writes (warehouse, scratch, the JVM's temp files) under the test's tmp dir. For stores of
    thousands of events, compiling costs more than running: the JVM stops at its quick
    compiler, and Spark neither generates code per query nor re-plans (the results are the
    same; measured here, this halved the Spark tests' time).
    """
    import eventlog.spark  # noqa: F401  (first: it says what to install when pyspark is missing)
    from pyspark.sql import SparkSession

    root = tmp_path_factory.mktemp("spark")
    for folder in ("warehouse", "local", "tmp"):
        (root / folder).mkdir()
    session = (
        SparkSession.builder.master("local[2]").appName("eventlog-tests")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.shuffle.partitions", "2")
        .config("spark.default.parallelism", "2")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.warehouse.dir", str(root / "warehouse"))
        .config("spark.local.dir", str(root / "local"))
        .config("spark.driver.extraJavaOptions", f"-Djava.io.tmpdir={root / 'tmp'} -XX:TieredStopAtLevel=1 -XX:+UseSerialGC")
        .config("spark.sql.codegen.wholeStage", "false")
        .config("spark.sql.adaptive.enabled", "false")
        .config("spark.sql.sources.parallelPartitionDiscovery.threshold", "100000")
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()
