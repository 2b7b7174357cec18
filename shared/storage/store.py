"""`JobStore`: the scheduler's storage as the engine and the API see it, composed of its parts.

Each concern has its module (shared/storage/keys.py has the table layout): `Tables` the
clients and provisioning, `JobRows` collections, jobs and job counters, `DueIndex` due and
watch rows and the timer's scan, `RunRows` runs, attempts and tallies, `HistoryRows` history.
This class only composes them and forwards, so callers keep one object to hold; the one thing
it decides itself is a job's delete, which spans them all.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from datetime import datetime
from typing import TypeVar

from azure.data.tables.aio import TableClient

from shared.config import Settings
from shared.engine.records import (
    Collection,
    DueEntry,
    DueScan,
    HistoryRecord,
    JobListing,
    Run,
    StoredJob,
    TallyRow,
    Watch,
)
from shared.model.job import HistoryStatus, JobState
from shared.names import CollectionRef
from shared.storage.activity import ActivityRows
from shared.storage.codecs import JobCount
from shared.storage.due_index import DueIndex, due_row_of
from shared.storage.history import HistoryRows
from shared.storage.jobs import JobRows
from shared.storage.output import OutputStore
from shared.storage.rows import delete_rows
from shared.storage.runs import RunRows
from shared.storage.tables import Tables

_T = TypeVar("_T")


class JobStore:
    """Async access to the scheduler's tables: `JobStore.from_settings(...)`, then `ensure()`."""

    def __init__(self, tables: Tables, settings: Settings) -> None:
        self.tables = tables
        self.due_index = DueIndex(tables)
        self.job_rows = JobRows(tables, self.due_index)
        self.run_rows = RunRows(tables, self.due_index)
        self.outputs = OutputStore.from_connection_string(
            settings.storage_connection, settings.table_prefix
        )
        self.history_rows = HistoryRows(tables, settings, self.outputs)
        self.activity = ActivityRows.from_connection_string(
            settings.storage_connection, settings.activity_table
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> JobStore:
        return cls(Tables.from_settings(settings), settings)

    async def ensure(self) -> JobStore:
        """Create the tables once per process (idempotent)."""
        await self.tables.ensure()
        await self.activity.ensure()
        return self

    async def close(self) -> None:
        await self.run_rows.close()
        await self.outputs.close()
        await self.activity.close()
        await self.tables.close()

    def table_for(self, collection: str) -> TableClient:
        return self.tables.table_for(collection)

    async def delete_job(self, collection: str, name: str) -> bool:
        """Delete the job, its runs in flight (and their watches), tallies and history, then
        its due row. False when there was no job."""
        job = await self.job_rows.get_job(collection, name)
        if job is None:
            return False

        async def delete() -> None:
            keys = await self.run_rows.keys_of(collection, name)
            keys += await self.history_rows.keys_of(collection, name)
            await delete_rows(self.tables.table_for(collection), collection, keys)
            await self.outputs.delete_job_outputs(collection, name)
            await self.job_rows.delete_counted(collection, name)

        await self.indexed_write(delete, unindex=lambda _: due_row_of(job))
        return True

    # -- collections and jobs (shared/storage/jobs.py) ---------------------------------------

    async def get_collection(self, ref: CollectionRef) -> Collection | None:
        return await self.job_rows.get_collection(ref)

    async def put_collection(self, collection: Collection, *, new: bool) -> None:
        await self.job_rows.put_collection(collection, new=new)

    async def delete_collection(self, ref: CollectionRef) -> None:
        await self.job_rows.delete_collection(ref)

    async def delete_collection_row(self, ref: CollectionRef) -> None:
        await self.job_rows.delete_collection_row(ref)

    async def list_collections(
        self, subscription: str, resource_group: str | None, *, top: int, after: str | None
    ) -> tuple[list[Collection], str | None]:
        return await self.job_rows.list_collections(
            subscription, resource_group, top=top, after=after
        )

    async def all_collections(self) -> list[Collection]:
        return await self.job_rows.all_collections()

    async def job_listings(self, collection: str) -> list[JobListing]:
        return await self.job_rows.job_listings(collection)

    async def get_job(self, collection: str, name: str) -> StoredJob | None:
        return await self.job_rows.get_job(collection, name)

    async def get_jobs(self, keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], StoredJob]:
        return await self.job_rows.get_jobs(keys)

    async def list_jobs(
        self,
        collection: str,
        *,
        top: int,
        after: str | None = None,
        skip: int = 0,
        state: JobState | None = None,
    ) -> tuple[list[StoredJob], str | None]:
        return await self.job_rows.list_jobs(
            collection, top=top, after=after, skip=skip, state=state
        )

    async def job_count(self, collection: str) -> JobCount | None:
        return await self.job_rows.job_count(collection)

    async def collection_job_names(self, collection: str) -> list[str]:
        return await self.job_rows.collection_job_names(collection)

    async def create_job(self, job: StoredJob, *, max_jobs: int | None, now: datetime) -> StoredJob:
        return await self.job_rows.create_job(job, max_jobs=max_jobs, now=now)

    async def update_job(self, job: StoredJob) -> StoredJob:
        return await self.job_rows.update_job(job)

    # -- due index and watches (shared/storage/due_index.py) ---------------------------------

    async def indexed_write(
        self,
        write: Callable[[], Awaitable[_T]],
        *,
        unindex: Callable[[_T], Iterable[DueEntry]],
        index: Iterable[DueEntry] = (),
        now: datetime | None = None,
    ) -> _T:
        """Index, write, unindex: see `DueIndex.indexed_write`."""
        return await self.due_index.indexed_write(write, unindex=unindex, index=index, now=now)

    async def put_due(self, entry: DueEntry, now: datetime) -> None:
        await self.due_index.put(entry, now)

    async def delete_due(self, entry: DueEntry) -> None:
        await self.due_index.delete(entry)

    async def scan(self, until: datetime, *, now: datetime | None = None) -> DueScan:
        return await self.due_index.scan(until, now=now)

    async def delete_watch(self, watch: Watch) -> None:
        await self.due_index.delete_watch(watch)

    async def due_per_minute(self, until: datetime, *, beyond: datetime) -> dict[datetime, int]:
        return await self.due_index.due_per_minute(until, beyond=beyond)

    async def due_rows(
        self, collection: str, low: str, high: str, until: datetime
    ) -> list[DueEntry]:
        return await self.due_index.due_rows(collection, low, high, until)

    # -- runs and attempts (shared/storage/runs.py) ------------------------------------------

    async def get_run(self, collection: str, row_key: str) -> Run | None:
        return await self.run_rows.get_run(collection, row_key)

    async def runs_of(self, collection: str, job: str) -> list[Run]:
        return await self.run_rows.runs_of(collection, job)

    async def running(self, collection: str) -> list[Run]:
        return await self.run_rows.running(collection)

    async def commit_dispatch(self, job: StoredJob, run: Run, now: datetime) -> StoredJob:
        return await self.run_rows.commit_dispatch(job, run, now)

    async def commit_dispatches(
        self, collection: str, pairs: list[tuple[StoredJob, Run]], now: datetime
    ) -> None:
        await self.run_rows.commit_dispatches(collection, pairs, now)

    async def create_run(self, run: Run, now: datetime) -> Run:
        return await self.run_rows.create_run(run, now)

    async def move_run(self, read: Run, updated: Run, now: datetime) -> Run:
        return await self.run_rows.move_run(read, updated, now)

    async def commit_attempt(
        self,
        read: Run,
        updated: Run | None,
        *,
        history: HistoryRecord | None,
        tally: TallyRow | None,
        check_final_at: datetime | None,
        now: datetime,
    ) -> None:
        await self.run_rows.commit_attempt(
            read, updated, history=history, tally=tally, check_final_at=check_final_at, now=now
        )

    async def tallies_of(self, collection: str, job: str) -> list[TallyRow]:
        return await self.run_rows.tallies_of(collection, job)

    async def fold(
        self, job: StoredJob, tallies: list[TallyRow], *, watch: Watch | None = None
    ) -> StoredJob:
        return await self.run_rows.fold(job, tallies, watch=watch)

    async def with_status(self, jobs: list[StoredJob]) -> list[StoredJob]:
        return await self.run_rows.with_status(jobs)

    # -- history (shared/storage/history.py) -------------------------------------------------

    async def history(
        self,
        collection: str,
        name: str,
        *,
        top: int,
        after: str | None = None,
        skip: int = 0,
        status: HistoryStatus | None = None,
    ) -> tuple[list[HistoryRecord], str | None]:
        return await self.history_rows.history(
            collection, name, top=top, after=after, skip=skip, status=status
        )

    async def history_since(
        self, collection: str, name: str, since: datetime, limit: int
    ) -> list[HistoryRecord]:
        return await self.history_rows.history_since(collection, name, since, limit)

    async def has_history(self, record: HistoryRecord) -> bool:
        return await self.history_rows.has_history(record)

    async def prune_history(self, collection: str, name: str, now: datetime) -> int:
        return await self.history_rows.prune_history(collection, name, now)

    def housekeeping_due(self, attempt_key: str) -> bool:
        return self.history_rows.housekeeping_due(attempt_key)


__all__ = ["JobStore"]
