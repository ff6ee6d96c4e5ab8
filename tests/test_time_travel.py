"""Time travel: as_of cuts the log by position (seq) or by business time (occurred_at);
known_at cuts it by what had been recorded, for bitemporal questions. On every local engine."""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path

import pytest
import reference
from inventory_helpers import events_of, store

from eventlog import Inventory
from eventlog.errors import ValidationError

UTC = dt.timezone.utc
JAN_15 = dt.datetime(2024, 1, 15, 12, 0, tzinfo=UTC)
FEB_1 = dt.datetime(2024, 2, 1, 10, 0, tzinfo=UTC)
FEB_20 = dt.datetime(2024, 2, 20, 18, 0, tzinfo=UTC)


def _add(item: str, quantity: int, at: dt.datetime) -> dict:
    return {"event_type": "item_added", "item": item, "quantity": quantity, "occurred_at": at}


def _remove(item: str, quantity: int, at: dt.datetime) -> dict:
    return {"event_type": "item_removed", "item": item, "quantity": quantity, "occurred_at": at}


@pytest.fixture
def inventory(tmp_path: Path, engine: str) -> Inventory:
    """seq 1: +5 sword (15 Jan); seq 2: -2 sword (20 Feb); seq 3: +1 sword (1 Feb, recorded after seq 2)."""
    inv = Inventory.open(store(tmp_path), engine=engine)
    inv.record([_add("sword", 5, JAN_15)])
    inv.record([_remove("sword", 2, FEB_20)])
    inv.record([_add("sword", 1, FEB_1)])
    return inv


# --- as_of: log position ------------------------------------------------------------------


@pytest.mark.parametrize(("seq", "count"), [(0, 0), (1, 5), (2, 3), (3, 4)])
def test_as_of_a_seq_counts_the_events_up_to_and_including_it(inventory: Inventory, seq: int, count: int) -> None:
    assert inventory.get_count("sword", as_of=seq) == count


def test_as_of_a_seq_past_the_head_is_the_current_state(inventory: Inventory) -> None:
    assert inventory.stock(as_of=99).equals(inventory.stock())


def test_as_of_a_seq_keeps_the_stream_version_of_that_point(inventory: Inventory) -> None:
    assert inventory.stock(as_of=2).get_column("stream_version").to_list() == [2]


def test_as_of_a_digit_string_is_a_seq(inventory: Inventory) -> None:
    assert inventory.get_count("sword", as_of="2") == 3


def test_as_of_a_negative_seq_is_a_validation_error(inventory: Inventory) -> None:
    with pytest.raises(ValidationError) as info:
        inventory.stock(as_of=-1)
    assert info.value.field == "as_of"


# --- as_of: business time -----------------------------------------------------------------


def test_as_of_a_datetime_counts_events_that_occurred_by_then_in_any_log_order(inventory: Inventory) -> None:
    # The 1 Feb add was recorded last, yet it counts for any time after 1 Feb 10:00.
    assert inventory.get_count("sword", as_of=FEB_1) == 6
    assert inventory.get_count("sword", as_of=FEB_1 - dt.timedelta(microseconds=1)) == 5


def test_as_of_a_datetime_in_another_zone_means_the_same_instant(inventory: Inventory) -> None:
    plus_two = dt.timezone(dt.timedelta(hours=2))
    assert inventory.get_count("sword", as_of=FEB_1.astimezone(plus_two)) == 6


def test_as_of_a_date_means_the_end_of_that_utc_day(inventory: Inventory) -> None:
    assert inventory.get_count("sword", as_of=dt.date(2024, 1, 31)) == 5
    assert inventory.get_count("sword", as_of=dt.date(2024, 2, 1)) == 6
    assert inventory.get_count("sword", as_of=dt.date(2024, 2, 20)) == 4


def test_as_of_an_iso_date_string_is_the_end_of_that_utc_day(inventory: Inventory) -> None:
    assert inventory.get_count("sword", as_of="2024-02-01") == 6


def test_as_of_an_iso_timestamp_string_with_an_offset(inventory: Inventory) -> None:
    assert inventory.get_count("sword", as_of="2024-02-01T12:00:00+02:00") == 6
    assert inventory.get_count("sword", as_of="2024-02-01T09:59:59Z") == 5


def test_as_of_before_any_event_is_empty(inventory: Inventory) -> None:
    assert inventory.stock(as_of=dt.date(2023, 12, 31)).height == 0


def test_a_business_cut_keeps_the_last_change_and_stream_version_it_saw(inventory: Inventory) -> None:
    row = inventory.stock(as_of=dt.date(2024, 2, 1)).row(0, named=True)
    assert (row["quantity"], row["last_changed_at"], row["stream_version"]) == (6, FEB_1, 3)


def test_as_of_a_naive_datetime_is_rejected_naming_as_of(inventory: Inventory) -> None:
    with pytest.raises(ValidationError, match="time zone") as info:
        inventory.stock(as_of=dt.datetime(2024, 2, 1))
    assert info.value.field == "as_of"


def test_as_of_a_naive_iso_string_is_rejected_naming_as_of(inventory: Inventory) -> None:
    with pytest.raises(ValidationError, match="time zone") as info:
        inventory.get_count("sword", as_of="2024-02-01T10:00:00")
    assert info.value.field == "as_of"


@pytest.mark.parametrize("bad", ["yesterday", True, 1.5])
def test_as_of_something_that_is_not_a_cut_is_rejected(inventory: Inventory, bad: object) -> None:
    with pytest.raises(ValidationError) as info:
        inventory.stock(as_of=bad)  # type: ignore[arg-type]
    assert info.value.field == "as_of"


# --- known_at: what had been recorded -----------------------------------------------------


def test_known_at_a_seq_ignores_events_recorded_later(inventory: Inventory) -> None:
    assert inventory.stock(known_at=2).get_column("quantity").to_list() == [3]


def test_known_at_a_datetime_is_the_log_as_it_was_then(inventory: Inventory) -> None:
    recorded = inventory.history("sword").get_column("recorded_at").to_list()
    between = recorded[1] + (recorded[2] - recorded[1]) / 2
    assert inventory.stock(known_at=between).rows() == reference.stock(events_of(inventory), seq=2)


def test_known_at_before_anything_was_recorded_is_empty(inventory: Inventory) -> None:
    assert inventory.stock(known_at=dt.datetime(2000, 1, 1, tzinfo=UTC)).height == 0


def test_known_at_a_naive_datetime_is_rejected_naming_known_at(inventory: Inventory) -> None:
    with pytest.raises(ValidationError) as info:
        inventory.stock(known_at=dt.datetime(2024, 3, 1))
    assert info.value.field == "known_at"


def test_as_of_and_known_at_seqs_take_the_earlier(inventory: Inventory) -> None:
    assert inventory.get_count("sword", as_of=3) == 4
    assert inventory.stock(as_of=3, known_at=1).get_column("quantity").to_list() == [5]


def test_late_imported_february_events_change_what_we_know_about_february(tmp_path: Path, engine: str) -> None:
    """Bitemporal: what we believed at the end of February about 1 Feb, and what we know now.

    January and the first days of February were recorded on time; events of mid-February
    were imported later (in March), backdated to when they happened.
    """
    inv = Inventory.open(store(tmp_path), engine=engine)
    inv.record([_add("potion", 10, dt.datetime(2024, 1, 10, tzinfo=UTC))])
    inv.record([_remove("potion", 3, dt.datetime(2024, 2, 1, 9, 0, tzinfo=UTC))])
    time.sleep(0.002)
    believed_on_1_march = inv.log.scan().collect().get_column("recorded_at").max() + dt.timedelta(microseconds=500)
    inv.record([  # the late import
        _remove("potion", 4, dt.datetime(2024, 2, 1, 8, 0, tzinfo=UTC)),
        _add("potion", 2, dt.datetime(2024, 2, 14, tzinfo=UTC)),
    ])
    on_1_feb = dt.date(2024, 2, 1)
    assert inv.get_count("potion", as_of=on_1_feb) == 3  # what we know now
    assert inv.stock(as_of=on_1_feb, known_at=believed_on_1_march).get_column("quantity").to_list() == [7]
    events = events_of(inv)
    believed_head = reference.known_by(events, believed_on_1_march)
    assert believed_head == 2
    business = dt.datetime(2024, 2, 1, 23, 59, 59, 999999, tzinfo=UTC)
    assert inv.stock(as_of=on_1_feb, known_at=believed_on_1_march).rows() == reference.stock(
        events, seq=believed_head, business=business
    )
    assert inv.stock(as_of=on_1_feb).rows() == reference.stock(events, business=business)
