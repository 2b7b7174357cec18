"""The overview's lateness percentiles: fine enough below a second to show a regression."""

from __future__ import annotations

from datetime import UTC, datetime

from shared.storage.activity import (
    LATENESS_BOUNDS,
    HourActivity,
    lateness_bucket,
    lateness_percentiles,
)


def hour_with(*seconds: float) -> HourActivity:
    hour = HourActivity(hour=datetime(2030, 1, 1, tzinfo=UTC))
    for value in seconds:
        hour.lateness[lateness_bucket(value)] += 1
    return hour


def test_lateness_under_a_second_is_told_in_milliseconds() -> None:
    hour = hour_with(*([0.01] * 90), *([0.3] * 9), 400)
    assert lateness_percentiles([hour]) == {"p50": "< 25 ms", "p90": "< 25 ms", "p99": "< 500 ms"}


def test_beyond_the_last_bound_and_nothing_ran() -> None:
    assert lateness_percentiles([hour_with(999)]) == dict.fromkeys(("p50", "p90", "p99"), "> 300 s")
    assert lateness_percentiles([]) == dict.fromkeys(("p50", "p90", "p99"))
    assert lateness_bucket(0.0) == 0 and lateness_bucket(1e9) == len(LATENESS_BOUNDS)
