"""Idempotent appends: a retry with a committed idempotency_key writes nothing and returns the original seqs."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from support import added, read_all

from eventlog import EventLog
from eventlog.errors import ConcurrencyError, IdempotencyConflictError, ValidationError

KEY = "order 42; 'retry' ✓"


def test_retry_returns_the_original_seqs_and_writes_nothing(
    existing_log: EventLog, unchanged: Callable[[EventLog], Any]
) -> None:
    batch = [added("a"), added("b")]
    first = existing_log.append(batch, idempotency_key=KEY)
    with unchanged(existing_log):
        retry = existing_log.append(batch, idempotency_key=KEY)
    assert (retry.first_seq, retry.last_seq, retry.duplicate) == (first.first_seq, first.last_seq, True)
    assert retry.recorded_at == first.recorded_at
    assert first.duplicate is False


def test_retry_from_a_freshly_opened_log_is_recognised(
    existing_log: EventLog, unchanged: Callable[[EventLog], Any]
) -> None:
    batch = [added("a"), added("b"), added("a")]
    first = existing_log.append(batch, idempotency_key=KEY)
    existing_log.append([added("c")])  # the log moves on before the retry arrives
    other = EventLog.open(existing_log.path)
    with unchanged(existing_log):
        retry = other.append(batch, idempotency_key=KEY)
    assert (retry.first_seq, retry.last_seq, retry.duplicate) == (first.first_seq, first.last_seq, True)


def test_retry_with_given_event_ids_is_a_duplicate_not_an_error(existing_log: EventLog) -> None:
    batch = [added("a", event_id="e-1"), added("a", event_id="e-2")]
    first = existing_log.append(batch, idempotency_key=KEY)
    retry = existing_log.append(batch, idempotency_key=KEY)
    assert (retry.first_seq, retry.duplicate) == (first.first_seq, True)


def test_retry_is_recognised_even_if_its_expectation_no_longer_holds(existing_log: EventLog) -> None:
    first = existing_log.append([added("new")], expected_versions={"new": "no_stream"}, idempotency_key=KEY)
    retry = existing_log.append([added("new")], expected_versions={"new": "no_stream"}, idempotency_key=KEY)
    assert (retry.first_seq, retry.duplicate) == (first.first_seq, True)


def test_different_keys_both_commit(existing_log: EventLog) -> None:
    head = existing_log.head()
    one = existing_log.append([added("a")], idempotency_key="one")
    two = existing_log.append([added("a")], idempotency_key="two")
    assert (one.first_seq, two.first_seq) == (head + 1, head + 2)
    assert not one.duplicate and not two.duplicate


def test_appends_without_a_key_are_never_deduplicated(existing_log: EventLog) -> None:
    head = existing_log.head()
    existing_log.append([added("a")])
    existing_log.append([added("a")])
    assert existing_log.head() == head + 2


def test_rejected_attempts_do_not_use_up_the_key(existing_log: EventLog) -> None:
    with pytest.raises(ValidationError):
        existing_log.append([added("a", quantity=0)], idempotency_key=KEY)
    with pytest.raises(ConcurrencyError):
        existing_log.append([added("a")], expected_versions={"a": 99}, idempotency_key=KEY)
    result = existing_log.append([added("a")], idempotency_key=KEY)
    assert result.duplicate is False
    assert read_all(existing_log)["seq"].to_list()[-1] == result.last_seq


@pytest.mark.slow
def test_key_is_remembered_across_a_delta_checkpoint(empty_log: EventLog) -> None:
    first = empty_log.append([added("a")], idempotency_key=KEY)
    for i in range(105):  # a checkpoint is written every 100 commits
        empty_log.append([added("a")], idempotency_key=f"k{i}")
    retry = EventLog.open(empty_log.path).append([added("a")], idempotency_key=KEY)
    assert (retry.first_seq, retry.duplicate) == (first.first_seq, True)
    assert empty_log.head() == 106


@pytest.mark.parametrize("change", ["another value", "another order", "one row more", "another stream"])
def test_a_key_reused_with_a_different_batch_is_a_conflict_and_writes_nothing(
    existing_log: EventLog, unchanged: Callable[[EventLog], Any], change: str
) -> None:
    batch = [added("a"), added("b")]
    first = existing_log.append(batch, idempotency_key=KEY)
    other = {
        "another value": [added("a"), {**added("b"), "quantity": 7}],
        "another order": [added("b"), added("a")],
        "one row more": [*batch, added("c")],
        "another stream": [added("a"), added("z")],
    }[change]
    with unchanged(existing_log), pytest.raises(IdempotencyConflictError, match=r"different batch") as caught:
        EventLog.open(existing_log.path).append(other, idempotency_key=KEY)
    assert (caught.value.key, caught.value.first_seq, caught.value.last_seq) == (KEY, first.first_seq, first.last_seq)
    assert isinstance(caught.value, ValueError)
