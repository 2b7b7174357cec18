"""The broadcast engine: the starter (called by the `Broadcast` action kind when the scheduler
fires a broadcast's start: shared/kinds/broadcast.py), the device worker and the sweeps, run from
the device-work queue (function_app.py's `run_device_work`).

- **start** (at startTime, through the scheduler's due index): snapshot the devices the
  condition selects (paged through the registry, point reads when the condition pins device
  ids), write one pending record per
  device, mark the job running with its device count, then send one device message per device,
  each hidden until its rollout slot, and a sweep message at startTime +
  maxExecutionTimeInSeconds. A start repeated (a crash, a repeated message) adds no record twice
  and sends messages only for records still pending.
- **device**: claim the record (pending → running, with a lease; ETag-checked together with its
  bucket's counters), call the method or apply the twin update, record completed/failed (or
  pending again for a retry). A running record whose lease ended (its worker died mid-call) is
  taken over and called again with the same `Idempotency-Key`; one whose lease is live is looked
  at again when it ends. After a failure the abort criteria are read from the statistics.
  Each claim also sends a watch message due when its lease ends, so a worker killed mid-call
  is taken over then, not only when the dead host's message reappears.
- **sweep** (cancel, abort, time limit): every pending record, and every running one whose
  lease ended, ends (canceled, or failed after the time limit) with an error naming why;
  running calls under a live lease end on their own.
The job is completed by whoever finds no device left open.
"""

from __future__ import annotations

import logging
from dataclasses import replace
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
from shared.storage.broadcasts import BroadcastRows, StoredBroadcast
from shared.storage.device_work import DEVICE, START, SWEEP, DeviceWorkQueue, WorkMessage
from shared.timefmt import as_stored

log = logging.getLogger(__name__)

LEASE_MARGIN = timedelta(seconds=30)
# A start may run this much before startTime (the scheduler's second, a clock apart): no device
# is called early, each device message is hidden until its slot, which is never before startTime.
EARLY_START = timedelta(seconds=5)
_SNAPSHOT_PAGE = 100
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
        elif message.action == DEVICE:
            await self.run_device(message.job_id, message.device_id, message.attempt)
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
        # Each device's slot is its place among all the records (in key order), so a start run
        # again (a crash, a retried occurrence) keeps the pending devices at their slots.
        index = -1
        async for record, _ in self._rows.records(job_id):
            index += 1
            if record.status != PENDING:
                continue
            slot = job.start + timedelta(
                seconds=rollout_delay_seconds(
                    index, job.spec.maximum_per_minute, job.spec.exponential_rate
                )
            )
            await self._queue.send(
                WorkMessage(DEVICE, job_id, record.device_id, record.attempt),
                due=max(slot, now),
                now=now,
            )
        if job.device_count == 0:
            await self.finish_if_done(job_id)
        return job

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

    # --- one device --------------------------------------------------------------------------

    async def run_device(self, job_id: str, device_id: str, attempt: int) -> None:
        stored = await self._rows.get(job_id)
        if stored is None:
            return
        job = stored.record
        now = self._clock.now()
        # As stored: the result is recorded only under this very lease, compared after a read.
        lease_until = as_stored(
            now + timedelta(seconds=job.spec.device_timeout_seconds()) + self._lease_margin
        )
        stop = self._stop_reason(job, now)
        wait_until: list[datetime] = []

        def claim(record: DeviceJob) -> DeviceJob | None:
            if record.status not in (PENDING, DEVICE_RUNNING) or record.attempt != attempt:
                return None  # done, or a message for an earlier attempt
            live = record.lease_until is not None and record.lease_until > now
            if stop is not None and (record.status == PENDING or not live):
                return _stopped(record, now, stop)  # not started, or its worker died mid-call
            if record.status == DEVICE_RUNNING and live:
                assert record.lease_until is not None
                wait_until.append(record.lease_until)
                return None
            return replace(
                record,
                status=DEVICE_RUNNING,
                started=record.started or now,
                lease_until=lease_until,
                updated=now,
            )

        changed = await self._rows.change(job_id, device_id, claim)
        if wait_until:  # another worker holds it: look again when its lease ends
            await self._queue.send(
                WorkMessage(DEVICE, job_id, device_id, attempt), due=wait_until[0], now=now
            )
            return
        if changed is None:
            if job.status == RUNNING:  # done already: its worker may have died before the end
                await self._after_change(job, await self._rows.bucket_stats(job_id, device_id))
            return
        _, claimed, bucket = changed
        if claimed.status != DEVICE_RUNNING:
            await self._after_change(job, bucket)
            return
        # The watch: should this worker die mid-call, this message surfaces when its lease ends
        # and another worker takes over then (its own message stays with the dead host for the
        # host's visibility timeout). Once the result is recorded it does nothing.
        await self._queue.send(
            WorkMessage(DEVICE, job_id, device_id, attempt), due=lease_until, now=now
        )
        outcome, error, failure_type = await self._call(job, device_id)
        ended = self._clock.now()
        retry = failure_type is not None and should_retry(job.spec, failure_type, attempt)

        def record_result(record: DeviceJob) -> DeviceJob | None:
            if record.status != DEVICE_RUNNING or record.lease_until != claimed.lease_until:
                return None  # taken over meanwhile: the taker records
            if retry:
                return replace(
                    record,
                    status=PENDING,
                    attempt=attempt + 1,
                    lease_until=None,
                    updated=ended,
                    error=error,
                )
            return replace(
                record,
                status=SUCCEEDED if failure_type is None else DEVICE_FAILED,
                ended=ended,
                updated=ended,
                lease_until=None,
                timed_out=failure_type == TIMED_OUT,
                outcome=outcome,
                error=error,
            )

        result = await self._rows.change(job_id, device_id, record_result)
        if result is None:
            return
        _, after, bucket = result
        if after.status == PENDING:
            await self._queue.send(
                WorkMessage(DEVICE, job_id, device_id, after.attempt), due=ended, now=ended
            )
            return
        if after.status == DEVICE_FAILED and job.spec.abort:
            await self._check_abort(job_id)
        await self._after_change(job, bucket)

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

        for status in (PENDING, DEVICE_RUNNING):
            async for record, _ in self._rows.records(job_id, status=status):
                await self._rows.change(job_id, record.device_id, end)
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


def _stopped(record: DeviceJob, now: datetime, error: dict[str, str]) -> DeviceJob:
    """A record the job's end stops: `failed` when the time limit passed before it was done,
    `canceled` when the job was cancelled or aborted; both count in failedCount."""
    status = DEVICE_FAILED if error["code"] == EXPIRED else CANCELED
    return replace(record, status=status, ended=now, updated=now, error=error, lease_until=None)
