"""The recurrence engine: Azure Scheduler's vectors (docs/azure-scheduler.md §3/§4), DST, cron."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from shared.model.recurrence import Recurrence
from shared.recurrence import Timeline

# A Monday. Every example below that needs a startTime uses it, created at that very instant.
START = datetime(2026, 3, 2, 8, 25, 10, tzinfo=UTC)


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)  # type: ignore[arg-type, misc]


def rec(**fields: Any) -> Recurrence:
    return Recurrence.model_validate(fields)


def iso(moments: list[datetime]) -> list[str]:
    """UTC instants as compact strings; also checks the engine's output contract."""
    for moment in moments:
        assert moment.tzinfo is UTC and moment.microsecond == 0
    assert moments == sorted(set(moments)), "occurrences must be strictly increasing"
    return [moment.strftime("%Y-%m-%dT%H:%M:%S") for moment in moments]


def preview(
    schedule: dict[str, Any] | None,
    frequency: str,
    limit: int,
    start: datetime | None = START,
    created: datetime = START,
    **fields: Any,
) -> list[str]:
    recurrence = rec(frequency=frequency, schedule=schedule, **fields)
    return iso(Timeline(start, recurrence, created).preview(limit))


# docs/azure-scheduler.md §4, all 31 rows; startTime = creation time = Mon 2026-03-02 08:25:10Z.
MWF = ["monday", "wednesday", "friday"]
WORKDAYS = ["monday", "tuesday", "wednesday", "thursday", "friday"]
QUARTERS = [0, 15, 30, 45]
FIRST_FRIDAY = {"day": "friday", "occurrence": 1}
LAST_FRIDAY = {"day": "friday", "occurrence": -1}
EXAMPLES: list[tuple[int, dict[str, Any], str, list[str]]] = [
    (1, {"hours": [5]}, "day", ["2026-03-03T05:25:10", "2026-03-04T05:25:10"]),
    (2, {"minutes": [15], "hours": [5]}, "day", ["2026-03-03T05:15:10", "2026-03-04T05:15:10"]),
    (
        3,
        {"minutes": [15], "hours": [5, 17]},
        "day",
        ["2026-03-02T17:15:10", "2026-03-03T05:15:10", "2026-03-03T17:15:10"],
    ),
    (
        4,
        {"minutes": [15, 45], "hours": [5, 17]},
        "day",
        [
            "2026-03-02T17:15:10",
            "2026-03-02T17:45:10",
            "2026-03-03T05:15:10",
            "2026-03-03T05:45:10",
            "2026-03-03T17:15:10",
        ],
    ),
    (
        5,
        {"minutes": QUARTERS},
        "day",
        ["2026-03-02T08:30:10", "2026-03-02T08:45:10", "2026-03-02T09:00:10"],
    ),
    (
        6,
        {"hours": list(range(24))},
        "day",
        ["2026-03-02T08:25:10", "2026-03-02T09:25:10", "2026-03-02T10:25:10"],
    ),
    (
        7,
        {"minutes": [0]},
        "day",
        ["2026-03-02T09:00:10", "2026-03-02T10:00:10", "2026-03-02T11:00:10"],
    ),
    (
        8,
        {"minutes": [15]},
        "day",
        ["2026-03-02T09:15:10", "2026-03-02T10:15:10", "2026-03-02T11:15:10"],
    ),
    (
        9,
        {"hours": [17], "weekDays": ["saturday"]},
        "week",
        ["2026-03-07T17:25:10", "2026-03-14T17:25:10", "2026-03-21T17:25:10"],
    ),
    (
        10,
        {"hours": [17], "weekDays": MWF},
        "week",
        [
            "2026-03-02T17:25:10",
            "2026-03-04T17:25:10",
            "2026-03-06T17:25:10",
            "2026-03-09T17:25:10",
        ],
    ),
    (
        11,
        {"minutes": [15, 45], "hours": [17], "weekDays": MWF},
        "week",
        [
            "2026-03-02T17:15:10",
            "2026-03-02T17:45:10",
            "2026-03-04T17:15:10",
            "2026-03-04T17:45:10",
            "2026-03-06T17:15:10",
        ],
    ),
    (
        12,
        {"hours": [5, 17], "weekDays": MWF},
        "week",
        [
            "2026-03-02T17:25:10",
            "2026-03-04T05:25:10",
            "2026-03-04T17:25:10",
            "2026-03-06T05:25:10",
        ],
    ),
    (
        13,
        {"minutes": [15, 45], "hours": [5, 17], "weekDays": MWF},
        "week",
        [
            "2026-03-02T17:15:10",
            "2026-03-02T17:45:10",
            "2026-03-04T05:15:10",
            "2026-03-04T05:45:10",
            "2026-03-04T17:15:10",
        ],
    ),
    (
        14,
        {"minutes": QUARTERS, "weekDays": WORKDAYS},
        "week",
        ["2026-03-02T08:30:10", "2026-03-02T08:45:10", "2026-03-02T09:00:10"],
    ),
    (
        15,
        {"minutes": QUARTERS, "hours": list(range(9, 17)), "weekDays": WORKDAYS},
        "week",
        ["2026-03-02T09:00:10", "2026-03-02T09:15:10", "2026-03-02T09:30:10"],
    ),
    (
        16,
        {"weekDays": ["sunday"]},
        "week",
        ["2026-03-08T08:25:10", "2026-03-15T08:25:10", "2026-03-22T08:25:10"],
    ),
    (
        17,
        {"weekDays": ["tuesday", "thursday"]},
        "week",
        [
            "2026-03-03T08:25:10",
            "2026-03-05T08:25:10",
            "2026-03-10T08:25:10",
            "2026-03-12T08:25:10",
        ],
    ),
    (
        18,
        {"minutes": [0], "hours": [6], "monthDays": [28]},
        "month",
        ["2026-03-28T06:00:10", "2026-04-28T06:00:10", "2026-05-28T06:00:10"],
    ),
    (
        19,
        {"minutes": [0], "hours": [6], "monthDays": [-1]},
        "month",
        [
            "2026-03-31T06:00:10",
            "2026-04-30T06:00:10",
            "2026-05-31T06:00:10",
            "2026-06-30T06:00:10",
        ],
    ),
    (
        20,
        {"minutes": [0], "hours": [6], "monthDays": [1, -1]},
        "month",
        [
            "2026-03-31T06:00:10",
            "2026-04-01T06:00:10",
            "2026-04-30T06:00:10",
            "2026-05-01T06:00:10",
        ],
    ),
    (
        21,
        {"monthDays": [1, -1]},
        "month",
        [
            "2026-03-31T08:25:10",
            "2026-04-01T08:25:10",
            "2026-04-30T08:25:10",
            "2026-05-01T08:25:10",
        ],
    ),
    (
        22,
        {"monthDays": [1, 14]},
        "month",
        ["2026-03-14T08:25:10", "2026-04-01T08:25:10", "2026-04-14T08:25:10"],
    ),
    (
        23,
        {"monthDays": [2]},
        "month",
        ["2026-03-02T08:25:10", "2026-04-02T08:25:10", "2026-05-02T08:25:10"],
    ),
    (
        24,
        {"minutes": [0], "hours": [5], "monthlyOccurrences": [FIRST_FRIDAY]},
        "month",
        ["2026-03-06T05:00:10", "2026-04-03T05:00:10", "2026-05-01T05:00:10"],
    ),
    (
        25,
        {"monthlyOccurrences": [FIRST_FRIDAY]},
        "month",
        ["2026-03-06T08:25:10", "2026-04-03T08:25:10", "2026-05-01T08:25:10"],
    ),
    (
        26,
        {"monthlyOccurrences": [{"day": "friday", "occurrence": -3}]},
        "month",
        [
            "2026-03-13T08:25:10",
            "2026-04-10T08:25:10",
            "2026-05-15T08:25:10",
            "2026-06-12T08:25:10",
        ],
    ),
    (
        27,
        {"minutes": [15], "hours": [5], "monthlyOccurrences": [FIRST_FRIDAY, LAST_FRIDAY]},
        "month",
        [
            "2026-03-06T05:15:10",
            "2026-03-27T05:15:10",
            "2026-04-03T05:15:10",
            "2026-04-24T05:15:10",
            "2026-05-01T05:15:10",
            "2026-05-29T05:15:10",
        ],
    ),
    (
        28,
        {"monthlyOccurrences": [FIRST_FRIDAY, LAST_FRIDAY]},
        "month",
        [
            "2026-03-06T08:25:10",
            "2026-03-27T08:25:10",
            "2026-04-03T08:25:10",
            "2026-04-24T08:25:10",
        ],
    ),
    (
        29,
        {"monthlyOccurrences": [{"day": "friday", "occurrence": 5}]},
        "month",
        [
            "2026-05-29T08:25:10",
            "2026-07-31T08:25:10",
            "2026-10-30T08:25:10",
            "2027-01-29T08:25:10",
        ],
    ),
    (
        30,
        {"minutes": QUARTERS, "monthlyOccurrences": [LAST_FRIDAY]},
        "month",
        ["2026-03-27T00:00:10", "2026-03-27T00:15:10", "2026-03-27T00:30:10"],
    ),
    (
        31,
        {
            "minutes": [15, 45],
            "hours": [5, 17],
            "monthlyOccurrences": [{"day": "wednesday", "occurrence": 3}],
        },
        "month",
        [
            "2026-03-18T05:15:10",
            "2026-03-18T05:45:10",
            "2026-03-18T17:15:10",
            "2026-03-18T17:45:10",
            "2026-04-15T05:15:10",
        ],
    ),
]


@pytest.mark.parametrize(
    ("schedule", "frequency", "expected"),
    [pytest.param(s, f, e, id=f"row{n}") for n, s, f, e in EXAMPLES],
)
def test_reference_examples(schedule: dict[str, Any], frequency: str, expected: list[str]) -> None:
    assert preview(schedule, frequency, len(expected)) == expected


def test_all_31_reference_rows_are_covered() -> None:
    assert [row[0] for row in EXAMPLES] == list(range(1, 32))


def test_row5_every_15_minutes_also_with_frequency_hour() -> None:
    assert preview({"minutes": QUARTERS}, "hour", 3) == [
        "2026-03-02T08:30:10",
        "2026-03-02T08:45:10",
        "2026-03-02T09:00:10",
    ]


def test_row6_all_hours_with_frequency_month_runs_on_one_day_a_month() -> None:
    runs = preview({"hours": list(range(24))}, "month", 17)
    assert runs[:2] == ["2026-03-02T08:25:10", "2026-03-02T09:25:10"]
    assert runs[-2:] == ["2026-03-02T23:25:10", "2026-04-02T00:25:10"]


def test_row7_on_the_hour_with_frequency_week_runs_one_day_a_week() -> None:
    runs = preview({"minutes": [0]}, "week", 16)
    assert runs[0] == "2026-03-02T09:00:10"
    assert runs[-2:] == ["2026-03-02T23:00:10", "2026-03-09T00:00:10"]


def test_row14_friday_night_continues_on_monday() -> None:
    timeline = Timeline(START, rec(frequency="week", schedule=EXAMPLES[13][1]), START)
    assert timeline.next_after(utc(2026, 3, 6, 23, 45, 10)) == utc(2026, 3, 9, 0, 0, 10)


def test_row15_working_hours_end_at_16_45() -> None:
    timeline = Timeline(START, rec(frequency="week", schedule=EXAMPLES[14][1]), START)
    assert timeline.next_after(utc(2026, 3, 2, 16, 45, 10)) == utc(2026, 3, 3, 9, 0, 10)
    assert timeline.next_after(utc(2026, 3, 6, 16, 45, 10)) == utc(2026, 3, 9, 9, 0, 10)


def test_row30_every_15_minutes_on_the_last_friday_only() -> None:
    runs = preview(EXAMPLES[29][1], "month", 97)
    assert runs[95:] == ["2026-03-27T23:45:10", "2026-04-24T00:00:10"]


# startTime table (docs/azure-scheduler.md §3).


def test_no_start_no_recurrence_runs_once_at_creation() -> None:
    created = datetime(2026, 3, 2, 8, 25, 10, 999_999, tzinfo=UTC)
    timeline = Timeline(None, None, created)
    assert timeline.first() == START
    assert timeline.next_after(START) is None
    assert timeline.preview(5) == [START]


def test_no_start_recurrence_without_schedule_runs_now_then_on_the_creation_grid() -> None:
    created = datetime(2026, 3, 2, 10, 7, 33, 500_000, tzinfo=UTC)
    runs = preview(None, "hour", 3, start=None, created=created, interval=2)
    assert runs == ["2026-03-02T10:07:33", "2026-03-02T12:07:33", "2026-03-02T14:07:33"]


def test_no_start_with_schedule_runs_now_then_per_schedule() -> None:
    created = utc(2026, 3, 2, 12, 25, 37)
    runs = preview({"hours": [5]}, "day", 3, start=None, created=created)
    assert runs == ["2026-03-02T12:25:37", "2026-03-03T05:25:37", "2026-03-04T05:25:37"]


def test_without_start_the_saved_instant_is_the_anchor_of_next_after() -> None:
    created = utc(2026, 3, 2, 12, 25, 37)
    recurrence = rec(frequency="week", interval=2, schedule={"weekDays": ["monday", "friday"]})
    timeline = Timeline(None, recurrence, created)
    runs = timeline.preview(5)
    assert iso(runs) == [
        "2026-03-02T12:25:37",
        "2026-03-06T12:25:37",
        "2026-03-16T12:25:37",
        "2026-03-20T12:25:37",
        "2026-03-30T12:25:37",
    ]
    assert [timeline.next_after(run) for run in runs[:-1]] == runs[1:]


def test_start_in_past_without_recurrence_runs_once_at_creation() -> None:
    timeline = Timeline(utc(2026, 1, 1), None, START)
    assert timeline.preview(3) == [START]


def test_start_in_future_without_recurrence_runs_once_at_start() -> None:
    start = utc(2026, 3, 5, 10)
    assert Timeline(start, None, START).preview(3) == [start]


@pytest.mark.parametrize("start_day", [7, 5, 1])
def test_worked_example_every_two_days_from_a_past_start(start_day: int) -> None:
    now = utc(2015, 4, 8, 13)
    timeline = Timeline(utc(2015, 4, start_day, 14), rec(frequency="day", interval=2), now)
    assert iso(timeline.preview(4)) == [
        "2015-04-09T14:00:00",
        "2015-04-11T14:00:00",
        "2015-04-13T14:00:00",
        "2015-04-15T14:00:00",
    ]


def test_start_in_past_with_minute_frequency_takes_the_next_grid_point() -> None:
    runs = preview(None, "minute", 3, start=utc(2026, 3, 2, 8), interval=7)
    assert runs == ["2026-03-02T08:28:00", "2026-03-02T08:35:00", "2026-03-02T08:42:00"]


def test_start_in_past_with_schedule_first_scheduled_time_after_creation() -> None:
    start = utc(2026, 2, 25, 7)  # a Wednesday
    runs = preview({"weekDays": ["monday"], "hours": [9]}, "week", 2, start=start)
    assert runs == ["2026-03-02T09:00:00", "2026-03-09T09:00:00"]


def test_start_in_future_without_schedule_runs_at_start() -> None:
    runs = preview(None, "day", 2, start=utc(2026, 3, 5, 10))
    assert runs == ["2026-03-05T10:00:00", "2026-03-06T10:00:00"]


def test_start_in_future_with_schedule_is_no_sooner_than_start() -> None:
    start = utc(2026, 3, 4, 12)  # Wednesday; Monday 2 March 09:00 is after creation but too soon
    runs = preview({"weekDays": ["monday", "friday"], "hours": [9]}, "week", 2, start=start)
    assert runs == ["2026-03-06T09:00:00", "2026-03-09T09:00:00"]


def test_next_after_an_occurrence_before_start_waits_for_start() -> None:
    timeline = Timeline(utc(2026, 3, 5, 10), rec(frequency="hour"), START)
    assert timeline.next_after(START) == utc(2026, 3, 5, 10)


# count and endTime.


def test_count_limits_the_preview() -> None:
    assert len(Timeline(START, rec(frequency="day", count=3), START).preview(10)) == 3


def test_count_is_not_applied_by_next_after() -> None:
    timeline = Timeline(START, rec(frequency="day", count=1), START)
    assert timeline.next_after(START) == START + timedelta(days=1)


def test_end_time_first_ends_the_preview_and_an_occurrence_at_end_time_runs() -> None:
    end = START + timedelta(days=2)
    timeline = Timeline(START, rec(frequency="day", count=10, endTime=end), START)
    assert timeline.preview(10) == [START, START + timedelta(days=1), end]
    assert timeline.next_after(end) is None


def test_count_first_ends_before_end_time() -> None:
    recurrence = rec(frequency="day", count=2, endTime=START + timedelta(days=9))
    timeline = Timeline(START, recurrence, START)
    assert timeline.preview(10) == [START, START + timedelta(days=1)]


def test_first_after_end_time_is_none() -> None:
    timeline = Timeline(utc(2026, 4, 1), rec(frequency="day", endTime=utc(2026, 3, 20)), START)
    assert timeline.first() is None
    assert timeline.preview(3) == []


def test_preview_limit_zero_is_empty() -> None:
    assert Timeline(START, rec(frequency="day"), START).preview(0) == []


# Month ends and leap years.


def test_month_days_29_skips_february_2027_but_not_2028() -> None:
    schedule = {"monthDays": [29]}
    assert preview(schedule, "month", 2, start=utc(2027, 1, 10), created=utc(2027, 1, 10)) == [
        "2027-01-29T00:00:00",
        "2027-03-29T00:00:00",
    ]
    assert preview(schedule, "month", 3, start=utc(2028, 1, 10), created=utc(2028, 1, 10)) == [
        "2028-01-29T00:00:00",
        "2028-02-29T00:00:00",
        "2028-03-29T00:00:00",
    ]


@pytest.mark.parametrize(("year", "last"), [(2027, 28), (2028, 29)])
def test_last_day_of_february(year: int, last: int) -> None:
    start = utc(year, 2, 1)
    runs = preview({"monthDays": [-1]}, "month", 2, start=start, created=start)
    assert runs == [f"{year}-02-{last}T00:00:00", f"{year}-03-31T00:00:00"]


def test_month_days_31_runs_only_in_31_day_months() -> None:
    start = utc(2026, 1, 1, 6)
    runs = preview({"monthDays": [31]}, "month", 4, start=start, created=start)
    assert runs == [
        "2026-01-31T06:00:00",
        "2026-03-31T06:00:00",
        "2026-05-31T06:00:00",
        "2026-07-31T06:00:00",
    ]


def test_monthly_from_the_31st_skips_shorter_months() -> None:
    start = utc(2026, 1, 31, 6)
    runs = preview(None, "month", 4, start=start, created=start)
    assert runs == [
        "2026-01-31T06:00:00",
        "2026-03-31T06:00:00",
        "2026-05-31T06:00:00",
        "2026-07-31T06:00:00",
    ]


def test_month_days_and_monthly_occurrences_are_united() -> None:
    schedule = {"monthDays": [1], "monthlyOccurrences": [LAST_FRIDAY]}
    assert preview(schedule, "month", 3) == [
        "2026-03-27T08:25:10",
        "2026-04-01T08:25:10",
        "2026-04-24T08:25:10",
    ]


def test_monthly_occurrence_without_number_is_every_such_weekday() -> None:
    assert preview({"monthlyOccurrences": [{"day": "monday"}]}, "month", 6) == [
        "2026-03-02T08:25:10",
        "2026-03-09T08:25:10",
        "2026-03-16T08:25:10",
        "2026-03-23T08:25:10",
        "2026-03-30T08:25:10",
        "2026-04-06T08:25:10",
    ]


def test_feb_29_every_12_months_waits_for_the_leap_year() -> None:
    start = utc(2025, 2, 10)
    recurrence = rec(frequency="month", interval=12, schedule={"monthDays": [29]})
    assert iso(Timeline(start, recurrence, start).preview(2)) == [
        "2028-02-29T00:00:00",
        "2032-02-29T00:00:00",
    ]


def test_impossible_schedule_gives_up_with_none() -> None:
    start = utc(2025, 2, 10)
    recurrence = rec(frequency="month", interval=12, schedule={"monthDays": [30]})
    assert Timeline(start, recurrence, start).first() is None


def test_impossible_hour_grid_gives_up_with_none() -> None:
    start = utc(2026, 3, 2, 1)  # every 2 hours from 01:00 never reaches an even hour
    timeline = Timeline(start, rec(frequency="hour", interval=2, schedule={"hours": [4]}), start)
    assert timeline.first() is None


# Interval > 1 for each frequency.


def test_minute_interval() -> None:
    assert preview(None, "minute", 3, interval=45) == [
        "2026-03-02T08:25:10",
        "2026-03-02T09:10:10",
        "2026-03-02T09:55:10",
    ]


def test_hour_interval_without_schedule() -> None:
    assert preview(None, "hour", 3, interval=5) == [
        "2026-03-02T08:25:10",
        "2026-03-02T13:25:10",
        "2026-03-02T18:25:10",
    ]


def test_hour_interval_with_schedule_uses_the_hour_grid_of_start() -> None:
    assert preview({"minutes": [0, 30]}, "hour", 4, interval=2) == [
        "2026-03-02T08:30:10",
        "2026-03-02T10:00:10",
        "2026-03-02T10:30:10",
        "2026-03-02T12:00:10",
    ]


def test_hour_frequency_hours_filter_the_grid() -> None:
    assert preview({"hours": [9, 17]}, "hour", 3) == [
        "2026-03-02T09:25:10",
        "2026-03-02T17:25:10",
        "2026-03-03T09:25:10",
    ]


def test_day_interval_with_schedule() -> None:
    assert preview({"hours": [6, 18]}, "day", 4, interval=3) == [
        "2026-03-02T18:25:10",
        "2026-03-05T06:25:10",
        "2026-03-05T18:25:10",
        "2026-03-08T06:25:10",
    ]


def test_week_interval_with_schedule() -> None:
    assert preview({"weekDays": ["monday", "thursday"]}, "week", 4, interval=2) == [
        "2026-03-02T08:25:10",
        "2026-03-05T08:25:10",
        "2026-03-16T08:25:10",
        "2026-03-19T08:25:10",
    ]


def test_week_grid_starts_on_the_monday_of_start() -> None:
    start = utc(2026, 3, 8, 9)  # a Sunday: its week began on Monday 2 March
    runs = preview({"weekDays": ["monday"]}, "week", 2, start=start, created=start, interval=2)
    assert runs == ["2026-03-16T09:00:00", "2026-03-30T09:00:00"]


def test_month_interval() -> None:
    assert preview({"monthDays": [15]}, "month", 3, interval=3) == [
        "2026-03-15T08:25:10",
        "2026-06-15T08:25:10",
        "2026-09-15T08:25:10",
    ]


def test_next_after_is_direct_for_long_lived_jobs() -> None:
    start = utc(2000, 1, 1, 6)
    timeline = Timeline(start, rec(frequency="day", interval=3), start)
    following = timeline.next_after(START)
    assert following is not None
    assert START < following <= START + timedelta(days=3)
    assert (following - start) % timedelta(days=3) == timedelta()


# Time zones and DST (Berlin: 29 Mar / 25 Oct 2026; New York: 8 Mar / 1 Nov 2026).


def test_start_with_offset_is_read_on_the_time_zone_wall_clock() -> None:
    start = datetime.fromisoformat("2026-03-02T08:25:10-05:00")  # 14:25:10 in Berlin
    timeline = Timeline(
        start, rec(frequency="day", schedule={"hours": [9]}, timeZone="Europe/Berlin"), start
    )
    assert iso(timeline.preview(2)) == ["2026-03-03T08:25:10", "2026-03-04T08:25:10"]


def test_berlin_spring_forward_gap_runs_once_shifted_by_the_gap() -> None:
    start = utc(2026, 3, 27, 1, 30)  # 02:30 CET
    runs = preview(None, "day", 4, start=start, created=start, timeZone="Europe/Berlin")
    assert runs == [
        "2026-03-27T01:30:00",
        "2026-03-28T01:30:00",
        "2026-03-29T01:30:00",  # 02:30 does not exist: 03:30 CEST
        "2026-03-30T00:30:00",
    ]


def test_berlin_fall_back_runs_once_at_the_first_instant() -> None:
    start = utc(2026, 10, 23, 0, 30)  # 02:30 CEST
    runs = preview(None, "day", 4, start=start, created=start, timeZone="Europe/Berlin")
    assert runs == [
        "2026-10-23T00:30:00",
        "2026-10-24T00:30:00",
        "2026-10-25T00:30:00",  # 02:30 CEST, not again at 02:30 CET
        "2026-10-26T01:30:00",
    ]


def test_next_after_a_moment_inside_the_shift_still_finds_the_shifted_run() -> None:
    """At 03:00 CEST the shifted 02:30 (03:30 CEST) is still ahead, though its wall time is not."""
    moment = utc(2026, 3, 29, 1)
    zone = "Europe/Berlin"
    daily = Timeline(
        utc(2026, 3, 1),
        rec(frequency="day", schedule={"hours": [2], "minutes": [30]}, timeZone=zone),
        utc(2026, 3, 1),
    )
    assert daily.next_after(moment) == utc(2026, 3, 29, 1, 30)
    cron_daily = Timeline(None, rec(cron="30 2 * * *", timeZone=zone), utc(2026, 3, 1))
    assert cron_daily.next_after(moment) == utc(2026, 3, 29, 1, 30)


def test_new_york_daily_9am_stays_9am_local_across_both_changes() -> None:
    zone = {"timeZone": "America/New_York"}
    spring = utc(2026, 3, 6, 14)  # 09:00 EST
    assert preview(None, "day", 4, start=spring, created=spring, **zone) == [
        "2026-03-06T14:00:00",
        "2026-03-07T14:00:00",
        "2026-03-08T13:00:00",
        "2026-03-09T13:00:00",
    ]
    autumn = utc(2026, 10, 30, 13)  # 09:00 EDT
    assert preview({"hours": [9]}, "day", 4, start=autumn, created=autumn, **zone) == [
        "2026-10-30T13:00:00",
        "2026-10-31T13:00:00",
        "2026-11-01T14:00:00",
        "2026-11-02T14:00:00",
    ]


def test_new_york_gap_and_repeated_hour() -> None:
    zone = {"timeZone": "America/New_York"}
    start = utc(2026, 3, 7)
    assert preview(
        {"hours": [2], "minutes": [30]}, "day", 3, start=start, created=start, **zone
    ) == [
        "2026-03-07T07:30:00",
        "2026-03-08T07:30:00",  # 02:30 does not exist: 03:30 EDT
        "2026-03-09T06:30:00",
    ]
    start = utc(2026, 10, 31)
    assert preview(
        {"hours": [1], "minutes": [30]}, "day", 3, start=start, created=start, **zone
    ) == [
        "2026-10-31T05:30:00",
        "2026-11-01T05:30:00",  # 01:30 EDT, the first of the two
        "2026-11-02T06:30:00",
    ]


def test_hourly_schedule_across_berlin_spring_forward_never_repeats() -> None:
    created = utc(2026, 3, 28, 23, 50)
    assert preview({"minutes": [15, 45]}, "hour", 6, created=created, timeZone="Europe/Berlin") == [
        "2026-03-29T00:15:10",
        "2026-03-29T00:45:10",
        "2026-03-29T01:15:10",  # 02:15 does not exist: 03:15 CEST, which is also 03:15 itself
        "2026-03-29T01:45:10",
        "2026-03-29T02:15:10",
        "2026-03-29T02:45:10",
    ]


def test_hourly_schedule_across_berlin_fall_back_skips_the_repeated_hour() -> None:
    created = utc(2026, 10, 24, 23, 50)
    assert preview({"minutes": [15]}, "hour", 3, created=created, timeZone="Europe/Berlin") == [
        "2026-10-25T00:15:10",  # 02:15 CEST; the repeated 02:15 CET (01:15Z) is skipped
        "2026-10-25T02:15:10",  # 03:15 CET
        "2026-10-25T03:15:10",
    ]


def test_hour_frequency_without_schedule_steps_in_elapsed_time() -> None:
    start = utc(2026, 3, 29, 0, 15)
    assert preview(None, "hour", 3, start=start, created=start, timeZone="Europe/Berlin") == [
        "2026-03-29T00:15:00",
        "2026-03-29T01:15:00",
        "2026-03-29T02:15:00",
    ]


def wall_clock_oracle(zone: str, first_day: datetime, days: int, minutes: list[int]) -> list[str]:
    """Every wall time of `days` days at `minutes` of each hour, as distinct instants (fold=0)."""
    tz = ZoneInfo(zone)
    walls = (
        first_day + timedelta(days=day, hours=hour, minutes=minute)
        for day in range(days)
        for hour in range(24)
        for minute in minutes
    )
    instants = {wall.replace(tzinfo=tz).astimezone(UTC) for wall in walls}
    return iso(sorted(instants))


ZONES = ["Europe/Berlin", "America/New_York", "Australia/Lord_Howe"]


@pytest.mark.parametrize("zone", ZONES)
def test_a_year_of_schedule_matches_a_brute_force_oracle(zone: str) -> None:
    """Lord Howe's 30-minute gap shifts 02:15 to 02:45, past the real 02:40: order by instant."""
    start = datetime(2026, 1, 1, tzinfo=ZoneInfo(zone))
    schedule = {"minutes": [15, 40]}
    timeline = Timeline(start, rec(frequency="day", schedule=schedule, timeZone=zone), start)
    expected = wall_clock_oracle(zone, datetime(2026, 1, 1), 365, [15, 40])
    assert iso(timeline.preview(len(expected))) == expected


# cron (5 fields, or 6 with seconds first).


def cron(expression: str, limit: int, created: datetime = START, **fields: Any) -> list[str]:
    start = fields.pop("start", None)
    return iso(Timeline(start, rec(cron=expression, **fields), created).preview(limit))


def test_cron_five_fields_in_utc_and_no_immediate_run() -> None:
    runs = cron("0 9 * * 1-5", 6)
    assert runs == [
        "2026-03-02T09:00:00",
        "2026-03-03T09:00:00",
        "2026-03-04T09:00:00",
        "2026-03-05T09:00:00",
        "2026-03-06T09:00:00",
        "2026-03-09T09:00:00",
    ]


def test_cron_six_fields_has_seconds_first() -> None:
    assert cron("30 */15 * * * *", 3) == [
        "2026-03-02T08:30:30",
        "2026-03-02T08:45:30",
        "2026-03-02T09:00:30",
    ]


def test_cron_six_fields_with_time_zone() -> None:
    runs = cron("5 0 9 * * *", 3, created=utc(2026, 3, 7), timeZone="America/New_York")
    assert runs == ["2026-03-07T14:00:05", "2026-03-08T13:00:05", "2026-03-09T13:00:05"]


def test_cron_daily_across_berlin_gap_and_fall_back() -> None:
    zone = {"timeZone": "Europe/Berlin"}
    assert cron("30 2 * * *", 3, created=utc(2026, 3, 28), **zone) == [
        "2026-03-28T01:30:00",
        "2026-03-29T01:30:00",  # 03:30 CEST, where croniter alone would say 03:00
        "2026-03-30T00:30:00",
    ]
    assert cron("30 2 * * *", 3, created=utc(2026, 10, 24), **zone) == [
        "2026-10-24T00:30:00",
        "2026-10-25T00:30:00",  # once, where croniter alone runs twice
        "2026-10-26T01:30:00",
    ]


def test_cron_every_30_minutes_across_berlin_changes() -> None:
    zone = {"timeZone": "Europe/Berlin"}
    assert cron("*/30 * * * *", 5, created=utc(2026, 3, 29), **zone) == [
        "2026-03-29T00:00:00",
        "2026-03-29T00:30:00",
        "2026-03-29T01:00:00",
        "2026-03-29T01:30:00",
        "2026-03-29T02:00:00",
    ]
    assert cron("*/30 * * * *", 4, created=utc(2026, 10, 24, 23, 30), **zone) == [
        "2026-10-24T23:30:00",
        "2026-10-25T00:00:00",
        "2026-10-25T00:30:00",
        "2026-10-25T02:00:00",  # 02:00 and 02:30 CET repeat wall times already run
    ]


def test_cron_start_time_means_no_sooner_than() -> None:
    start = utc(2026, 3, 10, 9)  # itself a match: included
    assert cron("0 9 * * *", 2, start=start) == ["2026-03-10T09:00:00", "2026-03-11T09:00:00"]


def test_cron_count_and_end_time() -> None:
    assert len(cron("0 * * * *", 10, count=4)) == 4
    assert cron("0 * * * *", 10, endTime=utc(2026, 3, 2, 11)) == [
        "2026-03-02T09:00:00",
        "2026-03-02T10:00:00",
        "2026-03-02T11:00:00",
    ]


def test_cron_that_never_matches_gives_none() -> None:
    assert cron("0 0 30 2 *", 3) == []


@pytest.mark.parametrize("zone", ZONES)
@pytest.mark.parametrize("first_day", [datetime(2026, 3, 1), datetime(2026, 9, 25)])
def test_cron_across_dst_changes_matches_the_brute_force_oracle(
    zone: str, first_day: datetime
) -> None:
    """Each 40-day window holds one change of every zone (Lord Howe's gap is in October)."""
    created = first_day.replace(tzinfo=ZoneInfo(zone))
    expected = wall_clock_oracle(zone, first_day, 40, [15, 40])
    assert cron("15,40 * * * *", len(expected), created=created, timeZone=zone) == expected


# cron day fields: NCRONTAB (6 fields) AND, Vixie (5 fields) OR when both are restricted.


def test_ncrontab_six_fields_need_both_day_fields_friday_the_13th() -> None:
    assert cron("0 0 0 13 * 5", 3, created=utc(2026, 1, 1)) == [
        "2026-02-13T00:00:00",
        "2026-03-13T00:00:00",
        "2026-11-13T00:00:00",
    ]


def test_vixie_five_fields_with_both_day_fields_restricted_run_on_either() -> None:
    assert cron("0 0 13 * 5", 4, created=utc(2026, 1, 1)) == [
        "2026-01-02T00:00:00",  # a Friday
        "2026-01-09T00:00:00",
        "2026-01-13T00:00:00",  # a Tuesday, the 13th
        "2026-01-16T00:00:00",
    ]


def test_vixie_day_field_starting_with_a_star_does_not_restrict() -> None:
    """`*/2` starts with `*`: Vixie cron ANDs it with the weekday (odd days that are Fridays)."""
    assert cron("0 0 */2 * 5", 3, created=utc(2026, 1, 1)) == [
        "2026-01-09T00:00:00",
        "2026-01-23T00:00:00",
        "2026-02-13T00:00:00",
    ]


def test_ncrontab_with_a_star_day_of_month_runs_on_the_weekday() -> None:
    assert cron("0 0 0 * * 5", 2, created=utc(2026, 1, 1)) == [
        "2026-01-02T00:00:00",
        "2026-01-09T00:00:00",
    ]


# Sparse schedules: searched as far as the calendar requires.


FIFTH_SUNDAY = {"monthlyOccurrences": [{"day": "sunday", "occurrence": 5}]}


def test_fifth_sunday_of_february_every_12_months_is_found_decades_apart() -> None:
    start = utc(2032, 2, 1, 10)
    assert preview(FIFTH_SUNDAY, "month", 3, start=start, created=start, interval=12) == [
        "2032-02-29T10:00:00",
        "2060-02-29T10:00:00",
        "2088-02-29T10:00:00",
    ]
    later = utc(2033, 2, 1, 10)
    assert preview(FIFTH_SUNDAY, "month", 1, start=later, created=later, interval=12) == [
        "2060-02-29T10:00:00"
    ]


def test_month_schedules_are_possible_or_proved_impossible() -> None:
    start = utc(2026, 2, 1)  # every 18 months from February: only Februaries and Augusts
    recurrence = rec(frequency="month", interval=18, schedule={"monthDays": [30, 31]})
    assert Timeline(start, recurrence, start).first() is not None  # August has both
    april = utc(2026, 4, 1)
    never = rec(frequency="month", interval=12, schedule={"monthDays": [31]})
    assert Timeline(april, never, april).first() is None


def test_ncrontab_february_29_on_a_monday_is_found_40_years_on() -> None:
    assert cron("0 0 0 29 2 1", 2, created=utc(2073, 1, 1)) == [
        "2112-02-29T00:00:00",
        "2140-02-29T00:00:00",
    ]


def test_a_long_preview_visits_a_few_months_per_occurrence_not_a_calendar_cycle(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The search is lazy: the 400-year bound (4800 months) costs nothing to schedules that
    match. Each step looks at the month it starts in, the months up to the match and one past
    it (a DST gap can reorder wall times), so a handful of months per occurrence."""
    import calendar

    months_visited = 0
    real = calendar.monthrange

    def counting(year: int, month: int) -> tuple[int, int]:
        nonlocal months_visited
        months_visited += 1
        return real(year, month)

    monkeypatch.setattr(calendar, "monthrange", counting)  # what the engine calls per month
    start = utc(2026, 1, 31, 6)  # the 31st: skips the shorter months
    runs = preview(None, "month", 1000, start=start, created=start)
    assert len(runs) == 1000
    assert months_visited <= 5 * 1000


# A job without startTime is anchored on the instant it was saved, never on its last run.


@pytest.mark.parametrize(
    ("frequency", "zone", "saved", "expected"),
    [
        (
            "day",
            "America/New_York",
            utc(2033, 3, 12, 7, 30),
            ["2033-03-12T07:30:00", "2033-03-13T07:30:00", "2033-03-14T06:30:00"],
        ),
        (
            "month",
            "Europe/Berlin",
            utc(2033, 2, 27, 1, 30),
            ["2033-02-27T01:30:00", "2033-03-27T01:30:00", "2033-04-27T00:30:00"],
        ),
        (
            "day",
            "Australia/Lord_Howe",
            utc(2033, 9, 30, 15, 45),
            ["2033-09-30T15:45:00", "2033-10-01T15:45:00", "2033-10-02T15:15:00"],
        ),
    ],
)
def test_without_start_a_dst_shift_is_not_carried_on(
    frequency: str, zone: str, saved: datetime, expected: list[str]
) -> None:
    assert preview(None, frequency, 3, start=None, created=saved, timeZone=zone) == expected
