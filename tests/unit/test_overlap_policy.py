"""The overlap policy's pure decisions (shared/engine/planning.py): who counts as running, who
is skipped or replaced, and what a skipped or replaced run records."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from shared.engine.planning import (
    decide_overlap,
    plan_replaced,
    plan_skipped,
    still_running,
)
from shared.engine.records import Run, RunStatus, Tally
from shared.model.job import ActionName, HistoryStatus, JobState, OverlapPolicy

T = datetime(2031, 1, 1, 9, 0, tzinfo=UTC)
NOW = T + timedelta(minutes=1)
S = timedelta(seconds=1)


def run(nominal: datetime, **fields: object) -> Run:
    base = Run(collection="c", job="j", generation=1, nominal=nominal, repeat_count=1, due=nominal)
    return replace(base, **fields)  # type: ignore[arg-type]


def calling(nominal: datetime, claimed_at: datetime, **fields: object) -> Run:
    """A run whose attempt holds a live lease, claimed (by storage's clock) at `claimed_at`."""
    return run(
        nominal,
        status=RunStatus.RUNNING,
        claimed_until=NOW + timedelta(minutes=2),
        written_at=claimed_at,
        **fields,
    )


PREVIOUS = calling(T, T)
MINE = calling(NOW, NOW)


def test_running_means_a_live_lease_or_waiting_for_a_retry():
    assert still_running(PREVIOUS, NOW)
    assert not still_running(replace(PREVIOUS, claimed_until=NOW - S), NOW), "dead holder"
    assert not still_running(run(NOW + S), NOW), "not started yet"
    assert still_running(run(T, attempt=1, due=NOW + S), NOW), "waits for a retry"
    assert still_running(run(T, phase=ActionName.ERROR_ACTION, due=NOW), NOW)


def test_allow_never_stands_in_the_way():
    assert decide_overlap(OverlapPolicy.ALLOW, MINE, [PREVIOUS, MINE], NOW).blocked_by is None
    assert decide_overlap(OverlapPolicy.ALLOW, MINE, [PREVIOUS], NOW).to_replace == ()


def test_forbid_is_blocked_by_the_previous_run_and_not_by_itself():
    decision = decide_overlap(OverlapPolicy.FORBID, MINE, [PREVIOUS, MINE], NOW)
    assert decision.blocked_by == PREVIOUS and decision.to_replace == ()
    assert decide_overlap(OverlapPolicy.FORBID, MINE, [MINE], NOW).blocked_by is None


def test_a_dead_holder_does_not_block():
    dead = replace(PREVIOUS, claimed_until=NOW - S)
    assert decide_overlap(OverlapPolicy.FORBID, MINE, [dead, MINE], NOW).blocked_by is None


def test_retries_of_the_run_itself_are_not_judged():
    retry = replace(MINE, attempt=1)
    assert decide_overlap(OverlapPolicy.FORBID, retry, [PREVIOUS, retry], NOW).blocked_by is None
    assert decide_overlap(OverlapPolicy.REPLACE, retry, [PREVIOUS], NOW).to_replace == ()


@pytest.mark.parametrize("policy", [OverlapPolicy.FORBID, OverlapPolicy.REPLACE])
def test_two_first_attempts_claiming_together_agree_on_which_came_first(policy):
    """Each sees the other: the earlier claim (storage's time, then the row key) is judged by
    the later one only, so exactly one of them acts."""
    early, late = calling(NOW, NOW), calling(NOW, NOW + S, token="manual-1")
    both = [early, late]
    for_early = decide_overlap(policy, early, both, NOW)
    for_late = decide_overlap(policy, late, both, NOW)
    assert (for_early.blocked_by, for_early.to_replace) == (None, ())
    if policy is OverlapPolicy.FORBID:
        assert for_late.blocked_by == early
    else:
        assert for_late.to_replace == (early,)
    # Same instant: the row key decides, the same way on both sides.
    a, b = calling(NOW, NOW), calling(NOW, NOW, token="manual-2")
    acting = [
        mine
        for mine in (a, b)
        if decide_overlap(policy, mine, [a, b], NOW) != decide_overlap(policy, mine, [], NOW)
    ]
    assert len(acting) == 1


def test_forbid_names_the_earliest_running_occurrence():
    older = calling(T - timedelta(minutes=1), T - timedelta(minutes=1))
    decision = decide_overlap(OverlapPolicy.FORBID, MINE, [PREVIOUS, older, MINE], NOW)
    assert decision.blocked_by == older


def test_replace_asks_every_running_run_to_stop():
    waiting = run(T - timedelta(minutes=1), attempt=2, due=NOW + S)
    decision = decide_overlap(OverlapPolicy.REPLACE, MINE, [PREVIOUS, waiting, MINE], NOW)
    assert decision.to_replace == (PREVIOUS, waiting) and decision.blocked_by is None


def test_a_skip_is_no_execution_nor_failure_and_completes_a_last_occurrence():
    plan = plan_skipped(MINE, PREVIOUS, NOW)
    assert plan.next_run is None
    assert plan.history.properties.status is HistoryStatus.CANCELLED
    assert plan.history.properties.message.startswith(
        f"Skipped: the previous occurrence (nominal {T.isoformat()}) was still running"
    )
    assert plan.tally is None
    last = plan_skipped(replace(MINE, last=True), PREVIOUS, NOW)
    assert last.tally is not None and last.tally.tally == Tally()
    assert last.tally.final_state is JobState.COMPLETED


def test_a_replaced_first_attempt_counts_as_an_execution_but_not_a_failure():
    replaced = replace(PREVIOUS, replaced_by="the occurrence of X")
    plan = plan_replaced(replaced, T, NOW)
    assert plan.next_run is None, "no retry, no error action"
    assert plan.history.properties.status is HistoryStatus.CANCELLED
    assert plan.history.properties.message == (
        "Cancelled: replaced by the occurrence of X (overlap policy Replace)."
    )
    assert plan.tally is not None and plan.tally.tally == Tally(1, 0, 0, T)
    between_retries = plan_replaced(replace(replaced, attempt=2), T, NOW)
    assert between_retries.tally is None, "its execution was counted by its first attempt"
    faulted_last = plan_replaced(
        replace(replaced, phase=ActionName.ERROR_ACTION, faulted=True, last=True), T, NOW
    )
    assert faulted_last.tally is not None
    assert faulted_last.tally.final_state is JobState.FAULTED
