"""Per-hour activity counters for the dashboard's charts: attempts, failures and a histogram of
lateness per hour, in table `{prefix}Activity`, so the overview reads at most a few hundred
small rows instead of every history row of every job.

Each recorded attempt adds one to a counter row of its hour. The attempts a process records
while a write is in flight are added up in memory and written together by the next one, so a
burst of 1,000 attempts at one second costs a handful of writes, not 1,000 racing ones.
Instances would still contend on one row, so each hour has `SHARDS` rows and a write picks one
at random (ETag-checked read-modify-write, retried after a short random pause on a lost race);
a reader sums the shards. The counters are a view, not a record: a write that keeps failing is
logged and dropped, and one that does not answer is waited for at most `WAIT_SECONDS`, never
failing or holding the attempt (the history row, written before, stays the
truth), and a process killed mid-write loses that write's counts.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from azure.core import MatchConditions
from azure.core.exceptions import (
    AzureError,
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
)
from azure.data.tables import UpdateMode
from azure.data.tables.aio import TableClient

from shared.engine.records import HistoryRecord
from shared.model.job import ActionName, HistoryStatus

log = logging.getLogger(__name__)

SHARDS = 4
PARTITION = "hour"
# Upper bounds (seconds) of the lateness buckets; the last bucket is everything above.
# Fine below a second: the scheduler fires within tens of milliseconds, and a p50 of "< 1 s"
# would hide a regression of ten times.
LATENESS_BOUNDS: tuple[float, ...] = (0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300)
# How long an attempt waits for its count to be written: enough for a write under load, and a
# storage request that never answers (a dropped connection waits out the SDK's 300 s read
# timeout) does not hold the attempt's invocation, or the runtime's close.
WAIT_SECONDS = 10.0
_TRIES = 20
_BACKOFF_SECONDS = 0.02  # times the try number, jittered: racers spread out instead of colliding


@dataclass
class _Tally:
    """Counts of one hour not written yet."""

    attempts: int = 0
    failures: int = 0
    late: dict[int, int] = field(default_factory=dict)

    def add(self, failed: bool, late: int | None) -> None:
        self.attempts += 1
        self.failures += failed
        if late is not None:
            self.late[late] = self.late.get(late, 0) + 1


@dataclass
class _Batch:
    """The tallies one write takes, and the future its recorders wait on."""

    hours: dict[str, _Tally] = field(default_factory=dict)
    written: asyncio.Future[None] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )
    warned: bool = False  # a slow write is logged once, not once per attempt it carries

    @property
    def attempts(self) -> int:
        return sum(tally.attempts for tally in self.hours.values())


@dataclass
class HourActivity:
    """One hour's counters (UTC), the shards summed."""

    hour: datetime
    attempts: int = 0
    failures: int = 0
    # Lateness of first attempts, one count per bucket of LATENESS_BOUNDS (+1 for the rest).
    lateness: list[int] = field(default_factory=lambda: [0] * (len(LATENESS_BOUNDS) + 1))


def hour_key(instant: datetime) -> str:
    return instant.astimezone(UTC).strftime("%Y%m%dT%H")


def lateness_bucket(seconds: float) -> int:
    for index, bound in enumerate(LATENESS_BOUNDS):
        if seconds < bound:
            return index
    return len(LATENESS_BOUNDS)


class ActivityRows:
    def __init__(self, table: TableClient, wait_seconds: float = WAIT_SECONDS) -> None:
        self._table = table
        self._wait_seconds = wait_seconds
        self._next: _Batch | None = None  # what the next write takes
        self._writer: asyncio.Task[None] | None = None

    @classmethod
    def from_connection_string(cls, connection: str, table_name: str) -> ActivityRows:
        # Its own client: one taken from a service client shares that client's HTTP session,
        # which closing the table client leaves open.
        return cls(TableClient.from_connection_string(connection, table_name))

    async def ensure(self) -> ActivityRows:
        try:
            await self._table.create_table()
        except ResourceExistsError:
            pass
        return self

    async def close(self) -> None:
        if self._writer is not None:  # the counts recorded so far are written first
            try:
                await asyncio.wait_for(asyncio.shield(self._writer), self._wait_seconds)
            except TimeoutError:
                self._writer.cancel()
                log.warning("Activity counters not written: storage did not answer")
                await asyncio.gather(self._writer, return_exceptions=True)
        await self._table.close()

    async def record(self, history: HistoryRecord) -> None:
        """Count one recorded attempt in its hour; returns once a write took it (best effort:
        see the module's doc)."""
        props = history.properties
        failed = props.status is HistoryStatus.FAILED
        late: int | None = None
        if props.action_name is ActionName.MAIN_ACTION and props.retry_count == 0:
            seconds = (props.start_time - props.expected_execution_time).total_seconds()
            late = lateness_bucket(max(0.0, seconds))
        if self._next is None:
            self._next = _Batch()
        batch = self._next
        batch.hours.setdefault(hour_key(props.start_time), _Tally()).add(failed, late)
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_batches())
        try:
            await asyncio.wait_for(asyncio.shield(batch.written), self._wait_seconds)
        except TimeoutError:
            if not batch.warned:
                batch.warned = True
                log.warning(
                    "Activity counter write of %d attempts still under way after %g s",
                    batch.attempts,
                    self._wait_seconds,
                )

    async def _write_batches(self) -> None:
        """Write what was recorded, then what was recorded meanwhile, until nothing is left."""
        while self._next is not None:
            batch, self._next = self._next, None
            try:
                for hour, tally in batch.hours.items():
                    row_key = f"{hour}|{random.randrange(SHARDS)}"
                    try:
                        await self._increment(row_key, tally)
                    except AzureError as error:
                        kind = type(error).__name__
                        log.warning("Activity counter not updated (%s): %s", row_key, kind)
            finally:  # the recorders never wait forever, whatever happened
                if not batch.written.done():
                    batch.written.set_result(None)

    async def _increment(self, row_key: str, tally: _Tally) -> None:
        for tried in range(_TRIES):
            if tried:
                await asyncio.sleep(random.uniform(0, _BACKOFF_SECONDS * tried))
            try:
                entity = await self._table.get_entity(PARTITION, row_key)
            except ResourceNotFoundError:
                fresh = {"PartitionKey": PARTITION, "RowKey": row_key, **_added({}, tally)}
                try:
                    await self._table.create_entity(fresh)
                    return
                except ResourceExistsError:
                    continue
            try:
                await self._table.update_entity(
                    {**entity, **_added(entity, tally)},
                    mode=UpdateMode.MERGE,
                    etag=entity.metadata["etag"],
                    match_condition=MatchConditions.IfNotModified,
                )
                return
            except ResourceModifiedError:
                continue
        log.warning("Activity counter %s: gave up after %d lost races", row_key, _TRIES)

    async def prune(self, before: datetime, budget: int) -> tuple[int, bool]:
        """Delete the counter rows of the hours that began before `before` (the hour `before`
        falls in stays), at most `budget` of them; (rows deleted, whether none is left)."""
        params = {"pk": PARTITION, "high": hour_key(before)}
        query = "PartitionKey eq @pk and RowKey lt @high"
        deleted = 0
        async for entity in self._table.query_entities(query, parameters=params, select=["RowKey"]):
            if deleted >= budget:
                return deleted, False
            try:
                await self._table.delete_entity(PARTITION, str(entity["RowKey"]))
            except ResourceNotFoundError:
                pass  # another instance's pass took it
            deleted += 1
        return deleted, True

    async def hours(self, since: datetime, until: datetime) -> list[HourActivity]:
        """Every hour from `since` to `until` (both truncated to the hour), oldest first; hours
        without rows are zeros."""
        start = since.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
        end = until.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
        by_hour: dict[str, HourActivity] = {}
        cursor = start
        while cursor <= end:
            by_hour[hour_key(cursor)] = HourActivity(cursor)
            cursor += timedelta(hours=1)
        params = {"pk": PARTITION, "low": hour_key(start), "high": hour_key(end) + "}"}
        query = "PartitionKey eq @pk and RowKey ge @low and RowKey lt @high"
        async for entity in self._table.query_entities(query, parameters=params):
            activity = by_hour.get(str(entity["RowKey"]).split("|")[0])
            if activity is None:
                continue
            activity.attempts += int(entity.get("attempts", 0))
            activity.failures += int(entity.get("failures", 0))
            for index in range(len(activity.lateness)):
                activity.lateness[index] += int(entity.get(f"late{index}", 0))
        return list(by_hour.values())


def _added(entity: dict[str, object], tally: _Tally) -> dict[str, int]:
    def current(name: str) -> int:
        value = entity.get(name, 0)
        return value if isinstance(value, int) else 0

    changed = {
        "attempts": current("attempts") + tally.attempts,
        "failures": current("failures") + tally.failures,
    }
    for bucket, count in tally.late.items():
        changed[f"late{bucket}"] = current(f"late{bucket}") + count
    return changed


def _duration(seconds: float) -> str:
    return f"{seconds * 1000:g} ms" if seconds < 1 else f"{seconds:g} s"


def lateness_percentiles(
    hours: Sequence[HourActivity], percentiles: Sequence[int] = (50, 90, 99)
) -> dict[str, str | None]:
    """`{"p50": "< 50 ms", ...}`: the bucket each percentile of first attempts' lateness falls in
    ("> 300 s" for the last one; None when nothing ran)."""
    totals = [0] * (len(LATENESS_BOUNDS) + 1)
    for hour in hours:
        for index, count in enumerate(hour.lateness):
            totals[index] += count
    count = sum(totals)
    result: dict[str, str | None] = {}
    for percentile in percentiles:
        if count == 0:
            result[f"p{percentile}"] = None
            continue
        wanted = count * percentile / 100
        seen = 0
        for index, bucket in enumerate(totals):
            seen += bucket
            if seen >= wanted:
                if index < len(LATENESS_BOUNDS):
                    result[f"p{percentile}"] = f"< {_duration(LATENESS_BOUNDS[index])}"
                else:
                    result[f"p{percentile}"] = f"> {_duration(LATENESS_BOUNDS[-1])}"
                break
    return result
