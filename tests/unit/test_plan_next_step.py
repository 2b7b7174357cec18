"""plan_next_step: what one finished attempt changes (retry, error action, counters, history,
the job's final state), without storage."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from shared.engine.planning import SCHEDULED_GRACE, AttemptPlan, plan_next_step
from shared.engine.records import Run, RunStatus, StoredJob, Tally
from shared.kinds.base import ActionOutcome
from shared.model.actions import JobErrorAction
from shared.model.job import ActionName, HistoryStatus, JobState, parse_job_definition

NOMINAL = datetime(2030, 5, 6, 8, 0, 0, tzinfo=UTC)
STARTED = NOMINAL + timedelta(seconds=1)
FINISHED = STARTED + timedelta(seconds=2)
OK = ActionOutcome(succeeded=True, message="Http 200.", status_code=200)
FAILED = ActionOutcome(succeeded=False, message="Http 500.", status_code=500)
REQUEST = {"uri": "https://example.com/", "method": "GET"}
TWO_RETRIES = {"retryType": "Fixed", "retryInterval": "PT20S", "retryCount": 2}


def stored_job(*, error_action: bool = True, retry: dict[str, Any] | None = None) -> StoredJob:
    action: dict[str, Any] = {"type": "Http", "request": REQUEST}
    action["retryPolicy"] = retry if retry is not None else TWO_RETRIES
    if error_action:
        action["errorAction"] = {
            "type": "Http",
            "request": {"uri": "https://example.com/error", "method": "POST"},
            "retryPolicy": {"retryType": "Fixed", "retryInterval": "PT5S", "retryCount": 1},
        }
    body = {"startTime": NOMINAL.isoformat(), "action": action}
    properties = parse_job_definition({"properties": body}, NOMINAL - timedelta(hours=1))
    return StoredJob("c", "j", properties, JobState.ENABLED, NOMINAL - timedelta(hours=1))


def run_of(job: StoredJob, **fields: Any) -> Run:
    values: dict[str, Any] = {
        "collection": job.collection,
        "job": job.name,
        "generation": job.generation,
        "nominal": NOMINAL,
        "repeat_count": 1,
        "due": NOMINAL,
        "status": RunStatus.RUNNING,
        "claimed_until": FINISHED + timedelta(minutes=5),
        "started_at": STARTED,
    }
    values.update(fields)
    return Run(**values)


def action_of(job: StoredJob, run: Run) -> JobErrorAction:
    main = job.properties.action
    if run.phase is ActionName.MAIN_ACTION:
        return main
    assert main.error_action is not None
    return main.error_action


def plan(job: StoredJob, run: Run, outcome: ActionOutcome) -> AttemptPlan:
    return plan_next_step(job, run, action_of(job, run), outcome, STARTED, FINISHED)


def test_a_first_attempt_that_succeeds_ends_the_run_and_counts_one_execution() -> None:
    job = stored_job()
    result = plan(job, run_of(job), OK)
    assert result.next_run is None
    assert result.tally is not None
    assert result.tally.tally == Tally(
        executions=1, failures=0, faulted=0, last_execution_time=STARTED
    )
    assert result.tally.final_state is None  # not the last occurrence
    history = result.history.properties
    assert history.status is HistoryStatus.COMPLETED
    assert (history.action_name, history.retry_count, history.repeat_count) == (
        ActionName.MAIN_ACTION,
        0,
        1,
    )
    assert (history.start_time, history.end_time, history.expected_execution_time) == (
        STARTED,
        FINISHED,
        NOMINAL,
    )


def test_a_failure_with_retries_left_plans_the_next_attempt_after_the_interval() -> None:
    job = stored_job()
    result = plan(job, run_of(job), FAILED)
    assert result.next_run is not None
    assert (result.next_run.phase, result.next_run.attempt) == (ActionName.MAIN_ACTION, 1)
    assert result.next_run.due == FINISHED + timedelta(seconds=20)
    assert result.tally is not None
    assert result.tally.tally == Tally(1, 1, 0, STARTED)
    assert result.history.properties.status is HistoryStatus.FAILED


def test_the_next_step_is_scheduled_released_and_watched_a_grace_after_its_due_time() -> None:
    job = stored_job()
    result = plan(job, run_of(job), FAILED)
    assert result.next_run is not None
    assert result.next_run.status is RunStatus.SCHEDULED
    assert (result.next_run.claimed_until, result.next_run.started_at) == (None, None)
    assert result.next_run.watch_at == result.next_run.due + SCHEDULED_GRACE


def test_a_retry_counts_a_failure_but_not_another_execution() -> None:
    job = stored_job()
    result = plan(job, run_of(job, attempt=1), FAILED)
    assert result.next_run is not None and result.next_run.attempt == 2
    assert result.tally is not None
    assert result.tally.tally == Tally(0, 1, 0, STARTED)
    assert result.history.properties.retry_count == 1


def test_a_retry_that_succeeds_counts_nothing_but_its_time() -> None:
    job = stored_job()
    result = plan(job, run_of(job, attempt=2), OK)
    assert result.next_run is None
    assert result.tally is not None
    assert result.tally.tally == Tally(0, 0, 0, STARTED)


def test_retries_exhausted_run_the_error_action_and_count_the_occurrence_faulted() -> None:
    job = stored_job()
    result = plan(job, run_of(job, attempt=2), FAILED)
    assert result.next_run is not None
    assert (result.next_run.phase, result.next_run.attempt) == (ActionName.ERROR_ACTION, 0)
    assert result.next_run.due == FINISHED
    assert result.next_run.faulted
    assert result.tally is not None
    assert result.tally.tally == Tally(0, 1, 1, STARTED)


def test_retries_exhausted_without_error_action_end_the_run_faulted() -> None:
    job = stored_job(error_action=False)
    result = plan(job, run_of(job, attempt=2), FAILED)
    assert result.next_run is None
    assert result.tally is not None
    assert result.tally.tally == Tally(0, 1, 1, STARTED)
    assert result.tally.final_state is None


def test_no_retry_policy_faults_at_the_first_failure() -> None:
    job = stored_job(error_action=False, retry={"retryType": "None"})
    result = plan(job, run_of(job), FAILED)
    assert result.next_run is None
    assert result.tally is not None
    assert result.tally.tally == Tally(1, 1, 1, STARTED)


def test_an_error_action_failing_is_retried_by_its_own_policy_and_counts_nothing() -> None:
    job = stored_job()
    run = run_of(job, phase=ActionName.ERROR_ACTION, faulted=True)
    result = plan(job, run, FAILED)
    assert result.next_run is not None
    assert (result.next_run.phase, result.next_run.attempt) == (ActionName.ERROR_ACTION, 1)
    assert result.next_run.due == FINISHED + timedelta(seconds=5)
    assert result.tally is None  # error actions touch no counter
    assert result.history.properties.action_name is ActionName.ERROR_ACTION


def test_an_error_action_out_of_retries_ends_the_run_without_another_fault() -> None:
    job = stored_job()
    run = run_of(job, phase=ActionName.ERROR_ACTION, attempt=1, faulted=True)
    result = plan(job, run, FAILED)
    assert result.next_run is None
    assert result.tally is None


@pytest.mark.parametrize(
    ("fields", "outcome", "closing"),
    [
        ({}, OK, JobState.COMPLETED),
        ({"attempt": 2}, OK, JobState.COMPLETED),  # a retry that succeeded
        ({"attempt": 2}, FAILED, None),  # its error action is still to run
        ({"phase": ActionName.ERROR_ACTION, "faulted": True}, OK, JobState.FAULTED),
        (
            {"phase": ActionName.ERROR_ACTION, "attempt": 1, "faulted": True},
            FAILED,
            JobState.FAULTED,
        ),
    ],
)
def test_the_last_scheduled_occurrence_closes_the_job_when_its_run_ends(
    fields: dict[str, Any], outcome: ActionOutcome, closing: JobState | None
) -> None:
    job = stored_job()
    result = plan(job, run_of(job, last=True, **fields), outcome)
    assert (result.tally.final_state if result.tally else None) is closing
    if closing is not None:
        assert result.tally is not None and result.tally.generation == job.generation


def test_the_last_occurrence_without_error_action_closes_faulted_when_out_of_retries() -> None:
    job = stored_job(error_action=False)
    result = plan(job, run_of(job, last=True, attempt=2), FAILED)
    assert result.tally is not None
    assert result.tally.final_state is JobState.FAULTED


def test_a_closing_error_action_writes_a_tally_with_no_counts_only_the_state() -> None:
    job = stored_job()
    run = run_of(job, last=True, phase=ActionName.ERROR_ACTION, faulted=True)
    result = plan(job, run, OK)
    assert result.tally is not None
    assert result.tally.tally == Tally()
    assert result.tally.final_state is JobState.FAULTED


def test_an_occurrence_before_the_last_never_closes_the_job() -> None:
    job = stored_job(error_action=False)
    for run, outcome in [(run_of(job), OK), (run_of(job, attempt=2), FAILED)]:
        result = plan(job, run, outcome)
        assert result.tally is not None and result.tally.final_state is None


@pytest.mark.parametrize("outcome", [OK, FAILED])
def test_a_manual_run_never_closes_the_job(outcome: ActionOutcome) -> None:
    job = stored_job(error_action=False, retry={"retryType": "None"})
    run = run_of(job, last=True, on_demand=True, token="manual-abcd1234", repeat_count=0)
    result = plan(job, run, outcome)
    assert result.next_run is None
    assert result.tally is not None and result.tally.final_state is None
    assert result.history.on_demand
    assert result.history.properties.message.startswith("Run on demand.")


def test_the_tally_is_keyed_by_the_attempt_so_a_second_recording_is_the_same_row() -> None:
    job = stored_job()
    first = plan(job, run_of(job, attempt=1), FAILED)
    again = plan(job, run_of(job, attempt=1), FAILED)
    other = plan(job, run_of(job, attempt=2), FAILED)
    assert first.tally is not None and again.tally is not None and other.tally is not None
    assert first.tally.key == again.tally.key != other.tally.key
    assert (first.tally.collection, first.tally.job) == ("c", "j")


def test_a_late_coalesced_first_attempt_says_so_in_its_history() -> None:
    job = stored_job()
    result = plan(job, run_of(job, late_seconds=4.5, missed=3), OK)
    message = result.history.properties.message
    assert "Late by 4.5 s." in message
    assert "3 earlier missed occurrence(s) were counted, not run (coalesced)." in message
    assert message.endswith(OK.message)
    assert result.history.late_seconds == 4.5
