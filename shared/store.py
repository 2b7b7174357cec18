"""The job store over Azure Table Storage: the only module that talks to tables.

Layout:

``{prefix}C<digest of the collection key>``  one table per collection, PartitionKey = its key
    ``job|<job>``                           the job: definition, state, counters, next occurrence
    ``run|<job>|<generation>|<nominal>``    an occurrence in flight (deleted when it ends)
    ``watch|<deadline>|<run key>``          when the timer must look at a run again, if it has
                                            not moved on by then (its holder may have died)
    ``watch|<deadline>|final|<job>``        when the timer must check that a job whose schedule
                                            ended has been given its final state
    ``tally|<job>|<occurrence>|<phase><attempt>``  one attempt's counter increments, until they
                                            are folded into the job row
    ``hist|<job>|<inverted start ms>|<phase><attempt>``   one history row per attempt, newest first
    ``due|<due>|<job>``                     the job's next occurrence, for the timer
    ``meta|jobs``                           the job counter: how many jobs the collection holds
  A collection's rows share one partition, so a run's next step, its watch, its history and its
  tally change together in one entity-group transaction: a crash never leaves them half-written.
  Attempts never write the job row, so concurrent runs of one job do not contend on it; a job's
  counters are its row's plus its unfolded tallies. A table per collection keeps each
  collection's reads and writes independent of what the others store.
  The job counter is the collection's count and its "alive" mark: a job is inserted or deleted
  in one transaction with the counter's new value, conditional on the counter's ETag, so a quota
  holds under any number of concurrent creates, and a collection whose counter was deleted takes
  no new job.

``{prefix}Due``   PartitionKey = a minute (``yyyymmddHHMM``), RowKey = collection key
  "This collection filed a due or watch row in this minute." A row is filed in the minute it is
  due, or in the minute it was written if that is later. The timer reads the minutes up to now +
  lookahead, then each of those collections' due rows up to the same instant: its cost grows
  with the occurrences that are due, not with the jobs that are stored.

``{prefix}Collections``  PartitionKey = ``<subscription>|<resourceGroup>``, RowKey = name

A collection's key is ``<subscription>|<resourceGroup>|<name>`` (see shared/names.py).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import (
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
)
from azure.data.tables import TableEntity, TableErrorCode, UpdateMode
from azure.data.tables.aio import TableClient, TableServiceClient

from shared.concurrency import run_bounded
from shared.config import Settings
from shared.engine.planning import SCHEDULED_GRACE
from shared.engine.records import (
    HISTORY_KEY_INVERT_MS,
    Collection,
    DueEntry,
    DueScan,
    HistoryRecord,
    Run,
    RunStatus,
    StoredJob,
    Tally,
    TallyRow,
    Watch,
)
from shared.errors import Conflict, StorageError
from shared.model.collection import CollectionDefinition
from shared.model.job import (
    ActionName,
    HistoryStatus,
    JobHistoryProperties,
    JobState,
    load_stored_definition,
)
from shared.names import CollectionRef
from shared.storage.table_batch import MAX_OPERATIONS, Kind, Operation, TransactionFailed, submit
from shared.timefmt import compact, epoch_ms, from_iso, to_iso

ENTITY_VERSION = 1
# A dispatch writes three rows: the job, its run and the run's watch.
DISPATCHES_PER_TRANSACTION = MAX_OPERATIONS // 3
_LISTED_CACHE = 10_000
# Table Storage allows 15 comparisons in a $filter: the PartitionKey and 14 RowKeys.
_MAX_COMPARISONS = 15
_NAMES_PER_QUERY = _MAX_COMPARISONS - 1
_READ_CONCURRENCY = 8
# A minute of the due index is settled (no writer files rows in it any more) this long after it
# ended: writers file in the minute they write, and instances' clocks differ by far less.
_INDEX_SETTLES_AFTER = timedelta(minutes=5)
_COUNTER_KEY = "meta|jobs"
# Every create and delete of a collection's jobs changes its counter row, so concurrent ones
# take turns: a loser re-reads the counter after a random, growing pause. Enough tries for a
# few hundred creates at once in one collection.
_COUNTER_TRIES = 60
_COUNTER_BACKOFF_SECONDS = 0.005
_COUNTER_BACKOFF_CAP_SECONDS = 0.2
# A collection's purge reads its partition again until a read finds no row (a dispatch racing
# with it may still write one), at most this many times.
_PURGE_PASSES = 5


class CollectionGone(StorageError):
    """The collection's job counter is missing: the collection was deleted, or is being."""


class JobLimitReached(StorageError):
    """The collection already holds as many jobs as it may."""

    def __init__(self, count: int) -> None:
        super().__init__(f"the collection holds {count} jobs")
        self.count = count


@dataclass(frozen=True)
class JobCount:
    """The collection's counter row: how many jobs it holds, and its ETag to change it by."""

    jobs: int
    etag: str


def _job_key(name: str) -> str:
    return f"job|{name}"


def _due_key(entry: DueEntry) -> str:
    return f"due|{compact(entry.due)}|{entry.job}"


def _minute(instant: datetime) -> str:
    return instant.strftime("%Y%m%d%H%M")


def _filed(at: datetime, now: datetime) -> str:
    """The minute a due or watch row is filed in: its own, or the current one if later (so a
    writer never files into a minute the timer may already have settled)."""
    return _minute(max(at, now))


def _opt_iso(value: datetime | None) -> str | None:
    return to_iso(value) if value else None


def _opt_dt(value: Any) -> datetime | None:
    return from_iso(value) if value else None


def _key_range(prefix: str) -> str:
    """An OData filter for RowKeys starting with `prefix` (which ends in '|'; '}' follows it)."""
    return f"RowKey ge '{prefix}' and RowKey lt '{prefix[:-1]}}}'"


class JobStore:
    """Async access to the scheduler's tables: `JobStore.from_settings(...)`, then `ensure()`."""

    def __init__(self, service: TableServiceClient, settings: Settings) -> None:
        self._service = service
        self._settings = settings
        self.due_index: TableClient = service.get_table_client(settings.due_table)
        self.collections: TableClient = service.get_table_client(settings.collections_table)
        self._collection_tables: dict[str, TableClient] = {}
        self._tables_made: set[str] = set()
        self._listed: set[tuple[str, str]] = set()
        self._counter_locks: dict[str, asyncio.Lock] = {}
        # The counter as this process last wrote it: a create here need not read it first.
        self._counts: dict[str, JobCount] = {}
        self._ready = False
        self._ready_lock = asyncio.Lock()

    @classmethod
    def from_settings(cls, settings: Settings) -> JobStore:
        service = TableServiceClient.from_connection_string(settings.storage_connection)
        return cls(service, settings)

    async def ensure(self) -> JobStore:
        """Create the tables once per process (idempotent)."""
        async with self._ready_lock:
            if not self._ready:
                for table in (self.due_index, self.collections):
                    await self._create_table(table.table_name)
                self._ready = True
        return self

    async def close(self) -> None:
        for table in (self.due_index, self.collections, *self._collection_tables.values()):
            await table.close()
        await self._service.close()

    def table_for(self, collection: str) -> TableClient:
        """The table that holds a collection's jobs, runs, history and due rows."""
        table = self._collection_tables.get(collection)
        if table is None:
            digest = hashlib.sha256(collection.encode("utf-8")).hexdigest()[:32]
            table = self._service.get_table_client(f"{self._settings.table_prefix}C{digest}")
            self._collection_tables[collection] = table
        return table

    async def _create_table(self, name: str) -> None:
        try:
            await self._service.create_table(name)
        except ResourceExistsError:
            pass
        self._tables_made.add(name)

    async def _ensure_table(self, collection: str) -> TableClient:
        """The collection's table, created the first time this process writes new rows to it
        (a create that finds it is one request): a table deleted by hand comes back at the
        next start."""
        table = self.table_for(collection)
        if table.table_name not in self._tables_made:
            await self._create_table(table.table_name)
        return table

    # -- collections -------------------------------------------------------------------------

    async def get_collection(self, ref: CollectionRef) -> Collection | None:
        try:
            entity = await self.collections.get_entity(ref.namespace, ref.name)
        except ResourceNotFoundError:
            return None
        return _collection_from_entity(entity)

    async def put_collection(self, collection: Collection, *, new: bool) -> None:
        """Save the collection, creating its table first (a deleted collection's table stays,
        empty, so the name can be taken again at once).

        A `new` collection first clears its partition of anything a deleted namesake left
        (a delete that stopped midway, a create that raced with it), then starts its counter
        at zero, before its row makes it visible. An existing one keeps its counter (and gets
        one, counted, if it has none)."""
        key = collection.ref.key
        await self._ensure_table(key)
        if new:
            self._counts.pop(key, None)
            await self._purge(key)
            await self._insert_counter(key, 0)
        await self.collections.upsert_entity(
            {
                "PartitionKey": collection.ref.namespace,
                "RowKey": collection.ref.name,
                "v": ENTITY_VERSION,
                "definition": json.dumps(
                    collection.definition.model_dump(mode="json", by_alias=True, exclude_none=True)
                ),
                "created_at": to_iso(collection.created_at),
            },
            mode=UpdateMode.REPLACE,
        )
        if not new and await self.job_count(key) is None:
            await self._insert_counter(key, len(await self.collection_job_names(key)))

    async def delete_collection(self, ref: CollectionRef) -> None:
        """Delete the collection and everything of it. The counter goes first, so every create
        racing with this fails from then on; then every row of its partition (jobs, runs,
        history, due rows), so no dispatch or attempt can be committed any more; then the
        collection row."""
        self._counts.pop(ref.key, None)
        try:
            await self.table_for(ref.key).delete_entity(ref.key, _COUNTER_KEY)
        except ResourceNotFoundError:
            pass
        await self._purge(ref.key)
        await self.delete_collection_row(ref)

    async def delete_collection_row(self, ref: CollectionRef) -> None:
        try:
            await self.collections.delete_entity(ref.namespace, ref.name)
        except ResourceNotFoundError:
            pass

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
        async for entity in self.collections.query_entities(
            where, parameters=params, results_per_page=min(top + 1, 1000)
        ):
            collection = _collection_from_entity(entity)
            if after is not None and _collection_cursor(collection) <= after:
                continue
            found.append(collection)
            if len(found) > top:
                break
        if len(found) > top:
            return found[:top], _collection_cursor(found[top - 1])
        return found, None

    # -- jobs --------------------------------------------------------------------------------

    async def get_job(self, collection: str, name: str) -> StoredJob | None:
        try:
            entity = await self.table_for(collection).get_entity(collection, _job_key(name))
        except ResourceNotFoundError:
            return None
        return _job_from_entity(entity)

    async def get_jobs(self, keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], StoredJob]:
        """Many jobs by (collection, name) in few reads: one query per 14 names of a collection
        (with the partition, Table Storage's limit of 15 comparisons in a filter)."""
        by_collection: dict[str, set[str]] = {}
        for collection, name in keys:
            by_collection.setdefault(collection, set()).add(name)
        queries = [
            (collection, chunk)
            for collection, names in by_collection.items()
            for chunk in _chunks(sorted(names), _NAMES_PER_QUERY)
        ]

        async def read(query: tuple[str, list[str]]) -> list[StoredJob]:
            collection, names = query
            params: dict[str, Any] = {"pk": collection}
            clauses = []
            for index, name in enumerate(names):
                params[f"r{index}"] = _job_key(name)
                clauses.append(f"RowKey eq @r{index}")
            # Spaces around the parentheses: the SDK finds @parameters by splitting on spaces.
            query_text = f"PartitionKey eq @pk and ( {' or '.join(clauses)} )"
            table = self.table_for(collection)
            return [
                _job_from_entity(entity)
                async for entity in table.query_entities(query_text, parameters=params)
            ]

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
        params: dict[str, Any] = {"pk": collection, "after": _job_key(after or "")}
        if state is not None:
            query += " and state eq @state"
            params["state"] = state.value
        page, last_key = await self._page(query, params, top=top, skip=skip)
        jobs = [_job_from_entity(entity) for entity in page]
        return jobs, (last_key.split("|", 1)[1] if last_key else None)

    async def job_count(self, collection: str) -> JobCount | None:
        """The collection's job counter; None when it has none (the collection is gone)."""
        try:
            entity = await self.table_for(collection).get_entity(collection, _COUNTER_KEY)
        except ResourceNotFoundError:
            return None
        return _counter_from_entity(entity)

    async def collection_job_names(self, collection: str) -> list[str]:
        query = "PartitionKey eq @pk and RowKey ge 'job|' and RowKey lt 'job}'"
        names = []
        async for entity in self.table_for(collection).query_entities(
            query, parameters={"pk": collection}, select=["RowKey"]
        ):
            names.append(entity["RowKey"].split("|", 1)[1])
        return names

    async def create_job(self, job: StoredJob, *, max_jobs: int | None, now: datetime) -> StoredJob:
        """Insert a new job and its due row in one transaction with the counter's new value,
        which holds only if the counter is still the one read: the count check and the insert
        are one step, and a refused create leaves no row in the collection's table.

        Raises JobLimitReached when the collection holds `max_jobs`, CollectionGone when it has
        no counter, Conflict when a job of that name exists."""
        operations = [Operation(Kind.INSERT, _job_entity(job))]
        if job.next_fire is not None:
            entry = DueEntry(job.next_fire, job.collection, job.name)
            due_row = _due_entity(entry, _filed(job.next_fire, now))
            await self._list([(due_row["filed"], job.collection)])
            operations.append(Operation(Kind.UPSERT, due_row))
        try:
            etags = await self._with_count(job.collection, operations, delta=1, max_jobs=max_jobs)
        except TransactionFailed as error:
            if error.status == 409:
                raise Conflict(f"job {job.collection}/{job.name} exists") from error
            raise
        return replace(job, etag=etags[0])

    async def update_job(self, job: StoredJob) -> StoredJob:
        """Replace the job row if nobody changed it since it was read (its etag)."""
        etag = await self._replace_unchanged(_job_entity(job), job.etag)
        return replace(job, etag=etag)

    async def delete_job(self, collection: str, name: str) -> bool:
        """Delete the job, its runs in flight (and their watches), tallies and history. False
        when there was no job."""
        job = await self.get_job(collection, name)
        if job is None:
            return False
        runs = await self.runs_of(collection, name)
        keys = [run.row_key for run in runs]
        keys += [_watch_of(run).row_key for run in runs if run.watch_at is not None]
        keys += [key async for key in self._row_keys(collection, f"tally|{name}|")]
        keys += [key async for key in self._row_keys(collection, f"hist|{name}|")]
        await self._delete_rows(collection, keys)
        await self._delete_counted(collection, name)
        if job.next_fire is not None:
            await self.delete_due(DueEntry(job.next_fire, collection, name))
        return True

    async def _delete_counted(self, collection: str, name: str) -> None:
        """Delete the job row and count it out, in one transaction."""
        deletion = Operation(Kind.DELETE, {"PartitionKey": collection, "RowKey": _job_key(name)})
        try:
            await self._with_count(collection, [deletion], delta=-1)
        except CollectionGone:
            # The collection is being deleted, its purge takes every row: take this one now.
            try:
                await self.table_for(collection).delete_entity(collection, _job_key(name))
            except ResourceNotFoundError:
                pass
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
        """Run one job's `operations` in one transaction with the collection's job counter moved
        by `delta`, conditional on the counter's ETag; when another writer moved it first, read
        it again and retry. Returns the ETags of `operations`.

        Raises CollectionGone when there is no counter, JobLimitReached when a create would
        pass `max_jobs`, TransactionFailed when one of `operations` was refused."""
        table = self.table_for(collection)
        for attempt in range(_COUNTER_TRIES):
            async with self._counter_lock(collection):
                count = self._counts.get(collection)
                cached = count is not None and (max_jobs is None or count.jobs + delta <= max_jobs)
                if not cached:  # never refuse on a count remembered from earlier
                    count = await self._read_counter(collection)
                if count is None:
                    raise CollectionGone(collection)
                if delta > 0 and max_jobs is not None and count.jobs + delta > max_jobs:
                    raise JobLimitReached(count.jobs)
                jobs = max(0, count.jobs + delta)
                counter = Operation(Kind.REPLACE, _counter_entity(collection, jobs), count.etag)
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
            await _counter_backoff(attempt)  # another instance moved the counter meanwhile
        raise Conflict(f"the job count of {collection} kept changing; try again")

    async def _read_counter(self, collection: str) -> JobCount | None:
        """The counter, or None; a table deleted by hand under a collection that still exists
        is made again, empty, its counter at zero (a collection's delete keeps its table, so
        this never brings back a collection being deleted)."""
        try:
            entity = await self.table_for(collection).get_entity(collection, _COUNTER_KEY)
        except ResourceNotFoundError as error:
            # azure-data-tables sets error_code on the errors it raises; its stubs omit it.
            if getattr(error, "error_code", None) != TableErrorCode.TABLE_NOT_FOUND:
                return None
            self._tables_made.discard(self.table_for(collection).table_name)
            if await self.get_collection(CollectionRef.from_key(collection)) is None:
                return None
            await self._ensure_table(collection)
            await self._insert_counter(collection, 0)
            return await self.job_count(collection)
        return _counter_from_entity(entity)

    def _counter_lock(self, collection: str) -> asyncio.Lock:
        """Creates and deletes of one collection's jobs in this process take turns at its
        counter instead of colliding on its ETag; other instances' are caught by the ETag."""
        return self._counter_locks.setdefault(collection, asyncio.Lock())

    async def _insert_counter(self, collection: str, jobs: int) -> None:
        """Start the collection's counter; one that is there already (a racing PUT) stays."""
        try:
            await self.table_for(collection).create_entity(_counter_entity(collection, jobs))
        except ResourceExistsError:
            pass

    async def _purge(self, collection: str) -> None:
        """Delete every row of the collection's partition, reading it again until it is empty."""
        for _ in range(_PURGE_PASSES):
            try:
                keys = [key async for key in self._partition_keys(collection)]
            except ResourceNotFoundError:
                return  # no table, no rows
            if not keys:
                return
            await self._delete_rows(collection, keys)

    # -- due index and watches ---------------------------------------------------------------

    async def put_due(self, entry: DueEntry, now: datetime) -> None:
        await self.put_due_many([entry], now)

    async def put_due_many(self, entries: Iterable[DueEntry], now: datetime) -> None:
        """Index occurrences: list each collection under the minute its rows are filed in, then
        write the rows (so a due row never exists unlisted), 100 to a transaction."""
        rows: dict[str, dict[str, dict[str, Any]]] = {}
        for entry in entries:
            rows.setdefault(entry.collection, {})[_due_key(entry)] = _due_entity(
                entry, _filed(entry.due, now)
            )
        await self._list(
            (row["filed"], collection)
            for collection, by_key in rows.items()
            for row in by_key.values()
        )
        for collection, by_key in rows.items():
            table = await self._ensure_table(collection)
            for chunk in _chunks(list(by_key.values()), MAX_OPERATIONS):
                await submit(table, [Operation(Kind.UPSERT, e) for e in chunk])

    async def _list(self, filed: Iterable[tuple[str, str]]) -> None:
        """List collections under the minutes they file rows in. A listing is only forgotten
        once its minute is settled, and no row is ever filed in a settled minute, so what this
        process listed once stays listed: it is written once per process."""
        wanted = set(filed) - self._listed
        minutes: dict[str, set[str]] = {}
        for minute, collection in wanted:
            minutes.setdefault(minute, set()).add(collection)
        for minute, collections in minutes.items():
            for names in _chunks(sorted(collections), MAX_OPERATIONS):
                index = [
                    Operation(Kind.UPSERT, {"PartitionKey": minute, "RowKey": name})
                    for name in names
                ]
                await submit(self.due_index, index)
        if len(self._listed) > _LISTED_CACHE:
            self._listed.clear()
        self._listed |= wanted

    async def delete_due(self, entry: DueEntry) -> None:
        try:
            await self.table_for(entry.collection).delete_entity(entry.collection, _due_key(entry))
        except ResourceNotFoundError:
            pass

    async def delete_due_many(self, entries: Iterable[DueEntry]) -> None:
        keys: dict[str, set[str]] = {}
        for entry in entries:
            keys.setdefault(entry.collection, set()).add(_due_key(entry))
        for collection, rows in keys.items():
            await self._delete_rows(collection, sorted(rows))

    async def scan(self, until: datetime, *, now: datetime | None = None) -> DueScan:
        """Every due row at or before `until` and every watch row at or before `now`, oldest
        first: the minutes of the index up to `until`, then each listed collection's rows (two
        key-range reads for due rows, one more for watches when `now` is given).

        With `now`, the index forgets the collections it lists under settled minutes (ended
        five minutes before `now`) that have no row filed there any more."""
        listed: dict[str, list[str]] = {}
        async for entity in self.due_index.query_entities(
            "PartitionKey le @minute", parameters={"minute": _minute(until)}
        ):
            listed.setdefault(entity["RowKey"], []).append(entity["PartitionKey"])
        found = DueScan()
        forgotten: dict[str, list[str]] = {}
        settled = _minute(now - _INDEX_SETTLES_AFTER) if now is not None else ""

        async def read(listing: tuple[str, list[str]]) -> None:
            collection, minutes = listing
            rows = await self._range(collection, "due|", until)
            watches = await self._range(collection, "watch|", now) if now else []
            filed = {row["filed"] for row in rows} | {row["filed"] for row in watches}
            found.entries.extend(
                DueEntry(from_iso(row["due"]), collection, row["RowKey"].rsplit("|", 1)[1])
                for row in rows
            )
            found.watches.extend(_watch_from_entity(row) for row in watches)
            for minute in minutes:
                if minute < settled and minute not in filed:
                    forgotten.setdefault(minute, []).append(collection)

        await run_bounded(_READ_CONCURRENCY, read, listed.items())
        for minute, collections in forgotten.items():
            await self._delete_rows(minute, collections, self.due_index)
        found.entries.sort(key=lambda e: e.due)
        found.watches.sort(key=lambda w: w.deadline)
        return found

    async def _range(self, collection: str, prefix: str, until: datetime) -> list[TableEntity]:
        """The collection's due or watch rows (`prefix`) whose time is at or before `until`."""
        query = "PartitionKey eq @pk and RowKey ge @low and RowKey lt @high"
        params = {"pk": collection, "low": prefix, "high": f"{prefix}{compact(until)}}}"}
        try:
            rows = [
                row
                async for row in self.table_for(collection).query_entities(query, parameters=params)
            ]
        except ResourceNotFoundError:
            return []  # the collection's table is gone: nothing of it is due
        field = "due" if prefix == "due|" else "deadline"
        return [row for row in rows if from_iso(row[field]) <= until]

    async def delete_watch(self, watch: Watch) -> None:
        try:
            await self.table_for(watch.collection).delete_entity(watch.collection, watch.row_key)
        except ResourceNotFoundError:
            pass

    # -- runs --------------------------------------------------------------------------------

    async def get_run(self, collection: str, row_key: str) -> Run | None:
        try:
            entity = await self.table_for(collection).get_entity(collection, row_key)
        except ResourceNotFoundError:
            return None
        return _run_from_entity(entity)

    async def runs_of(self, collection: str, job: str) -> list[Run]:
        """The job's runs in flight (every version, on-demand ones included)."""
        return [run async for run in self._runs_between(collection, job, job)]

    async def commit_dispatch(self, job: StoredJob, run: Run, now: datetime) -> StoredJob:
        """Advance the job and create its run (and the run's watch), atomically; Conflict if
        the job changed meanwhile."""
        await self._list([(_filed(_watched(run), now), run.collection)])
        etags = await self._transact(job.collection, _dispatch_operations(job, run, now))
        return replace(job, etag=etags[0])

    async def commit_dispatches(
        self, collection: str, pairs: list[tuple[StoredJob, Run]], now: datetime
    ) -> None:
        """`commit_dispatch` for up to 33 jobs of one collection in one transaction: all or
        nothing, so the caller falls back to one by one when any of them lost a race."""
        await self._list((_filed(_watched(run), now), collection) for _, run in pairs)
        operations: list[Operation] = []
        for job, run in pairs:
            operations += _dispatch_operations(job, run, now)
        await self._transact(collection, operations)

    async def create_run(self, run: Run, now: datetime) -> Run:
        """An on-demand run and its watch."""
        run = replace(run, watch_at=_watched(run))
        await self._list([(_filed(run.watch_at or now, now), run.collection)])
        operations = [
            Operation(Kind.INSERT, _run_entity(run)),
            Operation(Kind.INSERT, _watch_entity(_watch_of(run), now)),
        ]
        etags = await self._transact(run.collection, operations)
        return replace(run, etag=etags[0])

    async def move_run(self, read: Run, updated: Run, now: datetime) -> Run:
        """Save a run's new state (claimed, or due to be looked at again) and move its watch
        from `read.watch_at` to `updated.watch_at`, if nobody changed the run since it was
        `read`; Conflict otherwise."""
        operations = [Operation(Kind.REPLACE, _run_entity(updated), read.etag)]
        operations += await self._watch_moves(read, updated, now)
        etags = await self._transact(read.collection, operations)
        return replace(updated, etag=etags[0])

    async def _watch_moves(self, read: Run, updated: Run | None, now: datetime) -> list[Operation]:
        """Delete the watch row of the run as read (its ETag, checked in the same transaction,
        guarantees the row is there), and file the one of the updated run, if any. A watch
        that stays at the same second is the same row, left as it is (a transaction may not
        touch one row twice)."""
        old = Watch(read.collection, read.watch_at, read.row_key) if read.watch_at else None
        new = _watch_of(updated) if updated is not None and updated.watch_at else None
        if old is not None and new is not None and old.row_key == new.row_key:
            return []
        operations = []
        if old is not None:
            keys = {"PartitionKey": read.collection, "RowKey": old.row_key}
            operations.append(Operation(Kind.DELETE, keys))
        if new is not None:
            await self._list([(_filed(new.deadline, now), new.collection)])
            operations.append(Operation(Kind.UPSERT, _watch_entity(new, now)))
        return operations

    async def _replace_unchanged(self, entity: dict[str, Any], etag: str | None) -> str:
        """Replace a row only if its etag still matches; Conflict if someone changed it."""
        try:
            meta = await self.table_for(entity["PartitionKey"]).update_entity(
                entity,
                mode=UpdateMode.REPLACE,
                etag=etag,
                match_condition=MatchConditions.IfNotModified,
            )
        except (ResourceModifiedError, ResourceNotFoundError) as error:
            raise Conflict(f"{entity['RowKey']} in {entity['PartitionKey']} changed") from error
        return str(meta["etag"])

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
        """Record an attempt atomically: the run's next step (`updated`) or its end (None) with
        its watch, the history row and the tally, and optionally a watch that makes the timer
        check the job's final state. Conflict if the run changed since it was `read` (claimed).
        The job row is not written."""
        keys = {"PartitionKey": read.collection, "RowKey": read.row_key}
        if updated is None:
            operations = [Operation(Kind.DELETE, keys, read.etag)]
        else:
            operations = [Operation(Kind.REPLACE, _run_entity(updated), read.etag)]
        operations += await self._watch_moves(read, updated, now)
        if check_final_at is not None:
            final = Watch.final_state_of(read.collection, read.job, check_final_at)
            await self._list([(_filed(check_final_at, now), read.collection)])
            operations.append(Operation(Kind.UPSERT, _watch_entity(final, now)))
        if history is not None:
            operations.append(Operation(Kind.UPSERT, _history_entity(history)))
        if tally is not None:
            operations.append(Operation(Kind.UPSERT, _tally_entity(tally)))
        await self._transact(read.collection, operations)

    async def has_history(self, record: HistoryRecord) -> bool:
        """Whether this attempt's history row is stored (its recording landed)."""
        try:
            await self.table_for(record.collection).get_entity(record.collection, record.row_key)
        except ResourceNotFoundError:
            return False
        return True

    # -- tallies -----------------------------------------------------------------------------

    async def tallies_of(self, collection: str, job: str) -> list[TallyRow]:
        return [row async for row in self._tallies_between(collection, job, job)]

    async def _tallies_between(
        self, collection: str, first: str, last: str
    ) -> AsyncIterator[TallyRow]:
        """The tallies of the jobs named `first` to `last` (in key order), in one range read."""
        query = "PartitionKey eq @pk and RowKey ge @low and RowKey lt @high"
        params = {"pk": collection, "low": f"tally|{first}|", "high": f"tally|{last}}}"}
        async for entity in self.table_for(collection).query_entities(query, parameters=params):
            yield _tally_from_entity(entity)

    async def _runs_between(self, collection: str, first: str, last: str) -> AsyncIterator[Run]:
        query = "PartitionKey eq @pk and RowKey ge @low and RowKey lt @high"
        params = {"pk": collection, "low": f"run|{first}|", "high": f"run|{last}}}"}
        async for entity in self.table_for(collection).query_entities(query, parameters=params):
            yield _run_from_entity(entity)

    async def fold(
        self, job: StoredJob, tallies: list[TallyRow], *, watch: Watch | None = None
    ) -> StoredJob:
        """Write the job row (as given, e.g. in its final state) with these tallies folded in
        and delete them (and `watch`, if given), atomically; Conflict if the job changed since
        it was read or the watch is gone."""
        room = MAX_OPERATIONS - 1 - (watch is not None)
        folded = job.folded(tallies[:room])
        operations = [Operation(Kind.REPLACE, _job_entity(folded), job.etag)]
        operations += [
            Operation(Kind.DELETE, {"PartitionKey": row.collection, "RowKey": row.key})
            for row in tallies[:room]
        ]
        if watch is not None:
            operations.append(
                Operation(Kind.DELETE, {"PartitionKey": watch.collection, "RowKey": watch.row_key})
            )
        etags = await self._transact(job.collection, operations)
        return replace(folded, etag=etags[0])

    async def with_status(self, jobs: list[StoredJob]) -> list[StoredJob]:
        """The jobs with what their status needs besides their rows: unfolded tallies, and the
        earliest occurrence dispatched but not started (it is still the next execution). Two
        range reads per collection, spanning the jobs' names (a page of a list is contiguous)."""
        by_collection: dict[str, dict[str, StoredJob]] = {}
        for job in jobs:
            by_collection.setdefault(job.collection, {})[job.name] = job
        pending: dict[tuple[str, str], Tally] = {}
        waiting: dict[tuple[str, str], datetime] = {}

        async def read(group: tuple[str, dict[str, StoredJob]]) -> None:
            collection, named = group
            first, last = min(named), max(named)
            async for row in self._tallies_between(collection, first, last):
                key = (collection, row.job)
                pending[key] = pending.get(key, Tally()) + row.tally
            async for run in self._runs_between(collection, first, last):
                job = named.get(run.job)
                if (
                    job is None
                    or not job.schedules(run)
                    or run.step != (0, 0)
                    or run.status is not RunStatus.SCHEDULED
                ):
                    continue
                key = (collection, run.job)
                waiting[key] = min(waiting.get(key, run.nominal), run.nominal)

        await run_bounded(_READ_CONCURRENCY, read, by_collection.items())
        return [
            replace(
                job,
                pending=pending.get((job.collection, job.name), Tally()),
                dispatched=waiting.get((job.collection, job.name)),
            )
            for job in jobs
        ]

    # -- history -----------------------------------------------------------------------------

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
        """A page of history, newest first; `after` is the row key the previous page ended on."""
        prefix = f"hist|{name}|"
        after_clause = " and RowKey gt @after" if after else ""
        query = f"PartitionKey eq @pk and RowKey ge @low{after_clause} and RowKey lt @high"
        params: dict[str, Any] = {
            "pk": collection,
            "after": after,
            "low": prefix,
            "high": f"hist|{name}}}",
        }
        if status is not None:
            query += " and status eq @status"
            params["status"] = status.value
        page, last_key = await self._page(query, params, top=top, skip=skip)
        return [_history_from_entity(entity) for entity in page], last_key

    async def _page(
        self, query: str, params: dict[str, Any], *, top: int, skip: int
    ) -> tuple[list[TableEntity], str | None]:
        """Up to `top` rows after skipping `skip`, and the row key to continue after (None when
        this page is the last)."""
        rows: list[TableEntity] = []
        seen = 0
        async for entity in self.table_for(params["pk"]).query_entities(
            query, parameters=params, results_per_page=min(top + skip + 1, 1000)
        ):
            seen += 1
            if seen <= skip:
                continue
            rows.append(entity)
            if len(rows) > top:
                return rows[:top], rows[top - 1]["RowKey"]
        return rows, None

    async def prune_history(self, collection: str, name: str, now: datetime) -> int:
        """Keep the newest `history_max_rows` rows younger than `history_max_age`."""
        prefix = f"hist|{name}|"
        keys = [key async for key in self._row_keys(collection, prefix)]
        cutoff = HISTORY_KEY_INVERT_MS - epoch_ms(now - self._settings.history_max_age)
        old = [
            key
            for index, key in enumerate(keys)
            if index >= self._settings.history_max_rows or int(key.split("|")[2]) > cutoff
        ]
        await self._delete_rows(collection, old)
        return len(old)

    def housekeeping_due(self, attempt_key: str) -> bool:
        """Whether this attempt prunes its job's history and folds its tallies: about one
        attempt in every few, chosen by its key, often enough to hold the history limit and
        keep tallies few, rarely enough to stay cheap."""
        every = max(1, min(20, self._settings.history_max_rows // 20))
        digest = hashlib.sha256(attempt_key.encode()).digest()
        return int.from_bytes(digest[:4], "big") % every == 0

    # -- helpers -----------------------------------------------------------------------------

    async def _partition_keys(self, partition: str) -> AsyncIterator[str]:
        async for entity in self.table_for(partition).query_entities(
            "PartitionKey eq @pk", parameters={"pk": partition}, select=["RowKey"]
        ):
            yield entity["RowKey"]

    async def _row_keys(self, partition: str, prefix: str) -> AsyncIterator[str]:
        query = f"PartitionKey eq @pk and {_key_range(prefix)}"
        async for entity in self.table_for(partition).query_entities(
            query, parameters={"pk": partition}, select=["RowKey"]
        ):
            yield entity["RowKey"]

    async def _delete_rows(
        self, partition: str, keys: Iterable[str], table: TableClient | None = None
    ) -> None:
        table = table or self.table_for(partition)
        batch: list[Operation] = []
        for key in keys:
            batch.append(Operation(Kind.DELETE, {"PartitionKey": partition, "RowKey": key}))
            if len(batch) == MAX_OPERATIONS:
                await _delete_batch(table, partition, batch)
                batch = []
        if batch:
            await _delete_batch(table, partition, batch)

    async def _transact(self, partition: str, operations: list[Operation]) -> list[str | None]:
        """A transaction on the jobs table; Conflict when a row it expected had changed."""
        try:
            return await submit(self.table_for(partition), operations)
        except TransactionFailed as error:
            if error.status in (404, 409, 412):
                raise Conflict(f"transaction on {partition} lost a race: {error}") from error
            raise


def _watched(run: Run) -> datetime:
    """When the timer looks at a new run if no executor has taken it: its due time plus the
    grace an executor needs to pick its message up."""
    return run.watch_at or run.due + SCHEDULED_GRACE


def _watch_of(run: Run) -> Watch:
    return Watch(run.collection, _watched(run), run.row_key)


def _dispatch_operations(job: StoredJob, run: Run, now: datetime) -> list[Operation]:
    run = replace(run, watch_at=_watched(run), created=run.created or now)
    return [
        Operation(Kind.REPLACE, _job_entity(job), job.etag),
        Operation(Kind.INSERT, _run_entity(run)),
        Operation(Kind.INSERT, _watch_entity(_watch_of(run), now)),
    ]


def _collection_cursor(collection: Collection) -> str:
    return f"{collection.ref.resource_group}|{collection.ref.name}"


def _collection_from_entity(entity: TableEntity) -> Collection:
    subscription, resource_group = entity["PartitionKey"].split("|")
    return Collection(
        ref=CollectionRef(subscription, resource_group, entity["RowKey"]),
        definition=CollectionDefinition.model_validate(json.loads(entity["definition"])),
        created_at=from_iso(entity["created_at"]),
    )


async def _delete_batch(table: TableClient, partition: str, batch: list[Operation]) -> None:
    try:
        await submit(table, batch)
    except TransactionFailed as error:
        if error.status != 404:
            raise
        # A row vanished meanwhile (another deleter): fall back to one by one, ignoring 404s.
        for operation in batch:
            try:
                await table.delete_entity(partition, operation.entity["RowKey"])
            except ResourceNotFoundError:
                pass


async def _counter_backoff(attempt: int) -> None:
    """A random pause that grows with the tries, so racing writers of a counter spread out."""
    ceiling = min(_COUNTER_BACKOFF_CAP_SECONDS, _COUNTER_BACKOFF_SECONDS * 2**attempt)
    await asyncio.sleep(random.uniform(0, ceiling))


def _counter_entity(collection: str, jobs: int) -> dict[str, Any]:
    return {"PartitionKey": collection, "RowKey": _COUNTER_KEY, "v": ENTITY_VERSION, "jobs": jobs}


def _counter_from_entity(entity: TableEntity) -> JobCount:
    etag = entity.metadata["etag"]
    if etag is None:  # every row read from the service has one; without it no write is safe
        raise ValueError("the job counter was read without its ETag")
    return JobCount(int(entity["jobs"]), etag)


def _due_entity(entry: DueEntry, filed: str) -> dict[str, Any]:
    return {
        "PartitionKey": entry.collection,
        "RowKey": _due_key(entry),
        "due": to_iso(entry.due),
        "filed": filed,
    }


def _chunks(items: list[Any], size: int) -> Iterable[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _job_entity(job: StoredJob) -> dict[str, Any]:
    return {
        "PartitionKey": job.collection,
        "RowKey": _job_key(job.name),
        "v": ENTITY_VERSION,
        "definition": json.dumps(
            job.properties.model_dump(mode="json", by_alias=True, exclude_none=True)
        ),
        "state": job.state.value,
        "created_at": to_iso(job.created_at),
        "generation": job.generation,
        "next_fire": _opt_iso(job.next_fire),
        "occurrences": job.occurrences,
        "execution_count": job.execution_count,
        "failure_count": job.failure_count,
        "faulted_count": job.faulted_count,
        "missed_count": job.missed_count,
        "last_execution_time": _opt_iso(job.last_execution_time),
        "scheduled_from": _opt_iso(job.scheduled_from),
        "closing": job.closing.value if job.closing else None,
        "closing_generation": job.closing_generation,
    }


def _job_from_entity(entity: TableEntity) -> StoredJob:
    return StoredJob(
        collection=entity["PartitionKey"],
        name=entity["RowKey"].split("|", 1)[1],
        properties=load_stored_definition(json.loads(entity["definition"])),
        state=JobState(entity["state"]),
        created_at=from_iso(entity["created_at"]),
        generation=int(entity["generation"]),
        next_fire=_opt_dt(entity.get("next_fire")),
        occurrences=int(entity["occurrences"]),
        execution_count=int(entity["execution_count"]),
        failure_count=int(entity["failure_count"]),
        faulted_count=int(entity["faulted_count"]),
        missed_count=int(entity["missed_count"]),
        last_execution_time=_opt_dt(entity.get("last_execution_time")),
        scheduled_from=_opt_dt(entity.get("scheduled_from")),
        closing=JobState(entity["closing"]) if entity.get("closing") else None,
        closing_generation=int(entity.get("closing_generation") or 0),
        etag=entity.metadata["etag"],
    )


def _run_entity(run: Run) -> dict[str, Any]:
    return {
        "PartitionKey": run.collection,
        "RowKey": run.row_key,
        "v": ENTITY_VERSION,
        "job": run.job,
        "generation": run.generation,
        "nominal": to_iso(run.nominal),
        "token": run.token,
        "repeat_count": run.repeat_count,
        "due": to_iso(run.due),
        "manual": run.manual,
        "last": run.last,
        "phase": run.phase.value,
        "attempt": run.attempt,
        "status": run.status.value,
        "faulted": run.faulted,
        "late_seconds": float(run.late_seconds),
        "missed": run.missed,
        "claimed_until": _opt_iso(run.claimed_until),
        "started_at": _opt_iso(run.started_at),
        "watch_at": _opt_iso(run.watch_at),
        "created": _opt_iso(run.created),
    }


def _run_from_entity(entity: TableEntity) -> Run:
    return Run(
        collection=entity["PartitionKey"],
        job=entity["job"],
        generation=int(entity["generation"]),
        nominal=from_iso(entity["nominal"]),
        token=entity.get("token") or "",
        repeat_count=int(entity["repeat_count"]),
        due=from_iso(entity["due"]),
        manual=bool(entity["manual"]),
        last=bool(entity["last"]),
        phase=ActionName(entity["phase"]),
        attempt=int(entity["attempt"]),
        status=RunStatus(entity["status"]),
        faulted=bool(entity["faulted"]),
        late_seconds=float(entity["late_seconds"]),
        missed=int(entity["missed"]),
        claimed_until=_opt_dt(entity.get("claimed_until")),
        started_at=_opt_dt(entity.get("started_at")),
        watch_at=_opt_dt(entity.get("watch_at")),
        created=_opt_dt(entity.get("created")),
        etag=entity.metadata["etag"],
    )


def _watch_entity(watch: Watch, now: datetime) -> dict[str, Any]:
    return {
        "PartitionKey": watch.collection,
        "RowKey": watch.row_key,
        "deadline": to_iso(watch.deadline),
        "filed": _filed(watch.deadline, now),
    }


def _watch_from_entity(entity: TableEntity) -> Watch:
    subject = entity["RowKey"].split("|", 2)[2]
    return Watch(entity["PartitionKey"], from_iso(entity["deadline"]), subject)


def _tally_entity(row: TallyRow) -> dict[str, Any]:
    tally = row.tally
    return {
        "PartitionKey": row.collection,
        "RowKey": row.key,
        "job": row.job,
        "executions": tally.executions,
        "failures": tally.failures,
        "faulted": tally.faulted,
        "last_execution_time": _opt_iso(tally.last_execution_time),
        "generation": row.generation,
        "closing": row.closing.value if row.closing else None,
    }


def _tally_from_entity(entity: TableEntity) -> TallyRow:
    return TallyRow(
        collection=entity["PartitionKey"],
        job=entity["job"],
        key=entity["RowKey"],
        tally=Tally(
            int(entity["executions"]),
            int(entity["failures"]),
            int(entity["faulted"]),
            _opt_dt(entity.get("last_execution_time")),
        ),
        generation=int(entity["generation"]),
        closing=JobState(entity["closing"]) if entity.get("closing") else None,
    )


def _history_entity(record: HistoryRecord) -> dict[str, Any]:
    props = record.properties
    return {
        "PartitionKey": record.collection,
        "RowKey": record.row_key,
        "v": ENTITY_VERSION,
        "job": record.job,
        "start_time": to_iso(props.start_time),
        "end_time": _opt_iso(props.end_time),
        "expected_execution_time": to_iso(props.expected_execution_time),
        "action_name": props.action_name.value,
        "status": props.status.value,
        "message": props.message[:30000],
        "retry_count": props.retry_count,
        "repeat_count": props.repeat_count,
        "late_seconds": float(record.late_seconds),
        "manual": record.manual,
        "run_token": record.run_token,
    }


def _history_from_entity(entity: TableEntity) -> HistoryRecord:
    return HistoryRecord(
        collection=entity["PartitionKey"],
        job=entity["job"],
        properties=JobHistoryProperties(
            start_time=from_iso(entity["start_time"]),
            end_time=_opt_dt(entity.get("end_time")),
            expected_execution_time=from_iso(entity["expected_execution_time"]),
            action_name=ActionName(entity["action_name"]),
            status=HistoryStatus(entity["status"]),
            message=entity["message"],
            retry_count=int(entity["retry_count"]),
            repeat_count=int(entity["repeat_count"]),
        ),
        late_seconds=float(entity.get("late_seconds") or 0.0),
        manual=bool(entity.get("manual")),
        run_token=entity.get("run_token") or "",
    )


__all__ = [
    "CollectionGone",
    "JobCount",
    "JobLimitReached",
    "JobStore",
]
