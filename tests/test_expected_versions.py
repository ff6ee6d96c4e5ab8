"""Optimistic concurrency: ``expected_versions`` is checked atomically with the commit."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from support import AWKWARD_STREAMS, added, read_all

from eventlog import EventLog
from eventlog.errors import ConcurrencyError, EventLogError, ValidationError

STREAM = AWKWARD_STREAMS[3]  # "a;b; DROP TABLE events; --"


@pytest.fixture
def log(empty_log: EventLog) -> EventLog:
    """STREAM at version 2, "other" at version 1."""
    empty_log.append([added(STREAM), added("other"), added(STREAM)])
    return empty_log


@pytest.mark.parametrize(
    ("stream", "expected"),
    [
        (STREAM, 2),
        ("new", 0),
        ("new", "no_stream"),
        (STREAM, "exists"),
        (STREAM, "any"),
        ("new", "any"),
    ],
)
def test_expectation_that_holds_lets_the_batch_through(log: EventLog, stream: str, expected: Any) -> None:
    result = log.append([added(stream)], expected_versions={stream: expected})
    assert result.first_seq == 4
    assert log.stream_version(stream) == (3 if stream == STREAM else 1)


@pytest.mark.parametrize(
    ("stream", "expected", "actual"),
    [
        (STREAM, 1, 2),
        (STREAM, 3, 2),
        (STREAM, 0, 2),
        ("new", 1, 0),
        (STREAM, "no_stream", 2),
        ("new", "exists", 0),
    ],
)
def test_violated_expectation_raises_naming_stream_expected_and_actual(
    log: EventLog, unchanged: Callable[[EventLog], Any], stream: str, expected: Any, actual: int
) -> None:
    with unchanged(log), pytest.raises(ConcurrencyError) as caught:
        log.append([added(stream)], expected_versions={stream: expected})
    err = caught.value
    assert (err.stream, err.expected, err.actual) == (stream, expected, actual)
    assert repr(stream) in str(err)
    assert repr(expected) in str(err)
    assert f"actual version {actual}" in str(err)
    assert isinstance(err, EventLogError)


def test_one_violated_stream_rejects_the_whole_batch(log: EventLog, unchanged: Callable[[EventLog], Any]) -> None:
    with unchanged(log), pytest.raises(ConcurrencyError) as caught:
        log.append([added(STREAM), added("other")], expected_versions={STREAM: 2, "other": 5})
    assert caught.value.stream == "other"


def test_streams_not_in_the_batch_are_checked_too(log: EventLog, unchanged: Callable[[EventLog], Any]) -> None:
    with unchanged(log), pytest.raises(ConcurrencyError):
        log.append([added("new")], expected_versions={"other": "no_stream"})
    log.append([added("new")], expected_versions={"other": 1})
    assert log.stream_version("new") == 1


def test_expectation_sees_appends_made_through_another_log_object(
    log: EventLog, unchanged: Callable[[EventLog], Any]
) -> None:
    version = log.stream_version(STREAM)
    EventLog.open(log.path).append([added(STREAM)])
    with unchanged(log), pytest.raises(ConcurrencyError) as caught:
        log.append([added(STREAM)], expected_versions={STREAM: version})
    assert caught.value.actual == version + 1


def test_read_then_write_with_the_version_read_succeeds_in_a_loop(empty_log: EventLog) -> None:
    for _ in range(4):
        version = empty_log.stream_version(STREAM)
        empty_log.append([added(STREAM)] * 2, expected_versions={STREAM: version})
    assert read_all(empty_log)["stream_version"].to_list() == list(range(1, 9))


@pytest.mark.parametrize("bad", [-1, "latest", "ANY", None, 1.0, True, False, [2]])
def test_bad_expected_value_is_a_validation_error(
    log: EventLog, unchanged: Callable[[EventLog], Any], bad: Any
) -> None:
    with unchanged(log), pytest.raises(ValidationError) as caught:
        log.append([added(STREAM)], expected_versions={STREAM: bad})
    assert STREAM in str(caught.value)


def test_empty_expectations_check_nothing(log: EventLog) -> None:
    assert log.append([added(STREAM)], expected_versions={}).first_seq == 4
