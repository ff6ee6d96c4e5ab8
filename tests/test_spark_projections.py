"""eventlog.spark projections: every declarative projection computed on Spark equals the local
one, and tables rebuilt on Spark are the store's own — local reads, incremental updates, SQL
views and verify carry on from them, whether they came through the driver or as Spark's files.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from deltalake import DeltaTable
from polars.testing import assert_frame_equal

import eventlog.spark as on_spark
from eventlog import Agg, FunctionProjection, Inventory, Projection
from eventlog.datagen import generate_frame
from eventlog.errors import NoSparkFormError, ProjectionError
from eventlog.model.builtins import BUILTINS

pytestmark = [pytest.mark.xdist_group("spark")]

UTC = dt.timezone.utc
DECLARATIVE = [p.name for p in BUILTINS if isinstance(p, Projection)]
EVENTS = 20_000


def build(path: Path) -> Inventory:
    inv = Inventory.open(path)
    for part in generate_frame(EVENTS, seed=5, n_items=60, days=90, late_fraction=0.05).iter_slices(EVENTS // 2):
        inv.record(part)
    return inv


def local(frame: Any) -> pl.DataFrame:
    return pl.DataFrame(pl.from_arrow(frame.toArrow()))


def from_scratch(inv: Inventory, name: str) -> pl.DataFrame:
    """The projection folded from every event, by the local engine (no stored table involved)."""
    return inv.projector.compute_from(inv.projector.get(name), inv.log.scan())


def last_commit(inv: Inventory, name: str) -> dict[str, Any]:
    return DeltaTable(str(inv.path / "projections" / name)).history(1)[0]


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Inventory:
    return build(tmp_path_factory.mktemp("spark-projections") / "store with spaces; 'quotes' ✓")


def test_every_declarative_builtin_equals_the_local_projection(spark: Any, store: Inventory) -> None:
    assert DECLARATIVE == ["most_collected_items", "item_origins", "daily_flows", "daily_stock"]
    for name in DECLARATIVE:
        assert_frame_equal(local(on_spark.projection(spark, store.path, name)), store.projection(name).read())


def test_a_projection_at_a_seq_or_a_business_time_equals_the_local_read(spark: Any, store: Inventory) -> None:
    for as_of in (8_000, dt.datetime(2024, 2, 20, 12, tzinfo=UTC)):
        got = local(on_spark.projection(spark, store, "daily_stock", as_of=as_of))
        assert_frame_equal(got, store.projection("daily_stock").read(as_of))


def test_a_users_projection_of_an_inventory_is_computed_too(spark: Any, store: Inventory) -> None:
    last_origin = Projection("last_origin", keys={"item": "stream_id"},
                             aggregates={"origin": Agg.last("origin"), "n": Agg.count(where="quantity > 10")})
    store.register(last_origin)  # first/last: Spark's max_by with the hidden order key
    assert_frame_equal(local(on_spark.projection(spark, store, "last_origin")), from_scratch(store, "last_origin"))


def test_a_function_projection_has_no_spark_form(spark: Any, store: Inventory) -> None:
    with pytest.raises(NoSparkFormError, match="'stockouts' is a Python function .* rebuild 'daily_stock' on Spark"):
        on_spark.projection(spark, store, "stockouts")
    store.register(FunctionProjection("busiest", lambda events: events.group_by("stream_id").len()))
    before = store.projector.status("most_collected_items").version
    with pytest.raises(NoSparkFormError, match="'busiest' .* no Spark form") as raised:
        on_spark.rebuild(spark, store, ["most_collected_items", "busiest"])
    assert raised.value.name == "busiest" and isinstance(raised.value, ProjectionError)
    assert store.projector.status("most_collected_items").version == before  # refused before anything was built
    with pytest.raises(ProjectionError, match="no projection named 'nope'"):
        on_spark.projection(spark, store, "nope")


def test_tables_rebuilt_on_spark_are_the_stores_own(spark: Any, tmp_path: Path) -> None:
    inv = build(tmp_path / "rebuilt")
    inv.projection("daily_flows").rebuild()  # a local table first: Spark's build replaces it
    # Two through Spark's own Parquet files (driver_rows=0), two through the driver (Arrow).
    through_files = on_spark.rebuild(spark, inv.path, ["daily_flows", "item_origins"], driver_rows=0)
    through_driver = on_spark.rebuild(spark, inv.path, ["daily_stock", "most_collected_items"])
    head = inv.log.head()
    for status in [*through_files.values(), *through_driver.values()]:
        assert (status.checkpoint, status.lag, status.stale_definition) == (head, 0, False), status
    for name in through_files:
        files = DeltaTable(str(inv.path / "projections" / name)).file_uris()
        spark_names = [re.fullmatch(r"part-\d{5}-.+c000\.snappy\.parquet", Path(f).name) for f in files]
        assert files and all(spark_names)
        assert last_commit(inv, name)["operation"] in ("WRITE", "CREATE OR REPLACE TABLE")
    assert not list((inv.path / "projections" / ".staging").iterdir())
    assert json.loads(last_commit(inv, "daily_flows")["eventlog.full_build"]) is True

    fresh = Inventory.open(inv.path)
    for name in DECLARATIVE:
        assert_frame_equal(fresh.projection(name).read(), from_scratch(fresh, name))
    assert fresh.verify().ok  # verify recomputes every table from the log

    # Later events: a local update folds only the tail onto Spark's tables.
    fresh.record(generate_frame(3_000, seed=6, n_items=60, days=120).filter(pl.col("event_type") == "item_added"))
    fresh.update_projections(DECLARATIVE)
    for name in DECLARATIVE:
        assert last_commit(fresh, name)["eventlog.full_build"] == "false", name
        assert_frame_equal(fresh.projection(name).read(), from_scratch(fresh, name))
    keys = ", ".join(f'"{k}"' for k in fresh.projector.get("daily_flows").keys)
    view = fresh.sql(f"SELECT * FROM daily_flows ORDER BY {keys}")
    assert_frame_equal(view, from_scratch(fresh, "daily_flows"))
