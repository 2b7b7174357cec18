"""Human schedule flags to the job JSON's `startTime` and `recurrence` (README "Jobs").

`--every 15m` is a frequency and interval; `--weekdays`, `--monthdays` and `--time` fill
`schedule`; `--cron` is our cron field; `--tz` is `recurrence.timeZone`."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from scheduler_cli.errors import usage_error

WEEKDAYS = {
    "mon": "Monday",
    "tue": "Tuesday",
    "wed": "Wednesday",
    "thu": "Thursday",
    "fri": "Friday",
    "sat": "Saturday",
    "sun": "Sunday",
}
_UNITS = {
    "m": "Minute",
    "min": "Minute",
    "h": "Hour",
    "d": "Day",
    "w": "Week",
    "mo": "Month",
}
_EVERY = re.compile(r"(\d+)\s*(mo|min|m|h|d|w)", re.IGNORECASE)
_TIME = re.compile(r"([01]?\d|2[0-3]):([0-5]\d)")
_DURATION = re.compile(r"(\d+)\s*(s|m|h|d)", re.IGNORECASE)


@dataclass(frozen=True)
class ScheduleFlags:
    at: str | None = None
    every: str | None = None
    weekdays: str | None = None
    monthdays: str | None = None
    times: str | None = None
    cron: str | None = None
    tz: str | None = None
    count: int | None = None
    until: str | None = None

    def given(self) -> bool:
        return any(value is not None for value in vars(self).values())


def apply_schedule(properties: dict[str, Any], flags: ScheduleFlags) -> None:
    """Sets startTime and recurrence from the flags (a recurrence from --file is replaced
    when any recurrence flag is given)."""
    if flags.tz is not None:
        try:
            ZoneInfo(flags.tz)
        except (ZoneInfoNotFoundError, ValueError):
            raise usage_error(f"--tz {flags.tz!r} is not an IANA time zone") from None
    if flags.at is not None:
        properties["startTime"] = _datetime("--at", flags.at)
    recurrence = _recurrence(flags)
    if recurrence is not None:
        properties["recurrence"] = recurrence
    elif flags.tz is not None and isinstance(properties.get("recurrence"), dict):
        properties["recurrence"]["timeZone"] = flags.tz


def _recurrence(flags: ScheduleFlags) -> dict[str, Any] | None:
    calendar = flags.every or flags.weekdays or flags.monthdays or flags.times
    if flags.cron is not None and calendar:
        raise usage_error("--cron cannot be combined with --every, --weekdays, --monthdays, --time")
    recurrence: dict[str, Any] = {}
    if flags.cron is not None:
        fields = flags.cron.split()
        if len(fields) not in (5, 6):
            raise usage_error("--cron needs 5 fields (cron) or 6 (NCRONTAB, seconds first)")
        recurrence["cron"] = flags.cron
    elif calendar:
        frequency, interval = _frequency(flags)
        recurrence["frequency"] = frequency
        if interval != 1:
            recurrence["interval"] = interval
        schedule = _schedule(flags)
        if schedule:
            recurrence["schedule"] = schedule
    elif flags.count is None and flags.until is None:
        return None
    else:
        raise usage_error("--count and --until need a recurrence (--every, --weekdays, --cron...)")
    if flags.tz is not None:
        recurrence["timeZone"] = flags.tz
    if flags.count is not None:
        recurrence["count"] = flags.count
    if flags.until is not None:
        recurrence["endTime"] = _datetime("--until", flags.until)
    return recurrence


def _frequency(flags: ScheduleFlags) -> tuple[str, int]:
    if flags.every is not None:
        match = _EVERY.fullmatch(flags.every.strip())
        if match is None:
            raise usage_error(
                f"--every {flags.every!r}: give a number and a unit: m(in), h, d, w or mo "
                "(e.g. 15m, 2h, 1w)"
            )
        return _UNITS[match.group(2).lower()], int(match.group(1))
    if flags.weekdays is not None:
        return "Week", 1
    if flags.monthdays is not None:
        return "Month", 1
    return "Day", 1


def _schedule(flags: ScheduleFlags) -> dict[str, Any]:
    schedule: dict[str, Any] = {}
    if flags.weekdays is not None:
        days = []
        for word in _items(flags.weekdays):
            day = WEEKDAYS.get(word.lower()[:3])
            if day is None or not day.lower().startswith(word.lower()):
                raise usage_error(f"--weekdays: {word!r} is not a day (mon, tue, ..., sun)")
            days.append(day)
        schedule["weekDays"] = days
    if flags.monthdays is not None:
        try:
            schedule["monthDays"] = [int(day) for day in _items(flags.monthdays)]
        except ValueError:
            raise usage_error("--monthdays takes day numbers, e.g. 1,15,-1") from None
    if flags.times is not None:
        schedule.update(_hours_minutes(flags.times))
    return schedule


def _hours_minutes(text: str) -> dict[str, list[int]]:
    """Azure's schedule runs at every hour × every minute, so the times must form that grid."""
    times = set()
    for item in _items(text):
        match = _TIME.fullmatch(item)
        if match is None:
            raise usage_error(f"--time {item!r}: use HH:MM (24 h), e.g. 09:00 or 09:00,17:00")
        times.add((int(match.group(1)), int(match.group(2))))
    hours = sorted({h for h, _ in times})
    minutes = sorted({m for _, m in times})
    if len(times) != len(hours) * len(minutes):
        raise usage_error(
            "--time: a schedule runs at every given hour at every given minute, so these times "
            "cannot be expressed (09:00,17:30 would also run 09:30 and 17:00); use --cron"
        )
    return {"hours": hours, "minutes": minutes}


def _items(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]


def _datetime(flag: str, text: str) -> str:
    """ISO 8601; without an offset it is on the wall clock of --tz (the API's rule)."""
    try:
        datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise usage_error(f"{flag} {text!r}: use ISO 8601, e.g. 2030-01-01T09:00") from None
    return text


def iso_duration(flag: str, text: str) -> str:
    """`30s`, `5m`, `1h`, `2d` (or ISO 8601 `PT30S` as given) for retry intervals."""
    if text.upper().startswith("P"):
        return text.upper()
    match = _DURATION.fullmatch(text.strip())
    if match is None:
        raise usage_error(f"{flag} {text!r}: use 30s, 5m, 1h, 2d or ISO 8601 (PT30S)")
    number, unit = match.group(1), match.group(2).upper()
    return f"P{number}D" if unit == "D" else f"PT{number}{unit}"
