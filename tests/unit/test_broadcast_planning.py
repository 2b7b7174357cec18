"""The broadcast engine's pure decisions: pacing, abort criteria, retries, statistics."""

from __future__ import annotations

from shared.broadcasts.model import (
    NOTIFIED,
    SUCCEEDED_THINGS,
    AbortCriterion,
    ExponentialRate,
    parse_job_request,
)
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


def exponential(base: int, factor: float, every: int, criterion: str = NOTIFIED) -> ExponentialRate:
    return ExponentialRate(base, factor, criterion, every)


def test_an_exponential_rollout_multiplies_the_rate_each_time_the_count_is_reached() -> None:
    """2 a minute, doubled every 2 notified devices: 30 s apart, then 15, 7.5, 3.75 s."""
    rate = exponential(2, 2, 2)
    delays = [rollout_delay_seconds(i, None, rate) for i in range(9)]
    assert delays == [0, 30, 60, 75, 90, 97, 105, 108, 112]


def test_an_exponential_rollout_with_a_fractional_rate_keeps_exact_slots() -> None:
    """10 a minute times 1.5 every 10 devices: 6 s apart, then 4 s, then 60/22.5 s, then
    60/33.75 s; the stage starts add up exactly (100 s, then 100 + 26.67 s)."""
    rate = exponential(10, 1.5, 10)
    delays = [rollout_delay_seconds(i, None, rate) for i in (0, 9, 10, 19, 20, 21, 22, 30, 31)]
    assert delays == [0, 54, 60, 96, 100, 102, 105, 126, 128]


def test_an_exponential_rollout_stops_growing_at_1000_a_minute() -> None:
    """500 a minute tripled after 500 devices would be 1,500; it is capped at 1,000."""
    rate = exponential(500, 3, 500)
    assert rollout_delay_seconds(499, None, rate) == 59
    assert rollout_delay_seconds(500, None, rate) == 60
    assert rollout_delay_seconds(1000, None, rate) == 90
    assert rollout_delay_seconds(100_500, None, rate) == 6060  # 100,000 more at 1,000 a minute
    delays = [rollout_delay_seconds(i, None, rate) for i in range(500, 3500)]
    for start in range(60, 240):
        assert sum(1 for d in delays if start <= d < start + 60) <= 1000


def test_succeeded_things_are_planned_as_notified_things() -> None:
    """The slots are fixed at the start (no device has answered yet): the rate rises at the
    earliest moment numberOfSucceededThings could make it rise."""
    notified = [rollout_delay_seconds(i, None, exponential(3, 1.2, 4)) for i in range(40)]
    succeeded = exponential(3, 1.2, 4, SUCCEEDED_THINGS)
    assert [rollout_delay_seconds(i, None, succeeded) for i in range(40)] == notified


def test_a_constant_rollout_is_unchanged_by_the_exponential_planner() -> None:
    assert [rollout_delay_seconds(i, 4) for i in range(5)] == [0, 15, 30, 45, 60]
