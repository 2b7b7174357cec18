"""What the dashboard's pages read that the scheduler API has no operation for: every job of
every collection searched, filtered, sorted and paged on the server (a browser never receives
10,000 jobs), the overview's numbers, and a job's schedule in words.

The job list is read from storage at most once per `SNAPSHOT_SECONDS` (one range read per
collection, of the few columns it searches and sorts on) and shared by every request meanwhile:
a page view costs one read per collection at worst, and the 25 rows it shows are read in full,
with their exact counters and last outcome (a few reads each). The charts read the per-hour
activity counters (shared/storage/activity.py), never the history.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from shared.clock import Clock
from shared.concurrency import run_bounded
from shared.engine.records import JobListing, Run, StoredJob
from shared.model.job import ActionName, JobState
from shared.names import CollectionRef
from shared.schedule_words import describe_schedule
from shared.storage.activity import HourActivity, lateness_percentiles
from shared.storage.queue import AttemptQueue
from shared.storage.store import JobStore
from shared.timefmt import compact, to_iso

SNAPSHOT_SECONDS = 5.0
SORTS = ("name", "collection", "state", "kind", "nextRun", "lastRun")
_READS = 8  # storage reads in flight for one page


@dataclass(frozen=True)
class JobQuery:
    """The jobs list's search, filters, order and page (checked by the API)."""

    search: str = ""
    state: JobState | None = None
    kind: str = ""
    collection: str = ""  # a collection's resource id
    sort: str = "name"
    descending: bool = False
    top: int = 25
    skip: int = 0


@dataclass(frozen=True)
class Listed:
    ref: CollectionRef
    job: JobListing

    @property
    def kind(self) -> str:
        return self.job.kind


def job_id(ref: CollectionRef, name: str) -> str:
    return f"{ref.resource_id}/jobs/{name}"


def schedule_of(job: StoredJob) -> str:
    return describe_schedule(job.properties.start_time, job.properties.recurrence)


def select(listed: Sequence[Listed], query: JobQuery) -> list[Listed]:
    """The jobs the query keeps, in its order (pure; the API pages the result)."""
    needle = query.search.strip().lower()
    kept = [
        item
        for item in listed
        if (not needle or needle in item.job.name.lower())
        and (query.state is None or item.job.state is query.state)
        and (not query.kind or item.kind.lower() == query.kind.lower())
        and (not query.collection or item.ref.resource_id == query.collection)
    ]

    def key(item: Listed) -> tuple[Any, ...]:
        job = item.job
        by_name = (job.name.lower(), item.ref.resource_id)
        if query.sort == "collection":
            return (item.ref.name.lower(), *by_name)
        if query.sort == "state":
            return (job.state.value, *by_name)
        if query.sort == "kind":
            return (item.kind.lower(), *by_name)
        if query.sort in ("nextRun", "lastRun"):
            when = job.next_fire if query.sort == "nextRun" else job.last_execution_time
            # Jobs without the time go last, whichever the order.
            missing = when is None
            stamp = when.timestamp() if when is not None else 0.0
            return (missing != query.descending, stamp, *by_name)
        return by_name

    return sorted(kept, key=key, reverse=query.descending)


class DashboardService:
    def __init__(self, store: JobStore, queue: AttemptQueue, clock: Clock) -> None:
        self._store = store
        self._queue = queue
        self._clock = clock
        self._snapshot: tuple[float, list[Listed]] | None = None
        self._lock = asyncio.Lock()

    async def all_jobs(self) -> list[Listed]:
        """Every job of every collection, at most SNAPSHOT_SECONDS old."""
        loop = asyncio.get_running_loop()
        async with self._lock:
            if self._snapshot is not None and loop.time() - self._snapshot[0] < SNAPSHOT_SECONDS:
                return self._snapshot[1]
            collections = await self._store.all_collections()

            async def jobs_of(ref: CollectionRef) -> list[Listed]:
                return [Listed(ref, job) for job in await self._store.job_listings(ref.key)]

            refs = [collection.ref for collection in collections]
            pages = await run_bounded(_READS, jobs_of, refs)
            listed = [item for page in pages for item in page]
            self._snapshot = (loop.time(), listed)
            return listed

    def forget(self) -> None:
        """Read storage again at the next request (after a change made through the dashboard
        would otherwise stay invisible for a few seconds)."""
        self._snapshot = None

    async def jobs(self, query: JobQuery) -> dict[str, Any]:
        listed = await self.all_jobs()
        chosen = select(listed, query)
        shown = chosen[query.skip : query.skip + query.top]
        # A job deleted since the copy was read has no row left: it is left out of the page.
        rows = [row for row in await run_bounded(_READS, self._row, shown) if row]
        collections = sorted(
            {item.ref.resource_id: item.ref.name for item in listed}.items(),
            key=lambda pair: (pair[1].lower(), pair[0]),
        )
        return {
            "total": len(chosen),
            "value": rows,
            "collections": [{"id": rid, "name": name} for rid, name in collections],
            "kinds": sorted({item.kind for item in listed}),
        }

    async def _row(self, item: Listed) -> dict[str, Any]:
        """The row of one job shown: its row read in full beside its latest attempt."""
        stored, (history, _) = await asyncio.gather(
            self._store.get_job(item.ref.key, item.job.name),
            self._store.history(item.ref.key, item.job.name, top=1),
        )
        if stored is None:
            return {}
        [job] = await self._store.with_status([stored])
        status = job.status
        last: dict[str, Any] | None = None
        if history:
            record = history[0]
            last = {
                "status": record.properties.status.value,
                "time": to_iso(record.properties.start_time),
                "occurrence": record.public_id.split("-", 1)[1].rsplit("-", 1)[0],
            }
        return {
            "id": job_id(item.ref, job.name),
            "name": job.name,
            "collection": item.ref.name,
            "collectionId": item.ref.resource_id,
            "state": job.state.value,
            "kind": str(job.properties.action.type),
            "schedule": schedule_of(job),
            "nextRun": to_iso(status.next_execution_time) if status.next_execution_time else None,
            "lastRun": last,
            "counters": {
                "executions": status.execution_count,
                "failures": status.failure_count,
                "faulted": status.faulted_count,
                "missed": status.missed_count,
            },
        }

    async def job(self, ref: CollectionRef, name: str) -> dict[str, Any]:
        """A job's schedule in words and its attempts under way (for the Job and Run pages)."""
        job = await self._store.get_job(ref.key, name)
        if job is None:
            return {}
        runs = await self._store.runs_of(ref.key, name)
        return {
            "schedule": schedule_of(job),
            "kind": str(job.properties.action.type),
            "running": [_running(run) for run in runs if run.started_at is not None],
        }

    async def overview(self) -> dict[str, Any]:
        listed = await self.all_jobs()
        states = Counter(item.job.state.value for item in listed)
        collections = {item.ref.key: item.ref for item in listed}

        async def running_in(key: str) -> list[tuple[str, Run]]:
            return [(key, run) for run in await self._store.running(key)]

        pages = await run_bounded(_READS, running_in, list(collections))
        running = [
            {**_running(run), "job": job_id(collections[key], run.job), "name": run.job}
            for page in pages
            for key, run in page
        ]
        executions, poison = await self._queue.depths()
        now = self._clock.now()
        hours = await self._store.activity.hours(now - timedelta(days=14), now)
        return {
            "jobs": len(listed),
            "states": {state.value: states.get(state.value, 0) for state in JobState},
            "running": running,
            "queues": {"executions": executions, "poison": poison},
            "hourly": [_hour_json(hour) for hour in hours[-48:]],
            "daily": _daily(hours),
            "lateness": lateness_percentiles(hours[-24:]),
        }


def _running(run: Run) -> dict[str, Any]:
    phase = "m" if run.phase is ActionName.MAIN_ACTION else "e"
    occurrence = f"{compact(run.nominal)}{run.token}"
    return {
        "occurrence": occurrence,
        "nominal": to_iso(run.nominal),
        "action": run.phase.value,
        "attempt": run.attempt,
        "startedAt": to_iso(run.started_at) if run.started_at else None,
        "onDemand": run.on_demand,
        "outputId": f"current-{occurrence}-{phase}{run.attempt:03d}",
    }


def _hour_json(hour: HourActivity) -> dict[str, Any]:
    return {"start": to_iso(hour.hour), "attempts": hour.attempts, "failures": hour.failures}


def _daily(hours: Sequence[HourActivity]) -> list[dict[str, Any]]:
    days: dict[datetime, list[int]] = {}
    for hour in hours:
        day = hour.hour.replace(hour=0)
        totals = days.setdefault(day, [0, 0])
        totals[0] += hour.attempts
        totals[1] += hour.failures
    return [
        {"start": to_iso(day), "attempts": totals[0], "failures": totals[1]}
        for day, totals in days.items()
    ]
