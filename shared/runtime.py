"""The process's objects (store, queue, kinds and their runners, dispatcher, executor,
job service, device registry, broadcasts), built lazily: the composition root. The broadcast
service puts its start jobs through the job service, and the Broadcast kind's runner uses the
broadcast service, so the order is: jobs, broadcasts, runners, executor.

The Functions host runs triggers and HTTP in one event loop per worker, but FastAPI's lifespan
only starts on the first HTTP request, so nothing here depends on it: the first caller of
`current_runtime()` in a loop builds the runtime, everyone after shares it.

An app adds an action kind of its own with `register_kind(kind)` before its first request or
trigger (function_app.py shows where); `Runtime.create(kinds=...)` does the same for one runtime.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from shared.broadcasts.engine import BroadcastEngine
from shared.broadcasts.retention import BroadcastRetention
from shared.broadcasts.service import BroadcastService
from shared.broadcasts.starts import StartJobs
from shared.clock import Clock, SystemClock
from shared.config import Settings
from shared.dashboard.activity_retention import ActivityRetention
from shared.dashboard.service import DashboardService
from shared.devices.calls import DeviceCaller
from shared.devices.registry import DeviceRegistry
from shared.engine.dispatcher import Dispatcher
from shared.engine.executor import Executor
from shared.engine.service import JobService
from shared.kinds.base import Kind
from shared.kinds.broadcast import BROADCAST, BroadcastActionRunner
from shared.kinds.registry import KindRunners, register_kinds
from shared.kinds.webjob.catalog import WebJobCatalog
from shared.kinds.webjob.continuous import ContinuousWebJobs
from shared.kinds.webjob.kind import WEBJOB
from shared.storage.broadcasts import BroadcastRows
from shared.storage.continuous import ContinuousRows
from shared.storage.device_work import DeviceWorkQueue
from shared.storage.devices import DeviceRows
from shared.storage.dispatch_queue import DispatchQueue
from shared.storage.queue import AttemptQueue
from shared.storage.store import JobStore


@dataclass
class Runtime:
    settings: Settings
    clock: Clock
    store: JobStore
    queue: AttemptQueue
    runners: KindRunners
    dispatcher: Dispatcher
    executor: Executor
    jobs: JobService
    devices: DeviceRegistry
    broadcasts: BroadcastService
    broadcast_retention: BroadcastRetention
    # The dashboard's activity counters, pruned at the history's age (the dispatch timer).
    activity_retention: ActivityRetention
    # Continuous WebJobs: their holders (device-work messages) and the timer's watch.
    continuous: ContinuousWebJobs
    # What the dashboard reads beyond the API: the jobs of all collections, the overview.
    dashboard: DashboardService
    # Slices of big timer passes, for every instance to dispatch (shared/storage/dispatch_queue.py).
    dispatch_queue: DispatchQueue
    # The WebJobs folders found at start-up (their jobs are kept in the collection `webjobs`).
    webjobs: WebJobCatalog = field(default_factory=WebJobCatalog)

    @classmethod
    async def create(
        cls,
        settings: Settings,
        *,
        clock: Clock | None = None,
        app_settings: Mapping[str, str] | None = None,
        kinds: Iterable[Kind[Any]] = (),
    ) -> Runtime:
        """Build everything; `kinds` are action kinds beyond the built-in ones (they become
        known to the whole process: stored jobs of theirs must parse everywhere)."""
        clock = clock or SystemClock()
        app_settings = app_settings if app_settings is not None else os.environ
        registry = register_kinds(kinds)
        settings = settings.with_kinds(registry.kinds, app_settings)
        store = await JobStore.from_settings(settings).ensure()
        queue = AttemptQueue.from_connection_string(
            settings.storage_connection, settings.execution_queue
        )
        await queue.ensure()
        dispatch_queue = await DispatchQueue.from_connection_string(
            settings.storage_connection, settings.dispatch_queue
        ).ensure()
        dispatcher = Dispatcher(store, queue, clock, settings, dispatch_queue)
        jobs = JobService(store, dispatcher, clock, settings)
        devices = DeviceRegistry(DeviceRows(store.tables.devices), DeviceCaller(settings), clock)
        broadcast_rows = await BroadcastRows.from_connection_string(
            settings.storage_connection, settings.broadcasts_table
        ).ensure()
        device_work = await DeviceWorkQueue.from_connection_string(
            settings.storage_connection, settings.device_work_queue
        ).ensure()
        engine = BroadcastEngine(
            broadcast_rows, device_work, devices, clock, lease_margin=settings.lease_margin
        )
        starts = StartJobs(jobs)
        broadcasts = BroadcastService(broadcast_rows, device_work, engine, clock, starts)
        runners = KindRunners(
            registry, settings, provided={BROADCAST: BroadcastActionRunner(broadcasts)}
        )
        executor = Executor(
            store,
            queue,
            runners,
            clock,
            settings,
            app_settings,
        )
        continuous = ContinuousWebJobs(
            await ContinuousRows.from_connection_string(
                settings.storage_connection, settings.continuous_table
            ).ensure(),
            device_work,
            store.outputs,
            WEBJOB.options(settings),
            clock,
            settings.output_max_bytes,
        )
        return cls(
            settings=settings,
            clock=clock,
            store=store,
            queue=queue,
            runners=runners,
            dispatcher=dispatcher,
            executor=executor,
            jobs=jobs,
            devices=devices,
            broadcasts=broadcasts,
            broadcast_retention=BroadcastRetention(
                broadcast_rows, starts, clock, settings.broadcast_retention
            ),
            activity_retention=ActivityRetention(store.activity, clock, settings.history_max_age),
            continuous=continuous,
            dashboard=DashboardService(store, queue, clock),
            dispatch_queue=dispatch_queue,
            webjobs=await WebJobCatalog.load(WEBJOB.options(settings), jobs),
        )

    async def close(self) -> None:
        await self.continuous.aclose()
        await self.broadcasts.aclose()
        await self.devices.aclose()
        await self.runners.aclose()
        await self.queue.close()
        await self.dispatch_queue.close()
        await self.store.close()


def register_kind(kind: Kind[Any]) -> None:
    """Add an action kind to this app: its type names and payload field become valid in job
    definitions and the OpenAPI document, and every runtime built from now on runs it. Call it
    at import of the app (function_app.py), before any request or trigger; not safe to call
    after a runtime exists (that runtime would not run the kind)."""
    register_kinds([kind])


_runtimes: dict[asyncio.AbstractEventLoop, Runtime] = {}
_locks: dict[asyncio.AbstractEventLoop, asyncio.Lock] = {}


async def current_runtime() -> Runtime:
    """The runtime of the running event loop, built from the environment on first use."""
    loop = asyncio.get_running_loop()
    runtime = _runtimes.get(loop)
    if runtime is not None:
        return runtime
    lock = _locks.setdefault(loop, asyncio.Lock())
    async with lock:
        if loop not in _runtimes:
            _runtimes[loop] = await Runtime.create(Settings.from_env())
        return _runtimes[loop]


async def close_current_runtime() -> None:
    """Close the running loop's runtime (local host shutdown and tests; Azure never needs it)."""
    runtime = _runtimes.pop(asyncio.get_running_loop(), None)
    if runtime is not None:
        await runtime.close()
