"""The engine's pure decisions: what an attempt's outcome leads to, which occurrence a late
dispatch runs, whether a run is still wanted. No I/O and no clock (times come in as arguments),
so each rule is unit-tested on its own (tests/unit/test_plan_next_step.py, test_coalesce.py).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from shared.engine.records import HistoryRecord, Run, RunStatus, StoredJob, Tally, TallyRow
from shared.kinds.base import ActionOutcome
from shared.model.actions import JobErrorAction
from shared.model.job import ActionName, HistoryStatus, JobHistoryProperties, JobState
from shared.recurrence import Timeline

# How long after its due time a run nobody has taken is looked at again by the timer (its
# message may have been lost with the process that was to send it).
SCHEDULED_GRACE = timedelta(seconds=60)
# How long after a job's last run ended the timer checks its final state was settled.
FINAL_CHECK_GRACE = timedelta(seconds=60)
# A coalesced catch-up stops counting after this many missed occurrences (a minute job down
# for two years); the count is then a lower bound.
MAX_MISSED_SCAN = 1_100_000
# Dispatching after the nominal second by more than this flags the run as late.
LATE_TOLERANCE_SECONDS = 1.0


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
    "MAX_MISSED_SCAN",
    "SCHEDULED_GRACE",
    "AttemptPlan",
    "coalesce",
    "history_record",
    "plan_next_step",
    "remaining_allows",
    "wanted",
]
