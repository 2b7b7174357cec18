"""The engine's pure decisions: what an attempt's outcome leads to, which occurrence a late
dispatch runs, whether a run is still wanted, what the overlap policy makes of a run. No I/O
and no clock (times come in as arguments), so each rule is unit-tested on its own
(tests/unit/test_plan_next_step.py, test_coalesce.py, test_overlap_policy.py).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from shared.engine.records import HistoryRecord, Run, RunStatus, StoredJob, Tally, TallyRow
from shared.kinds.base import ActionOutcome
from shared.model.actions import JobErrorAction
from shared.model.job import (
    ActionName,
    HistoryStatus,
    JobHistoryProperties,
    JobState,
    OverlapPolicy,
)
from shared.recurrence import Timeline

# How long after its due time a run nobody has taken is looked at again by the timer (its
# message may have been lost with the process that was to send it).
SCHEDULED_GRACE = timedelta(seconds=60)
# Occurrences per second the executors work through a burst at, at worst (one local host on a
# busy 2-core machine): a run dispatched with thousands of others is given that much longer
# before the timer resends its message, so a backlog is not taken for lost messages (each
# resend is more storage work, while storage is what the backlog waits for).
BURST_PICKUP_RATE = 20.0


def pickup_grace(backlog: int) -> timedelta:
    """How long after its due time a run dispatched in a pass of `backlog` occurrences waits
    for an executor before the timer looks at it."""
    return SCHEDULED_GRACE + timedelta(seconds=backlog / BURST_PICKUP_RATE)


# How long after a job's last run ended the timer checks its final state was settled.
FINAL_CHECK_GRACE = timedelta(seconds=60)
# A coalesced catch-up stops counting after this many missed occurrences (a minute job down
# for two years); the count is then a lower bound.
MAX_MISSED_SCAN = 1_100_000
# Dispatching after the nominal second by more than this flags the run as late.
LATE_TOLERANCE_SECONDS = 1.0
# Overlap policy Replace: how often a running attempt looks for a request to stop, and how long
# the replacing run waits for the replaced ones to stop before it starts anyway (their holder
# may be dead; its lease then still runs, but nobody will answer).
REPLACE_POLL = timedelta(seconds=1)
REPLACE_WAIT = timedelta(seconds=5)


@dataclass(frozen=True)
class AttemptPlan:
    """What one finished attempt changes: the run's next step (None: it ended), its history
    row, its tally, and the final state it decides if it ended the job's last occurrence."""

    next_run: Run | None
    history: HistoryRecord
    tally: TallyRow | None


def wanted(job: StoredJob, run: Run) -> bool:
    """On-demand runs always run; scheduled ones unless their job was replaced or disabled
    (a job whose schedule ended still carries its runs in flight to their end)."""
    return run.on_demand or (job.schedules(run) and job.state is not JobState.DISABLED)


def plan_next_step(
    job: StoredJob,
    run: Run,
    action: JobErrorAction,
    outcome: ActionOutcome,
    started: datetime,
    finished: datetime,
) -> AttemptPlan:
    """Pure bookkeeping of one attempt: counters, history, retry, error action, final state."""
    main = run.phase is ActionName.MAIN_ACTION
    executions = failures = faulted = 0
    if main:
        executions = 1 if run.attempt == 0 else 0
        failures = 0 if outcome.succeeded else 1
    next_run: Run | None = None
    occurrence_failed = run.faulted
    if not outcome.succeeded:
        delay = action.effective_retry_policy().delay_before_retry(run.attempt)
        if delay is not None:
            next_run = replace(run, attempt=run.attempt + 1, due=finished + delay)
        elif main:
            faulted = 1
            occurrence_failed = True
            if job.properties.action.error_action is not None:
                next_run = replace(
                    run, phase=ActionName.ERROR_ACTION, attempt=0, due=finished, faulted=True
                )
    final_state = None
    if next_run is None and run.last and not run.on_demand:
        final_state = JobState.FAULTED if occurrence_failed else JobState.COMPLETED
    tally = None
    if main or final_state:
        tally = TallyRow(
            collection=run.collection,
            job=run.job,
            key=run.tally_key,
            tally=Tally(executions, failures, faulted, started if main else None),
            generation=run.generation,
            final_state=final_state,
        )
    status = HistoryStatus.COMPLETED if outcome.succeeded else HistoryStatus.FAILED
    history = history_record(run, status, _history_message(run, outcome), started, finished)
    history = replace(history, output=outcome.output)
    if next_run is not None:
        next_run = replace(
            next_run,
            status=RunStatus.SCHEDULED,
            claimed_until=None,
            started_at=None,
            watch_at=next_run.due + SCHEDULED_GRACE,
        )
    return AttemptPlan(next_run, history, tally)


def history_record(
    run: Run, status: HistoryStatus, message: str, started: datetime, finished: datetime
) -> HistoryRecord:
    return HistoryRecord(
        collection=run.collection,
        job=run.job,
        properties=JobHistoryProperties(
            start_time=started,
            end_time=finished,
            expected_execution_time=run.nominal,
            action_name=run.phase,
            status=status,
            message=message,
            retry_count=run.attempt,
            repeat_count=run.repeat_count,
        ),
        late_seconds=run.late_seconds,
        on_demand=run.on_demand,
        run_token=run.token,
        trigger=run.trigger,
    )


def _history_message(run: Run, outcome: ActionOutcome) -> str:
    notes = []
    if run.on_demand:
        notes.append("Run on demand.")
    if run.phase is ActionName.MAIN_ACTION and run.attempt == 0:
        if run.late_seconds:
            notes.append(f"Late by {run.late_seconds:.1f} s.")
        if run.missed:
            notes.append(
                f"{run.missed} earlier missed occurrence(s) were counted, not run (coalesced)."
            )
    return " ".join([*notes, outcome.message])


@dataclass(frozen=True)
class Overlap:
    """What the overlap policy makes of a run about to start its first attempt: skip it
    (`blocked_by`: the run still running), or stop `to_replace` first; neither means start."""

    blocked_by: Run | None = None
    to_replace: tuple[Run, ...] = ()


def first_start(run: Run) -> bool:
    """Only an occurrence's (or on-demand run's) first attempt meets the overlap policy: its
    own retries and error action are not overlaps."""
    return run.step == (0, 0)


def still_running(run: Run, now: datetime) -> bool:
    """Whether a run's occurrence is under way: an attempt holds a live lease, or it waits for
    a retry or its error action. A claim whose lease ended belongs to a dead executor (the timer
    resumes it), so it blocks nothing; nor does a run that has not started."""
    if run.status is RunStatus.RUNNING:
        return run.claimed_until is not None and run.claimed_until > now
    return not first_start(run)


def _claim_order(run: Run) -> tuple[datetime, str]:
    written = run.written_at or run.started_at or run.due
    return written, run.row_key


def decide_overlap(policy: OverlapPolicy, mine: Run, others: list[Run], now: datetime) -> Overlap:
    """The overlap policy applied to `mine` (claimed, about to call) given the job's runs.

    Every claimer writes its claim, then reads the others: of two first attempts claiming
    together at least one sees the other, and they agree on which came first by the order of
    their claims (storage's timestamps, then the row key). So a first attempt claimed after
    ours is not ours to judge: it skips itself (Forbid) or replaces ours (Replace). Forbid: the
    earliest claimer runs; Replace: the latest runs and the others are asked to stop.
    """
    if policy is OverlapPolicy.ALLOW or not first_start(mine):
        return Overlap()
    order = _claim_order(mine)
    running = [
        run
        for run in others
        if run.row_key != mine.row_key
        and still_running(run, now)
        and not (first_start(run) and _claim_order(run) > order)
    ]
    if not running:
        return Overlap()
    if policy is OverlapPolicy.FORBID:
        return Overlap(blocked_by=min(running, key=lambda run: run.nominal))
    return Overlap(to_replace=tuple(running))


def describe(run: Run) -> str:
    """How a history message names another run of the job."""
    if run.on_demand:
        return f"the on-demand run of {run.nominal.isoformat()}"
    return f"the occurrence of {run.nominal.isoformat()}"


def plan_skipped(run: Run, blocked_by: Run, now: datetime) -> AttemptPlan:
    """Forbid: the run ends without calling. It started nothing, so it is no execution and no
    failure; if it was the schedule's last occurrence, the job completes (nothing failed)."""
    message = (
        f"Skipped: the previous occurrence (nominal {blocked_by.nominal.isoformat()}) was still "
        f"running (overlap policy Forbid)."
    )
    history = history_record(run, HistoryStatus.CANCELLED, message, now, now)
    return AttemptPlan(None, history, _ending_tally(run, Tally(), faulted=False))


def plan_replaced(
    run: Run, started: datetime, finished: datetime, *, output: bool = False
) -> AttemptPlan:
    """Replace: the run ends, stopped (mid-call, or between attempts) by a newer one. No retry
    and no error action (the newer run supersedes it). It counts as an execution if this was
    its first attempt (it started), but not as a failure: its target did not fail, the policy
    stopped it. The schedule's last occurrence ends the job Completed, or Faulted if its retries
    had already been exhausted. `output`: the cancelled call kept an output (a code job's),
    which its history row links like any attempt's."""
    main = run.phase is ActionName.MAIN_ACTION
    first = main and run.attempt == 0
    tally = Tally(1 if first else 0, 0, 0, started if first else None)
    message = f"Cancelled: replaced by {run.replaced_by} (overlap policy Replace)."
    history = history_record(run, HistoryStatus.CANCELLED, message, started, finished)
    history = replace(history, output=output)
    return AttemptPlan(None, history, _ending_tally(run, tally, faulted=run.faulted))


def _ending_tally(run: Run, tally: Tally, *, faulted: bool) -> TallyRow | None:
    """The tally of a run that ends now: its counters, and the final state when it was the
    schedule's last occurrence; None when there is nothing to write."""
    final_state = None
    if run.last and not run.on_demand:
        final_state = JobState.FAULTED if faulted else JobState.COMPLETED
    if final_state is None and tally == Tally():
        return None
    return TallyRow(
        collection=run.collection,
        job=run.job,
        key=run.tally_key,
        tally=tally,
        generation=run.generation,
        final_state=final_state,
    )


def remaining_allows(job: StoredJob, occurrences: int) -> bool:
    """Whether the recurrence's count leaves room for another occurrence after `occurrences`."""
    recurrence = job.properties.recurrence
    count = recurrence.count if recurrence else None
    return count is None or occurrences < count


def coalesce(
    job: StoredJob, timeline: Timeline, now: datetime, *, cap: int = MAX_MISSED_SCAN
) -> tuple[datetime, int]:
    """The occurrence to run and how many earlier ones were missed.

    When the app was down, every past-due occurrence but the latest is counted as missed
    (and uses up `count`), and the latest runs once, flagged late. Counting stops after `cap`
    misses (the count is then a lower bound, and the occurrence run is not the latest).
    """
    assert job.next_fire is not None
    nominal, missed = job.next_fire, 0
    while missed < cap and remaining_allows(job, job.occurrences + 1 + missed):
        following = timeline.next_after(nominal)
        if following is None or following > now:
            break
        nominal, missed = following, missed + 1
    return nominal, missed


__all__ = [
    "FINAL_CHECK_GRACE",
    "LATE_TOLERANCE_SECONDS",
    "BURST_PICKUP_RATE",
    "pickup_grace",
    "MAX_MISSED_SCAN",
    "REPLACE_POLL",
    "REPLACE_WAIT",
    "SCHEDULED_GRACE",
    "AttemptPlan",
    "Overlap",
    "coalesce",
    "decide_overlap",
    "describe",
    "first_start",
    "history_record",
    "plan_next_step",
    "plan_replaced",
    "plan_skipped",
    "still_running",
    "remaining_allows",
    "wanted",
]
