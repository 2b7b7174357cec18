"""Runs in flight and what an attempt writes: dispatch and attempt transactions, tallies.

A collection's rows share one partition, so a run's next step, its watch, its history and its
tally change together in one entity-group transaction: a crash never leaves them half-written.
Attempts never write the job row, so concurrent runs of one job do not contend on it; a job's
counters are its row's plus its unfolded tallies (`fold` moves them into the row).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import datetime

from azure.core.exceptions import ResourceNotFoundError

from shared.concurrency import run_bounded
from shared.engine.planning import SCHEDULED_GRACE
from shared.engine.records import (
    HistoryRecord,
    Run,
    RunStatus,
    StoredJob,
    Tally,
    TallyRow,
    Watch,
)
from shared.storage.codecs import (
    history_entity,
    job_entity,
    run_entity,
    run_from_entity,
    tally_entity,
    tally_from_entity,
)
from shared.storage.due_index import DueIndex
from shared.storage.group_commit import GroupCommit
from shared.storage.keys import filed as filed_minute
from shared.storage.keys import jobs_between, tally_prefix
from shared.storage.rows import (
    key_range,
    lost_race,
    row_keys,
    transact,
)
from shared.storage.table_batch import MAX_OPERATIONS, Kind, Operation, TransactionFailed
from shared.storage.tables import Tables

# A dispatch writes three rows: the job, its run and the run's watch.
DISPATCHES_PER_TRANSACTION = MAX_OPERATIONS // 3
_READ_CONCURRENCY = 8


class RunRows:
    """Runs, their watches as they move, tallies, and the job row when tallies fold into it.

    Claims and attempt records (`move_run`, `commit_attempt`) are group-committed: those of one
    collection that arrive while one is being written share the next transaction
    (shared/storage/group_commit.py), each with the outcome it would have had alone."""

    def __init__(self, tables: Tables, due_index: DueIndex) -> None:
        self._tables = tables
        self._due_index = due_index
        self._group_commit = GroupCommit()

    async def close(self) -> None:
        """Wait for the group transactions under way."""
        await self._group_commit.close()

    async def get_run(self, collection: str, row_key: str) -> Run | None:
        try:
            entity = await self._tables.table_for(collection).get_entity(collection, row_key)
        except ResourceNotFoundError:
            return None
        return run_from_entity(entity)

    async def runs_of(self, collection: str, job: str) -> list[Run]:
        """The job's runs in flight (every generation, on-demand ones included)."""
        return [run async for run in self._runs_between(collection, job, job)]

    async def running(self, collection: str) -> list[Run]:
        """The collection's runs whose attempt is under way (one range read of its run rows)."""
        query = "PartitionKey eq @pk and RowKey ge 'run|' and RowKey lt 'run}' and status eq @s"
        params = {"pk": collection, "s": RunStatus.RUNNING.value}
        table = self._tables.table_for(collection)
        try:
            return [
                run_from_entity(entity)
                async for entity in table.query_entities(query, parameters=params)
            ]
        except ResourceNotFoundError:
            return []

    async def keys_of(self, collection: str, name: str) -> list[str]:
        """The keys of a job's runs in flight, their watches and its tallies (for its delete)."""
        runs = await self.runs_of(collection, name)
        keys = [run.row_key for run in runs]
        keys += [_watch_of(run).row_key for run in runs if run.watch_at is not None]
        table = self._tables.table_for(collection)
        keys += [key async for key in row_keys(table, collection, tally_prefix(name))]
        return keys

    async def commit_dispatch(self, job: StoredJob, run: Run, now: datetime) -> StoredJob:
        """Advance the job and create its run (and the run's watch), atomically; Conflict if
        the job changed meanwhile."""
        etags = await self._transact(job.collection, await self._dispatch_operations(job, run, now))
        return replace(job, etag=etags[0])

    async def commit_dispatches(
        self, collection: str, pairs: list[tuple[StoredJob, Run]], now: datetime
    ) -> None:
        """`commit_dispatch` for up to 33 jobs of one collection in one transaction: all or
        nothing, so the caller falls back to one by one when any of them lost a race."""
        await self._due_index.list_minutes(
            (filed_minute(_watched(run), now), collection) for _, run in pairs
        )
        operations: list[Operation] = []
        for job, run in pairs:
            operations += await self._dispatch_operations(job, run, now)
        await self._transact(collection, operations)

    async def create_run(self, run: Run, now: datetime) -> Run:
        """An on-demand run and its watch."""
        run = replace(run, watch_at=_watched(run))
        operations = [Operation(Kind.INSERT, run_entity(run))]
        operations += await self._due_index.watch_operations([_watch_of(run)], now, Kind.INSERT)
        etags = await self._transact(run.collection, operations)
        return replace(run, etag=etags[0])

    async def move_run(self, read: Run, updated: Run, now: datetime) -> Run:
        """Save a run's new state (claimed, or due to be looked at again) and move its watch
        from `read.watch_at` to `updated.watch_at`, if nobody changed the run since it was
        `read`; Conflict otherwise."""
        operations = [Operation(Kind.REPLACE, run_entity(updated), read.etag)]
        operations += await self._watch_moves(read, updated, now)
        etags = await self._transact_grouped(read.collection, operations)
        return replace(updated, etag=etags[0])

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
            operations = [Operation(Kind.REPLACE, run_entity(updated), read.etag)]
        operations += await self._watch_moves(read, updated, now)
        if check_final_at is not None:
            final = Watch.final_state_of(read.collection, read.job, check_final_at)
            operations += await self._due_index.watch_operations([final], now)
        if history is not None:
            operations.append(Operation(Kind.UPSERT, history_entity(history)))
        if tally is not None:
            operations.append(Operation(Kind.UPSERT, tally_entity(tally)))
        await self._transact_grouped(read.collection, operations)

    async def tallies_of(self, collection: str, job: str) -> list[TallyRow]:
        return [row async for row in self._tallies_between(collection, job, job)]

    async def fold(
        self, job: StoredJob, tallies: list[TallyRow], *, watch: Watch | None = None
    ) -> StoredJob:
        """Write the job row (as given, e.g. in its final state) with these tallies folded in
        and delete them (and `watch`, if given), atomically; Conflict if the job changed since
        it was read or the watch is gone."""
        room = MAX_OPERATIONS - 1 - (watch is not None)
        folded = job.folded(tallies[:room])
        operations = [Operation(Kind.REPLACE, job_entity(folded), job.etag)]
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

    async def _dispatch_operations(
        self, job: StoredJob, run: Run, now: datetime
    ) -> list[Operation]:
        run = replace(run, watch_at=_watched(run), created=run.created or now)
        return [
            Operation(Kind.REPLACE, job_entity(job), job.etag),
            Operation(Kind.INSERT, run_entity(run)),
            *await self._due_index.watch_operations([_watch_of(run)], now, Kind.INSERT),
        ]

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
            operations += await self._due_index.watch_operations([new], now)
        return operations

    async def _tallies_between(
        self, collection: str, first: str, last: str
    ) -> AsyncIterator[TallyRow]:
        """The tallies of the jobs named `first` to `last` (in key order), in one range read."""
        low, high = jobs_between("tally", first, last)
        async for entity in key_range(self._tables.table_for(collection), collection, low, high):
            yield tally_from_entity(entity)

    async def _runs_between(self, collection: str, first: str, last: str) -> AsyncIterator[Run]:
        low, high = jobs_between("run", first, last)
        async for entity in key_range(self._tables.table_for(collection), collection, low, high):
            yield run_from_entity(entity)

    async def _transact(self, collection: str, operations: list[Operation]) -> list[str | None]:
        return await transact(self._tables.table_for(collection), collection, operations)

    async def _transact_grouped(
        self, collection: str, operations: list[Operation]
    ) -> list[str | None]:
        """`_transact`, in a group commit with the collection's other claims and records."""
        table = self._tables.table_for(collection)
        try:
            return await self._group_commit.transact(table, collection, operations)
        except TransactionFailed as error:
            lost = lost_race(error, collection)
            if lost is not None:
                raise lost from error
            raise


def _watched(run: Run) -> datetime:
    """When the timer looks at a new run if no executor has taken it: its due time plus the
    grace an executor needs to pick its message up."""
    return run.watch_at or run.due + SCHEDULED_GRACE


def _watch_of(run: Run) -> Watch:
    return Watch(run.collection, _watched(run), run.row_key)


__all__ = ["DISPATCHES_PER_TRANSACTION", "RunRows"]
