"""The broadcast engine's pure decisions: statistics, rollout pacing, abort criteria, retries.

No I/O: the starter and the device worker (shared/broadcasts/engine.py) ask these, and the
unit tests pin them (tests/unit/test_broadcast_planning.py)."""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache

from shared.broadcasts.model import (
    MAX_RATE_PER_MINUTE,
    AbortCriterion,
    BroadcastSpec,
    ExponentialRate,
)

# Per-device record statuses, lower case as IoT Hub's devices.jobs shows them.
PENDING, RUNNING, SUCCEEDED, FAILED, CANCELED = (
    "pending",
    "running",
    "completed",
    "failed",
    "canceled",
)
DEVICE_ENDED = (SUCCEEDED, FAILED, CANCELED)
TIMED_OUT = "TIMED_OUT"  # a failure's type, for abort and retry criteria
FAILED_TYPE = "FAILED"


@dataclass(frozen=True)
class Stats:
    """IoT Hub's deviceJobStatistics plus how many failures were timeouts. A canceled device
    (cancel, abort or the time limit stopped it before its call) counts as failed, so the four
    counts always add up to deviceCount."""

    pending: int = 0
    running: int = 0
    succeeded: int = 0
    failed: int = 0
    timed_out: int = 0

    @property
    def device_count(self) -> int:
        return self.pending + self.running + self.succeeded + self.failed

    @property
    def executed(self) -> int:
        return self.succeeded + self.failed

    @property
    def open(self) -> int:
        return self.pending + self.running

    def __add__(self, other: Stats) -> Stats:
        return Stats(
            self.pending + other.pending,
            self.running + other.running,
            self.succeeded + other.succeeded,
            self.failed + other.failed,
            self.timed_out + other.timed_out,
        )

    def moved(self, before: str | None, after: str, after_timed_out: bool) -> Stats:
        """These counts after one record went from `before` (None: new) to `after`."""
        counts = {
            PENDING: self.pending,
            RUNNING: self.running,
            SUCCEEDED: self.succeeded,
            FAILED: self.failed,
        }
        if before is not None:
            counts[_bucket(before)] -= 1
        counts[_bucket(after)] += 1
        return Stats(
            counts[PENDING],
            counts[RUNNING],
            counts[SUCCEEDED],
            counts[FAILED],
            self.timed_out + (1 if after_timed_out else 0),
        )

    def json(self) -> dict[str, int]:
        return {
            "deviceCount": self.device_count,
            "failedCount": self.failed,
            "succeededCount": self.succeeded,
            "runningCount": self.running,
            "pendingCount": self.pending,
        }


def _bucket(status: str) -> str:
    return FAILED if status == CANCELED else status


def total(parts: Iterable[Stats]) -> Stats:
    result = Stats()
    for part in parts:
        result = result + part
    return result


def rollout_delay_seconds(
    index: int, maximum_per_minute: int | None, exponential: ExponentialRate | None = None
) -> int:
    """When the `index`-th device (0-based, in record order) may start, in whole seconds after
    the broadcast's start (rounded down: a slot's second). `maximumPerMinute`: that many devices
    in every minute, evenly spread, so no sliding minute ever holds more than the limit.
    `exponentialRate`: see `_stages`. Neither: all at once."""
    if exponential is not None:
        firsts, starts, rates = _stages(exponential)
        stage = bisect_right(firsts, index) - 1
        offset = starts[stage] + (index - firsts[stage]) * 60 / rates[stage]
        return int(offset)  # floor: the offset is never negative
    if maximum_per_minute is None:
        return 0
    return (index * 60) // maximum_per_minute


@lru_cache(maxsize=64)
def _stages(
    rate: ExponentialRate,
) -> tuple[tuple[int, ...], tuple[Fraction, ...], tuple[Fraction, ...]]:
    """The rollout's stages as (first device index, start offset in seconds, devices per minute):
    stage k holds `every` devices evenly spread at base * factor^k a minute, and stage k+1
    starts when stage k's rate would reach the next device, so the rate is multiplied each time
    `every` more devices were notified (AWS's numberOfNotifiedThings). The rate stops growing at
    `MAX_RATE_PER_MINUTE` (AWS's ceiling for a rollout); the last stage runs to the end.
    numberOfSucceededThings is planned the same way (see docs/broadcasts.md): the slots are
    fixed at the start, when no device has answered yet. Exact fractions: slots do not drift."""
    factor = Fraction(str(rate.increment_factor))
    per_minute = Fraction(rate.base_per_minute)
    firsts: list[int] = []
    starts: list[Fraction] = []
    rates: list[Fraction] = []
    first, start = 0, Fraction(0)
    while True:
        per_minute = min(per_minute, Fraction(MAX_RATE_PER_MINUTE))
        firsts.append(first)
        starts.append(start)
        rates.append(per_minute)
        if per_minute == MAX_RATE_PER_MINUTE:  # at most 73 stages (1 * 1.1^73 > 1000)
            return tuple(firsts), tuple(starts), tuple(rates)
        start += rate.every * 60 / per_minute
        first += rate.every
        per_minute *= factor


def abort_reason(criteria: Iterable[AbortCriterion], stats: Stats) -> str | None:
    """The first criterion the statistics meet (as the failureReason names it), or None."""
    for criterion in criteria:
        if stats.executed < criterion.min_executed:
            continue
        failed = {
            FAILED_TYPE: stats.failed - stats.timed_out,
            TIMED_OUT: stats.timed_out,
            "ALL": stats.failed,
        }[criterion.failure_type]
        if failed * 100 >= criterion.threshold_percentage * stats.executed:
            return criterion.describe()
    return None


def retries_allowed(spec: BroadcastSpec, failure_type: str) -> int:
    """How many retries a device gets after a failure of this type (an exact type's criterion
    before ALL's)."""
    exact = dict(spec.retries)
    return exact.get(failure_type, exact.get("ALL", 0))


def should_retry(spec: BroadcastSpec, failure_type: str, attempt: int) -> bool:
    """Whether attempt `attempt` (0 = the first call) that failed gets another."""
    return attempt < retries_allowed(spec, failure_type)
