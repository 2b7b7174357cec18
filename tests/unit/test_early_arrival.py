"""A crowded second's messages surface earlier than a lone one's (shared/engine/lead.py), so
the executors can claim and hold them all before it; never more than MAX_EARLY_SECONDS early."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from shared.engine.lead import CLAIM_RATE, busiest_second, early_arrival
from shared.storage.dispatch_queue import DispatchSlice
from shared.storage.queue import EARLY_ARRIVAL_SECONDS, MAX_EARLY_SECONDS, visibility_delay

NINE = datetime(2030, 5, 6, 9, 0, 0, tzinfo=UTC)
SECOND = timedelta(seconds=1)


def test_the_busiest_second_counts_the_occurrences_sharing_it() -> None:
    assert busiest_second([]) == 0
    assert busiest_second([NINE, NINE + SECOND, NINE, NINE + 2 * SECOND, NINE]) == 3


def test_a_lone_or_light_second_surfaces_as_before() -> None:
    assert early_arrival(0) == early_arrival(1) == early_arrival(99) == EARLY_ARRIVAL_SECONDS


def test_a_crowded_second_surfaces_a_second_earlier_per_hundred_occurrences() -> None:
    assert CLAIM_RATE == 100
    assert early_arrival(100) == 2
    assert early_arrival(1_000) == 11
    assert early_arrival(5_900) == 60
    assert early_arrival(10_000) == 101  # a 10,000 burst: claimed in full before its second


def test_never_earlier_than_the_cap() -> None:
    assert early_arrival(11_900) == early_arrival(1_000_000) == MAX_EARLY_SECONDS == 120


def test_the_visibility_delay_takes_the_early_arrival() -> None:
    assert visibility_delay(NINE, NINE - 30 * SECOND, early=11) == 19
    assert visibility_delay(NINE, NINE - 5 * SECOND, early=11) == 0  # sent late: at once


def test_a_slice_carries_its_pass_crowd_and_an_older_message_means_none() -> None:
    part = DispatchSlice("sub|rg|c", "due|", "due|20300506T090100Z}", NINE, backlog=5, crowd=3)
    assert DispatchSlice.from_json(part.to_json()) == part
    older = (
        '{"v": 1, "collection": "c", "low": "a", "high": "b", "horizon": "2030-05-06T09:00:00Z"}'
    )
    assert DispatchSlice.from_json(older).crowd == 0
