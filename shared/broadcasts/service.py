"""What the jobs API's operations do (`/api/jobs/v2`, and `devices.jobs` queries): create
(idempotent for the same request, 409 for another), get, cancel, query; the engine does the
rest (shared/broadcasts/engine.py)."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from shared.broadcasts.engine import BroadcastEngine
from shared.broadcasts.model import (
    CANCELLED,
    ENDED,
    NOT_ENDED,
    QUEUED,
    RUNNING,
    SCHEDULED,
    BroadcastSpec,
    parse_job_request,
    parse_status_filter,
    parse_type_filter,
)
from shared.broadcasts.planning import total
from shared.broadcasts.records import Broadcast
from shared.broadcasts.starts import StartJobs
from shared.clock import Clock
from shared.devices.query import parse_query
from shared.errors import AlreadyExists, Conflict, InvalidRequest, NotFound
from shared.storage.broadcasts import BroadcastRows, StoredBroadcast
from shared.storage.device_work import SWEEP, DeviceWorkQueue, WorkMessage
from shared.timefmt import to_iso

CONTINUATION = "continuationToken"
MAX_JOBS_PAGE = 100
MAX_SCANNED_RECORDS = 5000


@dataclass(frozen=True)
class Page:
    item_type: str
    items: list[dict[str, Any]]
    continuation: str | None


class BroadcastService:
    def __init__(
        self,
        rows: BroadcastRows,
        queue: DeviceWorkQueue,
        engine: BroadcastEngine,
        clock: Clock,
        starts: StartJobs,
    ) -> None:
        self._rows = rows
        self._queue = queue
        self.engine = engine
        self._clock = clock
        self._starts = starts

    async def aclose(self) -> None:
        await self._queue.close()
        await self._rows.close()

    async def create(self, job_id: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """Store the job, then its start job in the scheduler (shared/broadcasts/starts.py)."""
        job = await self._store(parse_job_request(job_id, body))
        if job.status == QUEUED:
            # Also on a repeat: the first create may have died before putting its start job
            # (an existing start job is left as it is).
            await self._starts.put(job_id, job.start)
        return await self._response(job)

    async def start_now(self, job_id: str, body: Mapping[str, Any]) -> Broadcast | None:
        """Create (or find: the same id is the same occurrence) a job starting now and start it
        here, without a start job: a `Broadcast` action of a scheduler job (one occurrence). An
        existing job under this id is taken as it is, even if the action changed since."""
        existing = await self._rows.get(job_id)
        if existing is None:
            spec = parse_job_request(job_id, {**body, "startTime": None})
            try:
                await self._store(spec)
            except Conflict:
                pass  # created meanwhile under another request: that one is this occurrence's
        return await self.engine.start(job_id)

    async def start(self, job_id: str) -> Broadcast | None:
        """Start a stored job (its start job fired); repeatable (the engine's starter)."""
        return await self.engine.start(job_id)

    async def read(self, job_id: str) -> Broadcast | None:
        stored = await self._rows.get(job_id)
        return None if stored is None else stored.record

    async def statistics(self, job_id: str) -> dict[str, int]:
        """IoT Hub's deviceJobStatistics: the buckets' counters summed."""
        return total(await self._rows.stats(job_id)).json()

    async def _store(self, spec: BroadcastSpec) -> Broadcast:
        """Insert the job (queued), or find it: the same request is the same job, another
        request under its id is a Conflict."""
        now = self._clock.now()
        existing = await self._rows.get(spec.job_id)
        if existing is None:
            job = Broadcast(spec, QUEUED, now, spec.start_time or now)
            try:
                existing = await self._rows.create(job)
            except AlreadyExists:
                existing = await self._rows.get(spec.job_id)
                if existing is None:
                    raise Conflict(f"job {spec.job_id} is being created and deleted") from None
        if not existing.record.spec.same_request(spec):
            raise Conflict(f"A job with id '{spec.job_id}' already exists with another request.")
        return existing.record

    async def get(self, job_id: str) -> dict[str, Any]:
        return await self._response((await self._read(job_id)).record)

    async def cancel(self, job_id: str) -> dict[str, Any]:
        for _ in range(10):
            stored = await self._read(job_id)
            job = stored.record
            if job.status in ENDED:
                return await self._response(job)
            cancelled = replace(
                job,
                status=CANCELLED,
                ended=self._clock.now(),
                failure_reason="cancelled by request",
            )
            try:
                await self._rows.replace(cancelled, stored.etag)
            except Conflict:
                continue
            if job.status == RUNNING:
                now = self._clock.now()
                await self._queue.send(WorkMessage(SWEEP, job_id), due=now, now=now)
            else:  # not started: its start job goes (were it to fire, it would find it ended)
                await self._starts.remove(job_id)
            return await self._response(cancelled)
        raise Conflict(f"job {job_id} keeps changing; try again")

    async def query(
        self,
        job_type: str | None,
        job_status: str | None,
        page_size: int,
        continuation: str | None,
    ) -> Page:
        wanted_type = parse_type_filter(job_type)
        wanted_status = parse_status_filter(job_status)
        after = _decode(continuation).get("job") if continuation else None
        items: list[dict[str, Any]] = []
        async for job in self._rows.jobs(after if isinstance(after, str) else None):
            if wanted_type is not None and job.spec.job_type != wanted_type:
                continue
            response = await self._response(job)
            if wanted_status is not None and response["status"] != wanted_status:
                continue
            items.append(response)
            if len(items) >= page_size:
                return Page("jobResponse", items, _encode({"job": job.spec.job_id}))
        return Page("jobResponse", items, None)

    async def query_device_jobs(self, text: str, max_items: int, continuation: str | None) -> Page:
        """`SELECT * FROM devices.jobs [WHERE ...]`: the per-device records; a condition that
        pins jobId reads only those jobs' records."""
        query = parse_query(text)
        token = _decode(continuation) if continuation else {}
        job_ids = query.candidate_keys("jobId")
        if job_ids is None:
            job_ids = frozenset([job.spec.job_id async for job in self._rows.jobs(None)])
        start_job = token.get("job")
        position = token.get("at")
        items: list[dict[str, Any]] = []
        scanned = 0
        for job_id in sorted(job_ids):
            if isinstance(start_job, str) and job_id < start_job:
                continue
            after = None
            if job_id == start_job and isinstance(position, list) and len(position) == 2:
                after = (int(position[0]), str(position[1]))
            async for record, key in self._rows.records(job_id, after):
                scanned += 1
                document = record.json()
                if query.matches(document):
                    items.append(document)
                if len(items) >= max_items or scanned >= MAX_SCANNED_RECORDS:
                    return Page(
                        "deviceJob", items, _encode({"job": job_id, "at": [key[0], key[1]]})
                    )
        return Page("deviceJob", items, None)

    async def _read(self, job_id: str) -> StoredBroadcast:
        stored = await self._rows.get(job_id)
        if stored is None:
            raise NotFound(f"Job {job_id} not found.")
        return stored

    async def _response(self, job: Broadcast) -> dict[str, Any]:
        """IoT Hub's JobResponse; statistics are the buckets' counters summed."""
        status = job.status
        if status == QUEUED and job.start > self._clock.now():
            status = SCHEDULED
        body: dict[str, Any] = {
            "jobId": job.spec.job_id,
            "queryCondition": job.spec.query_condition,
            "createdTime": to_iso(job.created),
            "startTime": to_iso(job.start),
            "endTime": NOT_ENDED if job.ended is None else to_iso(job.ended),
            "maxExecutionTimeInSeconds": job.spec.max_execution_seconds,
            "type": job.spec.job_type,
            "status": status,
        }
        canonical = job.spec.canonical()
        for extra in ("cloudToDeviceMethod", "updateTwin", "rollout", "abortConfig", "retryConfig"):
            if extra in canonical:
                body[extra] = canonical[extra]
        if job.failure_reason is not None:
            body["failureReason"] = job.failure_reason
        if job.status_message is not None:
            body["statusMessage"] = job.status_message
        if job.status != QUEUED:
            body["deviceJobStatistics"] = total(await self._rows.stats(job.spec.job_id)).json()
        return body


def _encode(value: Mapping[str, Any]) -> str:
    text = json.dumps(dict(value), separators=(",", ":"))
    return base64.urlsafe_b64encode(text.encode()).decode("ascii")


def _decode(token: str) -> dict[str, Any]:
    try:
        value = json.loads(base64.urlsafe_b64decode(token.encode("ascii")))
    except (ValueError, binascii.Error, UnicodeError):
        value = None
    if not isinstance(value, dict):
        raise InvalidRequest(CONTINUATION, "is not a continuation this query gave")
    return value
