"""coalesce: after downtime only the latest past-due occurrence runs; the others are counted."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from shared.engine.planning import coalesce
from shared.engine.records import StoredJob
from shared.model.job import JobState, parse_job_definition
from shared.recurrence import Timeline

START = datetime(2030, 5, 6, 8, 0, 0, tzinfo=UTC)
MINUTE = timedelta(minutes=1)
ACTION = {"type": "Http", "request": {"uri": "https://example.com/", "method": "GET"}}


def minutely(occurrences: int = 0, **recurrence: Any) -> tuple[StoredJob, Timeline]:
    """A job every minute from START, `occurrences` of them already dispatched."""
    body = {
        "startTime": START.isoformat(),
        "action": ACTION,
        "recurrence": {"frequency": "Minute", "interval": 1, **recurrence},
    }
    properties = parse_job_definition({"properties": body}, START - MINUTE)
    job = StoredJob(
        collection="c",
        name="j",
        properties=properties,
        state=JobState.ENABLED,
        created_at=START - MINUTE,
        next_fire=START + occurrences * MINUTE,
        occurrences=occurrences,
    )
    timeline = Timeline(properties.start_time, properties.recurrence, job.created_at)
    return job, timeline


def test_an_occurrence_on_time_runs_with_nothing_missed() -> None:
    job, timeline = minutely()
    assert coalesce(job, timeline, START) == (START, 0)
    assert coalesce(job, timeline, START + MINUTE - timedelta(seconds=1)) == (START, 0)


def test_after_downtime_the_latest_past_due_occurrence_runs_and_the_others_count_as_missed() -> (
    None
):
    job, timeline = minutely()
    assert coalesce(job, timeline, START + 5 * MINUTE + timedelta(seconds=30)) == (
        START + 5 * MINUTE,
        5,
    )


def test_an_occurrence_due_exactly_now_is_the_one_run() -> None:
    job, timeline = minutely()
    assert coalesce(job, timeline, START + 3 * MINUTE) == (START + 3 * MINUTE, 3)


def test_missed_occurrences_use_up_the_count_and_the_last_allowed_one_runs() -> None:
    job, timeline = minutely(occurrences=1, count=4)  # occurrences 2, 3 and 4 are left
    assert coalesce(job, timeline, START + 10 * MINUTE) == (START + 3 * MINUTE, 2)


def test_a_job_with_one_occurrence_left_misses_nothing() -> None:
    job, timeline = minutely(occurrences=2, count=3)
    assert coalesce(job, timeline, START + 10 * MINUTE) == (START + 2 * MINUTE, 0)


def test_the_end_time_stops_the_catch_up() -> None:
    job, timeline = minutely(endTime=(START + 2 * MINUTE).isoformat())
    assert coalesce(job, timeline, START + 10 * MINUTE) == (START + 2 * MINUTE, 2)


def test_counting_stops_at_the_cap_and_the_count_is_a_lower_bound() -> None:
    job, timeline = minutely()
    assert coalesce(job, timeline, START + 1000 * MINUTE, cap=7) == (START + 7 * MINUTE, 7)
