"""The dispatcher: turns due due rows into runs and delayed queue messages.

For each due row due before now + lookahead, in an order that survives a crash between any
two storage calls:

1. index the job's following occurrence (a duplicate or orphan row is harmless: step 0 drops it);
2. in one transaction on the job's partition, advance the job (only if its ETag still matches:
   a racing dispatcher or an API write makes us stop) and create the run, keyed by job,
   generation and nominal time;
3. send the message, hidden until the occurrence's second;
4. delete the due row.

Step 0 for every row the job does not point at:
- the job points at a later occurrence (or none): the row is stale, unless step 2 ran and step
  3 may not have; then the run is there, Scheduled, and its message is sent again (the executor
  claims runs by ETag, so a second message never runs an occurrence twice). A run created
  moments ago is a racing dispatcher's, still sending: its row is left to it.
- the job points at an earlier occurrence: the row may be the next occurrence's, written by a
  racing dispatcher (or the API) that has not committed yet; it is left alone, and read again
  by the next pass.

Each pass also looks at the watch rows that are due: a run nobody took within a minute of its
due time (its message lost), or whose holder's lease ended (its holder died), gets its message
again, so a dead instance's work resumes within its lease and one pass; a job whose schedule
ended gets its final state settled if the run that should have settled it died first.

A pass takes its rows in slices of 100 and batches each step of a slice (jobs read 12 to a
query, due rows written and deleted 100 to a collection transaction, up to 33 dispatches per
transaction), but keeps the order per occurrence; only the messages go one by one. A few slices
run at once, so that storage works on one slice while we send another's messages.

Bursts (README "Bursts"): a pass's horizon is its lookahead stretched for heavy minutes
(shared/engine/lead.py), so a minute of 10,000 due rows starts early enough to be on the queue
before its second. The timer's pass (`dispatch_due(spread=True)`) dispatches at most
`SPREAD_ABOVE` rows itself; above that it hands the rows out as key-range slices on the dispatch
queue (shared/storage/dispatch_queue.py), which every instance consumes (`dispatch_slice`), so
dispatch scales with the instances instead of being bound to the timer's one. The messages of
a crowded second surface earlier than a lone one's (`early_arrival`: a second, plus one for
every 100 occurrences sharing the pass's busiest second), so the executors can claim them all
and hold them, and at the second only the sends are left.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from shared.clock import Clock
from shared.concurrency import QUEUE_WORK_AT_ONCE, Limit, run_bounded
from shared.config import Settings
from shared.engine.final_state import settle_final_state
from shared.engine.lead import MAX_LEAD, busiest_second, dispatch_horizon, early_arrival
from shared.engine.planning import (
    LATE_TOLERANCE_SECONDS,
    SCHEDULED_GRACE,
    coalesce,
    pickup_grace,
    remaining_allows,
)
from shared.engine.records import DueEntry, Run, RunStatus, StoredJob, Watch
from shared.errors import Conflict
from shared.model.collection import CollectionState
from shared.model.job import JobState
from shared.names import CollectionRef
from shared.recurrence import Timeline
from shared.storage.dispatch_queue import DispatchQueue, DispatchSlice, slices_of
from shared.storage.queue import AttemptMessage, AttemptQueue
from shared.storage.runs import DISPATCHES_PER_TRANSACTION
from shared.storage.store import JobStore

log = logging.getLogger(__name__)

_CONCURRENCY = 32
# A pass works through its rows in slices of this many, this many slices at a time.
_SLICE = 100
_SLICES_IN_FLIGHT = 4
# A run this young found behind a due row belongs to a dispatcher still sending its messages.
_RACING_DISPATCH = timedelta(seconds=30)
# The timer's pass dispatches this many due rows itself (about a second of work); a bigger pass
# hands its rows out as slices on the dispatch queue.
SPREAD_ABOVE = 200


@dataclass
class DispatchReport:
    dispatched: int = 0
    missed: int = 0
    stale: int = 0
    recovered: int = 0
    conflicts: int = 0
    resumed: int = 0
    handed_out: int = 0  # slices put on the dispatch queue for any instance to dispatch


@dataclass(frozen=True)
class _Plan:
    """One occurrence about to be dispatched: the row it comes from, the job as it will be."""

    entry: DueEntry
    job: StoredJob
    run: Run
    following: datetime | None
    lateness: float


@dataclass(frozen=True)
class _Pace:
    """What a pass's size means for its runs: how long after its second a run may wait for
    an executor before its message is sent again (`pickup_grace`), and how many seconds
    before its second its message surfaces (`early_arrival`)."""

    grace: timedelta
    early: int


def _chunks(items: list[_Plan], size: int) -> list[list[_Plan]]:
    return [items[start : start + size] for start in range(0, len(items), size)]


def message_for(run: Run) -> AttemptMessage:
    return AttemptMessage(run.collection, run.row_key, run.phase, run.attempt)


class Dispatcher:
    def __init__(
        self,
        store: JobStore,
        queue: AttemptQueue,
        clock: Clock,
        settings: Settings,
        slices: DispatchQueue | None = None,
    ) -> None:
        self._store = store
        self._queue = queue
        self._clock = clock
        self._settings = settings
        self._slices = slices
        self._slices_at_once = asyncio.Semaphore(QUEUE_WORK_AT_ONCE)

    async def horizon(self, now: datetime) -> datetime:
        """Up to when this pass dispatches: the lookahead, stretched for heavy minutes."""
        lookahead = self._settings.lookahead
        counts = await self._store.due_per_minute(
            now + max(MAX_LEAD, lookahead), beyond=now + lookahead
        )
        return dispatch_horizon(now, lookahead, counts)

    async def dispatch_due(self, *, spread: bool = False) -> DispatchReport:
        """One timer pass: dispatch every occurrence due before the horizon. With `spread` (the
        timer trigger) and more than `SPREAD_ABOVE` rows, hand them out as slices instead."""
        now = self._clock.now()
        horizon = await self.horizon(now)
        scan = await self._store.scan(horizon, now=now)
        if spread and self._slices is not None and len(scan.entries) > SPREAD_ABOVE:
            report = DispatchReport()
            crowd = busiest_second(e.due for e in scan.entries)
            parts = slices_of(scan.entries, horizon, backlog=len(scan.entries), crowd=crowd)
            await run_bounded(_CONCURRENCY, self._slices.send, parts)
            report.handed_out = len(parts)
        else:
            report = await self._dispatch(scan.entries, horizon)
        await self._resume(scan.watches, report)
        log.info(
            "Dispatch pass: %d due rows up to %s, %d dispatched, %d slices handed out, "
            "%d missed, %d stale, %d recovered, %d lost races, %d resumed",
            len(scan.entries),
            horizon.isoformat(),
            report.dispatched,
            report.handed_out,
            report.missed,
            report.stale,
            report.recovered,
            report.conflicts,
            report.resumed,
        )
        return report

    async def dispatch_slice(self, part: DispatchSlice) -> DispatchReport:
        """One slice a timer pass handed out (any instance, the dispatch queue's trigger): its
        rows as they are now, with the same race-safe steps as the pass itself."""
        async with self._slices_at_once:
            entries = await self._store.due_rows(part.collection, part.low, part.high, part.horizon)
            report = await self._dispatch(entries, part.horizon, part.backlog, part.crowd)
        log.info(
            "Dispatch slice: %d due rows, %d dispatched, %d stale, %d recovered, %d lost races",
            len(entries),
            report.dispatched,
            report.stale,
            report.recovered,
            report.conflicts,
        )
        return report

    async def _resume(self, watches: list[Watch], report: DispatchReport) -> None:
        """Look at the runs (and ended jobs) whose watch is due."""

        async def look(watch: Watch) -> None:
            if watch.run_key is None:
                if await settle_final_state(self._store, watch.collection, watch.job, watch):
                    await self._store.delete_watch(watch)
                return
            run = await self._store.get_run(watch.collection, watch.run_key)
            if run is None or run.watch_at != watch.deadline:
                await self._store.delete_watch(watch)  # the run moved on: a leftover
                return
            now = self._clock.now()
            try:
                run = await self._store.move_run(
                    run, replace(run, watch_at=now + SCHEDULED_GRACE), now
                )
            except Conflict:
                return  # an executor moved it on meanwhile
            await self._queue.send(message_for(run), due=run.due, now=now)
            report.resumed += 1
            log.warning(
                "Resumed: %s step=%s (%s)",
                run.log_name,
                run.step,
                "its lease ended" if run.status is RunStatus.RUNNING else "nobody took it",
            )

        await run_bounded(_CONCURRENCY, look, watches)

    async def dispatch_job(self, job: StoredJob) -> DispatchReport:
        """Dispatch a job just created or changed whose next occurrence falls before the next
        timer pass has a chance to see it."""
        if job.next_fire is None:
            return DispatchReport()
        horizon = self._clock.now() + self._settings.lookahead
        if job.next_fire > horizon:
            return DispatchReport()
        return await self._dispatch([DueEntry(job.next_fire, job.collection, job.name)], horizon)

    async def _dispatch(
        self, entries: list[DueEntry], horizon: datetime, backlog: int = 0, crowd: int = 0
    ) -> DispatchReport:
        """Rounds of batched dispatch; a round's following occurrences that are also within
        the horizon make the next round (a minute job with a two-minute lookahead). `backlog`:
        the occurrences the whole pass dispatches (a slice's pass), at least these; `crowd`:
        the pass's busiest second, at least this slice's."""
        report = DispatchReport()
        collections: dict[str, bool] = {}
        pace = _Pace(
            grace=pickup_grace(max(backlog, len(entries))),
            early=early_arrival(max(crowd, busiest_second(e.due for e in entries))),
        )
        while entries:
            entries = await self._dispatch_round(entries, horizon, report, collections, pace)
        return report

    async def _dispatch_round(
        self,
        entries: list[DueEntry],
        horizon: datetime,
        report: DispatchReport,
        collections: dict[str, bool],
        pace: _Pace,
    ) -> list[DueEntry]:
        """The round's rows in slices, a few slices at once: while one slice sends its messages
        (our CPU), the next reads and commits (storage's CPU)."""
        sends = asyncio.Semaphore(_CONCURRENCY)  # shared: the cap holds across the slices

        async def dispatch(part: list[DueEntry]) -> list[DueEntry]:
            return await self._dispatch_slice(part, horizon, report, collections, sends, pace)

        parts = [entries[start : start + _SLICE] for start in range(0, len(entries), _SLICE)]
        followers = await run_bounded(_SLICES_IN_FLIGHT, dispatch, parts)
        return [entry for part in followers for entry in part]

    async def _dispatch_slice(
        self,
        entries: list[DueEntry],
        horizon: datetime,
        report: DispatchReport,
        collections: dict[str, bool],
        sends: Limit,
        pace: _Pace,
    ) -> list[DueEntry]:
        """Steps 1-4 for many rows at once, each step batched, in the crash-safe order."""
        jobs = await self._store.get_jobs((e.collection, e.job) for e in entries)
        plans: list[_Plan] = []
        stale: list[DueEntry] = []
        for entry in entries:
            job = jobs.get((entry.collection, entry.job))
            if job is not None and job.next_fire is not None and job.next_fire < entry.due:
                continue  # perhaps the next occurrence of a racing dispatch: not ours to drop
            if job is None or job.next_fire != entry.due:
                await self._recover_or_drop(entry, job, report)
            elif job.state is not JobState.ENABLED or not await self._collection_enabled(
                job.collection, collections
            ):
                stale.append(entry)
            else:
                plans.append(self._plan(job, entry, pace.grace))
        report.stale += len(stale)

        async def commit_and_send() -> list[_Plan]:
            committed = await self._commit(plans, report)
            await self._send_all(committed, sends, pace.early)
            return committed

        committed = await self._store.indexed_write(
            commit_and_send,
            index=[
                DueEntry(p.following, p.job.collection, p.job.name) for p in plans if p.following
            ],
            unindex=lambda done: [p.entry for p in done] + stale,
            now=self._clock.now(),
        )
        for plan in committed:
            report.dispatched += 1
            report.missed += plan.run.missed
            log.info(
                "Dispatched: %s attempt=0 outcome=Queued lateness=%.3fs missed=%d",
                plan.run.log_name,
                plan.lateness,
                plan.run.missed,
            )
        return [
            DueEntry(p.following, p.job.collection, p.job.name)
            for p in committed
            if p.following is not None and p.following <= horizon
        ]

    def _plan(self, job: StoredJob, entry: DueEntry, grace: timedelta) -> _Plan:
        now = self._clock.now()
        saved_at = job.scheduled_from or job.created_at
        timeline = Timeline(job.properties.start_time, job.properties.recurrence, saved_at)
        nominal, missed = coalesce(job, timeline, now)
        occurrences = job.occurrences + 1 + missed
        following = timeline.next_after(nominal) if remaining_allows(job, occurrences) else None
        lateness = (now - nominal).total_seconds()
        run = Run(
            collection=job.collection,
            job=job.name,
            generation=job.generation,
            nominal=nominal,
            repeat_count=occurrences,
            due=nominal,
            last=following is None,
            late_seconds=lateness if lateness > LATE_TOLERANCE_SECONDS else 0.0,
            missed=missed,
            watch_at=nominal + grace,  # a burst's runs wait for the executors longer
        )
        advanced = replace(
            job,
            next_fire=following,
            occurrences=occurrences,
            missed_count=job.missed_count + missed,
        )
        return _Plan(entry, advanced, run, following, max(0.0, lateness))

    async def _commit(self, plans: list[_Plan], report: DispatchReport) -> list[_Plan]:
        """Advance the jobs and create the runs, many per transaction; a transaction refused
        because one job lost a race is redone one job at a time, so only that one is dropped."""
        by_collection: dict[str, list[_Plan]] = {}
        for plan in plans:
            by_collection.setdefault(plan.job.collection, []).append(plan)
        chunks = [
            chunk
            for group in by_collection.values()
            for chunk in _chunks(group, DISPATCHES_PER_TRANSACTION)
        ]

        async def commit(chunk: list[_Plan]) -> list[_Plan]:
            try:
                await self._store.commit_dispatches(
                    chunk[0].job.collection, [(p.job, p.run) for p in chunk], self._clock.now()
                )
                return chunk
            except Conflict:
                if len(chunk) == 1:
                    report.conflicts += 1
                    return []
            committed: list[_Plan] = []
            for plan in chunk:
                try:
                    await self._store.commit_dispatch(plan.job, plan.run, self._clock.now())
                    committed.append(plan)
                except Conflict:
                    report.conflicts += 1
            return committed

        done = await run_bounded(_CONCURRENCY, commit, chunks)
        return [plan for chunk in done for plan in chunk]

    async def _send_all(self, plans: list[_Plan], limit: Limit, early: int) -> None:
        async def send(plan: _Plan) -> None:
            # "now" per message: a thousand sends take seconds, and a delay computed from
            # the round's start would surface the later messages after their second.
            now = self._clock.now()
            await self._queue.send(message_for(plan.run), due=plan.run.due, now=now, early=early)

        await run_bounded(limit, send, plans)

    async def run_on_demand(self, job: StoredJob, arguments: str = "", trigger: str = "") -> Run:
        """An on-demand run: its own run row and message, outside the schedule; `arguments`
        and `trigger` travel with the run (a WebJob's command line and its requester)."""
        now = self._clock.now().replace(microsecond=0)
        run = Run(
            collection=job.collection,
            job=job.name,
            generation=job.generation,
            nominal=now,
            repeat_count=0,
            due=now,
            on_demand=True,
            token="manual-" + uuid.uuid4().hex[:8],
            arguments=arguments,
            trigger=trigger,
        )
        run = await self._store.create_run(run, now)
        await self._queue.send(message_for(run), due=now, now=now)
        log.info("On-demand run: %s", run.log_name)
        return run

    async def _recover_or_drop(
        self, entry: DueEntry, job: StoredJob | None, report: DispatchReport
    ) -> None:
        """A row the job has moved past: finish a dispatch that stopped before its message, or
        drop the row. The run is looked for among the job's runs, not under the row's time: a
        coalesced occurrence's run bears its later nominal time."""
        unsent = [] if job is None else await self._unsent_runs(entry, job)
        if unsent is None:
            return  # a racing dispatcher made the run and is sending: its row to delete
        now = self._clock.now()
        for run in unsent:
            await self._queue.send(message_for(run), due=run.due, now=now)
        report.recovered += len(unsent)
        report.stale += 0 if unsent else 1
        await self._store.delete_due(entry)

    async def _unsent_runs(self, entry: DueEntry, job: StoredJob) -> list[Run] | None:
        """The job's runs that a dispatch of this row may have made without sending their
        message (not started yet, at or after the row's time); None if one is so young that
        its dispatcher is still at work."""
        now = self._clock.now()
        found = []
        for run in await self._store.runs_of(entry.collection, entry.job):
            if (
                not job.schedules(run)
                or run.status is not RunStatus.SCHEDULED
                or run.step != (0, 0)
                or run.nominal < entry.due
            ):
                continue
            if run.created is not None and now - run.created < _RACING_DISPATCH:
                return None
            found.append(run)
        return found

    async def _collection_enabled(self, name: str, cache: dict[str, bool]) -> bool:
        if name not in cache:
            collection = await self._store.get_collection(CollectionRef.from_key(name))
            cache[name] = collection is None or collection.state is CollectionState.ENABLED
        return cache[name]


__all__ = ["DispatchReport", "Dispatcher", "message_for"]
