"""The due index: each job's next occurrence as a due row, each run's watch row, the minute
listings that tell the timer which collections to read, and the timer's `scan`.

``{prefix}Due`` says "this collection filed a due or watch row in this minute". A row is filed
in the minute it is due, or in the minute it was written if that is later. The timer reads the
minutes up to now + lookahead, then each of those collections' due rows up to the same instant
and watch rows up to now: its cost grows with the occurrences that are due and the runs in
flight, not with the jobs that are stored.

Two orders keep the index whole when a process dies between any two storage calls: a
collection is listed before its row is written (no row is ever unlisted), and a job's new due
row is written before the job points to it, the old one deleted only after (`indexed_write`):
a crash leaves an extra row, which the timer drops when it comes due, never a missing one.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from datetime import datetime, timedelta
from typing import Any, TypeVar

from azure.core.exceptions import ResourceNotFoundError
from azure.data.tables import TableEntity

from shared.concurrency import run_bounded
from shared.engine.records import DueEntry, DueScan, StoredJob, Watch
from shared.storage.codecs import due_entity, due_from_entity, watch_entity, watch_from_entity
from shared.storage.keys import (
    DUE_PREFIX,
    WATCH_PREFIX,
    due_key,
    due_minute,
    filed,
    minute,
    up_to,
)
from shared.storage.rows import chunks, delete_row, delete_rows, key_range
from shared.storage.table_batch import MAX_OPERATIONS, Kind, Operation, submit
from shared.storage.tables import Tables
from shared.timefmt import from_iso

_T = TypeVar("_T")
_RANGE_QUERY = "PartitionKey eq @pk and RowKey ge @low and RowKey lt @high"
_LISTED_CACHE = 10_000
_READ_CONCURRENCY = 8
# A minute of the due index is settled (no writer files rows in it any more) this long after it
# ended: writers file in the minute they write, and instances' clocks differ by far less.
_INDEX_SETTLES_AFTER = timedelta(minutes=5)


def due_row_of(job: StoredJob) -> list[DueEntry]:
    """The due row a job points at: its next occurrence's, or none when it has no next one."""
    return [] if job.next_fire is None else [DueEntry(job.next_fire, job.collection, job.name)]


class DueIndex:
    """Due rows, watch rows and their minute listings."""

    def __init__(self, tables: Tables) -> None:
        self._tables = tables
        self._listed: set[tuple[str, str]] = set()

    async def indexed_write(
        self,
        write: Callable[[], Awaitable[_T]],
        *,
        unindex: Callable[[_T], Iterable[DueEntry]],
        index: Iterable[DueEntry] = (),
        now: datetime | None = None,
    ) -> _T:
        """Index the occurrences a write will point jobs at, do the write, then unindex the
        rows it moved jobs past (`unindex` of its result; a row also in `index` stays). This
        is the only order in which a crash between two steps loses no occurrence. If the write
        raises, nothing is unindexed. `now` (the filing minute) is needed to index."""
        indexed = list(index)
        if indexed:
            if now is None:
                raise ValueError("indexing needs the current time: rows are filed by it")
            await self.put_many(indexed, now)
        result = await write()
        kept = set(indexed)
        await self.delete_many(entry for entry in unindex(result) if entry not in kept)
        return result

    async def put(self, entry: DueEntry, now: datetime) -> None:
        await self.put_many([entry], now)

    async def put_many(self, entries: Iterable[DueEntry], now: datetime) -> None:
        """Index occurrences: list each collection under the minute its rows are filed in, then
        write the rows (so a due row never exists unlisted), 100 to a transaction."""
        rows: dict[str, dict[str, dict[str, Any]]] = {}
        for entry in entries:
            rows.setdefault(entry.collection, {})[due_key(entry)] = due_entity(
                entry, filed(entry.due, now)
            )
        await self.list_minutes(
            (row["filed"], collection)
            for collection, by_key in rows.items()
            for row in by_key.values()
        )
        for collection, by_key in rows.items():
            table = await self._tables.ensure_table(collection)
            for chunk in chunks(list(by_key.values()), MAX_OPERATIONS):
                await submit(table, [Operation(Kind.UPSERT, e) for e in chunk])

    async def due_operation(self, entry: DueEntry, now: datetime) -> Operation:
        """The write of a due row, for a caller's own transaction; its minute is listed now."""
        row = due_entity(entry, filed(entry.due, now))
        await self.list_minutes([(row["filed"], entry.collection)])
        return Operation(Kind.UPSERT, row)

    async def watch_operations(
        self, watches: Iterable[Watch], now: datetime, kind: Kind = Kind.UPSERT
    ) -> list[Operation]:
        """The writes of watch rows, for a caller's own transaction; their minutes are listed
        now."""
        rows = [watch_entity(watch, now) for watch in watches]
        await self.list_minutes((row["filed"], row["PartitionKey"]) for row in rows)
        return [Operation(kind, row) for row in rows]

    async def list_minutes(self, filed_in: Iterable[tuple[str, str]]) -> None:
        """List collections under the minutes they file rows in. A listing is only forgotten
        once its minute is settled, and no row is ever filed in a settled minute, so what this
        process listed once stays listed: it is written once per process."""
        wanted = set(filed_in) - self._listed
        minutes: dict[str, set[str]] = {}
        for listed_minute, collection in wanted:
            minutes.setdefault(listed_minute, set()).add(collection)
        for listed_minute, collections in minutes.items():
            for names in chunks(sorted(collections), MAX_OPERATIONS):
                index = [
                    Operation(Kind.UPSERT, {"PartitionKey": listed_minute, "RowKey": name})
                    for name in names
                ]
                await submit(self._tables.due_index, index)
        if len(self._listed) > _LISTED_CACHE:
            self._listed.clear()
        self._listed |= wanted

    async def delete(self, entry: DueEntry) -> None:
        await delete_row(self._tables.table_for(entry.collection), entry.collection, due_key(entry))

    async def delete_many(self, entries: Iterable[DueEntry]) -> None:
        keys: dict[str, set[str]] = {}
        for entry in entries:
            keys.setdefault(entry.collection, set()).add(due_key(entry))
        for collection, rows in keys.items():
            await delete_rows(self._tables.table_for(collection), collection, sorted(rows))

    async def delete_watch(self, watch: Watch) -> None:
        await delete_row(self._tables.table_for(watch.collection), watch.collection, watch.row_key)

    async def scan(self, until: datetime, *, now: datetime | None = None) -> DueScan:
        """Every due row at or before `until` and every watch row at or before `now`, oldest
        first: the minutes of the index up to `until`, then each listed collection's rows (two
        key-range reads for due rows, one more for watches when `now` is given).

        With `now`, the index forgets the collections it lists under settled minutes (ended
        five minutes before `now`) that have no row filed there any more."""
        listed: dict[str, list[str]] = {}
        async for entity in self._tables.due_index.query_entities(
            "PartitionKey le @minute", parameters={"minute": minute(until)}
        ):
            listed.setdefault(entity["RowKey"], []).append(entity["PartitionKey"])
        found = DueScan()
        forgotten: dict[str, list[str]] = {}
        settled = minute(now - _INDEX_SETTLES_AFTER) if now is not None else ""

        async def read(listing: tuple[str, list[str]]) -> None:
            collection, minutes = listing
            rows = await self._rows_until(collection, DUE_PREFIX, until)
            watches = await self._rows_until(collection, WATCH_PREFIX, now) if now else []
            filed_in = {row["filed"] for row in rows} | {row["filed"] for row in watches}
            found.entries.extend(due_from_entity(row) for row in rows)
            found.watches.extend(watch_from_entity(row) for row in watches)
            for listed_minute in minutes:
                if listed_minute < settled and listed_minute not in filed_in:
                    forgotten.setdefault(listed_minute, []).append(collection)

        await run_bounded(_READ_CONCURRENCY, read, listed.items())
        for listed_minute, collections in forgotten.items():
            await delete_rows(self._tables.due_index, listed_minute, collections)
        found.entries.sort(key=lambda e: e.due)
        found.watches.sort(key=lambda w: w.deadline)
        return found

    async def due_per_minute(self, until: datetime, *, beyond: datetime) -> dict[datetime, int]:
        """How many due rows each minute up to `until` holds (keys only; rows of minutes past
        count in theirs), for the adaptive lead (shared/engine/lead.py). Empty, at the cost of
        one read of the minute listings, when no collection filed a row after `beyond`'s minute:
        then no minute beyond the lookahead can need a lead."""
        listed: set[str] = set()
        ahead = False
        async for entity in self._tables.due_index.query_entities(
            "PartitionKey le @minute",
            parameters={"minute": minute(until)},
            select=["PartitionKey", "RowKey"],
        ):
            listed.add(entity["RowKey"])
            ahead = ahead or entity["PartitionKey"] > minute(beyond)
        if not ahead:
            return {}
        counts: dict[datetime, int] = {}
        low, high = up_to(DUE_PREFIX, until)

        async def count(collection: str) -> None:
            table = self._tables.table_for(collection)
            try:
                async for row in table.query_entities(
                    _RANGE_QUERY,
                    parameters={"pk": collection, "low": low, "high": high},
                    select=["RowKey"],
                ):
                    start = due_minute(row["RowKey"])
                    counts[start] = counts.get(start, 0) + 1
            except ResourceNotFoundError:
                return  # the collection's table is gone

        await run_bounded(_READ_CONCURRENCY, count, sorted(listed))
        return counts

    async def due_rows(
        self, collection: str, low: str, high: str, until: datetime
    ) -> list[DueEntry]:
        """A collection's due rows with `low` <= RowKey < `high` due at or before `until`: one
        slice of a timer pass (shared/storage/dispatch_queue.py), read again by whoever
        dispatches it, so a row dispatched meanwhile is simply not there."""
        table = self._tables.table_for(collection)
        try:
            rows = [row async for row in key_range(table, collection, low, high)]
        except ResourceNotFoundError:
            return []
        entries = [due_from_entity(row) for row in rows if row["RowKey"].startswith(DUE_PREFIX)]
        return sorted((e for e in entries if e.due <= until), key=lambda e: e.due)

    async def _rows_until(
        self, collection: str, prefix: str, instant: datetime
    ) -> list[TableEntity]:
        """The collection's due or watch rows (`prefix`) whose time is at or before `instant`."""
        low, high = up_to(prefix, instant)
        table = self._tables.table_for(collection)
        try:
            rows = [row async for row in key_range(table, collection, low, high)]
        except ResourceNotFoundError:
            return []  # the collection's table is gone: nothing of it is due
        field = "due" if prefix == DUE_PREFIX else "deadline"
        return [row for row in rows if from_iso(row[field]) <= instant]


__all__ = ["DueIndex", "due_row_of"]
