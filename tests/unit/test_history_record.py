"""A history record's public id (the last segment of its resource id) and its row key: both are
made from the same parts, so the API never parses a key to show an id."""

from __future__ import annotations

from datetime import UTC, datetime

from shared.engine.records import HistoryRecord
from shared.model.job import ActionName, HistoryStatus, JobHistoryProperties

EXPECTED = datetime(2030, 1, 1, 0, 0, 0, tzinfo=UTC)
STARTED = datetime(2030, 1, 1, 0, 0, 5, tzinfo=UTC)  # 1893456005000 ms after the epoch


def record(*, action: ActionName, retry: int, token: str = "") -> HistoryRecord:
    properties = JobHistoryProperties(
        start_time=STARTED,
        end_time=STARTED,
        expected_execution_time=EXPECTED,
        action_name=action,
        status=HistoryStatus.COMPLETED,
        message="Http 200.",
        retry_count=retry,
        repeat_count=1,
    )
    return HistoryRecord("sub|rg|c", "nightly", properties, run_token=token)


def test_public_id_of_a_scheduled_main_action_attempt() -> None:
    found = record(action=ActionName.MAIN_ACTION, retry=0)

    assert found.public_id == "8106543995000-20300101T000000Z-m000"
    assert found.row_key == "hist|nightly|8106543995000|20300101T000000Z|m000"


def test_public_id_of_an_on_demand_error_action_retry() -> None:
    found = record(action=ActionName.ERROR_ACTION, retry=2, token="manual-0a1b2c3d")

    assert found.public_id == "8106543995000-20300101T000000Zmanual-0a1b2c3d-e002"
    assert found.row_key == "hist|nightly|8106543995000|20300101T000000Zmanual-0a1b2c3d|e002"
