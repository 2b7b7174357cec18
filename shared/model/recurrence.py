"""The `recurrence` of a job: Azure Scheduler's JobRecurrence plus our `timeZone` and `cron`.

Validation follows docs/azure-scheduler.md §1-§2. Cross-field rules live in field validators
that read earlier fields from `info.data`, so each error's location is the offending field.
The "endTime in the future" rule needs the current instant: pass it as validation context
`{"now": <aware UTC datetime>}` (see `validate_recurrence`); without it the rule is skipped, so
stored jobs whose endTime has passed still load.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter
from pydantic import AliasChoices, Field, ValidationInfo, field_validator, model_validator

from shared.model.common import ApiModel, CaseInsensitiveEnum, Integer, IsoDateTime, utc_instant


class Frequency(CaseInsensitiveEnum):
    MINUTE = "Minute"
    HOUR = "Hour"
    DAY = "Day"
    WEEK = "Week"
    MONTH = "Month"


class DayOfWeek(CaseInsensitiveEnum):
    """Declared Monday first: our weeks start on Monday."""

    MONDAY = "Monday"
    TUESDAY = "Tuesday"
    WEDNESDAY = "Wednesday"
    THURSDAY = "Thursday"
    FRIDAY = "Friday"
    SATURDAY = "Saturday"
    SUNDAY = "Sunday"

    @property
    def weekday(self) -> int:
        """0 for Monday .. 6 for Sunday, like `date.weekday()`."""
        return list(DayOfWeek).index(self)


# The largest interval per frequency (docs/azure-scheduler.md §2: 1000 minutes/hours, 548 days,
# 78 weeks, 18 months: all about 18 months, the service's maximum recurrence span).
MAX_INTERVAL: Mapping[Frequency, int] = {
    Frequency.MINUTE: 1000,
    Frequency.HOUR: 1000,
    Frequency.DAY: 548,
    Frequency.WEEK: 78,
    Frequency.MONTH: 18,
}


class MonthlyOccurrence(ApiModel):
    """The n-th `day` of a month; no `occurrence` = every such day, negative = from the end."""

    day: DayOfWeek
    # The swagger spells it `Occurrence`, the docs `occurrence`: accept both (see
    # docs/azure-scheduler.md §1).
    occurrence: Integer | None = Field(
        default=None, validation_alias=AliasChoices("occurrence", "Occurrence")
    )

    @field_validator("occurrence")
    @classmethod
    def _occurrence_range(cls, value: int | None) -> int | None:
        if value is not None and (value == 0 or not -5 <= value <= 5):
            raise ValueError(
                "occurrence must be 1..5 (n-th from the start) or -5..-1 (n-th from the end)"
            )
        return value


class RecurrenceSchedule(ApiModel):
    """Which minutes/hours/days inside each recurrence period; lists are deduplicated and sorted.

    An empty list is read as "not given" (some clients serialize unset lists as `[]`).
    """

    minutes: list[Integer] | None = None
    hours: list[Integer] | None = None
    week_days: list[DayOfWeek] | None = None
    month_days: list[Integer] | None = None
    monthly_occurrences: list[MonthlyOccurrence] | None = None

    @field_validator("minutes", "hours", mode="before")
    @classmethod
    def _scalar_as_list(cls, value: object) -> object:
        """Minutes/hours are "Integer, or Array of integers" (docs/azure-scheduler.md §1)."""
        if isinstance(value, int | str) and not isinstance(value, bool):
            return [value]
        return value

    @field_validator("minutes")
    @classmethod
    def _minutes(cls, value: list[int] | None) -> list[int] | None:
        return _sorted_in_range(value, 0, 59, "minutes")

    @field_validator("hours")
    @classmethod
    def _hours(cls, value: list[int] | None) -> list[int] | None:
        return _sorted_in_range(value, 0, 23, "hours")

    @field_validator("month_days")
    @classmethod
    def _month_days(cls, value: list[int] | None) -> list[int] | None:
        if not value:
            return None
        for day in value:
            if day == 0 or not -31 <= day <= 31:
                raise ValueError(
                    f"monthDays must be 1..31 or -31..-1 (-1 = last day of the month), got {day}"
                )
        return sorted(set(value))

    @field_validator("week_days")
    @classmethod
    def _week_days(cls, value: list[DayOfWeek] | None) -> list[DayOfWeek] | None:
        return sorted(set(value), key=lambda day: day.weekday) if value else None

    @field_validator("monthly_occurrences")
    @classmethod
    def _monthly_occurrences(
        cls, value: list[MonthlyOccurrence] | None
    ) -> list[MonthlyOccurrence] | None:
        if not value:
            return None
        unique = {(item.day, item.occurrence): item for item in value}
        return sorted(unique.values(), key=lambda item: (item.day.weekday, item.occurrence or 0))

    def is_empty(self) -> bool:
        """True when no field is given: such a schedule means the same as no schedule."""
        return all(
            field is None
            for field in (
                self.minutes,
                self.hours,
                self.week_days,
                self.month_days,
                self.monthly_occurrences,
            )
        )


def _sorted_in_range(values: list[int] | None, low: int, high: int, name: str) -> list[int] | None:
    if not values:
        return None
    for value in values:
        if not low <= value <= high:
            raise ValueError(f"{name} must be between {low} and {high}, got {value}")
    return sorted(set(values))


class Recurrence(ApiModel):
    """How a job repeats: `frequency` (+ interval, schedule) or our `cron`; count/endTime end it.

    Field order matters: validators of later fields read the earlier ones from `info.data`.
    """

    frequency: Frequency | None = None
    interval: Integer | None = Field(default=None, validate_default=True)
    count: Integer | None = Field(default=None, ge=1)
    end_time: IsoDateTime | None = None
    schedule: RecurrenceSchedule | None = None
    time_zone: str | None = None
    cron: str | None = Field(default=None, validate_default=True)

    @field_validator("interval")
    @classmethod
    def _interval(cls, value: int | None, info: ValidationInfo) -> int | None:
        frequency = info.data.get("frequency")
        if value is None:
            return 1 if frequency is not None else None
        if value < 1:
            raise ValueError(f"interval must be at least 1, got {value}")
        if frequency is not None and value > MAX_INTERVAL[frequency]:
            raise ValueError(
                f"interval must be at most {MAX_INTERVAL[frequency]} for frequency "
                f"{frequency.value} (a recurrence spans at most 18 months), got {value}"
            )
        return value

    @field_validator("end_time")
    @classmethod
    def _end_time(cls, value: datetime | None, info: ValidationInfo) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:  # "A Date-Time that does not specify a UTC offset is assumed UTC"
            value = value.replace(tzinfo=UTC)
        utc_instant(value, "endTime")  # shown as given, but it must be an instant UTC can hold
        now = info.context.get("now") if isinstance(info.context, Mapping) else None
        if now is not None and value <= now:
            raise ValueError(
                f"endTime must be in the future (now is {now.isoformat()}), got {value.isoformat()}"
            )
        return value

    @field_validator("schedule")
    @classmethod
    def _schedule(
        cls, value: RecurrenceSchedule | None, info: ValidationInfo
    ) -> RecurrenceSchedule | None:
        frequency = info.data.get("frequency")
        if value is None or frequency is None or value.is_empty():
            return value
        if frequency is Frequency.MINUTE:
            raise ValueError(
                "schedule is not allowed with frequency Minute: it already runs every `interval` "
                "minutes; use frequency Hour or Day with schedule.minutes instead"
            )
        if value.week_days is not None and frequency is not Frequency.WEEK:
            raise ValueError(
                f"schedule.weekDays is only allowed with frequency Week, not {frequency.value}"
            )
        for name, given in (
            ("monthDays", value.month_days),
            ("monthlyOccurrences", value.monthly_occurrences),
        ):
            if given is not None and frequency is not Frequency.MONTH:
                raise ValueError(
                    f"schedule.{name} is only allowed with frequency Month, not {frequency.value}"
                )
        return value

    @field_validator("time_zone")
    @classmethod
    def _time_zone(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError, OSError):  # OSError: too long, a folder
            shown = value if len(value) <= 64 else value[:64] + "..."
            raise ValueError(
                f"timeZone must be an IANA time zone name such as Europe/Berlin, got {shown!r}"
            ) from None
        return value

    @field_validator("cron")
    @classmethod
    def _cron(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return None
        # interval defaults to 1 once a frequency is given, so name it only when given alone.
        given = (
            ("frequency", "schedule") if info.data.get("frequency") else ("interval", "schedule")
        )
        clashing = [name for name in given if info.data.get(name) is not None]
        if clashing:
            raise ValueError(
                f"cron cannot be combined with {' or '.join(clashing)}: give either a cron "
                "expression or a frequency"
            )
        value = " ".join(value.split())
        fields = value.count(" ") + 1
        if fields not in (5, 6):
            raise ValueError(
                "cron must have 5 fields (minute hour day-of-month month day-of-week) or 6 "
                f"(seconds first), got {fields}"
            )
        try:
            croniter(value, datetime(2000, 1, 1), second_at_beginning=fields == 6)
        except (ValueError, KeyError, TypeError) as error:  # CroniterError is a ValueError
            raise ValueError(f"cron is not a valid cron expression: {error}") from None
        return value

    @model_validator(mode="after")
    def _frequency_or_cron(self) -> Recurrence:
        """Runs only when every field is valid, so a bad frequency is not reported twice."""
        if self.frequency is None and self.cron is None:
            raise ValueError("recurrence needs a frequency (or a cron expression)")
        return self


def validate_recurrence(data: object, now: datetime) -> Recurrence:
    """Validate a recurrence as the API does, `now` (aware UTC) checking that endTime is ahead."""
    return Recurrence.model_validate(data, context={"now": now})
