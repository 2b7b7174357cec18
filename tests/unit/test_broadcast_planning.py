"""The broadcast engine's pure decisions: pacing, abort criteria, retries, statistics."""

from __future__ import annotations

from shared.broadcasts.model import AbortCriterion, parse_job_request
from shared.broadcasts.planning import (
    CANCELED,
    PENDING,
    RUNNING,
    Stats,
    abort_reason,
    rollout_delay_seconds,
    should_retry,
)


def test_rollout_never_puts_more_than_the_limit_in_a_minute() -> None:
    delays = [rollout_delay_seconds(i, 7) for i in range(50)]
    for start in range(0, 420):
        assert sum(1 for d in delays if start <= d < start + 60) <= 7
    assert rollout_delay_seconds(5, None) == 0


def test_abort_waits_for_the_minimum_then_compares_the_share_of_its_failure_type() -> None:
    criterion = AbortCriterion("TIMED_OUT", 50, 4)
    assert abort_reason([criterion], Stats(succeeded=1, failed=2, timed_out=2)) is None
    assert abort_reason([criterion], Stats(succeeded=2, failed=2, timed_out=1)) is None
    reason = abort_reason([criterion], Stats(succeeded=2, failed=2, timed_out=2))
    assert reason is not None and "TIMED_OUT" in reason


def test_retries_take_the_exact_type_before_all() -> None:
    spec = parse_job_request(
        "j",
        {
            "type": "scheduleUpdateTwin",
            "updateTwin": {"tags": {"a": 1}},
            "queryCondition": "*",
            "retryConfig": {
                "criteriaList": [
                    {"failureType": "ALL", "numberOfRetries": 3},
                    {"failureType": "TIMED_OUT", "numberOfRetries": 0},
                ]
            },
        },
    )
    assert should_retry(spec, "FAILED", 2) and not should_retry(spec, "FAILED", 3)
    assert not should_retry(spec, "TIMED_OUT", 0)


def test_statistics_moves_keep_the_device_count() -> None:
    stats = Stats(pending=3)
    stats = stats.moved(PENDING, RUNNING, False).moved(PENDING, CANCELED, False)
    assert stats.json() == {
        "deviceCount": 3,
        "failedCount": 1,
        "succeededCount": 0,
        "runningCount": 1,
        "pendingCount": 1,
    }
