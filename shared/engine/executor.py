"""The executor: carries out one attempt of one run, named by a queue message.

Queues deliver at least once, so the message only points at the run; the run row decides:
- a message for an earlier step than the run's is stale (its retry was already planned): if
  that retry's message may have been lost in a crash, it is sent again;
- a run leased by another executor whose lease is live is looked at again when the lease ends
  (its holder may have died, or failed to record the attempt); the run's watch row makes the
  timer look at it then too, whether or not any message comes back;
- a run of a job that was disabled or replaced is cancelled, and its history says so; a run of
  a deleted job is dropped; a run another one replaced (overlap policy Replace) ends; every
  other dispatched run is carried to its end;
- otherwise the attempt is claimed by ETag (one claimer wins), held until its second if the
  message surfaced early (its action prepared by the kind's runner meanwhile, and its job read
  again just before the second, so that at the second only the send is left; other attempts'
  claims and recordings wait until the sends due then are out: send_priority.py), checked
  against the job's overlap policy (a first attempt only: skipped, or started after the runs
  it replaces were asked to stop),
  performed (under Replace, stopped if a newer run asks), and recorded (the run's next step,
  its watch, the history row and the counter tally) in one transaction that does not touch
  the job row, retried until it lands or the lease is about to end. The job's final state is
  settled when its last outstanding run ends (shared/engine/final_state.py).
Retries are new delayed messages, not the host's poison mechanism. Storage faults raise, so
the host redelivers the message.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import uuid
from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime, timedelta

from shared.clock import Clock, sleep_until
from shared.config import Settings
from shared.engine.dispatcher import message_for
from shared.engine.final_state import settle_final_state
from shared.engine.overlap import call_unless_replaced, request_stop, wait_until_stopped
from shared.engine.planning import (
    FINAL_CHECK_GRACE,
    AttemptPlan,
    decide_overlap,
    describe,
    first_start,
    history_record,
    plan_next_step,
    plan_replaced,
    plan_skipped,
    wanted,
)
from shared.engine.records import Run, RunStatus, StoredJob, Watch
from shared.engine.send_priority import SendPriority
from shared.errors import Conflict, is_transient
from shared.kinds.base import ActionContext, Send, SentSignal
from shared.kinds.registry import KindRunners
from shared.model.actions import JobErrorAction
from shared.model.job import ActionName, HistoryStatus, JobState, OverlapPolicy
from shared.names import CollectionRef
from shared.storage.output import output_name_of_key
from shared.storage.queue import MAX_EARLY_SECONDS, AttemptMessage, AttemptQueue
from shared.storage.store import JobStore
from shared.timefmt import as_stored, compact

log = logging.getLogger(__name__)
# One line per attempt; bench/lateness.py reads its fields (key=value, space-separated).
ATTEMPT_LOG = "Attempt: %s phase=%s attempt=%d outcome=%s lateness=%.3fs"

# A recording that keeps failing on storage faults gives up this long before the lease ends,
# so a taker-over never races it.
_RECORD_MARGIN = timedelta(seconds=2)
_RECORD_BACKOFF = (0.1, 2.0)
# A held attempt reads its job again this long before its second: the read's round trip
# (tens of ms, more under load) then ends before the second instead of delaying the call.
RECHECK_BEFORE_SECONDS = 0.3
# ... and this much earlier for every other send already held for the same second, so that a
# crowded second's re-reads are spread out instead of all landing on storage (and on our event
# loop, about a millisecond of CPU each) in its last 0.3 s.
RECHECK_SPREAD_SECONDS = 0.002


class Executor:
    def __init__(
        self,
        store: JobStore,
        queue: AttemptQueue,
        runners: KindRunners,
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
        self.send_priority = SendPriority()

    async def execute(self, message: AttemptMessage) -> None:
        # A claim can wait for the sends due now: it happens a second or more early.
        await self.send_priority.after_due_sends()
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
            # Held by another executor, or by one that died: look again when the lease ends.
            log.info("Deferred: %s is leased until %s", run.log_name, run.claimed_until)
            await self._queue.send(message_for(run), due=run.claimed_until, now=now)
            return
        job = await self._store.get_job(run.collection, run.job)
        if job is None or not wanted(job, run):
            await self._cancel(run, job)
            return
        if run.replaced_by:
            # A newer run asked this one to stop (between attempts, or its holder died).
            await self._finish(job, run, plan_replaced(run, run.started_at or now, now), now)
            return
        wait = (run.due - now).total_seconds()
        if wait > MAX_EARLY_SECONDS + 1.5:
            # Surfaced too early (a delay beyond the queue's 7-day limit): hide it again.
            await self._queue.send(message_for(run), due=run.due, now=now)
            return
        # Claim first, then hold an early message until its exact second: the claim's round
        # trip to storage is then not part of the lateness.
        claimed = await self._claim(job, run, start=max(now, run.due))
        if claimed is None:
            return
        hold = (run.due - self._clock.now()).total_seconds()
        sent: SentSignal = _nobody_waits
        if hold > 0:
            # Other attempts' storage work waits for this send when it is due (SendPriority).
            second = asyncio.get_running_loop().time() + hold  # the due second, monotonic
            sent = self.send_priority.announce(second)
        try:
            # Vet the target, fetch a token, build the request: only the send is left.
            action = self._action_of(job, claimed)
            context = self._context_of(run)
            send = await self._runners.prepare(action, context)
            if hold > 0:
                crowd = self.send_priority.announced_at(second)
                await sleep_until(second - RECHECK_BEFORE_SECONDS - crowd * RECHECK_SPREAD_SECONDS)
                # The job may have been disabled, replaced or deleted (its collection too)
                # while we had the claim: a call must not start after such a change was
                # answered. Read just before the second, so the read is not in the lateness.
                reread = await self._store.get_job(run.collection, run.job)
                if reread is None or not wanted(reread, claimed):
                    await self._cancel(claimed, reread)
                    return
                if self._action_of(reread, claimed) != action:  # an on-demand run's job changed
                    action = self._action_of(reread, claimed)
                    send = await self._runners.prepare(action, context)
                job = reread
                await sleep_until(second)
            # The overlap policy is applied here, after the claim (so that of two runs starting
            # together at least one sees the other) and after the hold (so a previous run that
            # ended meanwhile does not count): the state of the job's runs at the nominal second.
            if first_start(claimed) and job.properties.overlap is not OverlapPolicy.ALLOW:
                sent()  # storage round trips come first: no one waits for this send
                if not await self._make_way(job, claimed):
                    return
            await self._attempt(job, run, claimed, action, send, sent)
        finally:
            sent()  # whatever happened, no one waits for this send any longer

    async def _make_way(self, job: StoredJob, claimed: Run) -> bool:
        """Apply the overlap policy to a claimed first attempt: False if it was skipped
        (Forbid); under Replace, ask the runs it replaces to stop and wait for them, within a
        bound, before starting."""
        now = self._clock.now()
        others = await self._store.runs_of(claimed.collection, claimed.job)
        # Our own row as read carries storage's timestamp of our claim.
        mine = next((run for run in others if run.row_key == claimed.row_key), claimed)
        decision = decide_overlap(job.properties.overlap, mine, others, now)
        if decision.blocked_by is not None:
            log.info("Skipped (overlap Forbid): %s", claimed.log_name)
            await self._finish(job, claimed, plan_skipped(claimed, decision.blocked_by, now), now)
            return False
        asked = []
        for run in decision.to_replace:
            stopping = await request_stop(self._store, run, describe(claimed), now)
            if stopping is not None:
                log.info("Replacing (overlap Replace): %s by %s", run.log_name, claimed.log_name)
                asked.append(stopping)
        if asked:
            await wait_until_stopped(self._store, asked)
        return True

    async def _cancel(self, run: Run, job: StoredJob | None) -> None:
        """End a run its job no longer wants; a disabled or replaced job's history says so."""
        history = None
        if job is None:
            reason = "job deleted"
        else:
            disabled = job.state is JobState.DISABLED
            reason = "the job was disabled" if disabled else "the job was replaced"
            now = self._clock.now()
            history = history_record(
                run,
                HistoryStatus.CANCELLED,
                f"Cancelled: {reason} before this attempt ran.",
                now,
                now,
            )
        log.info("Cancelled: %s (%s)", run.log_name, reason)
        try:
            await self._store.commit_attempt(
                run, None, history=history, tally=None, check_final_at=None, now=self._clock.now()
            )
        except Conflict:
            pass

    async def _claim(self, job: StoredJob, run: Run, *, start: datetime) -> Run | None:
        """Take the attempt (an ETag-checked update that also moves the run's watch to the
        lease's end), leased for the action's timeout and a margin from when it will start;
        None if another executor took it first."""
        timeout = self._runners.timeout_of(self._action_of(job, run))
        # As stored (whole milliseconds): the claim kept in memory must equal the row read back,
        # which is how a running call recognises a request to stop aimed at it (Replace).
        start = as_stored(start)
        until = as_stored(start + timeout + self._settings.lease_margin)
        claimed = replace(
            run, status=RunStatus.RUNNING, claimed_until=until, started_at=start, watch_at=until
        )
        try:
            return await self._store.move_run(run, claimed, self._clock.now())
        except Conflict:
            log.info("Skipped: another executor claimed %s", run.log_name)
            return None

    def _context_of(self, run: Run) -> ActionContext:
        """Who runs and why, as the target is told (the same for a prepared and a sent call)."""
        return ActionContext(
            collection=CollectionRef.from_key(run.collection).name,
            job=run.job,
            nominal=run.nominal,
            attempt_tag=_attempt_tag(run),
            request_id=str(uuid.uuid4()),
            idempotency_key=f"{run.collection}/{run.job}/{compact(run.nominal)}{run.token}",
            retry_count=run.attempt,
            repeat_count=run.repeat_count,
            default_timeout=self._settings.http_timeout,
            settings=self._settings,
            app_settings=self._app_settings,
            output_name=output_name_of_key(run.collection, run.tally_key),
            arguments=run.arguments,
        )

    async def _attempt(
        self,
        job: StoredJob,
        run: Run,
        claimed: Run,
        action: JobErrorAction,
        send: Send,
        sent: SentSignal,
    ) -> None:
        """Send a claimed, prepared attempt and record it."""
        started = self._clock.now()
        call = send(sent)
        if job.properties.overlap is OverlapPolicy.REPLACE:
            outcome, stopped = await call_unless_replaced(self._store, call, claimed)
        else:
            outcome, stopped = await call, None
        sent()  # a call stopped before it sent anything: the recording must not wait for it
        finished = self._clock.now()
        if stopped is not None or outcome is None:
            assert stopped is not None
            log.info("Replaced mid-call: %s by %s", run.log_name, stopped.replaced_by)
            output = output_name_of_key(run.collection, run.tally_key)
            kept = await self._store.outputs.read(output, 0, -1) is not None
            plan = plan_replaced(stopped, started, finished, output=kept)
            await self._finish(job, stopped, plan, finished)
            return
        plan = plan_next_step(job, claimed, action, outcome, started, finished)
        if not await self._finish(job, claimed, plan, finished):
            return
        lateness = (started - run.due).total_seconds()
        log.info(
            ATTEMPT_LOG,
            run.log_name,
            run.phase.value,
            run.attempt,
            "Succeeded" if outcome.succeeded else "Failed",
            lateness,
        )

    async def _finish(
        self, job: StoredJob, read: Run, plan: AttemptPlan, finished: datetime
    ) -> bool:
        """Record a planned step of the run as `read` (claimed), then what follows it: the next
        step's message, the job's final state, housekeeping. False if the run was lost."""
        run = read
        # Settle the final state when the schedule has ended and this run is over: it may be
        # the last one outstanding (the watch makes the timer check, should we die first).
        ends_schedule = plan.next_run is None and not run.on_demand and job.next_fire is None
        check_final_at = finished + FINAL_CHECK_GRACE if ends_schedule else None
        # Sends due now go first: this recording's CPU would delay them (SendPriority).
        await self.send_priority.after_due_sends()
        if not await self._record(read, plan, check_final_at, finished):
            return False
        await self._store.activity.record(plan.history)  # the overview's charts
        if plan.next_run is not None:
            await self._queue.send(message_for(plan.next_run), due=plan.next_run.due, now=finished)
        if check_final_at is not None:
            watch = Watch.final_state_of(run.collection, run.job, check_final_at)
            await settle_final_state(self._store, run.collection, run.job, watch)
        if self._store.housekeeping_due(read.tally_key):
            await self._housekeeping(run.collection, run.job, finished)
        return True

    async def _record(
        self, claimed: Run, plan: AttemptPlan, check_final_at: datetime | None, now: datetime
    ) -> bool:
        """Commit the attempt, retrying storage faults until it lands or the lease is about to
        end (the transaction is ETag-guarded, so a retry never records twice). False if the run
        was taken over meanwhile."""
        deadline = (claimed.claimed_until or now) - _RECORD_MARGIN
        delay = _RECORD_BACKOFF[0]
        while True:
            try:
                try:
                    await self._store.commit_attempt(
                        claimed,
                        plan.next_run,
                        history=plan.history,
                        tally=plan.tally,
                        check_final_at=check_final_at,
                        now=now,
                    )
                    return True
                except Conflict:
                    # Our own earlier try may have landed with its answer lost.
                    if await self._store.has_history(plan.history):
                        return True
                    # Or a newer run asked ours to stop (Replace) after the call ended: the
                    # claim is still ours; record under the row's new ETag, keeping the request.
                    asked = await self._still_ours(claimed)
                    if asked is not None:
                        claimed, plan = asked, _carry_request(plan, asked)
                        continue
                    log.warning("Lost the run while recording its attempt: %s", claimed.log_name)
                    return False
            except Exception as error:
                if (
                    not is_transient(error)
                    or self._clock.now() + timedelta(seconds=delay) > deadline
                ):
                    raise
                log.warning(
                    "Recording the attempt failed (%s); retrying: %s",
                    type(error).__name__,
                    claimed.log_name,
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, _RECORD_BACKOFF[1])

    async def _still_ours(self, claimed: Run) -> Run | None:
        """The run as stored if it is still our claim, changed only by a request to stop."""
        current = await self._store.get_run(claimed.collection, claimed.row_key)
        if (
            current is not None
            and current.replaced_by
            and current.status is RunStatus.RUNNING
            and current.step == claimed.step
            and current.claimed_until == claimed.claimed_until
        ):
            return current
        return None

    async def _housekeeping(self, collection: str, job_name: str, now: datetime) -> None:
        """Prune the job's history and fold its tallies into its row (best effort: a race with
        another writer leaves the tallies for next time)."""
        await self._store.prune_history(collection, job_name, now)
        job = await self._store.get_job(collection, job_name)
        if job is None:
            return
        tallies = await self._store.tallies_of(collection, job_name)
        if tallies:
            try:
                await self._store.fold(job, tallies)
            except Conflict:
                pass

    def _action_of(self, job: StoredJob, run: Run) -> JobErrorAction:
        action = job.properties.action
        if run.phase is ActionName.ERROR_ACTION and action.error_action is not None:
            return action.error_action
        return action


def _nobody_waits() -> None:
    """An attempt not held for its second: no storage work waits for its send."""


def _carry_request(plan: AttemptPlan, stored: Run) -> AttemptPlan:
    """The plan with the run's request to stop kept on its next step, which then ends when its
    message arrives instead of retrying."""
    if plan.next_run is None:
        return plan
    return replace(plan, next_run=replace(plan.next_run, replaced_by=stored.replaced_by))


def _attempt_tag(run: Run) -> str:
    """Unique per attempt, stable if the same attempt is recorded twice."""
    text = f"{run.collection}|{run.row_key}|{run.phase.value}|{run.attempt}"
    return hashlib.sha256(text.encode()).hexdigest()[:32]
