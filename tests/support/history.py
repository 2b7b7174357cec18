"""History rows of a main-action attempt, as the executor records them (activity counters)."""

from __future__ import annotations

from datetime import datetime

from shared.engine.records import HistoryRecord
from shared.model.job import ActionName, HistoryStatus, JobHistoryProperties


def main_attempt(started: datetime, expected: datetime, status: HistoryStatus) -> HistoryRecord:
    """A first attempt of job "j" in collection "sub|rg|c", started at `started`, due `expected`."""
    return HistoryRecord(
        collection="sub|rg|c",
        job="j",
        properties=JobHistoryProperties(
            start_time=started,
            end_time=started,
            expected_execution_time=expected,
            action_name=ActionName.MAIN_ACTION,
            status=status,
            message="",
            retry_count=0,
            repeat_count=0,
        ),
    )
