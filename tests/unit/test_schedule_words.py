"""The schedule in words the dashboard shows (shared/schedule_words.py)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from shared.model.recurrence import validate_recurrence
from shared.schedule_words import describe_schedule

NOW = datetime(2029, 1, 1, tzinfo=UTC)
START = datetime(2030, 1, 1, 8, 0, tzinfo=UTC)  # 09:00 in Berlin


def words(recurrence: dict[str, Any] | None, start: datetime | None = START) -> str:
    parsed = validate_recurrence(recurrence, NOW) if recurrence is not None else None
    return describe_schedule(start, parsed)


@pytest.mark.parametrize(
    ("recurrence", "expected"),
    [
        (
            {
                "frequency": "Week",
                "timeZone": "Europe/Berlin",
                "schedule": {
                    "weekDays": ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday"],
                    "hours": [9],
                    "minutes": [0],
                },
            },
            "every weekday at 09:00 Europe/Berlin",
        ),
        ({"cron": "0 */15 * * * *"}, "cron 0 */15 * * * * UTC"),
        (
            {"cron": "0 */15 * * * *", "timeZone": "America/New_York"},
            "cron 0 */15 * * * * America/New_York",
        ),
        ({"frequency": "Minute", "interval": 15}, "every 15 minutes UTC"),
        ({"frequency": "Hour"}, "every hour UTC"),
        ({"frequency": "Day"}, "every day at 08:00 UTC"),
        ({"frequency": "Day", "timeZone": "Europe/Berlin"}, "every day at 09:00 Europe/Berlin"),
        (
            {"frequency": "Week", "interval": 2, "schedule": {"weekDays": ["Monday", "Friday"]}},
            "every 2 weeks on Monday and Friday at 08:00 UTC",
        ),
        (
            {
                "frequency": "Month",
                "count": 10,
                "schedule": {
                    "monthlyOccurrences": [{"day": "Friday", "occurrence": -1}],
                    "hours": [17],
                    "minutes": [30],
                },
            },
            "every month on the last Friday at 17:30 UTC, 10 times",
        ),
        (
            {"frequency": "Month", "schedule": {"monthDays": [1, 15, -1]}},
            "every month on the last day, day 1 and day 15 at 08:00 UTC",
        ),
        (
            {"frequency": "Hour", "schedule": {"minutes": [0, 30]}},
            "every hour at :00 and :30 past every hour UTC",
        ),
        (
            {"frequency": "Day", "schedule": {"hours": list(range(8, 18)), "minutes": [0, 30]}},
            "every day at minute 0 and 30 of hours 8, 9, 10, 11, 12, 13, 14, 15, 16 and 17 UTC",
        ),
        (
            {"frequency": "Day", "endTime": "2030-06-01T00:00:00Z"},
            "every day at 08:00 UTC, until 2030-06-01 00:00 UTC",
        ),
    ],
)
def test_a_recurrence_reads_as_a_sentence(recurrence, expected):
    assert words(recurrence) == expected


def test_a_one_time_job_says_when():
    assert words(None) == "once at 2030-01-01 08:00 UTC"
    assert words(None, start=None) == "once, when saved"
