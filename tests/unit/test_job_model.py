"""The job definition's startTime: an instant, or a wall time in the recurrence's timeZone."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from shared.model.job import JobProperties, load_stored_definition, parse_job_definition

NOW = datetime(2026, 3, 2, 8, 25, 10, tzinfo=UTC)
ACTION = {"type": "Http", "request": {"uri": "https://example.com/", "method": "GET"}}


def job(start: str, zone: str | None = None, **recurrence: Any) -> JobProperties:
    if zone is not None:
        recurrence = {"frequency": "Day", "timeZone": zone, **recurrence}
    body: dict[str, Any] = {"startTime": start, "action": ACTION}
    if recurrence:
        body["recurrence"] = recurrence
    return parse_job_definition({"properties": body}, NOW)


def start_error(start: str, **recurrence: Any) -> str:
    """The single validation error of a job with this startTime; asserts it names startTime."""
    with pytest.raises(ValidationError) as caught:
        job(start, **recurrence)
    errors = caught.value.errors()
    assert len(errors) == 1, errors
    assert errors[0]["loc"] == ("properties", "startTime")
    return str(errors[0]["msg"])


def test_start_without_offset_and_with_time_zone_is_a_wall_time_there() -> None:
    assert job("2030-01-07T09:00:00", "Europe/Berlin").start_time == datetime(
        2030, 1, 7, 8, tzinfo=UTC
    )
    assert job("2030-07-08T09:00:00", "America/New_York").start_time == datetime(
        2030, 7, 8, 13, tzinfo=UTC
    )


def test_start_with_z_or_an_offset_stays_an_instant_whatever_the_zone() -> None:
    assert job("2030-01-07T09:00:00Z", "Europe/Berlin").start_time == datetime(
        2030, 1, 7, 9, tzinfo=UTC
    )
    assert job("2030-01-07T09:00:00+02:00", "Europe/Berlin").start_time == datetime(
        2030, 1, 7, 7, tzinfo=UTC
    )


def test_start_without_offset_and_without_time_zone_is_utc() -> None:
    assert job("2030-01-07T09:00:00").start_time == datetime(2030, 1, 7, 9, tzinfo=UTC)
    assert job("2030-01-07T09:00:00", cron="0 9 * * *").start_time == datetime(
        2030, 1, 7, 9, tzinfo=UTC
    )


def test_start_wall_time_in_a_spring_forward_gap_is_shifted_forward() -> None:
    """02:30 does not exist in Berlin on 2030-03-31: it is 03:30 CEST, as the schedule reads it."""
    assert job("2030-03-31T02:30:00", "Europe/Berlin").start_time == datetime(
        2030, 3, 31, 1, 30, tzinfo=UTC
    )


def test_start_is_stored_as_an_instant_and_read_back_unchanged() -> None:
    properties = job("2030-01-07T09:00:00", "Europe/Berlin")
    stored = properties.model_dump(mode="json", by_alias=True, exclude_none=True)
    assert stored["startTime"] == "2030-01-07T08:00:00Z"
    assert load_stored_definition(stored).start_time == properties.start_time


@pytest.mark.parametrize(
    "start",
    [
        "0001-01-01T00:00:00+14:00",  # year 0 in UTC
        "9999-12-31T23:00:00-14:00",  # year 10000 in UTC
    ],
)
def test_start_that_utc_cannot_hold_names_start_time(start: str) -> None:
    assert "0001-01-01T00:00:00Z to 9999-12-31T23:59:59Z" in start_error(start)


@pytest.mark.parametrize(
    ("start", "zone"),
    [
        ("0001-01-01T00:00:00Z", "Pacific/Kiritimati"),  # its LMT is UTC-10:29: year 0
        ("0001-01-01T00:00:00", "Asia/Tokyo"),  # a wall time of year 1 at UTC+9:18: year 0
        ("9999-12-31T20:00:00Z", "Pacific/Kiritimati"),  # year 10000 on the wall clock
    ],
)
def test_start_whose_wall_clock_in_the_zone_is_off_the_calendar_names_start_time(
    start: str, zone: str
) -> None:
    assert zone in start_error(start, zone=zone)


def test_a_bare_properties_object_is_refused_at_the_same_location_as_the_envelope() -> None:
    """The API names the field from the location alone, whichever form the body came in."""
    bad = {"startTime": "not a time", "action": ACTION}
    locations = []
    for body in ({"properties": bad}, bad):
        with pytest.raises(ValidationError) as caught:
            parse_job_definition(body, NOW)
        locations.append([error["loc"] for error in caught.value.errors()])

    assert locations == [[("properties", "startTime")], [("properties", "startTime")]]
