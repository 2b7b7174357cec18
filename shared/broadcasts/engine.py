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
- **a chunk** (the devices of one bucket, each at its attempt): read its records once (one
  range read); then, as slots of the process's call budget free up (CallBudget,
  shared/devices/call_budget.py: 32 device calls at once per process, across all chunks, at
  least 8 slots or what the chunk has left per grant), claim the next devices in ONE
  transaction with the bucket's counters (pending -> running, ETag-checked; a lost race is
  decided again on a fresh read), each under a lease of one device timeout + the margin from
  that claim (its call starts at once), send ONE watch message due when that lease ends
  (should this worker die mid-call, the devices it claimed and the chunk's devices it had not
  claimed yet are taken over then, not only when the dead host's message reappears), call
  them, and record the results as they arrive in group commits: each transaction takes every
  result that arrived while the previous one was under way (completed, failed, or pending
  again for a retry; the retries of one commit go out as one chunk). A call that never
  reached its device (a storage fault reading the device) is put back to pending at once, so
  the message's retry takes it over without waiting for the lease. A running record whose
  lease ended (its worker died mid-call) is taken over and called again with the same
  `Idempotency-Key`; devices whose lease is live are looked at again (one message) when the
  last of those leases ends. After failures the abort criteria are read from the statistics.
  A `device` message (one device, from before chunks) is a chunk of one.
- **sweep** (cancel, abort, time limit): every pending record, and every running one whose
  lease ended, ends (canceled, or failed after the time limit) with an error naming why, a
  transaction per chunk of a bucket; running calls under a live lease end on their own.
The job is completed by whoever leaves a bucket with no device open and then finds none open
in any bucket.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field, replace
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
from shared.concurrency import QUEUE_WORK_AT_ONCE
from shared.devices.model import ANY_ETAG, Endpoint
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
    BUCKETS,
    CHUNK_LIMIT,
    BroadcastRows,
    ChunkChange,
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
_SNAPSHOT_PAGE = 1000  # devices per snapshot page (the registry scans up to 1,000 rows a page)
CHUNK_SIZE = 50  # devices per chunk message at the start (a transaction holds 99 and the counter)
_SENDS_IN_FLIGHT = 16  # chunk messages a start sends at once
_RACE_RETRIES = 10
# How long the endpoint the start's snapshot read is used as is (no read of the device's row
# before its call); a device that cannot be reached there is looked up again at once.
ENDPOINT_FRESH = timedelta(seconds=120)
# How long a group commit waits for the chunk's other calls in flight to answer.
GROUP_COMMIT_LINGER = 0.05
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
        self._counters: dict[tuple[str, int], _CounterLine] = {}
        self._work_at_once = asyncio.Semaphore(QUEUE_WORK_AT_ONCE)

    async def handle(self, message: WorkMessage) -> None:
        async with self._work_at_once:
            await self._handle(message)

    async def _handle(self, message: WorkMessage) -> None:
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
            devices = await self._snapshot(job, carry=job.spec.job_type == METHOD_JOB)
            await self._rows.add_pending(
                DeviceJob(job_id, job.spec.job_type, device_id, PENDING, now, now, endpoint=e)
                for device_id, e in devices
            )
            try:
                stored = await self._rows.replace(
                    replace(job, status=RUNNING, device_count=len(devices)), stored.etag
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
        reading = asyncio.Semaphore(_SENDS_IN_FLIGHT)

        async def read(bucket: int) -> list[tuple[str, str, int]]:
            """(status, device id, attempt) of the bucket's records: several buckets read at
            once, not one after another, and only what the chunks need kept."""
            async with reading:
                records = await self._rows.bucket_records(job_id, bucket)
            return [(r.status, r.device_id, r.attempt) for r in records]

        by_bucket = await asyncio.gather(*(read(b) for b in range(BUCKETS)))
        for bucket, (status, device_id, attempt) in (
            (b, r) for b, records in enumerate(by_bucket) for r in records
        ):
            index += 1
            if status != PENDING:
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
            chunks[-1][1].append((device_id, attempt))
        semaphore = asyncio.Semaphore(_SENDS_IN_FLIGHT)

        async def send(slot: datetime, devices: list[tuple[str, int]]) -> None:
            async with semaphore:
                message = WorkMessage.chunk(job_id, devices)
                await self._queue.send(message, due=max(slot, now), now=now)

        await asyncio.gather(*(send(slot, devices) for slot, devices in chunks))

    async def _snapshot(self, job: Broadcast, carry: bool) -> list[tuple[str, Endpoint | None]]:
        """The selected devices' ids, once (paged through the registry's query), each with its
        endpoint when `carry` (a method job: it rides in the device's record, so a call soon
        after does not read the device's row again)."""
        condition = job.spec.query_condition.strip()
        text = "SELECT * FROM devices" + ("" if condition == "*" else f" WHERE {condition}")
        devices: list[tuple[str, Endpoint | None]] = []
        token: str | None = None
        while True:
            page, token = await self._registry.search(text, "", _SNAPSHOT_PAGE, token)
            devices.extend((d.device_id, d.endpoint if carry else None) for d in page)
            if token is None:
                return devices

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
        """Read the chunk's records once; then, as slots of the process's call budget free up,
        claim its devices in sub-chunks (one transaction and one watch message each, every
        device's lease starting when its call may start), call them, and record their results
        as they arrive (those that arrive while a write is under way go together in the next
        one)."""
        job_id = job.spec.job_id
        now = self._clock.now()
        state = await self._rows.read_chunk(job_id, bucket, list(attempts))
        open_records = [
            stored.record for stored in state.records.values() if _open_at(stored.record, attempts)
        ]
        held = [r for r in open_records if _live(r, now)]
        if held:  # another worker holds them: look again when the last of their leases ends
            due = max(r.lease_until or now for r in held)
            again = WorkMessage.chunk(job_id, ((r.device_id, r.attempt) for r in held))
            await self._queue.send(again, due=due, now=now)
        waiting = sorted(r.device_id for r in open_records if not _live(r, now))
        if not waiting:
            if job.status == RUNNING:  # done already: its worker may have died before the end
                await self._after_change(job, bucket, state.stats)
            return
        key = (job_id, bucket)
        line = self._counters.setdefault(key, _CounterLine())
        line.users += 1
        try:
            recorder = _ChunkRecorder(self, job, line, bucket, state)
            await self._run_claims(job, attempts, waiting, recorder)
        finally:
            line.users -= 1
            if line.users == 0:
                del self._counters[key]

    async def _run_claims(
        self,
        job: Broadcast,
        attempts: dict[str, int],
        waiting: list[str],
        recorder: _ChunkRecorder,
    ) -> None:
        """Claim the waiting devices as budget slots free up, call them, record the results."""
        budget = self._registry.call_budget
        faults: list[Exception] = []

        async def call(record: DeviceJob) -> None:
            try:
                result = await self._call(job, record)
            except Exception as fault:  # a storage fault reading the device, not its answer
                faults.append(fault)  # put back to pending: the message's retry claims it
                recorder.released(record)
                return
            finally:
                budget.give_back()
            recorder.arrived(record, *result)

        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(recorder.run())
                try:
                    while waiting:
                        slots = await budget.take(len(waiting))
                        try:
                            claimed = await self._claim(job, recorder, attempts, waiting, slots)
                        except BaseException:
                            budget.give_back(slots)
                            raise
                        calls, waiting = claimed
                        budget.give_back(slots - len(calls))
                        for record in calls:
                            group.create_task(call(record))
                finally:
                    recorder.close()
        except ExceptionGroup as failed:  # a storage fault recording: the host retries
            raise failed.exceptions[0] from None
        if faults:  # the others are recorded; the host retries the message as for any fault
            raise faults[0]

    async def _claim(
        self,
        job: Broadcast,
        recorder: _ChunkRecorder,
        attempts: dict[str, int],
        waiting: list[str],
        slots: int,
    ) -> tuple[list[DeviceJob], list[str]]:
        """Claim up to `slots` of the waiting devices in one transaction, each under a lease of
        one device timeout + the margin from now (its call starts at once), and send their
        watch; returns the records to call and the devices still waiting. A device another
        worker took meanwhile is left to it; when the job ended or its time ran out, every
        waiting device is stopped instead (and nothing is called)."""
        job_id = job.spec.job_id
        now = self._clock.now()
        stop = self._stop_reason(job, now)
        taken = waiting if stop is not None else waiting[:slots]
        rest = [] if stop is not None else waiting[slots:]
        # As stored: a result is recorded only under this very lease, compared after a read.
        lease_until = as_stored(
            now + timedelta(seconds=job.spec.device_timeout_seconds()) + self._lease_margin
        )

        def claim(record: DeviceJob) -> DeviceJob | None:
            if not _open_at(record, attempts):
                return None  # done, or a message for an earlier attempt
            if stop is not None and not _live(record, now):
                return _stopped(record, now, stop)  # not started, or its worker died mid-call
            if _live(record, now):
                return None  # another worker took it: its watch looks at it again
            if record.status == DEVICE_RUNNING:  # its worker died mid-call: call it again
                log.warning(
                    "Broadcast %s: device %s taken over (attempt %d, lease ended %s, now %s)",
                    job_id,
                    record.device_id,
                    record.attempt,
                    record.lease_until.isoformat() if record.lease_until else None,
                    now.isoformat(),
                )
            return replace(
                record,
                status=DEVICE_RUNNING,
                started=record.started or now,
                lease_until=lease_until,
                updated=now,
            )

        claimed = await recorder.write(taken, claim)
        calls = [after for _, after in claimed.changed if after.status == DEVICE_RUNNING]
        if not calls:  # all done, taken or stopped: the bucket may be done
            await self._after_change(job, recorder.bucket, claimed.state.stats)
        elif not recorder.watched:
            # The watch, sent by a chunk's first claim: should this worker die mid-call, this
            # message surfaces when the lease ends and another worker takes over the calls it
            # left unfinished, and the chunk's devices it had not claimed yet (its own message
            # stays with the dead host for the host's visibility timeout); the devices of its
            # later claims are still leased then, so they are looked at again when their
            # leases end. Devices done by then are left alone. (A watch per claim cost a queue
            # message per 12 devices.)
            watched = [(r.device_id, r.attempt) for r in calls]
            watched += [(d, attempts[d]) for d in rest]
            await self._queue.send(WorkMessage.chunk(job_id, watched), due=lease_until, now=now)
            recorder.watched = True
        return calls, rest

    async def _record(
        self,
        job: Broadcast,
        recorder: _ChunkRecorder,
        results: list[_Result],
    ) -> None:
        """Record these results in one transaction (with the bucket's counters); then queue the
        retries as one chunk, check the abort criteria after failures and the end when the
        bucket has no open device left."""
        job_id = job.spec.job_id
        ended = self._clock.now()
        by_device = {r.record.device_id: r for r in results}

        def record_result(record: DeviceJob) -> DeviceJob | None:
            result = by_device.get(record.device_id)
            if (
                result is None
                or record.status != DEVICE_RUNNING
                or record.lease_until != result.record.lease_until
                or record.attempt != result.record.attempt
            ):
                if result is not None:  # a worker that lived past its lease: say so
                    log.warning(
                        "Broadcast %s: result of device %s not recorded: taken over (%s, "
                        "lease %s, attempt %d; called under lease %s, attempt %d)",
                        job_id,
                        record.device_id,
                        record.status,
                        record.lease_until,
                        record.attempt,
                        result.record.lease_until,
                        result.record.attempt,
                    )
                return None  # taken over meanwhile: the taker records
            if result.released:  # never called: claimed again by the message's retry
                return replace(record, status=PENDING, lease_until=None, updated=ended)
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

        written = await recorder.write(list(by_device), record_result)
        afters = [after for _, after in written.changed]
        retries = [
            (r.device_id, r.attempt)
            for r in afters
            if r.status == PENDING and not by_device[r.device_id].released
        ]
        if retries:
            await self._queue.send(WorkMessage.chunk(job_id, retries), due=ended, now=ended)
        if job.spec.abort and any(r.status == DEVICE_FAILED for r in afters):
            await self._check_abort(job_id)
        if afters:
            await self._after_change(job, recorder.bucket, written.state.stats)

    async def _call(
        self, job: Broadcast, record: DeviceJob
    ) -> tuple[dict[str, object] | None, dict[str, str] | None, str | None]:
        """(outcome, error, failure type) of one device's call; never raises for the device."""
        device_id = record.device_id
        key = f"{job.spec.job_id}:{device_id}"
        try:
            if job.spec.job_type == METHOD_JOB:
                result = await self._registry.call_method(
                    record.device_id, job.spec.method_call(), key, self._fresh_endpoint(record)
                )
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

    def _fresh_endpoint(self, record: DeviceJob) -> Endpoint | None:
        """The endpoint the start's snapshot carried, while that read is at most
        ENDPOINT_FRESH old; None (read the registry at the call) after that."""
        if record.endpoint is None or self._clock.now() - record.created > ENDPOINT_FRESH:
            return None
        return record.endpoint

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

    async def _after_change(self, job: Broadcast, bucket: int, stats: Stats) -> None:
        if stats.open == 0:  # this bucket is done: maybe all are (look at the others first)
            await self.finish_if_done(job.spec.job_id, bucket + 1)

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

    async def finish_if_done(self, job_id: str, first_bucket: int = 0) -> None:
        """End the job when no device of any bucket is open (looking from `first_bucket`)."""
        if await self._rows.open_bucket(job_id, first_bucket) is not None:
            return
        stored = await self._rows.get(job_id)
        if stored is None or stored.record.status != RUNNING:
            return
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


@dataclass
class _CounterLine:
    """The chunks of one bucket this process runs at once: their writes go one at a time, each
    against the counter row (and its ETag) the last one left, so they do not lose races to
    each other on it (each lost race cost a failed transaction and two reads)."""

    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    stats: Stats | None = None
    etag: str | None = None
    users: int = 0


@dataclass(frozen=True)
class _Result:
    """One device's call as it ended: its outcome or error, and whether it gets another try;
    or `released`: never called (a storage fault before the call), back to pending."""

    record: DeviceJob  # as claimed (its lease is the one the result is recorded under)
    outcome: dict[str, object] | None
    error: dict[str, str] | None
    failure_type: str | None
    retry: bool
    released: bool = False


class _ChunkRecorder:
    """A chunk's writes, one at a time against the state the last one left (no read between
    them): its claims, and its results in group commits, each taking every result that
    arrived while the previous write was under way and then, for at most GROUP_COMMIT_LINGER,
    those of the calls still in flight, so a fast chunk is recorded in a few transactions and
    a slow device does not hold up the others' records for long (a crash then repeats only
    the calls that were still running)."""

    def __init__(
        self,
        engine: BroadcastEngine,
        job: Broadcast,
        line: _CounterLine,
        bucket: int,
        state: ChunkState,
    ):
        self._engine = engine
        self._job = job
        self._line = line
        self.bucket = bucket
        self.watched = False  # whether a claim of this chunk sent its watch
        self._state = state
        self._arrived: list[_Result] = []
        self._claimed = 0
        self._settled = 0
        self._closed = False
        self._ready = asyncio.Event()
        self._all_answered = asyncio.Event()

    async def write(
        self, device_ids: list[str], decide: Callable[[DeviceJob], DeviceJob | None]
    ) -> ChunkChange:
        line = self._line
        async with line.lock:
            known = self._state
            if line.stats is not None:  # what this process's last write of the bucket left
                known = ChunkState(known.records, line.stats, line.etag)
            change = await self._engine._rows.change_chunk(
                self._job.spec.job_id, self.bucket, device_ids, decide, known
            )
            self._state = change.state
            line.stats, line.etag = change.state.stats, change.state.stats_etag
            self._claimed += sum(1 for _, a in change.changed if a.status == DEVICE_RUNNING)
            return change

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
        self._check_answered()

    def released(self, record: DeviceJob) -> None:
        """A call that never reached the device (a storage fault before it)."""
        self._arrived.append(_Result(record, None, None, None, False, released=True))
        self._ready.set()
        self._check_answered()

    def close(self) -> None:
        """No more claims: `run` ends once every claimed call is recorded."""
        self._closed = True
        self._ready.set()

    async def run(self) -> None:
        while not (self._closed and self._settled >= self._claimed):
            await self._ready.wait()
            self._ready.clear()
            if self._arrived:
                await self._linger()
            batch, self._arrived = self._arrived, []
            if not batch:
                continue
            await self._engine._record(self._job, self, batch)
            self._settled += len(batch)

    def _check_answered(self) -> None:
        if self._settled + len(self._arrived) >= self._claimed:
            self._all_answered.set()

    async def _linger(self) -> None:
        """Wait until every call in flight has answered, at most GROUP_COMMIT_LINGER: the
        answers of one claim come within milliseconds of each other, and each transaction
        costs this process a millisecond or two of CPU and Azurite a round trip."""
        self._all_answered.clear()
        self._check_answered()
        try:
            async with asyncio.timeout(GROUP_COMMIT_LINGER):
                await self._all_answered.wait()
        except TimeoutError:
            pass  # a slow device: the others' results are written without it


def _open_at(record: DeviceJob, attempts: dict[str, int]) -> bool:
    """Whether the record still waits for (or runs) the attempt the message asks for."""
    return record.status in (PENDING, DEVICE_RUNNING) and record.attempt == attempts.get(
        record.device_id
    )


def _live(record: DeviceJob, now: datetime) -> bool:
    """Whether another call holds the record: running under a lease that has not ended."""
    return (
        record.status == DEVICE_RUNNING
        and record.lease_until is not None
        and record.lease_until > now
    )


def _split(devices: dict[str, int], size: int) -> list[list[tuple[str, int]]]:
    items = sorted(devices.items())
    return [items[i : i + size] for i in range(0, len(items), size)]


def _stopped(record: DeviceJob, now: datetime, error: dict[str, str]) -> DeviceJob:
    """A record the job's end stops: `failed` when the time limit passed before it was done,
    `canceled` when the job was cancelled or aborted; both count in failedCount."""
    status = DEVICE_FAILED if error["code"] == EXPIRED else CANCELED
    return replace(record, status=status, ended=now, updated=now, error=error, lease_until=None)
