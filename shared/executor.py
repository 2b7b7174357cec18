"""The executor: carries out one attempt of one run, named by a queue message.

Queues deliver at least once, so the message only points at the run; the run row decides:
- a message for an earlier step than the run's is stale (its retry was already planned): if
  that retry's message may have been lost in a crash, it is sent again;
- a run held by another executor whose lease is live is looked at again when the lease ends
  (its holder may have died, or failed to record the attempt);
- otherwise the attempt is claimed by ETag (one claimer wins), held until its second if the
  message surfaced early, performed, and recorded together with the job's counters, the
  history row and the next step in one transaction.
Retries are new delayed messages, not the host's poison mechanism. Storage faults raise, so
the host redelivers the message.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from shared.actions.base import ActionContext, ActionOutcome
from shared.actions.registry import Runners
from shared.clock import Clock
from shared.dispatcher import message_for
from shared.errors import Conflict
from shared.model.actions import JobErrorAction
from shared.model.job import ActionName, HistoryStatus, JobHistoryProperties, JobState
from shared.names import CollectionRef
from shared.run_queue import EARLY_ARRIVAL_SECONDS, ExecutionMessage, ExecutionQueue
from shared.settings import Settings
from shared.store import HistoryRecord, JobStore, Run, RunStatus, StoredJob
from shared.timefmt import compact

log = logging.getLogger(__name__)

# Time a claim outlives the action's own timeout before another executor may take over.
_CLAIM_MARGIN = timedelta(seconds=60)
_MAX_RECORD_TRIES = 20


@dataclass(frozen=True)
class AttemptPlan:
    """What one finished attempt changes."""

    job: StoredJob
    run: Run
    run_done: bool
    history: HistoryRecord


class Executor:
    def __init__(
        self,
        store: JobStore,
        queue: ExecutionQueue,
        runners: Runners,
        clock: Clock,
        settings: Settings,
        app_settings: Mapping[str, str],
    ) -> None:
        self._store = store
        self._queue = queue
        self._runners = runners
        self._clock = clock
        self._settings = settings
        self._app_settings = app_settings

    async def execute(self, message: ExecutionMessage) -> None:
        run = await self._store.get_run(message.collection, message.run_key)
        if run is None:
            log.info("Skipped: run %s is gone (finished or deleted)", message.run_key)
            return
        if message.step < run.step:
            if run.status is RunStatus.SCHEDULED:
                # The attempt that planned this step may have died before sending its message.
                await self._queue.send(message_for(run), due=run.due, now=self._clock.now())
            return
        if message.step > run.step:
            return
        now = self._clock.now()
        if run.status is RunStatus.RUNNING and run.claimed_until and run.claimed_until > now:
            # Held by another executor, or by one that failed to record its attempt and will
            # never come back: look again when the lease ends, so the run cannot be lost.
            log.info("Deferred: run %s is held until %s", run.row_key, run.claimed_until)
            await self._queue.send(message_for(run), due=run.claimed_until, now=now)
            return
        job = await self._store.get_job(run.collection, run.job)
        if job is None or not self._still_wanted(job, run):
            await self._drop(run, job)
            return
        wait = (run.due - now).total_seconds()
        if wait > EARLY_ARRIVAL_SECONDS + 1.5:
            # Surfaced too early (a delay beyond the queue's 7-day limit): hide it again.
            await self._queue.send(message_for(run), due=run.due, now=now)
            return
        # Claim first, then hold an early message until its exact second: the claim's round
        # trip to storage is then not part of the lateness.
        claimed = await self._claim(job, run, start=max(now, run.due))
        if claimed is None:
            return
        hold = (run.due - self._clock.now()).total_seconds()
        if hold > 0:
            await asyncio.sleep(hold)
        await self._attempt(job, claimed)

    def _still_wanted(self, job: StoredJob, run: Run) -> bool:
        """On-demand runs always run; scheduled ones only for the job as it is now, enabled."""
        if run.manual:
            return True
        return job.generation == run.generation and job.state is JobState.ENABLED

    async def _drop(self, run: Run, job: StoredJob | None) -> None:
        reason = "job deleted" if job is None else f"job is {job.state.value} or was replaced"
        log.info("Dropped: collection=%s run=%s (%s)", run.collection, run.row_key, reason)
        try:
            await self._store.delete_run(run)
        except Conflict:
            pass

    async def _claim(self, job: StoredJob, run: Run, *, start: datetime) -> Run | None:
        """Take the attempt (an ETag-checked update), leased for the action's timeout and a
        margin from when it will start; None if another executor took it first."""
        timeout = self._timeout_of(self._action_of(job, run))
        try:
            return await self._store.update_run(
                replace(
                    run,
                    status=RunStatus.RUNNING,
                    claimed_until=start + timeout + _CLAIM_MARGIN,
                    started_at=start,
                )
            )
        except Conflict:
            log.info("Skipped: another executor claimed %s", run.row_key)
            return None

    async def _attempt(self, job: StoredJob, run: Run) -> None:
        """Perform a claimed attempt and record it."""
        action = self._action_of(job, run)
        started = self._clock.now()
        context = ActionContext(
            collection=CollectionRef.from_key(run.collection).name,
            job=run.job,
            expected_time=run.nominal,
            execution_tag=_execution_tag(run),
            request_id=str(uuid.uuid4()),
            idempotency_key=f"{run.collection}/{run.job}/{compact(run.nominal)}{run.token}",
            retry_count=run.attempt,
            repeat_count=run.repeat_count,
            default_timeout=self._settings.http_timeout,
            settings=self._app_settings,
        )
        outcome = await self._runners.runner_for(action.type).run(action, context)
        finished = self._clock.now()
        plan = await self._record(job, run, action, outcome, started, finished)
        if plan is None:
            return
        lateness = (started - run.due).total_seconds()
        log.info(
            "Attempt: collection=%s job=%s nominal=%s action=%s attempt=%d outcome=%s "
            "lateness=%.3fs",
            run.collection,
            run.job,
            run.nominal.isoformat(),
            run.phase.value,
            run.attempt,
            "Succeeded" if outcome.succeeded else "Failed",
            lateness,
        )
        if not plan.run_done:
            await self._queue.send(message_for(plan.run), due=plan.run.due, now=finished)
        if self._store.history_prune_due(plan.job.history_writes):
            await self._store.prune_history(run.collection, run.job, finished)

    async def _record(
        self,
        job: StoredJob,
        run: Run,
        action: JobErrorAction,
        outcome: ActionOutcome,
        started: datetime,
        finished: datetime,
    ) -> AttemptPlan | None:
        """Commit the attempt; on a race with the dispatcher or the API, re-read the job and
        plan again (the run is ours until its lease ends)."""
        for _ in range(_MAX_RECORD_TRIES):
            plan = plan_next_step(job, run, action, outcome, started, finished)
            try:
                await self._store.commit_attempt(
                    plan.job, plan.run, run_done=plan.run_done, history=plan.history
                )
                return plan
            except Conflict:
                fresh_job = await self._store.get_job(run.collection, run.job)
                fresh_run = await self._store.get_run(run.collection, run.row_key)
                if fresh_job is None or fresh_run is None or fresh_run.etag != run.etag:
                    log.warning("Lost run %s while recording its attempt", run.row_key)
                    return None
                job = fresh_job
        raise Conflict(f"could not record attempt of {run.row_key}")

    def _action_of(self, job: StoredJob, run: Run) -> JobErrorAction:
        action = job.properties.action
        if run.phase is ActionName.ERROR_ACTION and action.error_action is not None:
            return action.error_action
        return action

    def _timeout_of(self, action: JobErrorAction) -> timedelta:
        seconds = action.request.timeout_seconds if action.request else None
        return timedelta(seconds=seconds) if seconds else self._settings.http_timeout


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
    updated = replace(job, history_writes=job.history_writes + 1)
    if main:
        updated.last_execution_time = started
        if run.attempt == 0:
            updated.execution_count += 1
        if not outcome.succeeded:
            updated.failure_count += 1
    next_run: Run | None = None
    occurrence_failed = run.faulted
    if not outcome.succeeded:
        delay = action.effective_retry_policy().delay_before_retry(run.attempt)
        if delay is not None:
            next_run = replace(run, attempt=run.attempt + 1, due=finished + delay)
        elif main:
            updated.faulted_count += 1
            occurrence_failed = True
            if job.properties.action.error_action is not None:
                next_run = replace(
                    run, phase=ActionName.ERROR_ACTION, attempt=0, due=finished, faulted=True
                )
    if next_run is None and run.last and not run.manual and not job.state.is_final:
        updated.state = JobState.FAULTED if occurrence_failed else JobState.COMPLETED
    history = HistoryRecord(
        collection=run.collection,
        job=run.job,
        properties=JobHistoryProperties(
            start_time=started,
            end_time=finished,
            expected_execution_time=run.nominal,
            action_name=run.phase,
            status=HistoryStatus.COMPLETED if outcome.succeeded else HistoryStatus.FAILED,
            message=_history_message(run, outcome),
            retry_count=run.attempt,
            repeat_count=run.repeat_count,
        ),
        late_seconds=run.late_seconds,
        manual=run.manual,
        run_token=run.token,
    )
    if next_run is None:
        return AttemptPlan(updated, run, True, history)
    next_run = replace(next_run, status=RunStatus.SCHEDULED, claimed_until=None, started_at=None)
    return AttemptPlan(updated, next_run, False, history)


def _history_message(run: Run, outcome: ActionOutcome) -> str:
    notes = []
    if run.manual:
        notes.append("Run on demand.")
    if run.late_seconds and run.phase is ActionName.MAIN_ACTION and run.attempt == 0:
        note = f"Late by {run.late_seconds:.1f} s"
        if run.missed:
            note += f"; {run.missed} earlier missed occurrence(s) were counted, not run"
        notes.append(note + ".")
    return " ".join([*notes, outcome.message])


def _execution_tag(run: Run) -> str:
    """Unique per attempt, stable if the same attempt is recorded twice."""
    text = f"{run.collection}|{run.row_key}|{run.phase.value}|{run.attempt}"
    return hashlib.sha256(text.encode()).hexdigest()[:32]
