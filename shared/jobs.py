"""Job and collection operations behind the API: validate, store, index, dispatch at once.

Every write keeps the due index consistent in a crash-safe order: index the new next
occurrence first, then write the job (ETag-checked), then drop the old index row. A leftover
row is recognised as stale by the dispatcher; a missing one cannot happen.
"""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import datetime

from shared.clock import Clock
from shared.dispatcher import Dispatcher
from shared.errors import Conflict, InvalidRequest, NotFound
from shared.model.job import JobProperties, JobState, parse_job_definition
from shared.recurrence import Timeline
from shared.store import (
    Collection,
    CollectionState,
    DueEntry,
    HistoryRecord,
    JobStore,
    Run,
    StoredJob,
)

# Azure Scheduler's resource names: letters, digits, hyphens and underscores; we cap at 100.
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,99}$")
_MAX_WRITE_TRIES = 10


def check_name(kind: str, name: str) -> None:
    if not NAME_PATTERN.fullmatch(name):
        raise InvalidRequest(
            kind,
            "must be 1-100 characters: letters, digits, '-' and '_', starting with a letter "
            "or digit",
        )


class JobService:
    def __init__(self, store: JobStore, dispatcher: Dispatcher, clock: Clock) -> None:
        self._store = store
        self._dispatcher = dispatcher
        self._clock = clock

    # -- collections -------------------------------------------------------------------------

    async def put_collection(self, name: str, state: CollectionState) -> tuple[Collection, bool]:
        check_name("jobCollectionName", name)
        existing = await self._store.get_collection(name)
        collection = Collection(
            name=name,
            state=state,
            created_at=existing.created_at if existing else self._clock.now(),
        )
        await self._store.put_collection(collection)
        was_enabled = existing is None or existing.state is CollectionState.ENABLED
        if state is CollectionState.ENABLED and not was_enabled:
            # Its jobs' index rows were dropped while it was off: schedule them from now.
            for job_name in await self._store.collection_job_names(name):
                await self._reindex(name, job_name)
        return collection, existing is None

    async def get_collection(self, name: str) -> Collection:
        check_name("jobCollectionName", name)
        collection = await self._store.get_collection(name)
        if collection is None:
            raise NotFound(f"job collection '{name}' does not exist")
        return collection

    async def delete_collection(self, name: str) -> None:
        await self.get_collection(name)
        for job_name in await self._store.collection_job_names(name):
            await self._store.delete_job(name, job_name)
        await self._store.delete_collection_row(name)

    # -- jobs --------------------------------------------------------------------------------

    async def put_job(self, collection: str, name: str, body: object) -> tuple[StoredJob, bool]:
        """Create or replace a job; returns it and whether it was created."""
        check_name("jobName", name)
        await self.get_collection(collection)
        now = self._clock.now()
        properties = parse_job_definition(body, now)
        if (
            properties.state is JobState.ENABLED
            and Timeline(properties.start_time, properties.recurrence).first(now) is None
        ):
            raise InvalidRequest(
                "properties.recurrence", "the schedule has no occurrence: it would never run"
            )
        for _ in range(_MAX_WRITE_TRIES):
            existing = await self._store.get_job(collection, name)
            job = self._new_version(collection, name, properties, existing, now)
            try:
                job = await self._write(job, existing)
            except Conflict:
                continue
            await self._dispatcher.dispatch_job(job)
            return job, existing is None
        raise Conflict(f"job {collection}/{name} is being changed by someone else; try again")

    async def get_job(self, collection: str, name: str) -> StoredJob:
        check_name("jobName", name)
        job = await self._store.get_job(collection, name)
        if job is None:
            await self.get_collection(collection)
            raise NotFound(f"job '{name}' does not exist in job collection '{collection}'")
        return job

    async def delete_job(self, collection: str, name: str) -> None:
        await self.get_job(collection, name)
        await self._store.delete_job(collection, name)

    async def list_jobs(
        self, collection: str, top: int, after: str | None
    ) -> tuple[list[StoredJob], str | None]:
        await self.get_collection(collection)
        return await self._store.list_jobs(collection, top=top, after=after)

    async def run_now(self, collection: str, name: str) -> Run:
        job = await self.get_job(collection, name)
        return await self._dispatcher.run_now(job)

    async def preview(
        self, collection: str, name: str, count: int, after: datetime | None
    ) -> list[datetime]:
        """The next `count` occurrences the job would have if it were created at `after`."""
        job = await self.get_job(collection, name)
        start = after or self._clock.now()
        timeline = Timeline(job.properties.start_time, job.properties.recurrence)
        return timeline.preview(start, count)

    async def history(
        self, collection: str, name: str, top: int, after: str | None
    ) -> tuple[list[HistoryRecord], str | None]:
        await self.get_job(collection, name)
        return await self._store.history(collection, name, top=top, after=after)

    # -- helpers -----------------------------------------------------------------------------

    def _new_version(
        self,
        collection: str,
        name: str,
        properties: JobProperties,
        existing: StoredJob | None,
        now: datetime,
    ) -> StoredJob:
        """A replaced job starts its schedule afresh (count too) but keeps its counters."""
        next_fire = None
        if properties.state is JobState.ENABLED:
            next_fire = Timeline(properties.start_time, properties.recurrence).first(now)
        base = existing or StoredJob(
            collection=collection,
            name=name,
            properties=properties,
            state=properties.state,
            created_at=now,
            generation=0,
        )
        return replace(
            base,
            properties=properties,
            state=properties.state,
            generation=base.generation + 1,
            next_fire=next_fire,
            occurrences=0,
            scheduled_from=now.replace(microsecond=0),
        )

    async def _write(self, job: StoredJob, existing: StoredJob | None) -> StoredJob:
        if job.next_fire is not None:
            await self._store.put_due(DueEntry(job.next_fire, job.collection, job.name))
        if existing is None:
            written = await self._store.create_job(job)
        else:
            written = await self._store.update_job(job)
            if existing.next_fire is not None and existing.next_fire != job.next_fire:
                await self._store.delete_due(DueEntry(existing.next_fire, job.collection, job.name))
        return written

    async def _reindex(self, collection: str, name: str) -> None:
        """Put back the index row of a job whose collection was off; occurrences missed
        meanwhile are coalesced by the dispatcher like after downtime."""
        job = await self._store.get_job(collection, name)
        if job is None or job.state is not JobState.ENABLED or job.next_fire is None:
            return
        await self._store.put_due(DueEntry(job.next_fire, collection, name))
        await self._dispatcher.dispatch_job(job)
