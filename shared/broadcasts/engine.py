"""The broadcast engine: the starter (called by the `Broadcast` action kind when the scheduler
fires a broadcast's start: shared/kinds/broadcast.py), the device worker and the sweeps, run from
the device-work queue (function_app.py's `run_device_work`).

- **start** (at startTime, through the scheduler's due index): snapshot the devices the
  condition selects (paged through the registry, point reads when the condition pins device
  ids), write one pending record per device (a transaction per 99 records of a bucket, buckets
  concurrently), mark the job running with its device count, then send one `devices` message
  per chunk (up to CHUNK_SIZE neighbouring records of one bucket whose rollout slots fall in
  the same second), hidden until that slot, and a sweep message at startTime +
  maxExecutionTimeInSeconds. A start repeated (a crash, a repeated message) adds no record
  twice and sends messages only for records still pending.
- **a chunk** (the devices of one bucket, each at its attempt): claim them all in ONE
  transaction with the bucket's counters (pending → running, one lease for the chunk,
  ETag-checked; a lost race is decided again on a fresh range read), send ONE watch message
  due when the lease ends (should this worker die mid-call, the unfinished devices are taken
  over then, not only when the dead host's message reappears), call the devices concurrently
  (CALLS_IN_FLIGHT at most), and record the results as they arrive in group commits: each
  transaction takes every result that arrived while the previous one was under way (completed,
  failed, or pending again for a retry; the retries of one commit go out as one chunk). A
  running record whose lease ended (its worker died mid-call) is taken over and called again
  with the same `Idempotency-Key`; devices whose lease is live are looked at again (one
  message) when the last of those leases ends. After failures the abort criteria are read
  from the statistics. A `device` message (one device, from before chunks) is a chunk of one.
- **sweep** (cancel, abort, time limit): every pending record, and every running one whose
  lease ended, ends (canceled, or failed after the time limit) with an error naming why, a
  transaction per chunk of a bucket; running calls under a live lease end on their own.
The job is completed by whoever leaves a bucket with no device open and then finds none open
in any bucket.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from shared.broadcasts.model import (
    CANCELLED,
    COMPLETED,
    ENDED,
    FAILED,
    METHOD_JOB,
    QUEUED,
    RUNNING,
)
from shared.broadcasts.planning import (
    CANCELED,
    FAILED_TYPE,
    PENDING,
    SUCCEEDED,
    TIMED_OUT,
    Stats,
    abort_reason,
    rollout_delay_seconds,
    should_retry,
    total,
)
from shared.broadcasts.planning import FAILED as DEVICE_FAILED
from shared.broadcasts.planning import RUNNING as DEVICE_RUNNING
from shared.broadcasts.records import Broadcast, DeviceJob
from shared.clock import Clock
from shared.devices.model import ANY_ETAG
from shared.devices.registry import DeviceRegistry
from shared.errors import (
    BadDeviceAnswer,
    Conflict,
    DeviceNotOnline,
    DeviceTimeout,
    InvalidRequest,
    NotFound,
)
from shared.storage.broadcasts import (
    CHUNK_LIMIT,
    BroadcastRows,
    ChunkState,
    StoredBroadcast,
    bucket_of,
)
from shared.storage.device_work import (
    DEVICE,
    DEVICES,
    START,
    SWEEP,
    DeviceWorkQueue,
    WorkMessage,
)
from shared.timefmt import as_stored

log = logging.getLogger(__name__)

LEASE_MARGIN = timedelta(seconds=30)
# A start may run this much before startTime (the scheduler's second, a clock apart): no device
# is called early, each device message is hidden until its slot, which is never before startTime.
EARLY_START = timedelta(seconds=5)
_SNAPSHOT_PAGE = 100
CHUNK_SIZE = 50  # devices per chunk message at the start (a transaction holds 99 and the counter)
CALLS_IN_FLIGHT = 8  # a chunk's calls at once; its lease covers ceil(n / this) calls in a row
_SENDS_IN_FLIGHT = 16  # chunk messages a start sends at once
_RACE_RETRIES = 10
EXPIRED = "JobExpired"  # a device's error when maxExecutionTimeInSeconds ended it


class BroadcastEngine:
    def __init__(
        self,
        rows: BroadcastRows,
        queue: DeviceWorkQueue,
        registry: DeviceRegistry,
        clock: Clock,
        lease_margin: timedelta = LEASE_MARGIN,
    ) -> None:
        self._lease_margin = lease_margin
        self._rows = rows
        self._queue = queue
        self._registry = registry
        self._clock = clock

    async def handle(self, message: WorkMessage) -> None:
        if message.action == START:
            # Only sent by versions before starts went through the due index: a message still
            # queued at the upgrade starts its job as it would have.
            await self.start(message.job_id)
        elif message.action in (DEVICES, DEVICE):  # `device`: one device, from before chunks
            await self.run_devices(message.job_id, message.work())
        elif message.action == SWEEP:
            await self.sweep(message.job_id)
        else:
            log.warning("Unknown device-work message %r dropped", message.action)

    # --- start -------------------------------------------------------------------------------

    async def start(self, job_id: str) -> Broadcast | None:
        """Start the job (repeatable); returns it as it is afterwards, None if it is gone. A
        job whose startTime is more than `EARLY_START` ahead is left queued (returned as is)."""
        stored = await self._rows.get(job_id)
        if stored is None or stored.record.status in ENDED:
            return None if stored is None else stored.record
        job = stored.record
        now = self._clock.now()
        if job.start > now + EARLY_START:
            return job
        if job.status == QUEUED:
            device_ids = await self._snapshot(job)
            await self._rows.add_pending(
                DeviceJob(job_id, job.spec.job_type, d, PENDING, now, now) for d in device_ids
            )
            try:
                stored = await self._rows.replace(
                    replace(job, status=RUNNING, device_count=len(device_ids)), stored.etag
                )
            except Conflict:  # cancelled meanwhile, or another starter won: look again
                stored = await self._rows.get(job_id) or stored
            if stored.record.status != RUNNING:
                return stored.record
        job = stored.record
        expires = job.start + timedelta(seconds=job.spec.max_execution_seconds)
        await self._queue.send(WorkMessage(SWEEP, job_id), due=expires, now=now)
        await self._send_chunks(job, now)
        if job.device_count == 0:
            await self.finish_if_done(job_id)
        return job

    async def _send_chunks(self, job: Broadcast, now: datetime) -> None:
        """One message per chunk of pending records: neighbours in one bucket whose rollout
        slots fall in the same second (all of a bucket's, CHUNK_SIZE at a time, when the
        rollout is not limited). Each device's slot is its place among all the records (in key
        order), so a start run again (a crash, a retried occurrence) keeps the pending devices
        at their slots; a chunk's records are neighbours, so it is read with one range read."""
        job_id = job.spec.job_id
        chunks: list[tuple[datetime, list[tuple[str, int]]]] = []
        current_key: tuple[int, datetime] | None = None
        index = -1
        async for record, (bucket, _) in self._rows.records(job_id):
            index += 1
            if record.status != PENDING:
                current_key = None  # a gap: the next chunk's range starts after it
                continue
            slot = job.start + timedelta(
                seconds=rollout_delay_seconds(
                    index, job.spec.maximum_per_minute, job.spec.exponential_rate
                )
            )
            key = (bucket, slot)
            if key != current_key or len(chunks[-1][1]) >= CHUNK_SIZE:
                chunks.append((slot, []))
                current_key = key
            chunks[-1][1].append((record.device_id, record.attempt))
        semaphore = asyncio.Semaphore(_SENDS_IN_FLIGHT)

        async def send(slot: datetime, devices: list[tuple[str, int]]) -> None:
            async with semaphore:
                message = WorkMessage.chunk(job_id, devices)
                await self._queue.send(message, due=max(slot, now), now=now)

        await asyncio.gather(*(send(slot, devices) for slot, devices in chunks))

    async def _snapshot(self, job: Broadcast) -> list[str]:
        """The selected devices' ids, once: paged through the registry's query."""
        condition = job.spec.query_condition.strip()
        text = "SELECT * FROM devices" + ("" if condition == "*" else f" WHERE {condition}")
        ids: list[str] = []
        token: str | None = None
        while True:
            page = await self._registry.query(text, _SNAPSHOT_PAGE, token)
            ids.extend(str(twin["deviceId"]) for twin in page.items)
            token = page.continuation
            if token is None:
                return ids

    # --- a chunk of devices ------------------------------------------------------------------

    async def run_devices(self, job_id: str, work: list[tuple[str, int]]) -> None:
        """Run a message's devices (each at its attempt), bucket by bucket (a chunk is one)."""
        by_bucket: dict[int, dict[str, int]] = {}
        for device_id, attempt in work:
            by_bucket.setdefault(bucket_of(device_id), {})[device_id] = attempt
        if not by_bucket:
            return
        stored = await self._rows.get(job_id)
        if stored is None:
            return
        await asyncio.gather(
            *(
                self._run_chunk(stored.record, bucket, dict(part))
                for bucket, devices in by_bucket.items()
                for part in _split(devices, CHUNK_LIMIT)
            )
        )

    async def _run_chunk(self, job: Broadcast, bucket: int, attempts: dict[str, int]) -> None:
        """Claim the chunk's devices in one transaction, send one watch message, call them
        concurrently, record their results as they arrive (those that arrive while a write is
        under way go together in the next one)."""
        job_id = job.spec.job_id
        now = self._clock.now()
        waves = -(-len(attempts) // CALLS_IN_FLIGHT)
        # As stored: a result is recorded only under this very lease, compared after a read.
        lease_until = as_stored(
            now + waves * timedelta(seconds=job.spec.device_timeout_seconds()) + self._lease_margin
        )
        stop = self._stop_reason(job, now)

        def claim(record: DeviceJob) -> DeviceJob | None:
            if not _open_at(record, attempts):
                return None  # done, or a message for an earlier attempt
            live = record.lease_until is not None and record.lease_until > now
            if stop is not None and (record.status == PENDING or not live):
                return _stopped(record, now, stop)  # not started, or its worker died mid-call
            if record.status == DEVICE_RUNNING and live:
                return None  # another worker holds it: looked at again when its lease ends
            return replace(
                record,
                status=DEVICE_RUNNING,
                started=record.started or now,
                lease_until=lease_until,
                updated=now,
            )

        ids = list(attempts)
        claimed = await self._rows.change_chunk(job_id, bucket, ids, claim)
        changed = {after.device_id for _, after in claimed.changed}
        held = [
            stored.record
            for device_id, stored in claimed.state.records.items()
            if device_id not in changed
            and _open_at(stored.record, attempts)
            and stored.record.status == DEVICE_RUNNING
        ]
        if held:  # another worker holds them: look again when the last of their leases ends
            due = max(r.lease_until or now for r in held)
            again = WorkMessage.chunk(job_id, ((r.device_id, r.attempt) for r in held))
            await self._queue.send(again, due=due, now=now)
        calls = [after for _, after in claimed.changed if after.status == DEVICE_RUNNING]
        if not calls:
            if job.status == RUNNING:  # done already: its worker may have died before the end
                await self._after_change(job, claimed.state.stats)
            return
        # The watch: should this worker die mid-call, this message surfaces when the lease
        # ends and another worker takes the chunk's unfinished devices over then (its own
        # message stays with the dead host for the host's visibility timeout). Devices whose
        # results are recorded by then are left alone.
        watch = WorkMessage.chunk(job_id, ((r.device_id, r.attempt) for r in calls))
        await self._queue.send(watch, due=lease_until, now=now)
        recorder = _ChunkRecorder(self, job, bucket, lease_until, claimed.state)
        semaphore = asyncio.Semaphore(CALLS_IN_FLIGHT)

        faults: list[Exception] = []

        async def call(record: DeviceJob) -> None:
            try:
                async with semaphore:
                    result = await self._call(job, record.device_id)
            except Exception as fault:  # a storage fault reading the device, not its answer
                faults.append(fault)  # left running: taken over when the lease ends
                recorder.skipped()
                return
            recorder.arrived(record, *result)

        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(recorder.run(len(calls)))
                for record in calls:
                    group.create_task(call(record))
        except ExceptionGroup as failed:  # a storage fault recording: the host retries
            raise failed.exceptions[0] from None
        if faults:  # the others are recorded; the host retries the message as for any fault
            raise faults[0]

    async def _record(
        self,
        job: Broadcast,
        bucket: int,
        lease_until: datetime,
        known: ChunkState,
        results: list[_Result],
    ) -> ChunkState:
        """Record these results in one transaction (with the bucket's counters); then queue the
        retries as one chunk, check the abort criteria after failures and the end when the
        bucket has no open device left. Returns the chunk's state after it."""
        job_id = job.spec.job_id
        ended = self._clock.now()
        by_device = {r.record.device_id: r for r in results}

        def record_result(record: DeviceJob) -> DeviceJob | None:
            result = by_device.get(record.device_id)
            if (
                result is None
                or record.status != DEVICE_RUNNING
                or record.lease_until != lease_until
                or record.attempt != result.record.attempt
            ):
                return None  # taken over meanwhile: the taker records
            if result.retry:
                return replace(
                    record,
                    status=PENDING,
                    attempt=record.attempt + 1,
                    lease_until=None,
                    updated=ended,
                    error=result.error,
                )
            return replace(
                record,
                status=SUCCEEDED if result.failure_type is None else DEVICE_FAILED,
                ended=ended,
                updated=ended,
                lease_until=None,
                timed_out=result.failure_type == TIMED_OUT,
                outcome=result.outcome,
                error=result.error,
            )

        written = await self._rows.change_chunk(
            job_id, bucket, list(by_device), record_result, known
        )
        afters = [after for _, after in written.changed]
        retries = [(r.device_id, r.attempt) for r in afters if r.status == PENDING]
        if retries:
            await self._queue.send(WorkMessage.chunk(job_id, retries), due=ended, now=ended)
        if job.spec.abort and any(r.status == DEVICE_FAILED for r in afters):
            await self._check_abort(job_id)
        if afters:
            await self._after_change(job, written.state.stats)
        return written.state

    async def _call(
        self, job: Broadcast, device_id: str
    ) -> tuple[dict[str, object] | None, dict[str, str] | None, str | None]:
        """(outcome, error, failure type) of one device's call; never raises for the device."""
        key = f"{job.spec.job_id}:{device_id}"
        try:
            if job.spec.job_type == METHOD_JOB:
                result = await self._registry.call_method(device_id, job.spec.method_call(), key)
                return {"deviceMethodResponse": result.json()}, None, None
            twin = dict(job.spec.update_twin or {})
            twin.pop("etag", None)
            await self._registry.patch_twin(device_id, twin, ANY_ETAG)
            return None, None, None
        except DeviceTimeout as error:
            return None, {"code": "GatewayTimeout", "description": str(error)}, TIMED_OUT
        except DeviceNotOnline as error:
            return None, {"code": "DeviceNotOnline", "description": str(error)}, FAILED_TYPE
        except NotFound as error:
            return None, {"code": "DeviceNotFound", "description": str(error)}, FAILED_TYPE
        except BadDeviceAnswer as error:
            code = "DeviceInvalidResultPayload"
            return None, {"code": code, "description": str(error)}, FAILED_TYPE
        except (InvalidRequest, Conflict) as error:
            return None, {"code": "ArgumentInvalid", "description": str(error)}, FAILED_TYPE

    def _stop_reason(self, job: Broadcast, now: datetime) -> dict[str, str] | None:
        if job.status == CANCELLED:
            return {"code": "JobCancelled", "description": job.failure_reason or "cancelled"}
        if job.status in (FAILED, COMPLETED):
            return {"code": "JobEnded", "description": job.failure_reason or job.status}
        if now >= job.start + timedelta(seconds=job.spec.max_execution_seconds):
            return {
                "code": EXPIRED,
                "description": (
                    f"maxExecutionTimeInSeconds ({job.spec.max_execution_seconds} s) elapsed "
                    "before the device's call was done"
                ),
            }
        return None

    async def _check_abort(self, job_id: str) -> None:
        stored = await self._rows.get(job_id)
        if stored is None or stored.record.status != RUNNING:
            return
        reason = abort_reason(stored.record.spec.abort, total(await self._rows.stats(job_id)))
        if reason is None:
            return
        if await self._end(stored, CANCELLED, reason):
            await self.sweep(job_id)

    async def _after_change(self, job: Broadcast, bucket: Stats) -> None:
        if bucket.open == 0:  # this bucket is done: maybe all are
            await self.finish_if_done(job.spec.job_id)

    # --- sweeps and the end ------------------------------------------------------------------

    async def sweep(self, job_id: str) -> None:
        """End what is left of a job that was cancelled, aborted or ran out of time: every
        pending record, and every running one whose worker died (its lease ended); calls in
        flight under a live lease finish and record (then the job ends)."""
        stored = await self._rows.get(job_id)
        if stored is None or stored.record.status == QUEUED:
            return
        now = self._clock.now()
        stop = self._stop_reason(stored.record, now)
        if stop is None:
            return

        def end(record: DeviceJob) -> DeviceJob | None:
            if record.status == PENDING or (
                record.status == DEVICE_RUNNING
                and (record.lease_until is None or record.lease_until <= now)
            ):
                return _stopped(record, now, stop)
            return None

        # Chunks of neighbours in one bucket (a range read and a transaction each).
        for status in (PENDING, DEVICE_RUNNING):
            chunk: list[str] = []
            chunk_bucket = -1
            async for record, (bucket, _) in self._rows.records(job_id, status=status):
                if chunk and (bucket != chunk_bucket or len(chunk) >= CHUNK_LIMIT):
                    await self._rows.change_chunk(job_id, chunk_bucket, chunk, end)
                    chunk = []
                chunk_bucket = bucket
                chunk.append(record.device_id)
            if chunk:
                await self._rows.change_chunk(job_id, chunk_bucket, chunk, end)
        await self.finish_if_done(job_id)

    async def finish_if_done(self, job_id: str) -> None:
        stored = await self._rows.get(job_id)
        if stored is None or stored.record.status != RUNNING:
            return
        if total(await self._rows.stats(job_id)).open == 0:
            stop = self._stop_reason(stored.record, self._clock.now())
            reason = None if stop is None else stop["description"]
            await self._end(stored, FAILED if stop else COMPLETED, reason)

    async def _end(self, stored: StoredBroadcast, status: str, reason: str | None) -> bool:
        """Move a running job to its end state; False when another writer ended it first."""
        for _ in range(_RACE_RETRIES):
            if stored.record.status in ENDED:
                return False
            ended = replace(
                stored.record, status=status, failure_reason=reason, ended=self._clock.now()
            )
            try:
                await self._rows.replace(ended, stored.etag)
                return True
            except Conflict:
                again = await self._rows.get(stored.record.spec.job_id)
                if again is None:
                    return False
                stored = again
        return False


@dataclass(frozen=True)
class _Result:
    """One device's call as it ended: its outcome or error, and whether it gets another try."""

    record: DeviceJob  # as claimed
    outcome: dict[str, object] | None
    error: dict[str, str] | None
    failure_type: str | None
    retry: bool


class _ChunkRecorder:
    """Collects a chunk's results as the calls end and writes them in group commits: one
    writer, each write taking every result that arrived while the previous one was under way,
    so a fast chunk is recorded in one or two transactions and a slow device does not hold up
    the others' records (a crash then repeats only the calls that were still running)."""

    def __init__(
        self,
        engine: BroadcastEngine,
        job: Broadcast,
        bucket: int,
        lease_until: datetime,
        state: ChunkState,
    ) -> None:
        self._engine = engine
        self._job = job
        self._bucket = bucket
        self._lease_until = lease_until
        self._state = state
        self._arrived: list[_Result] = []
        self._skipped = 0
        self._ready = asyncio.Event()

    def arrived(
        self,
        record: DeviceJob,
        outcome: dict[str, object] | None,
        error: dict[str, str] | None,
        failure_type: str | None,
    ) -> None:
        retry = failure_type is not None and should_retry(
            self._job.spec, failure_type, record.attempt
        )
        self._arrived.append(_Result(record, outcome, error, failure_type, retry))
        self._ready.set()

    def skipped(self) -> None:
        """A call that ended without a result to record (a storage fault before it)."""
        self._skipped += 1
        self._ready.set()

    async def run(self, expected: int) -> None:
        recorded = 0
        while recorded + self._skipped < expected:
            await self._ready.wait()
            self._ready.clear()
            batch, self._arrived = self._arrived, []
            if not batch:
                continue
            self._state = await self._engine._record(
                self._job, self._bucket, self._lease_until, self._state, batch
            )
            recorded += len(batch)


def _open_at(record: DeviceJob, attempts: dict[str, int]) -> bool:
    """Whether the record still waits for (or runs) the attempt the message asks for."""
    return record.status in (PENDING, DEVICE_RUNNING) and record.attempt == attempts.get(
        record.device_id
    )


def _split(devices: dict[str, int], size: int) -> list[list[tuple[str, int]]]:
    items = sorted(devices.items())
    return [items[i : i + size] for i in range(0, len(items), size)]


def _stopped(record: DeviceJob, now: datetime, error: dict[str, str]) -> DeviceJob:
    """A record the job's end stops: `failed` when the time limit passed before it was done,
    `canceled` when the job was cancelled or aborted; both count in failedCount."""
    status = DEVICE_FAILED if error["code"] == EXPIRED else CANCELED
    return replace(record, status=status, ended=now, updated=now, error=error, lease_until=None)
