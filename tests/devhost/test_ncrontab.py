"""NCRONTAB schedules: seconds first, 5 fields, day-of-month AND day-of-week, TimeSpans."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from devhost.ncrontab import parse_schedule

START = datetime(2024, 1, 1, 0, 0, 1, 500_000, tzinfo=UTC)  # a Monday


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("*/1 * * * * *", datetime(2024, 1, 1, 0, 0, 2, tzinfo=UTC)),
        ("*/5 * * * * *", datetime(2024, 1, 1, 0, 0, 5, tzinfo=UTC)),
        ("0 */5 * * * *", datetime(2024, 1, 1, 0, 5, tzinfo=UTC)),
        ("0 30 9 * * 1-5", datetime(2024, 1, 1, 9, 30, tzinfo=UTC)),
        ("0 0 0 * * Sun", datetime(2024, 1, 7, tzinfo=UTC)),
        ("*/10 * * * *", datetime(2024, 1, 1, 0, 10, tzinfo=UTC)),  # 5 fields: minutes first
        # Both day fields restricted: NCRONTAB needs both (Friday the 13th), cron would OR them.
        ("0 0 0 13 * 5", datetime(2024, 9, 13, tzinfo=UTC)),
    ],
)
def test_next_occurrence(expression, expected):
    assert parse_schedule(expression).next_after(START) == expected


def test_the_next_occurrence_is_strictly_after_the_given_moment():
    exactly = datetime(2024, 1, 1, 0, 0, 2, tzinfo=UTC)

    assert parse_schedule("*/1 * * * * *").next_after(exactly) == exactly + timedelta(seconds=1)


def test_a_timespan_schedule_repeats_the_interval():
    assert parse_schedule("00:00:30").next_after(START) == START + timedelta(seconds=30)


@pytest.mark.parametrize("expression", ["* * * *", "61 * * * * *", "nonsense here x y z"])
def test_invalid_expressions_are_rejected(expression):
    with pytest.raises(ValueError):
        parse_schedule(expression)
