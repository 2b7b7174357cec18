"""visibility_delay: a message surfaces about a second early, never in the past, at most 7 days."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from shared.storage.queue import EARLY_ARRIVAL_SECONDS, MAX_VISIBILITY_SECONDS, visibility_delay

NOW = datetime(2030, 5, 6, 8, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("ahead", "delay"),
    [
        (timedelta(seconds=10), 9),
        (timedelta(seconds=10.9), 9),  # whole seconds, rounded down: never late
        (timedelta(seconds=2), 1),
        (timedelta(seconds=1.5), 0),
        (timedelta(seconds=1), 0),
    ],
)
def test_the_message_surfaces_one_to_two_seconds_early(ahead: timedelta, delay: int) -> None:
    assert EARLY_ARRIVAL_SECONDS == 1
    assert visibility_delay(NOW + ahead, NOW) == delay


@pytest.mark.parametrize("ahead", [timedelta(0), timedelta(seconds=0.5), timedelta(hours=-3)])
def test_a_due_time_now_or_past_is_visible_at_once(ahead: timedelta) -> None:
    assert visibility_delay(NOW + ahead, NOW) == 0


@pytest.mark.parametrize("ahead", [timedelta(days=7), timedelta(days=400)])
def test_a_far_due_time_is_capped_at_queue_storages_limit(ahead: timedelta) -> None:
    assert visibility_delay(NOW + ahead, NOW) == MAX_VISIBILITY_SECONDS
    assert MAX_VISIBILITY_SECONDS <= 7 * 24 * 3600


def test_just_under_the_cap_is_not_capped() -> None:
    due = NOW + timedelta(seconds=MAX_VISIBILITY_SECONDS)
    assert visibility_delay(due, NOW) == MAX_VISIBILITY_SECONDS - EARLY_ARRIVAL_SECONDS
