"""(d) Broadcasts: a method broadcast to many devices served by one local device simulator, run
by the app's engine in-process; its statistics' read cost with 10x more device records stored;
and a paced run showing the achieved rollout rate.

- The simulator is ONE aiohttp server on 127.0.0.1 answering every device's direct method at
  `/d/{id}`; a fixed share of devices answers HTTP 500 and another share answers after a delay
  (chosen by a hash of the id, so the same devices every run).
- Devices are registered by writing their registry rows directly, in entity-group transactions
  (registration is not what is measured).
- The broadcast is created through the jobs service and started by the engine at its startTime
  (what the scheduler's start job does when it fires: the due index's own lateness is (c)'s).
  The device-work queue is worked as the Functions host would: fetch `batchSize` messages, fetch
  again once `newBatchThreshold` or fewer are still running (host.json's values).
- The floor is the same Azurite's plain queue send rate, measured in the same run with as many
  sends in flight as the host runs device messages at once.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import time
import uuid
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web
from azure.storage.queue import QueueMessage

from bench import queue_rate
from bench.util import CpuMeter, bounded, median, unique_name
from devhost.azurite import PROJECT_ROOT
from devhost.host_config import QueueOptions, load_host_config
from shared.broadcasts.engine import BroadcastEngine
from shared.broadcasts.model import ENDED
from shared.broadcasts.planning import PENDING
from shared.broadcasts.records import DeviceJob
from shared.concurrency import QUEUE_WORK_AT_ONCE
from shared.config import Settings
from shared.devices.model import DeviceRecord, Endpoint, new_generation_id
from shared.kinds.http.network_guard import NetworkPolicy
from shared.runtime import Runtime
from shared.storage.broadcasts import BroadcastRows
from shared.storage.broadcasts import bucket_of as record_bucket
from shared.storage.device_work import DeviceWorkQueue, WorkMessage
from shared.storage.devices import bucket_of, to_entity
from shared.storage.rows import chunks, transact
from shared.storage.table_batch import Kind, Operation

DEVICES = 10_000
STORED_FACTOR = 10  # statistics are read again with 10x the device records stored
FAIL_PERCENT = 5  # devices answering HTTP 500
SLOW_PERCENT = 5  # devices answering after SLOW_SECONDS
SLOW_SECONDS = 0.2
STATS_READS = 21
ROLLOUT_LIMIT = 600  # maximumPerMinute of the paced run
ROLLOUT_DEVICES = 300  # 30 s at 600 per minute
START_LEAD = timedelta(seconds=2)  # startTime this far after the job is created
_TRANSACTION = 100  # rows per entity-group transaction
_WRITERS = 8  # transactions in flight while registering / inserting extra records


@dataclass
class DeviceSimulator:
    """One HTTP server answering for every device; remembers when each call arrived."""

    fail_percent: int = FAIL_PERCENT
    slow_percent: int = SLOW_PERCENT
    slow_seconds: float = SLOW_SECONDS
    arrivals: list[float] = field(default_factory=list)  # time.time() of each call
    _runner: web.AppRunner | None = None
    port: int = 0

    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/d/"

    async def start(self) -> DeviceSimulator:
        app = web.Application()
        app.router.add_post("/d/{device_id}", self._answer)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0, backlog=1024).start()
        self.port = self._runner.addresses[0][1]
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def behaviour(self, device_id: str) -> str:
        """Fixed per device id: "fail" for `fail_percent` of ids, "slow" for `slow_percent`."""
        share = int(hashlib.sha256(device_id.encode()).hexdigest()[:8], 16) % 100
        if share < self.fail_percent:
            return "fail"
        if share < self.fail_percent + self.slow_percent:
            return "slow"
        return "ok"

    async def _answer(self, request: web.Request) -> web.Response:
        self.arrivals.append(time.time())
        behaviour = self.behaviour(request.match_info["device_id"])
        await request.read()
        if behaviour == "fail":
            return web.Response(status=500, text="simulated device failure")
        if behaviour == "slow":
            await asyncio.sleep(self.slow_seconds)
        return web.json_response({"status": 200, "payload": {"ok": True}})


def device_ids(prefix: str, count: int) -> list[str]:
    return [f"{prefix}-{i:06d}" for i in range(count)]


async def register_devices(runtime: Runtime, ids: list[str], group: str, base_url: str) -> None:
    """Write the devices' registry rows directly (tagged `group`), a partition's rows 100 to a
    transaction."""
    now = datetime.now(UTC)
    by_partition: dict[str, list[dict[str, Any]]] = {}
    for device_id in ids:
        record = DeviceRecord(
            device_id=device_id,
            generation_id=new_generation_id(),
            device_version=1,
            status="enabled",
            status_reason=None,
            status_updated=now,
            authentication={"type": "none"},
            iot_edge=False,
            endpoint=Endpoint(base_url + device_id),
            tags={"benchGroup": group},
            desired={},
            desired_version=1,
            desired_updated=now,
            reported={},
            reported_version=1,
            reported_updated=now,
            twin_version=1,
        )
        by_partition.setdefault(bucket_of(device_id), []).append(to_entity(record))
    table = runtime.store.tables.devices
    await bounded(
        _WRITERS,
        (
            transact(table, partition, [Operation(Kind.INSERT, e) for e in batch])
            for partition, rows in by_partition.items()
            for batch in chunks(rows, _TRANSACTION)
        ),
    )


async def add_records(rows: BroadcastRows, job_id: str, ids: Iterable[str], job_type: str) -> None:
    """Store pending device records for a job through the storage module, buckets in parallel."""
    now = datetime.now(UTC)
    groups: dict[int, list[DeviceJob]] = {}
    for device_id in ids:
        record = DeviceJob(job_id, job_type, device_id, PENDING, now, now)
        groups.setdefault(record_bucket(device_id), []).append(record)
    await bounded(_WRITERS, (rows.add_pending(group) for group in groups.values()))


class HostLikeWorker:
    """Works the device-work queue as the Functions host's queue listener does (devhost's
    rules): `batchSize` per fetch, a new fetch once `newBatchThreshold` or fewer still run."""

    def __init__(self, engine: BroadcastEngine, queue: DeviceWorkQueue, options: QueueOptions):
        self._engine = engine
        self._queue = queue
        self._options = options
        self._running: set[asyncio.Task[None]] = set()
        self.handled = 0
        self.failures = 0
        self.errors: Counter[str] = Counter()

    async def run(self, stopping: asyncio.Event) -> None:
        client = self._queue.client
        size = self._options.batch_size
        try:
            while not stopping.is_set():
                while len(self._running) > self._options.threshold:
                    await asyncio.wait(self._running, return_when=asyncio.FIRST_COMPLETED)
                pages = client.receive_messages(
                    messages_per_page=size, max_messages=size, visibility_timeout=600
                )
                messages = [m async for m in pages]
                if not messages:
                    await _wait(stopping, 0.1)
                for message in messages:
                    task = asyncio.create_task(self._handle(message))
                    self._running.add(task)
                    task.add_done_callback(self._running.discard)
        finally:
            for task in self._running:
                task.cancel()
            await asyncio.gather(*self._running, return_exceptions=True)

    async def _handle(self, message: QueueMessage) -> None:
        """As the host settles a message: deleted on success; on an error, visible again after
        `visibilityTimeout` (counted: each is a device message the engine failed to handle)."""
        try:
            await self._engine.handle(WorkMessage.from_json(message.content))
        except Exception as error:  # the host catches every function error the same way
            self.failures += 1
            self.errors[type(error).__name__] += 1
            delay = math.ceil(self._options.visibility_timeout.total_seconds())
            await self._queue.client.update_message(message, visibility_timeout=delay)
            return
        await self._queue.client.delete_message(message)
        self.handled += 1


async def _wait(event: asyncio.Event, seconds: float) -> None:
    try:
        await asyncio.wait_for(event.wait(), seconds)
    except TimeoutError:
        pass


@dataclass
class BroadcastRun:
    devices: int
    statistics: dict[str, int]
    status: str
    first_call_s: float  # from startTime
    last_call_s: float
    completed_s: float  # from startTime to the job's end
    calls: int
    handler_failures: int  # device messages whose handling raised (retried as the host would)
    errors: dict[str, int]
    achieved_per_minute: float | None = None  # paced runs: calls over their spread


def _settings(connection: str, prefix: str) -> Settings:
    return Settings(
        storage_connection=connection,
        table_prefix=prefix,
        execution_queue=f"{prefix}-exec",
        device_work_queue=f"{prefix}-dw",
        dispatch_queue=f"{prefix}-disp",
        networks=NetworkPolicy.parse("loopback"),  # the simulator is on 127.0.0.1
    )


async def run_broadcast(
    runtime: Runtime,
    queue: DeviceWorkQueue,
    options: QueueOptions,
    simulator: DeviceSimulator,
    group: str,
    devices: int,
    rollout: int | None = None,
) -> tuple[str, BroadcastRun]:
    """Create a method broadcast to the devices tagged `group`, start it at its startTime (as
    its start job does), work the queue like the host until the job ends; returns its id and
    figures."""
    job_id = f"bench-{group}-{uuid.uuid4().hex[:8]}"
    start = (datetime.now(UTC) + START_LEAD).replace(microsecond=0)
    body: dict[str, Any] = {
        "jobId": job_id,
        "type": "scheduleDeviceMethod",
        "cloudToDeviceMethod": {"methodName": "ping", "payload": {}},
        "queryCondition": f"tags.benchGroup = '{group}'",
        "startTime": start.isoformat().replace("+00:00", "Z"),
        "maxExecutionTimeInSeconds": 3600,
    }
    if rollout is not None:
        body["rollout"] = {"maximumPerMinute": rollout}
    await runtime.broadcasts.create(job_id, body)
    simulator.arrivals.clear()
    stopping = asyncio.Event()
    worker = HostLikeWorker(runtime.broadcasts.engine, queue, options)
    working = asyncio.create_task(worker.run(stopping))
    try:
        await asyncio.sleep(max(0.0, (start - datetime.now(UTC)).total_seconds()))
        await runtime.broadcasts.start(job_id)
        deadline = time.monotonic() + max(120.0, devices / 5)
        while (job := await runtime.broadcasts.read(job_id)) is not None and (
            job.status not in ENDED and time.monotonic() < deadline
        ):
            await asyncio.sleep(0.2)  # a measurement's resolution, not a synchronisation
    finally:
        stopping.set()
        await working
    assert job is not None
    ended = job.ended.timestamp() if job.ended is not None else time.time()  # not ended: now
    arrivals = sorted(simulator.arrivals)
    epoch = start.timestamp()
    figures = BroadcastRun(
        devices=job.device_count or 0,
        statistics=await runtime.broadcasts.statistics(job_id),
        status=job.status,
        first_call_s=arrivals[0] - epoch if arrivals else float("nan"),
        last_call_s=arrivals[-1] - epoch if arrivals else float("nan"),
        completed_s=ended - epoch,
        calls=len(arrivals),
        handler_failures=worker.failures,
        errors=dict(worker.errors),
    )
    if rollout is not None and len(arrivals) > 1:
        # n calls at the limit take n slots of 60/limit seconds: first to last is n-1 of them
        # plus the last one's own slot.
        spread = arrivals[-1] - arrivals[0] + 60 / rollout
        figures.achieved_per_minute = 60 * len(arrivals) / spread
    return job_id, figures


async def read_seconds(runtime: Runtime, job_id: str, reads: int = STATS_READS) -> list[float]:
    """Wall time of each GET of the job (the JobResponse with deviceJobStatistics)."""
    times: list[float] = []
    for _ in range(reads):
        began = time.perf_counter()
        await runtime.broadcasts.get(job_id)
        times.append(time.perf_counter() - began)
    return times


async def measure_broadcasts(
    connection: str,
    meter: CpuMeter,
    devices: int = DEVICES,
    paced_devices: int = ROLLOUT_DEVICES,
) -> dict[str, Any]:
    """(d): the broadcast's rate beside the plain queue floor, the statistics read cost with
    `devices` and STORED_FACTOR x `devices` records stored, and a paced run's achieved rate."""
    options = load_host_config(PROJECT_ROOT).queues
    # The most device messages run at once: the host's limit, and the engine's own below it.
    in_flight = min(options.batch_size + options.threshold, QUEUE_WORK_AT_ONCE)
    settings = _settings(connection, unique_name("bcast"))
    simulator = await DeviceSimulator().start()
    runtime = await Runtime.create(settings, app_settings={})
    rows = BroadcastRows.from_connection_string(connection, settings.broadcasts_table)
    queue = DeviceWorkQueue.from_connection_string(connection, settings.device_work_queue)
    results: dict[str, Any] = {"devices": devices, "in_flight": in_flight}
    try:
        began = time.perf_counter()
        await register_devices(runtime, device_ids("main", devices), "main", simulator.base_url())
        await register_devices(
            runtime, device_ids("paced", paced_devices), "paced", simulator.base_url()
        )
        results["register_s"] = time.perf_counter() - began
        floor = [await queue_rate.plain_sends(connection, in_flight, meter) for _ in range(3)]
        results["plain_rate"] = queue_rate.MESSAGES / median([s.wall for s in floor])
        with meter.measure() as cpu:
            job_id, run = await run_broadcast(runtime, queue, options, simulator, "main", devices)
        results["run"] = vars(run)
        results["run_cpu"] = vars(cpu)
        results["devices_per_s"] = run.devices / run.completed_s
        results["rate_ratio"] = results["devices_per_s"] / results["plain_rate"]
        results["stats_read_s"] = median(await read_seconds(runtime, job_id))
        began = time.perf_counter()
        extra = device_ids("extra", devices * (STORED_FACTOR - 1))
        await add_records(rows, job_id, extra, "scheduleDeviceMethod")
        results["extra_records_s"] = time.perf_counter() - began
        results["stored_records"] = devices * STORED_FACTOR
        results["stats_read_crowded_s"] = median(await read_seconds(runtime, job_id))
        results["stats_ratio"] = results["stats_read_crowded_s"] / results["stats_read_s"]
        _, paced = await run_broadcast(
            runtime, queue, options, simulator, "paced", paced_devices, rollout=ROLLOUT_LIMIT
        )
        results["paced"] = vars(paced)
        results["paced_limit"] = ROLLOUT_LIMIT
    finally:
        await queue.close()
        await rows.close()
        await runtime.close()
        await simulator.stop()
    return results
