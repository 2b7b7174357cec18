"""The CLI's schedule flags and its describer, without the app (`sched job create`, `job next`)."""

from __future__ import annotations

import pytest

from scheduler_cli.describe import describe_schedule
from scheduler_cli.errors import CliError, ExitCode
from scheduler_cli.schedule import ScheduleFlags, apply_schedule, iso_duration


def schedule(**flags: object) -> dict[str, object]:
    properties: dict[str, object] = {}
    apply_schedule(properties, ScheduleFlags(**flags))  # type: ignore[arg-type]
    return properties


def test_every_and_cron_and_end():
    assert schedule(every="15m") == {"recurrence": {"frequency": "Minute", "interval": 15}}
    assert schedule(every="1mo", monthdays="1,-1", count=3)["recurrence"] == {
        "frequency": "Month",
        "schedule": {"monthDays": [1, -1]},
        "count": 3,
    }
    assert schedule(cron="0 */15 * * * *", tz="America/New_York") == {
        "recurrence": {"cron": "0 */15 * * * *", "timeZone": "America/New_York"}
    }
    assert schedule(times="09:00,09:30") == {
        "recurrence": {"frequency": "Day", "schedule": {"hours": [9], "minutes": [0, 30]}}
    }


@pytest.mark.parametrize(
    ("flags", "says"),
    [
        ({"every": "15x"}, "--every '15x'"),
        ({"times": "09:00,17:30"}, "use --cron"),
        ({"cron": "* *"}, "5 fields"),
        ({"cron": "0 * * * *", "every": "1h"}, "cannot be combined"),
        ({"weekdays": "mon,funday"}, "'funday' is not a day"),
        ({"tz": "Mars/Base"}, "not an IANA time zone"),
        ({"count": 2}, "need a recurrence"),
        ({"at": "tomorrow"}, "--at 'tomorrow'"),
    ],
)
def test_bad_flags_are_usage_errors(flags, says):
    with pytest.raises(CliError) as refused:
        schedule(**flags)
    assert refused.value.code == ExitCode.USAGE
    assert says in refused.value.message


def test_durations():
    assert [iso_duration("f", t) for t in ("30s", "5m", "1h", "2d", "pt10s")] == [
        "PT30S",
        "PT5M",
        "PT1H",
        "P2D",
        "PT10S",
    ]


@pytest.mark.parametrize(
    ("properties", "words"),
    [
        ({}, "once, as soon as it is saved"),
        ({"startTime": "2030-01-01T08:00:00Z"}, "once, at 2030-01-01T08:00:00Z"),
        ({"recurrence": {"frequency": "Minute", "interval": 15}}, "every 15 minutes (UTC)"),
        (
            {"recurrence": {"frequency": "Month", "count": 10, "schedule": {
                "monthlyOccurrences": [{"day": "Friday", "occurrence": -1}],
                "hours": [17], "minutes": [30]}}},
            "every month on the last Friday at 17:30 (UTC), 10 times at most",
        ),
        (
            {"recurrence": {"cron": "0 */15 * * * *", "timeZone": "America/New_York"}},
            "on cron '0 */15 * * * *' (NCRONTAB, seconds first) in America/New_York",
        ),
    ],
)  # fmt: skip
def test_schedules_in_words(properties, words):
    assert describe_schedule(properties) == words
