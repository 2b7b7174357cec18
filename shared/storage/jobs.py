"""Collections and jobs: their rows, pages of them, and each collection's job count row.

The job count row (``meta|jobs``) is the collection's count and its "alive" mark: a job is
inserted or deleted in one transaction with the job count row's new value, conditional on
the row's ETag, so a quota holds under any number of concurrent creates, and a collection whose
job count row was deleted takes no new job.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterable
from dataclasses import replace
from datetime import datetime
from typing import Any

from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
from azure.data.tables import TableErrorCode, UpdateMode

from shared.concurrency import run_bounded
from shared.engine.records import Collection, DueEntry, JobListing, StoredJob
from shared.errors import Conflict, StorageError
from shared.model.job import JobState
from shared.names import CollectionRef
from shared.storage.codecs import (
    LISTING_COLUMNS,
    JobCount,
    collection_entity,
    collection_from_entity,
    job_count_entity,
    job_count_from_entity,
    job_entity,
    job_from_entity,
    job_listing_from_entity,
)
from shared.storage.due_index import DueIndex
from shared.storage.keys import JOB_COUNT_KEY, job_key, job_name, prefix_filter
from shared.storage.rows import (
    KEYS_PER_QUERY,
    chunks,
    delete_row,
    delete_rows,
    page,
    partition_keys,
    replace_unchanged,
    rows_by_key,
)
from shared.storage.table_batch import Kind, Operation, TransactionFailed, submit
from shared.storage.tables import Tables

_READ_CONCURRENCY = 8
# Every create and delete of a collection's jobs changes its job count row, so concurrent ones
# take turns: a loser re-reads the job count row after a random, growing pause. Enough tries for a
# few hundred creates at once in one collection.
_JOB_COUNT_TRIES = 60
_JOB_COUNT_BACKOFF_SECONDS = 0.005
_JOB_COUNT_BACKOFF_CAP_SECONDS = 0.2
# A collection's purge reads its partition again until a read finds no row (a dispatch racing
# with it may still write one), at most this many times.
_PURGE_PASSES = 5
_JOB_ROWS = f"PartitionKey eq @pk and {prefix_filter('job|')}"


class CollectionGone(StorageError):
    """The collection's job count row is missing: the collection was deleted, or is being."""


class JobLimitReached(StorageError):
    """The collection already holds as many jobs as it may."""

    def __init__(self, count: int) -> None:
        super().__init__(f"the collection holds {count} jobs")
        self.count = count


class JobRows:
    """Collections, jobs and job count rows."""

    def __init__(self, tables: Tables, due_index: DueIndex) -> None:
        self._tables = tables
        self._due_index = due_index
        self._job_count_locks: dict[str, asyncio.Lock] = {}
        # The counter as this process last wrote it: a create here need not read it first.
        self._counts: dict[str, JobCount] = {}

    # -- collections -------------------------------------------------------------------------

    async def get_collection(self, ref: CollectionRef) -> Collection | None:
        try:
            entity = await self._tables.collections.get_entity(ref.namespace, ref.name)
        except ResourceNotFoundError:
            return None
        return collection_from_entity(entity)

    async def put_collection(self, collection: Collection, *, new: bool) -> None:
        """Save the collection, creating its table first (a deleted collection's table stays,
        empty, so the name can be taken again at once).

        A `new` collection first clears its partition of anything a deleted namesake left
        (a delete that stopped midway, a create that raced with it), then starts its counter
        at zero, before its row makes it visible. An existing one keeps its counter (and gets
        one, counted, if it has none)."""
        key = collection.ref.key
        await self._tables.ensure_table(key)
        if new:
            self._counts.pop(key, None)
            await self._purge(key)
            await self._insert_job_count(key, 0)
        await self._tables.collections.upsert_entity(
            collection_entity(collection), mode=UpdateMode.REPLACE
        )
        if not new and await self.job_count(key) is None:
            await self._insert_job_count(key, len(await self.collection_job_names(key)))

    async def delete_collection(self, ref: CollectionRef) -> None:
        """Delete the collection and everything of it. The counter goes first, so every create
        racing with this fails from then on; then every row of its partition (jobs, runs,
        history, due rows), so no dispatch or attempt can be committed any more; then the
        collection row."""
        self._counts.pop(ref.key, None)
        await delete_row(self._tables.table_for(ref.key), ref.key, JOB_COUNT_KEY)
        await self._purge(ref.key)
        await self.delete_collection_row(ref)

    async def delete_collection_row(self, ref: CollectionRef) -> None:
        await delete_row(self._tables.collections, ref.namespace, ref.name)

    async def list_collections(
        self, subscription: str, resource_group: str | None, *, top: int, after: str | None
    ) -> tuple[list[Collection], str | None]:
        """A page of collections of a subscription (or one of its resource groups), in key order;
        `after` is the `<resourceGroup>|<name>` the previous page ended on."""
        if resource_group is not None:
            where = "PartitionKey eq @pk"
            params = {"pk": f"{subscription}|{resource_group}"}
        else:
            where = "PartitionKey ge @low and PartitionKey lt @high"
            params = {"low": f"{subscription}|", "high": f"{subscription}}}"}
        found: list[Collection] = []
        async for entity in self._tables.collections.query_entities(
            where, parameters=params, results_per_page=min(top + 1, 1000)
        ):
            collection = collection_from_entity(entity)
            if after is not None and _collection_cursor(collection) <= after:
                continue
            found.append(collection)
            if len(found) > top:
                break
        if len(found) > top:
            return found[:top], _collection_cursor(found[top - 1])
        return found, None

    async def all_collections(self) -> list[Collection]:
        """Every collection of every subscription (the dashboard's list of all jobs): one read
        of the collections table."""
        return [
            collection_from_entity(entity)
            async for entity in self._tables.collections.list_entities()
        ]

    # -- jobs --------------------------------------------------------------------------------

    async def get_job(self, collection: str, name: str) -> StoredJob | None:
        try:
            entity = await self._tables.table_for(collection).get_entity(collection, job_key(name))
        except ResourceNotFoundError:
            return None
        return job_from_entity(entity)

    async def get_jobs(self, keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], StoredJob]:
        """Many jobs by (collection, name) in few reads: one query per 12 names of a collection
        (`rows_by_key`: 12 a query)."""
        by_collection: dict[str, set[str]] = {}
        for collection, name in keys:
            by_collection.setdefault(collection, set()).add(name)
        queries = [
            (collection, chunk)
            for collection, names in by_collection.items()
            for chunk in chunks(sorted(names), KEYS_PER_QUERY)
        ]

        async def read(query: tuple[str, list[str]]) -> list[StoredJob]:
            collection, names = query
            table = self._tables.table_for(collection)
            keys = [job_key(name) for name in names]
            return [job_from_entity(e) async for e in rows_by_key(table, collection, keys)]

        pages = await run_bounded(_READ_CONCURRENCY, read, queries)
        return {(job.collection, job.name): job for page in pages for job in page}

    async def list_jobs(
        self,
        collection: str,
        *,
        top: int,
        after: str | None = None,
        skip: int = 0,
        state: JobState | None = None,
    ) -> tuple[list[StoredJob], str | None]:
        """A page of jobs in name order. `after` is the last name of the previous page (a keyset
        cursor: jobs added meanwhile are neither missed nor repeated); `skip` drops the first."""
        # The prefix bounds hold even when `after` is forged: only job rows are read.
        after_clause = " and RowKey gt @after" if after else ""
        query = f"PartitionKey eq @pk and RowKey ge 'job|'{after_clause} and RowKey lt 'job}}'"
        params: dict[str, Any] = {"pk": collection, "after": job_key(after or "")}
        if state is not None:
            query += " and state eq @state"
            params["state"] = state.value
        table = self._tables.table_for(collection)
        rows, last_key = await page(table, query, params, top=top, skip=skip)
        jobs = [job_from_entity(entity) for entity in rows]
        return jobs, (job_name(last_key) if last_key else None)

    async def job_listings(self, collection: str) -> list[JobListing]:
        """Every job row of a collection, in name order, with the listing columns only (one
        range read; the SDK decodes each property of each row, so fewer columns is less CPU)."""
        table = self._tables.table_for(collection)
        try:
            return [
                job_listing_from_entity(collection, entity)
                async for entity in table.query_entities(
                    _JOB_ROWS, parameters={"pk": collection}, select=list(LISTING_COLUMNS)
                )
            ]
        except ResourceNotFoundError:  # a collection whose table was never made: no jobs
            return []

    async def job_count(self, collection: str) -> JobCount | None:
        """The collection's job count row; None when it has none (the collection is gone)."""
        try:
            entity = await self._tables.table_for(collection).get_entity(collection, JOB_COUNT_KEY)
        except ResourceNotFoundError:
            return None
        return job_count_from_entity(entity)

    async def collection_job_names(self, collection: str) -> list[str]:
        names = []
        async for entity in self._tables.table_for(collection).query_entities(
            _JOB_ROWS, parameters={"pk": collection}, select=["RowKey"]
        ):
            names.append(job_name(entity["RowKey"]))
        return names

    async def create_job(self, job: StoredJob, *, max_jobs: int | None, now: datetime) -> StoredJob:
        """Insert a new job and its due row in one transaction with the job count row's new value,
        which holds only if the job count row is still the one read: the count check and the insert
        are one step, and a refused create leaves no row in the collection's table.

        Raises JobLimitReached when the collection holds `max_jobs`, CollectionGone when it has
        no counter, Conflict when a job of that name exists."""
        operations = [Operation(Kind.INSERT, job_entity(job))]
        if job.next_fire is not None:
            entry = DueEntry(job.next_fire, job.collection, job.name)
            operations.append(await self._due_index.due_operation(entry, now))
        try:
            etags = await self._with_count(job.collection, operations, delta=1, max_jobs=max_jobs)
        except TransactionFailed as error:
            if error.status == 409:
                raise Conflict(f"job {job.collection}/{job.name} exists") from error
            raise
        return replace(job, etag=etags[0])

    async def update_job(self, job: StoredJob) -> StoredJob:
        """Replace the job row if nobody changed it since it was read (its etag)."""
        table = self._tables.table_for(job.collection)
        etag = await replace_unchanged(table, job_entity(job), job.etag)
        return replace(job, etag=etag)

    async def delete_counted(self, collection: str, name: str) -> None:
        """Delete the job row and count it out, in one transaction."""
        deletion = Operation(Kind.DELETE, {"PartitionKey": collection, "RowKey": job_key(name)})
        try:
            await self._with_count(collection, [deletion], delta=-1)
        except CollectionGone:
            # The collection is being deleted, its purge takes every row: take this one now.
            await delete_row(self._tables.table_for(collection), collection, job_key(name))
        except TransactionFailed as error:
            if error.status != 404:
                raise
            # Another delete took the job first, and counted it out.

    async def _with_count(
        self,
        collection: str,
        operations: list[Operation],
        *,
        delta: int,
        max_jobs: int | None = None,
    ) -> list[str | None]:
        """Run one job's `operations` in one transaction with the collection's job count row moved
        by `delta`, conditional on its ETag; when another writer moved it first, read
        it again and retry. Returns the ETags of `operations`.

        Raises CollectionGone when there is no counter, JobLimitReached when a create would
        pass `max_jobs`, TransactionFailed when one of `operations` was refused."""
        table = self._tables.table_for(collection)
        for attempt in range(_JOB_COUNT_TRIES):
            async with self._job_count_lock(collection):
                count = self._counts.get(collection)
                cached = count is not None and (max_jobs is None or count.jobs + delta <= max_jobs)
                if not cached:  # never refuse on a count remembered from earlier
                    count = await self._read_job_count(collection)
                if count is None:
                    raise CollectionGone(collection)
                if delta > 0 and max_jobs is not None and count.jobs + delta > max_jobs:
                    raise JobLimitReached(count.jobs)
                jobs = max(0, count.jobs + delta)
                counter = Operation(Kind.REPLACE, job_count_entity(collection, jobs), count.etag)
                try:
                    etags = await submit(table, [*operations, counter])
                except TransactionFailed as error:
                    self._counts.pop(collection, None)
                    if error.index != len(operations):
                        raise
                    if error.status == 404:
                        raise CollectionGone(collection) from error
                    if error.status != 412:
                        raise
                    if cached:
                        continue  # what this process remembered was stale: read it now
                else:
                    if etags[-1] is not None:
                        self._counts[collection] = JobCount(jobs, etags[-1])
                    return etags[:-1]
            await _job_count_backoff(attempt)  # another instance moved the job count row meanwhile
        raise Conflict(f"the job count of {collection} kept changing; try again")

    async def _read_job_count(self, collection: str) -> JobCount | None:
        """The counter, or None; a table deleted by hand under a collection that still exists
        is made again, empty, its counter at zero (a collection's delete keeps its table, so
        this never brings back a collection being deleted)."""
        try:
            entity = await self._tables.table_for(collection).get_entity(collection, JOB_COUNT_KEY)
        except ResourceNotFoundError as error:
            # azure-data-tables sets error_code on the errors it raises; its stubs omit it.
            if getattr(error, "error_code", None) != TableErrorCode.TABLE_NOT_FOUND:
                return None
            self._tables.forget(collection)
            if await self.get_collection(CollectionRef.from_key(collection)) is None:
                return None
            await self._tables.ensure_table(collection)
            await self._insert_job_count(collection, 0)
            return await self.job_count(collection)
        return job_count_from_entity(entity)

    def _job_count_lock(self, collection: str) -> asyncio.Lock:
        """Creates and deletes of one collection's jobs in this process take turns at its
        counter instead of colliding on its ETag; other instances' are caught by the ETag."""
        return self._job_count_locks.setdefault(collection, asyncio.Lock())

    async def _insert_job_count(self, collection: str, jobs: int) -> None:
        """Start the collection's counter; one that is there already (a racing PUT) stays."""
        try:
            await self._tables.table_for(collection).create_entity(
                job_count_entity(collection, jobs)
            )
        except ResourceExistsError:
            pass

    async def _purge(self, collection: str) -> None:
        """Delete every row of the collection's partition, reading it again until it is empty."""
        table = self._tables.table_for(collection)
        for _ in range(_PURGE_PASSES):
            try:
                keys = [key async for key in partition_keys(table, collection)]
            except ResourceNotFoundError:
                return  # no table, no rows
            if not keys:
                return
            await delete_rows(table, collection, keys)


def _collection_cursor(collection: Collection) -> str:
    return f"{collection.ref.resource_group}|{collection.ref.name}"


async def _job_count_backoff(attempt: int) -> None:
    """A random pause that grows with the tries, so racing writers of a counter spread out."""
    ceiling = min(_JOB_COUNT_BACKOFF_CAP_SECONDS, _JOB_COUNT_BACKOFF_SECONDS * 2**attempt)
    await asyncio.sleep(random.uniform(0, ceiling))


__all__ = ["CollectionGone", "JobLimitReached", "JobRows"]
