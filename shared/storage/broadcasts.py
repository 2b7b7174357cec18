"""Broadcast rows in `{prefix}Broadcasts`: the jobs, their per-device records and statistics.

Layout:
- `PartitionKey "job"`, `RowKey <jobId>`: the broadcast (its checked request, status, times).
- `PartitionKey "<jobId>|<bucket>"` (bucket = 00..31, from the SHA-256 of the device id):
  `RowKey <device id, percent-encoded as in the device table>`: one device's record; and
  `RowKey "~stats"`: that bucket's counters (pending, running, succeeded, failed, timed out).
Every change of records' status is one entity-group transaction in their partition: the records
(ETag-checked, up to 99 of one bucket: a chunk) and the bucket's counter row (ETag-checked), so
the counters never drift from the records, and reading a broadcast's statistics is 32 point
reads whatever its size.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import unquote

from azure.core import MatchConditions
from azure.core.exceptions import (
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
)
from azure.data.tables import UpdateMode
from azure.data.tables.aio import TableClient, TableServiceClient

from shared.broadcasts.model import BroadcastSpec
from shared.broadcasts.planning import PENDING, RUNNING, Stats
from shared.broadcasts.records import Broadcast, DeviceJob
from shared.devices.model import Endpoint
from shared.errors import AlreadyExists, Conflict
from shared.storage.devices import row_key_of
from shared.storage.rows import chunks, delete_row, delete_rows, transact
from shared.storage.table_batch import Kind, Operation
from shared.timefmt import from_iso, to_iso

BUCKETS = 32
JOB_PARTITION = "job"
STATS_KEY = "~stats"  # sorts after every device id's row key
_RACE_RETRIES = 20
_BATCH = 99  # records per transaction, with the counter row: 100 operations
CHUNK_LIMIT = _BATCH  # the most records one chunk change may move
_STARTERS = 8  # buckets whose records a start inserts at once
_OPEN_READS = 4  # bucket counters read at once when looking for an open bucket


def bucket_of(device_id: str) -> int:
    return int(hashlib.sha256(device_id.encode("utf-8")).hexdigest()[:4], 16) % BUCKETS


def partition_of(job_id: str, bucket: int) -> str:
    return f"{job_id}|{bucket:02d}"


@dataclass(frozen=True)
class StoredBroadcast:
    record: Broadcast
    etag: str


@dataclass(frozen=True)
class StoredDeviceJob:
    record: DeviceJob
    etag: str


@dataclass(frozen=True)
class ChunkState:
    """Some records of one bucket as last read or written (with their ETags) and the bucket's
    counters: what the next chunk change is checked against."""

    records: dict[str, StoredDeviceJob]  # by device id
    stats: Stats
    stats_etag: str | None


@dataclass(frozen=True)
class ChunkChange:
    state: ChunkState  # after the change (or as read, when nothing changed)
    changed: list[tuple[DeviceJob, DeviceJob]]  # (before, after) of each record it moved


class BroadcastRows:
    """Reads and writes of broadcast rows; the engine decides, this only stores."""

    def __init__(self, service: TableServiceClient, table_name: str) -> None:
        self._service = service
        self.table: TableClient = service.get_table_client(table_name)

    @classmethod
    def from_connection_string(cls, connection: str, table_name: str) -> BroadcastRows:
        return cls(TableServiceClient.from_connection_string(connection), table_name)

    async def ensure(self) -> BroadcastRows:
        try:
            await self._service.create_table(self.table.table_name)
        except ResourceExistsError:
            pass
        return self

    async def close(self) -> None:
        await self.table.close()
        await self._service.close()

    # --- broadcasts --------------------------------------------------------------------------

    async def get(self, job_id: str) -> StoredBroadcast | None:
        try:
            entity = await self.table.get_entity(JOB_PARTITION, job_id)
        except ResourceNotFoundError:
            return None
        return StoredBroadcast(_broadcast(entity), str(entity.metadata["etag"]))

    async def create(self, record: Broadcast) -> StoredBroadcast:
        try:
            meta = await self.table.create_entity(_broadcast_entity(record))
        except ResourceExistsError as error:
            raise AlreadyExists(f"job {record.spec.job_id} already exists") from error
        return StoredBroadcast(record, str(meta["etag"]))

    async def replace(self, record: Broadcast, etag: str) -> StoredBroadcast:
        try:
            meta = await self.table.update_entity(
                _broadcast_entity(record),
                mode=UpdateMode.REPLACE,
                etag=etag,
                match_condition=MatchConditions.IfNotModified,
            )
        except (ResourceModifiedError, ResourceNotFoundError) as error:
            raise Conflict(f"job {record.spec.job_id} changed meanwhile") from error
        return StoredBroadcast(record, str(meta["etag"]))

    async def jobs(self, after: str | None) -> AsyncIterator[Broadcast]:
        """The broadcasts in id order, after the id `after`."""
        query = "PartitionKey eq @pk" + ("" if after is None else " and RowKey gt @after")
        params = {"pk": JOB_PARTITION, "after": after or ""}
        async for entity in self.table.query_entities(query, parameters=params):
            yield _broadcast(entity)

    async def ended_before(self, statuses: Iterable[str], cutoff: datetime) -> list[Broadcast]:
        """The broadcasts in one of these end statuses that ended before `cutoff` (one query
        of the job partition, filtered by the service). `Ended` compares as text, which is
        exact but within its second; the exact check is here."""
        wanted = sorted(statuses)
        clauses = " or ".join(f"Status eq @s{i}" for i in range(len(wanted)))
        params: dict[str, Any] = {"pk": JOB_PARTITION, "cutoff": to_iso(cutoff)}
        params.update({f"s{i}": status for i, status in enumerate(wanted)})
        # Spaces around the names: a parameter's name runs to the next space.
        query = f"PartitionKey eq @pk and Ended lt @cutoff and ( {clauses} )"
        found: list[Broadcast] = []
        async for entity in self.table.query_entities(query, parameters=params):
            job = _broadcast(entity)
            if job.ended is not None and job.ended < cutoff:
                found.append(job)
        return found

    async def delete_records(self, job_id: str, budget: int) -> int:
        """Delete up to `budget` of a job's rows (device records and counter rows), bucket by
        bucket; returns how many it deleted (fewer than `budget`: none is left)."""
        deleted = 0
        for bucket in range(BUCKETS):
            partition = partition_of(job_id, bucket)
            keys: list[str] = []
            async for key in self._keys(partition):
                keys.append(key)
                if deleted + len(keys) >= budget:
                    break
            await delete_rows(self.table, partition, keys)
            deleted += len(keys)
            if deleted >= budget:
                return deleted
        return deleted

    async def delete_job(self, job_id: str) -> None:
        await delete_row(self.table, JOB_PARTITION, job_id)

    # --- device records ----------------------------------------------------------------------

    async def get_record(self, job_id: str, device_id: str) -> StoredDeviceJob | None:
        partition = partition_of(job_id, bucket_of(device_id))
        try:
            entity = await self.table.get_entity(partition, row_key_of(device_id))
        except ResourceNotFoundError:
            return None
        return StoredDeviceJob(_device_job(job_id, entity), str(entity.metadata["etag"]))

    async def add_pending(self, records: Iterable[DeviceJob]) -> None:
        """Insert the records not stored yet, counting them as pending in their buckets; safe to
        repeat and to run twice at once (a starter that died midway, a repeated start)."""
        by_bucket: dict[tuple[str, int], list[DeviceJob]] = {}
        for record in records:
            by_bucket.setdefault((record.job_id, bucket_of(record.device_id)), []).append(record)
        semaphore = asyncio.Semaphore(_STARTERS)

        async def add(partition: str, items: list[DeviceJob]) -> None:
            async with semaphore:
                await self._add_to_partition(partition, items)

        await asyncio.gather(
            *(add(partition_of(job, bucket), items) for (job, bucket), items in by_bucket.items())
        )

    async def _add_to_partition(self, partition: str, items: list[DeviceJob]) -> None:
        """Each batch with the counters in one transaction. A lost race (another starter
        inserted some of these, or a worker moved the counters) is decided again on a fresh
        read of what is stored, so the same records are never inserted twice."""
        for _ in range(_RACE_RETRIES):
            existing = {key async for key in self._keys(partition)}
            fresh = [r for r in items if row_key_of(r.device_id) not in existing]
            if not fresh:
                return
            try:
                for batch in chunks(fresh, _BATCH):
                    await self._insert_batch(partition, batch)
                return
            except Conflict:
                continue
        raise Conflict(f"the records of {partition} keep changing")

    async def _insert_batch(self, partition: str, batch: list[DeviceJob]) -> None:
        stats, etag = await self._stats_row(partition)
        counted = Stats(
            stats.pending + len(batch),
            stats.running,
            stats.succeeded,
            stats.failed,
            stats.timed_out,
        )
        operations = [Operation(Kind.INSERT, _record_entity(partition, r)) for r in batch]
        operations.append(_stats_operation(partition, counted, etag))
        await transact(self.table, partition, operations)

    async def change(
        self,
        job_id: str,
        device_id: str,
        decide: Callable[[DeviceJob], DeviceJob | None],
    ) -> tuple[DeviceJob, DeviceJob, Stats] | None:
        """Read the record, `decide` its next state (None: leave it), write it and its bucket's
        counters in one transaction; decided again on a fresh read when either changed meanwhile.
        Returns (before, after, the bucket's counters after), or None when nothing changed."""
        partition = partition_of(job_id, bucket_of(device_id))
        for _ in range(_RACE_RETRIES):
            stored = await self.get_record(job_id, device_id)
            if stored is None:
                return None
            after = decide(stored.record)
            if after is None:
                return None
            stats, stats_etag = await self._stats_row(partition)
            moved = stats.moved(
                stored.record.status,
                after.status,
                after.timed_out and not stored.record.timed_out,
            )
            operations = [
                Operation(Kind.REPLACE, _record_entity(partition, after), stored.etag),
                _stats_operation(partition, moved, stats_etag),
            ]
            try:
                await transact(self.table, partition, operations)
            except Conflict:
                continue
            return stored.record, after, moved
        raise Conflict(f"device {device_id} of job {job_id} keeps changing")

    async def read_chunk(self, job_id: str, bucket: int, device_ids: Iterable[str]) -> ChunkState:
        """These records of one bucket (those stored) and its counters: one range read from
        the lowest key to the highest (a chunk's records are neighbours in key order) beside
        one point read of the counter row."""
        partition = partition_of(job_id, bucket)
        wanted = {row_key_of(d) for d in device_ids}
        if not wanted:
            raise ValueError("a chunk holds at least one device")
        found: dict[str, StoredDeviceJob] = {}

        async def read_records() -> None:
            query = "PartitionKey eq @pk and RowKey ge @low and RowKey le @high"
            params = {"pk": partition, "low": min(wanted), "high": max(wanted)}
            async for entity in self.table.query_entities(query, parameters=params):
                if entity["RowKey"] in wanted:
                    record = _device_job(job_id, entity)
                    found[record.device_id] = StoredDeviceJob(record, str(entity.metadata["etag"]))

        _, (stats, etag) = await asyncio.gather(read_records(), self._stats_row(partition))
        return ChunkState(found, stats, etag)

    async def change_chunk(
        self,
        job_id: str,
        bucket: int,
        device_ids: list[str],
        decide: Callable[[DeviceJob], DeviceJob | None],
        known: ChunkState | None = None,
    ) -> ChunkChange:
        """`decide` the next state of each of these records of one bucket (None: leave it) and
        write every change with the bucket's counters in ONE transaction. Tried first against
        `known` (what the caller's last change left: no read) when it holds every one of them,
        then on fresh reads whenever a record or the counters changed meanwhile; `decide` must
        be a pure function. The state returned keeps `known`'s other records: a caller that
        writes its records a few at a time (a chunk's claims and results) must still find each
        one in it, or its change would be skipped as if the record were not stored."""
        if len(device_ids) > CHUNK_LIMIT:
            raise ValueError(f"a chunk holds at most {CHUNK_LIMIT} devices")
        partition = partition_of(job_id, bucket)
        kept = {} if known is None else dict(known.records)
        state = known if all(d in kept for d in device_ids) else None
        for _ in range(_RACE_RETRIES):
            if state is None:
                fresh = await self.read_chunk(job_id, bucket, device_ids)
                kept.update(fresh.records)
                state = ChunkState(dict(kept), fresh.stats, fresh.stats_etag)
            changes: list[tuple[StoredDeviceJob, DeviceJob]] = []
            for device_id in device_ids:
                stored = state.records.get(device_id)
                after = None if stored is None else decide(stored.record)
                if stored is not None and after is not None:
                    changes.append((stored, after))
            if not changes:
                return ChunkChange(state, [])
            stats = state.stats
            for stored, after in changes:
                stats = stats.moved(
                    stored.record.status,
                    after.status,
                    after.timed_out and not stored.record.timed_out,
                )
            operations = [
                Operation(Kind.REPLACE, _record_entity(partition, after), stored.etag)
                for stored, after in changes
            ]
            operations.append(_stats_operation(partition, stats, state.stats_etag))
            try:
                etags = await transact(self.table, partition, operations)
            except Conflict:
                kept, state = dict(state.records), None
                continue
            records = dict(state.records)
            for (_, after), etag in zip(changes, etags, strict=False):
                records[after.device_id] = StoredDeviceJob(after, str(etag))
            written = ChunkState(records, stats, None if etags[-1] is None else str(etags[-1]))
            return ChunkChange(written, [(stored.record, after) for stored, after in changes])
        raise Conflict(f"{len(device_ids)} devices of {partition} keep changing")

    async def bucket_stats(self, job_id: str, device_id: str) -> Stats:
        """The counters of the device's bucket: one point read."""
        stats, _ = await self._stats_row(partition_of(job_id, bucket_of(device_id)))
        return stats

    async def stats(self, job_id: str) -> list[Stats]:
        """Each bucket's counters: a fixed number of point reads, however many devices."""
        rows = await asyncio.gather(
            *(self._stats_row(partition_of(job_id, b)) for b in range(BUCKETS))
        )
        return [stats for stats, _ in rows]

    async def open_bucket(self, job_id: str, first: int = 0) -> int | None:
        """A bucket with a device still open (pending or running), or None when none has:
        the buckets' counters read from `first` on (wrapping round), 4 at a time, stopping at
        the first open one. Why not all 32 at once: whoever empties a bucket asks this, and
        while the job runs an open bucket is usually among the first read, so the 32 reads of
        `stats` are paid only at the very end (and 8 round trips at most)."""
        for step in range(0, BUCKETS, _OPEN_READS):
            buckets = [(first + step + i) % BUCKETS for i in range(_OPEN_READS)]
            rows = await asyncio.gather(
                *(self._stats_row(partition_of(job_id, bucket)) for bucket in buckets)
            )
            for bucket, (stats, _) in zip(buckets, rows, strict=True):
                if stats.open:
                    return bucket
        return None

    async def bucket_records(self, job_id: str, bucket: int) -> list[DeviceJob]:
        """One bucket's records in key order (one query, paged by the service)."""
        return [record async for record, _ in self._bucket_records(job_id, bucket, None, None)]

    async def records(
        self, job_id: str, after: tuple[int, str] | None = None, status: str | None = None
    ) -> AsyncIterator[tuple[DeviceJob, tuple[int, str]]]:
        """The job's records, bucket by bucket in key order, each with where a scan resumes."""
        first_bucket = 0 if after is None else after[0]
        for bucket in range(first_bucket, BUCKETS):
            resume = after[1] if after is not None and bucket == after[0] else None
            async for found in self._bucket_records(job_id, bucket, resume, status):
                yield found

    async def _bucket_records(
        self, job_id: str, bucket: int, after: str | None, status: str | None
    ) -> AsyncIterator[tuple[DeviceJob, tuple[int, str]]]:
        partition = partition_of(job_id, bucket)
        query = "PartitionKey eq @pk and RowKey ne @stats"
        params: dict[str, Any] = {"pk": partition, "stats": STATS_KEY, "after": ""}
        if after is not None:
            query += " and RowKey gt @after"
            params["after"] = after
        if status is not None:
            query += " and Status eq @status"
            params["status"] = status
        async for entity in self.table.query_entities(query, parameters=params):
            yield _device_job(job_id, entity), (bucket, str(entity["RowKey"]))

    async def _keys(self, partition: str) -> AsyncIterator[str]:
        rows = self.table.query_entities(
            "PartitionKey eq @pk", parameters={"pk": partition}, select=["RowKey"]
        )
        async for entity in rows:
            yield str(entity["RowKey"])

    async def _stats_row(self, partition: str) -> tuple[Stats, str | None]:
        try:
            entity = await self.table.get_entity(partition, STATS_KEY)
        except ResourceNotFoundError:
            return Stats(), None
        stats = Stats(
            int(entity["Pending"]),
            int(entity["Running"]),
            int(entity["Succeeded"]),
            int(entity["Failed"]),
            int(entity["TimedOut"]),
        )
        return stats, str(entity.metadata["etag"])


def _stats_operation(partition: str, stats: Stats, etag: str | None) -> Operation:
    entity = {
        "PartitionKey": partition,
        "RowKey": STATS_KEY,
        "Pending": stats.pending,
        "Running": stats.running,
        "Succeeded": stats.succeeded,
        "Failed": stats.failed,
        "TimedOut": stats.timed_out,
    }
    if etag is None:
        return Operation(Kind.INSERT, entity)
    return Operation(Kind.REPLACE, entity, etag)


def _broadcast_entity(record: Broadcast) -> dict[str, Any]:
    return {
        "PartitionKey": JOB_PARTITION,
        "RowKey": record.spec.job_id,
        "Spec": _json(record.spec.canonical()),
        "Status": record.status,
        "Created": to_iso(record.created),
        "Start": to_iso(record.start),
        "Ended": None if record.ended is None else to_iso(record.ended),
        "FailureReason": record.failure_reason,
        "StatusMessage": record.status_message,
        "DeviceCount": -1 if record.device_count is None else record.device_count,
    }


def _broadcast(entity: Mapping[str, Any]) -> Broadcast:
    count = int(entity.get("DeviceCount", -1))
    ended = entity.get("Ended")
    return Broadcast(
        spec=BroadcastSpec.from_canonical(json.loads(entity["Spec"])),
        status=str(entity["Status"]),
        created=from_iso(entity["Created"]),
        start=from_iso(entity["Start"]),
        ended=from_iso(ended) if ended else None,
        failure_reason=entity.get("FailureReason"),
        status_message=entity.get("StatusMessage"),
        device_count=None if count < 0 else count,
    )


def _record_entity(partition: str, record: DeviceJob) -> dict[str, Any]:
    def time(value: Any) -> str | None:
        return None if value is None else to_iso(value)

    return {
        "PartitionKey": partition,
        "RowKey": row_key_of(record.device_id),
        "JobType": record.job_type,
        "Status": record.status,
        "Attempt": record.attempt,
        "Created": to_iso(record.created),
        "Updated": to_iso(record.updated),
        "Started": time(record.started),
        "Ended": time(record.ended),
        "LeaseUntil": time(record.lease_until),
        "TimedOut": record.timed_out,
        "Outcome": None if record.outcome is None else _json(record.outcome),
        "Error": None if record.error is None else _json(record.error),
        "Endpoint": _endpoint_json(record),
    }


def _endpoint_json(record: DeviceJob) -> str | None:
    """The carried endpoint while the device may still be called; a finished record does not
    keep the device's headers."""
    endpoint = record.endpoint
    if endpoint is None or record.status not in (PENDING, RUNNING):
        return None
    return _json({"uri": endpoint.uri, "headers": dict(endpoint.headers)})


def _endpoint(value: object) -> Endpoint | None:
    if not isinstance(value, str) or not value:
        return None
    parsed = json.loads(value)
    return Endpoint(str(parsed["uri"]), dict(parsed.get("headers") or {}))


def _device_job(job_id: str, entity: Mapping[str, Any]) -> DeviceJob:
    def time(name: str) -> Any:
        value = entity.get(name)
        return from_iso(value) if value else None

    outcome = entity.get("Outcome")
    error = entity.get("Error")
    return DeviceJob(
        job_id=job_id,
        job_type=str(entity["JobType"]),
        device_id=unquote(str(entity["RowKey"])),
        status=str(entity["Status"]),
        created=from_iso(entity["Created"]),
        updated=from_iso(entity["Updated"]),
        attempt=int(entity.get("Attempt", 0)),
        started=time("Started"),
        ended=time("Ended"),
        lease_until=time("LeaseUntil"),
        timed_out=bool(entity.get("TimedOut", False)),
        outcome=json.loads(outcome) if outcome else None,
        error=json.loads(error) if error else None,
        endpoint=_endpoint(entity.get("Endpoint")),
    )


def _json(value: object) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


__all__ = [
    "BUCKETS",
    "CHUNK_LIMIT",
    "BroadcastRows",
    "ChunkChange",
    "ChunkState",
    "StoredBroadcast",
    "StoredDeviceJob",
    "bucket_of",
]
