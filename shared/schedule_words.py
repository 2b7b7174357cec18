"""A job's schedule in words, for people ("every weekday at 09:00 Europe/Berlin", "cron 0 */15 *
* * * UTC"). Pure: the dashboard shows it next to the JSON, which stays the truth.

It reads the same fields the recurrence engine (shared/recurrence.py) reads, with the same
defaults: hours without minutes take startTime's minute, an absent day-level field takes
startTime's weekday (Week) or day of month (Month), all on the wall clock of `timeZone`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from shared.model.recurrence import (
    DayOfWeek,
    Frequency,
    MonthlyOccurrence,
    Recurrence,
    RecurrenceSchedule,
)

_UNITS = {
    Frequency.MINUTE: "minute",
    Frequency.HOUR: "hour",
    Frequency.DAY: "day",
    Frequency.WEEK: "week",
    Frequency.MONTH: "month",
}
_WEEKDAYS = frozenset(list(DayOfWeek)[:5])
_ORDINALS = {1: "first", 2: "second", 3: "third", 4: "fourth", 5: "fifth"}
# More times than this read better as "at minutes ... past hours ...".
_MAX_LISTED_TIMES = 6


def describe_schedule(start_time: datetime | None, recurrence: Recurrence | None) -> str:
    """The schedule of a job with this startTime and recurrence, in one line of English."""
    zone_name = (recurrence.time_zone if recurrence else None) or "UTC"
    zone = ZoneInfo(zone_name) if zone_name != "UTC" else UTC
    start = start_time.astimezone(zone) if start_time is not None else None
    if recurrence is None:
        if start is None:
            return "once, when saved"
        return f"once at {start:%Y-%m-%d %H:%M} {zone_name}"
    if recurrence.cron is not None:
        text = f"cron {recurrence.cron} {zone_name}"
    else:
        text = f"{_repeating(recurrence, start)} {zone_name}"
    return text + _ending(recurrence)


def _repeating(recurrence: Recurrence, start: datetime | None) -> str:
    frequency = recurrence.frequency or Frequency.DAY
    interval = recurrence.interval or 1
    schedule = recurrence.schedule or RecurrenceSchedule()
    if frequency in (Frequency.MINUTE, Frequency.HOUR) and schedule.is_empty():
        return _every(frequency, interval)
    days = _days(frequency, interval, schedule, start)
    return f"{days} {_times(schedule, start)}"


def _every(frequency: Frequency, interval: int) -> str:
    unit = _UNITS[frequency]
    return f"every {unit}" if interval == 1 else f"every {interval} {unit}s"


def _days(
    frequency: Frequency, interval: int, schedule: RecurrenceSchedule, start: datetime | None
) -> str:
    if frequency is Frequency.WEEK:
        chosen = schedule.week_days or ([list(DayOfWeek)[start.weekday()]] if start else [])
        if interval == 1 and set(chosen) == _WEEKDAYS:
            return "every weekday"
        if interval == 1 and len(set(chosen)) == 7:
            return "every day"
        names = _join([day.value for day in chosen])
        return f"every {names}" if interval == 1 else f"every {interval} weeks on {names}"
    if frequency is Frequency.MONTH:
        parts = [_month_day(day) for day in schedule.month_days or ()]
        parts += [_monthly(occurrence) for occurrence in schedule.monthly_occurrences or ()]
        if not parts and start is not None:
            parts = [_month_day(start.day)]
        every = _every(frequency, interval)
        return f"{every} on {_join(parts)}" if parts else every
    return _every(frequency, interval)


def _times(schedule: RecurrenceSchedule, start: datetime | None) -> str:
    default_minute = start.minute if start is not None else 0
    if schedule.hours is None and schedule.minutes is not None:
        past = _join([f":{minute:02d}" for minute in schedule.minutes])
        return f"at {past} past every hour"
    hours = schedule.hours or ([start.hour] if start is not None else [0])
    minutes = schedule.minutes or [default_minute]
    if len(hours) * len(minutes) <= _MAX_LISTED_TIMES:
        return "at " + _join([f"{hour:02d}:{minute:02d}" for hour in hours for minute in minutes])
    listed_minutes = _join([str(minute) for minute in minutes])
    listed_hours = _join([str(hour) for hour in hours])
    return f"at minute {listed_minutes} of hours {listed_hours}"


def _month_day(day: int) -> str:
    if day == -1:
        return "the last day"
    if day < 0:
        return f"day {-day} from the end"
    return f"day {day}"


def _monthly(occurrence: MonthlyOccurrence) -> str:
    number = occurrence.occurrence
    if number is None:
        return f"every {occurrence.day.value}"
    if number == -1:
        return f"the last {occurrence.day.value}"
    if number < 0:
        return f"the {_ORDINALS[-number]} last {occurrence.day.value}"
    return f"the {_ORDINALS[number]} {occurrence.day.value}"


def _ending(recurrence: Recurrence) -> str:
    parts = []
    if recurrence.count is not None:
        parts.append("once" if recurrence.count == 1 else f"{recurrence.count} times")
    if recurrence.end_time is not None:
        parts.append(f"until {recurrence.end_time.astimezone(UTC):%Y-%m-%d %H:%M} UTC")
    return ", " + ", ".join(parts) if parts else ""


def _join(items: Sequence[str]) -> str:
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]
