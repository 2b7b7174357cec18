"""Validation and JSON shape of the recurrence models (docs/azure-scheduler.md §1-§2)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from shared.model.recurrence import (
    DayOfWeek,
    Frequency,
    MonthlyOccurrence,
    Recurrence,
    RecurrenceSchedule,
    validate_recurrence,
)

NOW = datetime(2026, 3, 2, 8, 25, 10, tzinfo=UTC)


def error(data: dict[str, Any]) -> tuple[tuple[str | int, ...], str]:
    """The single validation error of `data`: its location and message."""
    with pytest.raises(ValidationError) as caught:
        validate_recurrence(data, NOW)
    errors = caught.value.errors()
    assert len(errors) == 1, errors
    return errors[0]["loc"], errors[0]["msg"]


# Accepted input and its JSON.


def test_enums_are_case_insensitive_and_answer_in_pascal_case() -> None:
    recurrence = validate_recurrence(
        {
            "frequency": "week",
            "schedule": {"weekDays": ["MONDAY", "friday"], "hours": [10, 22]},
            "count": 10,
            "endTime": "2030-11-04",
        },
        NOW,
    )
    assert recurrence.frequency is Frequency.WEEK
    assert recurrence.to_json_dict() == {
        "frequency": "Week",
        "interval": 1,
        "count": 10,
        "endTime": "2030-11-04T00:00:00Z",
        "schedule": {"hours": [10, 22], "weekDays": ["Monday", "Friday"]},
    }


def test_camel_case_keys_for_every_field() -> None:
    recurrence = validate_recurrence(
        {
            "frequency": "Month",
            "interval": 2,
            "endTime": "2030-01-01T00:00:00+01:00",
            "timeZone": "Europe/Berlin",
            "schedule": {
                "minutes": [0],
                "monthDays": [-1],
                "monthlyOccurrences": [{"day": "Friday", "occurrence": 1}],
            },
        },
        NOW,
    )
    assert recurrence.to_json_dict() == {
        "frequency": "Month",
        "interval": 2,
        "endTime": "2030-01-01T00:00:00+01:00",
        "timeZone": "Europe/Berlin",
        "schedule": {
            "minutes": [0],
            "monthDays": [-1],
            "monthlyOccurrences": [{"day": "Friday", "occurrence": 1}],
        },
    }


@pytest.mark.parametrize("key", ["occurrence", "Occurrence"])
def test_occurrence_accepts_both_spellings_and_answers_lowercase(key: str) -> None:
    item = MonthlyOccurrence.model_validate({"day": "friday", key: -1})
    assert item.occurrence == -1
    assert item.to_json_dict() == {"day": "Friday", "occurrence": -1}


def test_occurrence_is_optional() -> None:
    assert MonthlyOccurrence.model_validate({"day": "monday"}).occurrence is None


def test_minutes_and_hours_accept_a_scalar() -> None:
    schedule = RecurrenceSchedule.model_validate({"minutes": 30, "hours": 8})
    assert (schedule.minutes, schedule.hours) == ([30], [8])


def test_lists_are_deduplicated_and_sorted() -> None:
    schedule = RecurrenceSchedule.model_validate(
        {
            "minutes": [45, 15, 45],
            "hours": [17, 5],
            "weekDays": ["sunday", "monday", "Monday"],
            "monthDays": [-1, 14, 1, 14],
            "monthlyOccurrences": [
                {"day": "friday", "occurrence": -1},
                {"day": "monday"},
                {"day": "friday", "Occurrence": -1},
            ],
        }
    )
    assert schedule.minutes == [15, 45]
    assert schedule.hours == [5, 17]
    assert schedule.week_days == [DayOfWeek.MONDAY, DayOfWeek.SUNDAY]
    assert schedule.month_days == [-1, 1, 14]
    assert schedule.monthly_occurrences == [
        MonthlyOccurrence(day=DayOfWeek.MONDAY),
        MonthlyOccurrence(day=DayOfWeek.FRIDAY, occurrence=-1),
    ]


def test_empty_lists_mean_not_given() -> None:
    schedule = RecurrenceSchedule.model_validate({"minutes": [], "weekDays": []})
    assert schedule.is_empty()


def test_interval_defaults_to_one_with_a_frequency_only() -> None:
    assert validate_recurrence({"frequency": "day"}, NOW).interval == 1
    assert validate_recurrence({"cron": "0 9 * * *"}, NOW).interval is None


def test_end_time_without_offset_is_utc() -> None:
    recurrence = validate_recurrence({"frequency": "day", "endTime": "2030-01-01T10:00:00"}, NOW)
    assert recurrence.end_time == datetime(2030, 1, 1, 10, tzinfo=UTC)


def test_past_end_time_is_accepted_without_a_now_context() -> None:
    """Stored jobs are reloaded without context; only the API checks endTime against now."""
    recurrence = Recurrence.model_validate({"frequency": "day", "endTime": "2020-01-01"})
    assert recurrence.end_time == datetime(2020, 1, 1, tzinfo=UTC)


def test_empty_schedule_is_allowed_with_minute_frequency() -> None:
    assert validate_recurrence({"frequency": "minute", "schedule": {}}, NOW).schedule is not None


@pytest.mark.parametrize("expression", ["0 9 * * 1-5", "30 */15 * * * *", "  0   9 * * * "])
def test_cron_five_or_six_fields(expression: str) -> None:
    recurrence = validate_recurrence({"cron": expression, "timeZone": "UTC", "count": 3}, NOW)
    assert recurrence.cron == " ".join(expression.split())


@pytest.mark.parametrize(
    ("frequency", "maximum"),
    [("Minute", 1000), ("Hour", 1000), ("Day", 548), ("Week", 78), ("Month", 18)],
)
def test_interval_maximum_is_accepted(frequency: str, maximum: int) -> None:
    assert (
        validate_recurrence({"frequency": frequency, "interval": maximum}, NOW).interval == maximum
    )


def test_round_trip_through_json() -> None:
    data = {
        "frequency": "Week",
        "interval": 2,
        "count": 5,
        "schedule": {"minutes": [0], "weekDays": ["Tuesday"]},
        "timeZone": "America/New_York",
    }
    recurrence = validate_recurrence(data, NOW)
    assert validate_recurrence(recurrence.to_json_dict(), NOW) == recurrence


# Refused input: each error names its field and says why.


def test_unknown_frequency() -> None:
    loc, message = error({"frequency": "Year"})
    assert loc == ("frequency",)
    assert "'Minute', 'Hour', 'Day', 'Week' or 'Month'" in message


def test_unknown_week_day() -> None:
    loc, _ = error({"frequency": "Week", "schedule": {"weekDays": ["Funday"]}})
    assert loc == ("schedule", "weekDays", 0)


@pytest.mark.parametrize(
    ("frequency", "interval"),
    [("Minute", 1001), ("Hour", 1001), ("Day", 549), ("Week", 79), ("Month", 19), ("Day", 0)],
)
def test_interval_out_of_range(frequency: str, interval: int) -> None:
    loc, message = error({"frequency": frequency, "interval": interval})
    assert loc == ("interval",)
    assert "interval must be" in message


@pytest.mark.parametrize("day", [0, 32, -32])
def test_month_day_out_of_range(day: int) -> None:
    loc, message = error({"frequency": "Month", "schedule": {"monthDays": [1, day]}})
    assert loc == ("schedule", "monthDays")
    assert "monthDays must be 1..31 or -31..-1" in message
    assert str(day) in message


@pytest.mark.parametrize(("field", "value"), [("minutes", 60), ("hours", 24), ("minutes", -1)])
def test_minutes_and_hours_out_of_range(field: str, value: int) -> None:
    loc, message = error({"frequency": "Day", "schedule": {field: [value]}})
    assert loc == ("schedule", field)
    assert f"{field} must be between" in message


@pytest.mark.parametrize("occurrence", [0, 6, -6])
def test_monthly_occurrence_out_of_range(occurrence: int) -> None:
    schedule = {"monthlyOccurrences": [{"day": "friday", "occurrence": occurrence}]}
    loc, message = error({"frequency": "Month", "schedule": schedule})
    assert loc == ("schedule", "monthlyOccurrences", 0, "occurrence")
    assert "occurrence must be 1..5" in message


def test_monthly_occurrence_needs_a_day() -> None:
    loc, _ = error({"frequency": "Month", "schedule": {"monthlyOccurrences": [{"occurrence": 1}]}})
    assert loc == ("schedule", "monthlyOccurrences", 0, "day")


def test_week_days_only_with_week() -> None:
    loc, message = error({"frequency": "Day", "schedule": {"weekDays": ["monday"]}})
    assert loc == ("schedule",)
    assert "weekDays is only allowed with frequency Week, not Day" in message


@pytest.mark.parametrize(
    ("field", "value"),
    [("monthDays", [1]), ("monthlyOccurrences", [{"day": "monday", "occurrence": 1}])],
)
def test_month_fields_only_with_month(field: str, value: object) -> None:
    loc, message = error({"frequency": "Week", "schedule": {field: value}})
    assert loc == ("schedule",)
    assert f"{field} is only allowed with frequency Month, not Week" in message


def test_schedule_refused_with_minute_frequency() -> None:
    loc, message = error({"frequency": "Minute", "schedule": {"minutes": [0, 30]}})
    assert loc == ("schedule",)
    assert "not allowed with frequency Minute" in message


def test_end_time_in_the_past() -> None:
    loc, message = error({"frequency": "Day", "endTime": "2026-03-01T00:00:00Z"})
    assert loc == ("endTime",)
    assert "endTime must be in the future" in message


def test_end_time_now_is_not_in_the_future() -> None:
    loc, _ = error({"frequency": "Day", "endTime": NOW.isoformat()})
    assert loc == ("endTime",)


@pytest.mark.parametrize("end", ["0001-01-01T00:00:00+14:00", "9999-12-31T23:00:00-14:00"])
def test_end_time_that_utc_cannot_hold(end: str) -> None:
    loc, message = error({"frequency": "Day", "endTime": end})
    assert loc == ("endTime",)
    assert "0001-01-01T00:00:00Z to 9999-12-31T23:59:59Z" in message


def test_count_below_one() -> None:
    loc, _ = error({"frequency": "Day", "count": 0})
    assert loc == ("count",)


@pytest.mark.parametrize(
    "zone",
    [
        "Mars/Olympus_Mons",
        "../../etc/passwd",
        "",
        "A" * 300,  # the file name is too long: OSError, was a 500
        "America",  # a folder of the zone database: IsADirectoryError, was a 500
    ],
)
def test_bad_time_zone(zone: str) -> None:
    loc, message = error({"frequency": "Day", "timeZone": zone})
    assert loc == ("timeZone",)
    assert "IANA time zone" in message


@pytest.mark.parametrize(
    ("expression", "why"),
    [
        ("61 * * * *", "not a valid cron expression"),
        ("* * 0 * *", "not a valid cron expression"),
        ("H * * * *", "not a valid cron expression"),
        ("* * * *", "5 fields"),
        ("0 0 0 * * * 2030", "5 fields"),
        ("@hourly", "5 fields"),
    ],
)
def test_bad_cron(expression: str, why: str) -> None:
    loc, message = error({"cron": expression})
    assert loc == ("cron",)
    assert why in message


@pytest.mark.parametrize(
    ("extra", "named"),
    [
        ({"frequency": "Day"}, "frequency"),
        ({"interval": 2}, "interval"),
        ({"schedule": {"hours": [5]}}, "schedule"),
    ],
)
def test_cron_excludes_frequency_interval_and_schedule(extra: dict[str, Any], named: str) -> None:
    loc, message = error({"cron": "0 9 * * *", **extra})
    assert loc == ("cron",)
    assert f"cron cannot be combined with {named}" in message


def test_needs_frequency_or_cron() -> None:
    loc, message = error({"count": 3})
    assert loc == ()
    assert "needs a frequency (or a cron expression)" in message


def test_unknown_field_is_refused() -> None:
    """Azure's `"minute": [30]` typo (docs/azure-scheduler.md §1) is reported, not ignored."""
    loc, _ = error({"frequency": "Day", "schedule": {"minute": [30]}})
    assert loc == ("schedule", "minute")
