"""The process's objects (store, queue, dispatcher, executor, service), built lazily.

The Functions host runs triggers and HTTP in one event loop per worker, but FastAPI's lifespan
only starts on the first HTTP request, so nothing here depends on it: the first caller of
`current_runtime()` in a loop builds the runtime, everyone after shares it.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Mapping
from dataclasses import dataclass

from shared.actions.registry import Runners
from shared.clock import Clock, SystemClock
from shared.config import Settings
from shared.engine.dispatcher import Dispatcher
from shared.engine.executor import Executor
from shared.engine.service import JobService
from shared.storage.queue import ExecutionQueue
from shared.storage.store import JobStore


@dataclass
class Runtime:
    settings: Settings
    clock: Clock
    store: JobStore
    queue: ExecutionQueue
    runners: Runners
    dispatcher: Dispatcher
    executor: Executor
    jobs: JobService

    @classmethod
    async def create(
        cls,
        settings: Settings,
        *,
        clock: Clock | None = None,
        app_settings: Mapping[str, str] | None = None,
    ) -> Runtime:
        clock = clock or SystemClock()
        store = await JobStore.from_settings(settings).ensure()
        queue = ExecutionQueue.from_connection_string(
            settings.storage_connection, settings.execution_queue
        )
        await queue.ensure()
        runners = Runners()
        dispatcher = Dispatcher(store, queue, clock, settings)
        executor = Executor(
            store,
            queue,
            runners,
            clock,
            settings,
            app_settings if app_settings is not None else os.environ,
        )
        return cls(
            settings=settings,
            clock=clock,
            store=store,
            queue=queue,
            runners=runners,
            dispatcher=dispatcher,
            executor=executor,
            jobs=JobService(store, dispatcher, clock, settings),
        )

    async def close(self) -> None:
        await self.runners.aclose()
        await self.queue.close()
        await self.store.close()


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
