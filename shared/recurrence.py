"""When a job's occurrences fall: startTime + recurrence -> instants. Pure: no I/O, no clock.

The contract (Azure Scheduler semantics, docs/azure-scheduler.md §3/§4, plus our extensions):

- Instants in and out are aware UTC, truncated to the second; a naive input is UTC.
- startTime none -> the first run is immediate (when the job is saved); later runs follow the
  interval grid or the schedule anchored at that instant (`saved_at`), which a Timeline always
  gets, so no caller can anchor on a previous occurrence (a wall time shifted by a DST gap
  would then stay shifted for ever). The dispatcher and the preview both chain `next_after`.
- startTime in the past -> without recurrence, run once immediately; otherwise the first grid
  point / scheduled time at or after the creation time ("instances in the past are discarded",
  no catch-up). Now or future -> the first run is at startTime (no recurrence or no schedule)
  or the first scheduled time at or after it.
- Schedule: periods (hour, day, Monday-starting week, month) counted from startTime's period;
  only every `interval`-th period runs. Inside a period: minutes without hours = every hour at
  those minutes; hours without minutes = at startTime's minute; an absent day-level field
  takes startTime's weekday (Week) or day of month (Month); hours x minutes; startTime's
  seconds. monthDays < 0 count from the month's end; a day a month lacks (31 in April, a fifth
  Friday) is skipped for that month. monthDays and monthlyOccurrences together = their union.
  Day/Week/Month without a schedule are the same as an empty schedule (so a monthly job
  starting on the 31st skips shorter months).
- count (the caller counts runs; `preview` applies it) and endTime (no run after it): whichever
  ends first.
- Time zone: `recurrence.timeZone` (UTC when absent) gives the wall clock on which startTime,
  the schedule, Day/Week/Month steps and cron are read. Minute/Hour without a schedule step in
  elapsed time. A wall time skipped by a DST jump runs once, shifted forward by the gap; a
  repeated one runs once, at its first instant (PEP 495 fold=0 does exactly both).
- cron (5 fields, or 6 with seconds first) is evaluated on naive wall time and converted by the
  same rule: croniter's own time-zone handling fires at the jump instant (03:00, not 03:30) and
  fires twice in a repeated hour. startTime means "no sooner than"; a cron job does not run
  immediately at creation (cron users expect only matching times). Day fields: 6 fields are
  NCRONTAB (a day matches day-of-month AND day-of-week, as the Functions timer reads them),
  5 fields Vixie cron (both restricted -> either matches; a field starting with `*` does not
  restrict), so `0 0 0 13 * 5` is Friday the 13th and `0 0 13 * 5` every 13th and Friday.
- Occurrences are strictly increasing. A search gives up (None) only after one whole cycle of
  the Gregorian calendar (400 years) without a match, which proves the schedule impossible
  (monthDays [30] every 12 months from February); a sparse one (the fifth Sunday of February,
  every 12 months) is found however far it is. The calendar's ends (years 1 and 9999) end
  every schedule: past them a search gives None, never an error.
"""

from __future__ import annotations

import calendar
from bisect import bisect_left
from collections.abc import Iterable, Iterator
from datetime import MAXYEAR, MINYEAR, UTC, date, datetime, time, timedelta, tzinfo
from math import gcd
from zoneinfo import ZoneInfo

from croniter import CroniterBadDateError, croniter

from shared.model.recurrence import Frequency, Recurrence, RecurrenceSchedule

_SECOND = timedelta(seconds=1)
# The Gregorian calendar repeats every 400 years: 4800 months, 146097 days (20871 whole weeks).
# A search that finds nothing in one such cycle never will: that bound proves a schedule
# impossible, and searches stop at their first match, so ordinary ones never go that far.
_CYCLE_YEARS = 400
_CYCLE_MONTHS = 12 * _CYCLE_YEARS
_CYCLE_DAYS = 146097


class Timeline:
    """The occurrences of one saved version of a job: startTime + recurrence, compiled once.

    Every occurrence is counted from one fixed anchor: startTime, or for a job without one the
    instant the job was saved. `next_after` never re-anchors on the occurrence it is given, so
    the dispatcher and the preview, which both chain it, compute the same times: a wall time
    shifted forward by a DST gap is shifted on that day only.
    """

    def __init__(
        self, start_time: datetime | None, recurrence: Recurrence | None, saved_at: datetime
    ) -> None:
        """`saved_at`: when this version was created or replaced (the preview's `after`)."""
        self._saved = _utc(saved_at)
        self._start = _utc(start_time) if start_time is not None else None
        self._anchor = self._start or self._saved
        self._recurrence = recurrence
        self._zone: tzinfo = UTC
        self._end: datetime | None = None
        self._schedule: RecurrenceSchedule | None = None
        self._calendar: _Calendar | None = None  # compiled on first use (it can overflow)
        self._cron: croniter | None = None  # stateful: a Timeline is not shared across threads
        if recurrence is None:
            return
        if recurrence.frequency is None and recurrence.cron is None:
            raise ValueError("recurrence needs a frequency or a cron expression")
        if recurrence.time_zone:
            self._zone = ZoneInfo(recurrence.time_zone)
        if recurrence.end_time is not None:
            self._end = _utc(recurrence.end_time)
        if recurrence.schedule is not None and not recurrence.schedule.is_empty():
            self._schedule = recurrence.schedule
        if recurrence.cron is not None:
            self._cron = _compile_cron(recurrence.cron)

    def first(self) -> datetime | None:
        """The first occurrence of the job saved at `saved_at`; None if it never runs."""
        try:
            return self._first()
        except OverflowError:
            return None  # the calendar ends (year 1 or 9999) before the schedule does

    def next_after(self, previous: datetime) -> datetime | None:
        """The first occurrence later than `previous`; honours endTime, NOT count (caller's job)."""
        try:
            return self._next_after(_utc(previous))
        except OverflowError:
            return None

    def preview(self, limit: int) -> list[datetime]:
        """The first `limit` occurrences, exactly as the dispatcher runs them (count, endTime)."""
        count = self._recurrence.count if self._recurrence is not None else None
        wanted = min(limit, count) if count is not None else limit
        occurrences: list[datetime] = []
        moment = self.first() if wanted > 0 else None
        while moment is not None and len(occurrences) < wanted:
            occurrences.append(moment)
            moment = self.next_after(moment)
        return occurrences

    def _first(self) -> datetime | None:
        saved, start, recurrence = self._saved, self._start, self._recurrence
        if recurrence is None:
            return start if start is not None and start >= saved else saved
        if recurrence.cron is not None:
            return self._until_end(self._cron_after(max(saved, self._anchor) - _SECOND))
        if start is None:
            return self._until_end(saved)  # a job without startTime runs once when saved
        if start >= saved and self._schedule is None:
            return self._until_end(start)
        return self._until_end(self._after(max(saved, start) - _SECOND))

    def _next_after(self, previous: datetime) -> datetime | None:
        if self._recurrence is None:
            return None
        after = max(previous, self._anchor - _SECOND)
        if self._recurrence.cron is not None:
            return self._until_end(self._cron_after(after))
        return self._until_end(self._after(after))

    def _until_end(self, moment: datetime | None) -> datetime | None:
        if moment is None or (self._end is not None and moment > self._end):
            return None
        return moment

    def _after(self, after: datetime) -> datetime | None:
        """The first occurrence later than `after` of the frequency grid of the anchor."""
        assert self._recurrence is not None and self._recurrence.frequency is not None
        anchor = self._anchor
        if self._elapsed:
            minute = self._recurrence.frequency is Frequency.MINUTE
            step = timedelta(minutes=1 if minute else 60) * (self._recurrence.interval or 1)
            return anchor + step * max(0, (after - anchor) // step + 1)
        if self._calendar is None:
            self._calendar = _Calendar(
                _wall(anchor, self._zone),
                self._recurrence.frequency,
                self._recurrence.interval or 1,
                self._schedule,
            )
        walls = self._calendar.walls_from(_scan_start(after, self._zone))
        return _earliest_after(walls, after, self._zone)

    @property
    def _elapsed(self) -> bool:
        """Minute/Hour without a schedule step in elapsed time, not on the wall clock."""
        assert self._recurrence is not None
        frequency = self._recurrence.frequency
        return self._schedule is None and frequency in (Frequency.MINUTE, Frequency.HOUR)

    def _cron_after(self, after: datetime) -> datetime | None:
        assert self._cron is not None
        walls = _cron_walls(self._cron, _scan_start(after, self._zone))
        return _earliest_after(walls, after, self._zone)


class _Calendar:
    """A schedule resolved against its anchor (startTime's wall clock), period by period.

    Works on naive wall-clock datetimes of the job's time zone; `_earliest_after` converts.
    """

    def __init__(
        self,
        anchor: datetime,
        frequency: Frequency,
        interval: int,
        schedule: RecurrenceSchedule | None,
    ) -> None:
        given = schedule or RecurrenceSchedule()
        self._frequency = frequency
        self._interval = interval
        self._second = anchor.second
        self._minutes = given.minutes or [anchor.minute]
        # Hour frequency: the grid hours are the hours; a schedule's `hours` only filters them.
        self._hour_filter = set(given.hours) if given.hours else None
        if given.hours:
            hours = given.hours
        elif given.minutes:
            hours = list(range(24))
        else:
            hours = [anchor.hour]
        self._times = [
            time(hour, minute, self._second) for hour in hours for minute in self._minutes
        ]
        self._week_days = [day.weekday for day in given.week_days or ()] or [anchor.weekday()]
        self._month_days = given.month_days or []
        self._occurrences = [
            (item.day.weekday, item.occurrence) for item in given.monthly_occurrences or ()
        ]
        if not self._month_days and not self._occurrences:
            self._month_days = [anchor.day]
        self._origin, self._periods = self._origin_and_periods(anchor)

    def _origin_and_periods(self, anchor: datetime) -> tuple[datetime, int]:
        """The start of the anchor's period, and how many grid periods a search may visit.

        The bound is one full cycle of what the periods can differ in, plus the period the
        search starts in (it may be partly past) and one more, where a wall time that a DST gap
        pushed past the best one may lie: a search that finds nothing in it never will.
        """
        midnight = datetime.combine(anchor.date(), time())
        if self._frequency is Frequency.HOUR:
            reachable = gcd(self._interval, 24)  # grid hours of day: anchor's hour + k*gcd
            if self._hour_filter and all((h - anchor.hour) % reachable for h in self._hour_filter):
                return anchor, 0  # e.g. every 2 hours from 01:00 but hours [4]: never
            return anchor.replace(minute=0, second=0), 24 // reachable + 2
        if self._frequency is Frequency.DAY:
            return midnight, 3  # every day has every time of day (a gap only shifts it)
        if self._frequency is Frequency.WEEK:
            monday = midnight - timedelta(days=anchor.weekday())
            return monday, 3  # every week has every weekday
        # Months differ in length and first weekday, which repeat every 4800 months.
        return midnight.replace(day=1), _CYCLE_MONTHS // gcd(self._interval, _CYCLE_MONTHS) + 2

    def walls_from(self, wall: datetime) -> Iterator[datetime]:
        """The wall times from `wall` on, ascending; lazy, because a search stops early."""
        first = max(0, self._period_index(wall) // self._interval)
        for number in range(first, first + self._periods):
            yield from self._walls_in(self._period_start(number * self._interval), wall)

    def _period_index(self, wall: datetime) -> int:
        if self._frequency is Frequency.HOUR:
            return (wall - self._origin) // timedelta(hours=1)
        days = (wall.date() - self._origin.date()).days
        if self._frequency is Frequency.DAY:
            return days
        if self._frequency is Frequency.WEEK:
            return days // 7
        return (wall.year - self._origin.year) * 12 + wall.month - self._origin.month

    def _period_start(self, index: int) -> datetime:
        if self._frequency is Frequency.HOUR:
            return self._origin + timedelta(hours=index)
        if self._frequency is Frequency.DAY:
            return self._origin + timedelta(days=index)
        if self._frequency is Frequency.WEEK:
            return self._origin + timedelta(weeks=index)
        year, month = divmod(self._origin.month - 1 + index, 12)
        if not MINYEAR <= self._origin.year + year <= MAXYEAR:
            raise OverflowError("past the end of the calendar")
        return self._origin.replace(year=self._origin.year + year, month=month + 1)

    def _walls_in(self, start: datetime, since: datetime) -> Iterator[datetime]:
        """The wall times of the period beginning at `start` that are not before `since`."""
        if self._frequency is Frequency.HOUR:
            if self._hour_filter is None or start.hour in self._hour_filter:
                walls = (start.replace(minute=m, second=self._second) for m in self._minutes)
                yield from (wall for wall in walls if wall >= since)
            return
        if self._frequency is Frequency.DAY:
            days = [start.date()]
        elif self._frequency is Frequency.WEEK:
            days = [start.date() + timedelta(days=weekday) for weekday in self._week_days]
        else:
            days = [start.date().replace(day=day) for day in self._days_of(start.year, start.month)]
        for day in days:
            if day < since.date():
                continue
            times = self._times
            if day == since.date():  # skip the times already past without building them
                times = times[bisect_left(times, since.time()) :]
            for moment in times:
                yield datetime.combine(day, moment)

    def _days_of(self, year: int, month: int) -> list[int]:
        """The month's days named by monthDays and monthlyOccurrences (their union), ascending."""
        length = calendar.monthrange(year, month)[1]
        days = {day if day > 0 else length + 1 + day for day in self._month_days}
        first_weekday = date(year, month, 1).weekday()
        for weekday, occurrence in self._occurrences:
            matches = list(range(1 + (weekday - first_weekday) % 7, length + 1, 7))
            if occurrence is None:
                days.update(matches)
            elif abs(occurrence) <= len(matches):
                days.add(matches[occurrence - 1 if occurrence > 0 else occurrence])
        return sorted(day for day in days if 1 <= day <= length)


def _compile_cron(expression: str) -> croniter:
    """Parse once (the costly part), with the day rule of the form the user wrote.

    6 fields (seconds first) are NCRONTAB, as the Functions timer evaluates them: a day runs
    when it matches day-of-month AND day-of-week. 5 fields are Vixie cron: when both day fields
    are restricted (neither starts with `*`), a day matching EITHER runs; otherwise only the
    restricted one counts. croniter's own default (`day_or`) follows neither exactly.
    """
    fields = expression.split()
    ncrontab = len(fields) == 6
    day_of_month, day_of_week = fields[-3], fields[-1]
    either = not ncrontab and not _unrestricted(day_of_month) and not _unrestricted(day_of_week)
    return croniter(
        expression,
        datetime(2000, 1, 1),
        second_at_beginning=ncrontab,
        day_or=either,
        max_years_between_matches=_CYCLE_YEARS,  # a whole calendar cycle: none then, none ever
    )


def _unrestricted(field: str) -> bool:
    """Vixie cron's test: a day field starting with `*` (`*`, `*/2`) does not restrict."""
    return field.startswith(("*", "?"))


def _cron_walls(matches: croniter, wall: datetime) -> Iterator[datetime]:
    """The wall times matching the expression from `wall` on, until none is left."""
    matches.set_current(wall - _SECOND, force=True)  # croniter yields times strictly after it
    while True:
        try:
            match: datetime = matches.get_next(datetime)
        except CroniterBadDateError:  # no match within a calendar cycle: there is none
            return
        except (OverflowError, ValueError):  # past year 9999 ("year 10000 is out of range")
            return
        yield match


def _earliest_after(walls: Iterable[datetime], after: datetime, zone: tzinfo) -> datetime | None:
    """The earliest instant later than `after` among ascending wall times.

    A wall time shifted across a DST gap can overtake the next ones (02:30 -> 03:30 comes after
    03:15), so the scan continues until a wall time lies beyond the best instant's wall time.
    """
    best: datetime | None = None
    best_wall: datetime | None = None
    for wall in walls:
        if best_wall is not None and wall > best_wall:
            break
        moment = _instant(wall, zone)
        if moment > after and (best is None or moment < best):
            best, best_wall = moment, _wall(moment, zone)
    return best


def _scan_start(after: datetime, zone: tzinfo) -> datetime:
    """The wall time to scan from so that times shifted forward across a recent gap are seen."""
    offset = after.astimezone(zone).utcoffset() or timedelta()
    earlier = (after - timedelta(days=2)).astimezone(zone).utcoffset() or timedelta()
    return _wall(after, zone) - max(timedelta(), offset - earlier)


def _utc(moment: datetime) -> datetime:
    """Aware UTC at second precision; a naive datetime is UTC, as in the API."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).replace(microsecond=0)


def _wall(moment: datetime, zone: tzinfo) -> datetime:
    """The naive wall-clock time of an instant in `zone`."""
    return moment.astimezone(zone).replace(tzinfo=None)


def _instant(wall: datetime, zone: tzinfo) -> datetime:
    """The instant of a wall time: the first one if repeated, shifted by the gap if skipped."""
    return wall.replace(tzinfo=zone, fold=0).astimezone(UTC)
