"""Timer trigger schedules: NCRONTAB (6 fields, seconds first; or 5 fields) and TimeSpan intervals.

croniter puts seconds last by default, so 6-field expressions use `second_at_beginning`. NCRONTAB
requires both day-of-month and day-of-week to match when both are restricted (`day_or=False`),
unlike classic cron. Times are UTC (WEBSITE_TIME_ZONE is not supported).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from croniter import croniter

from devhost.host_config import parse_timespan


class Schedule(Protocol):
    def next_after(self, moment: datetime) -> datetime:
        """The first occurrence strictly after `moment` (an aware datetime)."""
        ...


@dataclass(frozen=True)
class CronSchedule:
    expression: str

    def __post_init__(self) -> None:
        fields = len(self.expression.split())
        if fields not in (5, 6):
            raise ValueError(f"NCRONTAB needs 5 or 6 fields, got {fields}: {self.expression!r}")
        if not croniter.is_valid(self.expression, second_at_beginning=fields == 6):
            raise ValueError(f"invalid NCRONTAB expression: {self.expression!r}")

    def next_after(self, moment: datetime) -> datetime:
        six_fields = len(self.expression.split()) == 6
        cron = croniter(self.expression, moment, day_or=False, second_at_beginning=six_fields)
        result: datetime = cron.get_next(datetime)
        return result


@dataclass(frozen=True)
class IntervalSchedule:
    """A TimeSpan schedule ("00:05:00"): every interval, counted from the previous run."""

    interval: timedelta

    def next_after(self, moment: datetime) -> datetime:
        return moment + self.interval


def parse_schedule(expression: str) -> Schedule:
    text = expression.strip()
    if ":" in text and " " not in text:
        interval = parse_timespan(text)
        if interval <= timedelta(0):
            raise ValueError(f"a TimeSpan schedule must be positive: {expression!r}")
        return IntervalSchedule(interval)
    return CronSchedule(text)
