"""Job and collection operations behind the API: validate, check limits, store, index, dispatch.

Every job write keeps the due index consistent in a crash-safe order: index the new next
occurrence first, then write the job (ETag-checked), then drop the old due row. A leftover
row is recognised as stale by the dispatcher; a missing one cannot happen.
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from shared.clock import Clock
from shared.config import Settings
from shared.engine.dispatcher import Dispatcher
from shared.engine.records import Collection, DueEntry, HistoryRecord, Run, StoredJob
from shared.engine.run_lookup import RunView, find_run, runs_in_flight
from shared.errors import Conflict, InvalidRequest, LimitExceeded, NotFound
from shared.merge_patch import merge_patch
from shared.model.collection import (
    CollectionDefinition,
    CollectionState,
    Limits,
    effective_limits,
)
from shared.model.common import CALENDAR_RANGE
from shared.model.job import HistoryStatus, JobProperties, JobState, parse_job_definition
from shared.names import CollectionRef, check_name
from shared.recurrence import Timeline
from shared.secret_carry import carry_secrets, check_identity_retarget
from shared.storage.due_index import due_row_of
from shared.storage.jobs import CollectionGone, JobLimitReached
from shared.storage.store import JobStore

_MAX_WRITE_TRIES = 10
# Occurrences looked at to find a job's shortest spacing against a recurrence quota.
_SPACING_SAMPLE = 200


class JobService:
    def __init__(
        self, store: JobStore, dispatcher: Dispatcher, clock: Clock, settings: Settings
    ) -> None:
        self._store = store
        self._dispatcher = dispatcher
        self._clock = clock
        self._settings = settings

    # -- collections -------------------------------------------------------------------------

    async def put_collection(self, ref: CollectionRef, body: object) -> tuple[Collection, bool]:
        definition = CollectionDefinition.model_validate(body)
        existing = await self._store.get_collection(ref)
        return await self._save_collection(ref, definition, existing), existing is None

    async def patch_collection(self, ref: CollectionRef, body: object) -> Collection:
        existing = await self.get_collection(ref)
        current = existing.definition.model_dump(mode="json", by_alias=True, exclude_none=True)
        definition = CollectionDefinition.model_validate(merge_patch(current, body))
        return await self._save_collection(ref, definition, existing)

    async def get_collection(self, ref: CollectionRef) -> Collection:
        collection = await self._store.get_collection(ref)
        if collection is None:
            raise NotFound(f"job collection '{ref.name}' does not exist")
        return collection

    async def delete_collection(self, ref: CollectionRef) -> None:
        """When this returns, nothing of the collection is stored any more and none of its jobs
        can be created, dispatched or recorded again (see JobStore.delete_collection)."""
        await self.get_collection(ref)
        await self._store.delete_collection(ref)

    async def list_collections(
        self, subscription: str, resource_group: str | None, top: int, after: str | None
    ) -> tuple[list[Collection], str | None]:
        return await self._store.list_collections(
            subscription, resource_group, top=top, after=after
        )

    async def set_all_jobs_state(self, ref: CollectionRef, state: JobState) -> int:
        """The collection's enable/disable: every job that is not final takes `state`."""
        await self.get_collection(ref)
        changed = 0
        for name in await self._store.collection_job_names(ref.key):
            job = await self._store.get_job(ref.key, name)
            if job is None or job.state.is_final or job.state is state:
                continue
            await self.patch_job(ref, name, {"properties": {"state": state.value}})
            changed += 1
        return changed

    async def _save_collection(
        self, ref: CollectionRef, definition: CollectionDefinition, existing: Collection | None
    ) -> Collection:
        collection = Collection(
            ref=ref,
            definition=definition,
            created_at=existing.created_at if existing else self._clock.now(),
        )
        await self._store.put_collection(collection, new=existing is None)
        was_enabled = existing is None or existing.state is CollectionState.ENABLED
        if collection.state is CollectionState.ENABLED and not was_enabled:
            # Its jobs' due rows were dropped while it was off: put them back.
            for job_name in await self._store.collection_job_names(ref.key):
                await self._reindex(ref.key, job_name)
        return collection

    # -- jobs --------------------------------------------------------------------------------

    async def put_job(self, ref: CollectionRef, name: str, body: object) -> tuple[StoredJob, bool]:
        """Create or replace a job; returns it and whether it was created."""
        check_name("jobName", name)
        self._check_size(body)
        collection = await self.get_collection(ref)
        now = self._clock.now()
        stored = await self._store.get_job(ref.key, name)
        body = carry_secrets(body, stored.properties if stored is not None else None)
        properties = parse_job_definition(body, now, self._settings.request_limits, self._settings)
        if stored is None or properties.action != stored.properties.action:
            # An unchanged action is re-checked when it runs: disabling a job stored under
            # wider settings must not fail.
            self._settings.outbound.check_job(properties)
        existing = stored
        for attempt in range(_MAX_WRITE_TRIES):
            if attempt:  # a write lost a race: read the job as it is now
                existing = await self._store.get_job(ref.key, name)
            if existing is not None and existing.state.is_final:
                raise _final(existing)
            limits = self._check_limits(collection, properties)
            job = self._new_version(ref.key, name, properties, existing, now)
            try:
                job = await self._write(job, existing, collection, limits)
            except LimitExceeded:
                raise
            except Conflict:
                continue
            await self._dispatcher.dispatch_job(job)
            return job, existing is None
        raise Conflict(f"job '{name}' is being changed by someone else; try again")

    async def patch_job(self, ref: CollectionRef, name: str, body: object) -> StoredJob:
        """JSON merge patch of the job's definition, then the same rules as PUT."""
        job = await self.get_job(ref, name)
        if job.state.is_final:
            raise _final(job)
        if not isinstance(body, dict):
            raise InvalidRequest("body", "a PATCH body must be a JSON object")
        patch = body if "properties" in body else {"properties": body}
        check_identity_retarget(patch, job.properties)
        current = {"properties": _stored_definition(job)}
        updated, _ = await self.put_job(ref, name, merge_patch(current, patch))
        return updated

    async def get_job(self, ref: CollectionRef, name: str) -> StoredJob:
        check_name("jobName", name)
        job = await self._store.get_job(ref.key, name)
        if job is None:
            await self.get_collection(ref)
            raise NotFound(f"job '{name}' does not exist in job collection '{ref.name}'")
        return job

    async def delete_job(self, ref: CollectionRef, name: str) -> None:
        await self.get_job(ref, name)
        await self._store.delete_job(ref.key, name)

    async def list_jobs(
        self,
        ref: CollectionRef,
        top: int,
        after: str | None,
        skip: int = 0,
        state: JobState | None = None,
    ) -> tuple[list[StoredJob], str | None]:
        await self.get_collection(ref)
        return await self._store.list_jobs(ref.key, top=top, after=after, skip=skip, state=state)

    async def with_status(self, jobs: list[StoredJob]) -> list[StoredJob]:
        """The jobs as the API shows them: counters and next execution time complete."""
        return await self._store.with_status(jobs)

    async def run_on_demand(
        self, ref: CollectionRef, name: str, arguments: str = "", trigger: str = ""
    ) -> Run:
        job = await self.get_job(ref, name)
        return await self._dispatcher.run_on_demand(job, arguments, trigger)

    async def preview(
        self, ref: CollectionRef, name: str, count: int, after: datetime | None
    ) -> list[datetime]:
        """The next `count` occurrences the job would have if it were saved at `after`: the same
        Timeline the dispatcher chains, so what the preview shows is what runs."""
        job = await self.get_job(ref, name)
        saved_at = after or self._clock.now()
        try:
            saved_at = saved_at.astimezone(UTC)
        except OverflowError:  # e.g. 0001-01-01T00:00:00+14:00 is in year 0 in UTC
            raise InvalidRequest("query.after", f"must lie within {CALENDAR_RANGE}") from None
        timeline = Timeline(job.properties.start_time, job.properties.recurrence, saved_at)
        return timeline.preview(count)

    async def history(
        self,
        ref: CollectionRef,
        name: str,
        top: int,
        after: str | None,
        skip: int = 0,
        status: HistoryStatus | None = None,
    ) -> tuple[list[HistoryRecord], str | None]:
        await self.get_job(ref, name)
        return await self._store.history(
            ref.key, name, top=top, after=after, skip=skip, status=status
        )

    async def runs(self, ref: CollectionRef, name: str) -> list[RunView]:
        """The job's runs in flight (shared/engine/run_lookup.py)."""
        await self.get_job(ref, name)
        return await runs_in_flight(self._store, ref.key, name)

    async def run(self, ref: CollectionRef, name: str, run_id: str) -> RunView:
        """One run of the job, in flight or ended, by its id (its occurrence)."""
        await self.get_job(ref, name)
        found = await find_run(self._store, ref.key, name, run_id)
        if found is None:
            raise NotFound(
                f"job '{name}' has no run '{run_id}' (unknown, or ended and pruned from history)"
            )
        return found

    # -- helpers -----------------------------------------------------------------------------

    def _check_size(self, body: object) -> None:
        size = len(json.dumps(body, separators=(",", ":")))
        if size > self._settings.max_job_size:
            raise InvalidRequest(
                "body",
                f"the job is {size} characters; at most {self._settings.max_job_size} are allowed",
            )

    def _check_limits(self, collection: Collection, properties: JobProperties) -> Limits:
        """Check what the job itself may be; the job count is checked as the job is inserted."""
        limits = effective_limits(
            collection.definition.properties,
            self._settings.max_jobs_per_collection,
            self._settings.min_recurrence,
        )
        if not limits.outbound_auth and _uses_authentication(properties):
            raise LimitExceeded(f"outbound authentication is not available on {limits.source}")
        spacing = _shortest_spacing(properties, self._clock.now())
        if spacing is not None and spacing < limits.min_recurrence:
            raise LimitExceeded(
                f"maxRecurrence: the job recurs every {_duration(spacing)}, more often than "
                f"{limits.source} allows (every {_duration(limits.min_recurrence)} at most)"
            )
        most = limits.max_occurrences
        if most is not None and _runs_more_than(properties, most, self._clock.now()):
            raise LimitExceeded(
                f"maxJobOccurrence: the job would run more than {most} times, the most the "
                f"collection's quota allows; give recurrence.count (at most {most}) or an "
                "endTime that comes sooner"
            )
        return limits

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
            next_fire = Timeline(properties.start_time, properties.recurrence, now).first()
            if next_fire is None:
                raise InvalidRequest(
                    "properties.recurrence", "the schedule has no occurrence: it would never run"
                )
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

    async def _write(
        self, job: StoredJob, existing: StoredJob | None, collection: Collection, limits: Limits
    ) -> StoredJob:
        if existing is None:
            return await self._create(job, collection, limits)
        return await self._store.indexed_write(
            lambda: self._store.update_job(job),
            index=due_row_of(job),
            unindex=lambda _: due_row_of(existing),
            now=self._clock.now(),
        )

    async def _create(self, job: StoredJob, collection: Collection, limits: Limits) -> StoredJob:
        """Insert the job, counted against the collection's counter in the same step."""
        try:
            return await self._store.create_job(
                job, max_jobs=limits.max_jobs, now=self._clock.now()
            )
        except JobLimitReached as error:
            raise LimitExceeded(
                f"maxJobCount: job collection '{collection.ref.name}' already holds "
                f"{error.count} jobs, the most {limits.source} allows"
            ) from error
        except CollectionGone as error:
            raise NotFound(f"job collection '{collection.ref.name}' does not exist") from error

    async def _reindex(self, collection: str, name: str) -> None:
        """Put back the due row of a job whose collection was off; occurrences missed
        meanwhile are coalesced by the dispatcher like after downtime."""
        job = await self._store.get_job(collection, name)
        if job is None or job.state is not JobState.ENABLED or job.next_fire is None:
            return
        await self._store.put_due(DueEntry(job.next_fire, collection, name), self._clock.now())
        await self._dispatcher.dispatch_job(job)


def _final(job: StoredJob) -> Conflict:
    return Conflict(f"job '{job.name}' is {job.state.value}, a final state: it can only be deleted")


def _stored_definition(job: StoredJob) -> dict[str, Any]:
    """The definition as GET shows it, without secrets: put_job carries them over only while
    the target stays the same (shared/secret_carry.py)."""
    definition = job.properties.model_dump(mode="json", by_alias=True, exclude_none=True)
    definition["action"] = job.properties.action.public_json()
    return definition


def _uses_authentication(properties: JobProperties) -> bool:
    actions = [properties.action, properties.action.error_action]
    return any(
        action is not None and action.kind.authenticates(action.payload) for action in actions
    )


def _shortest_spacing(properties: JobProperties, now: datetime) -> timedelta | None:
    """The shortest gap between the job's next occurrences (a schedule can make a daily job
    fire every minute, so the frequency alone does not tell)."""
    if properties.recurrence is None:
        return None
    times = Timeline(properties.start_time, properties.recurrence, now).preview(_SPACING_SAMPLE)
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
    return min(gaps) if gaps else None


def _runs_more_than(properties: JobProperties, most: int, now: datetime) -> bool:
    """Whether the job's schedule has more than `most` occurrences (counted up to most + 1)."""
    recurrence = properties.recurrence
    if recurrence is None:
        return most < 1
    if recurrence.count is not None and recurrence.count <= most:
        return False
    if recurrence.count is None and recurrence.end_time is None:
        return True  # it never ends
    timeline = Timeline(properties.start_time, recurrence, now)
    return len(timeline.preview(most + 1)) > most


def _duration(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds % size == 0 and seconds >= size:
            count = seconds // size
            return f"{count} {unit}{'s' if count != 1 else ''}"
    return f"{seconds} seconds"


__all__ = ["JobService", "Limits"]
