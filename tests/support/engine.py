"""Test drivers for the engine: runtimes on the test Azurite, and a queue worker that does what
the Functions host does with the executions queue (receive, execute, delete on success)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

import httpx

from shared.api.app import create_api
from shared.clock import Clock
from shared.config import Settings
from shared.engine.records import StoredJob
from shared.kinds.http.network_guard import NetworkPolicy
from shared.runtime import Runtime
from shared.storage.queue import AttemptMessage
from tests.support.iot import OWNER, SignIotRequests

# The API tests' fixed "now": a Monday morning, years ahead of any real clock.
API_NOW = datetime(2030, 5, 6, 8, 0, 0, tzinfo=UTC)


def make_settings(connection: str, name: str, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "storage_connection": connection,
        "table_prefix": name,
        "execution_queue": f"{name}-exec",
        "device_work_queue": f"{name}-dw",
        "dispatch_queue": f"{name}-disp",
        # The tests' HTTP targets are on 127.0.0.1, which the network guard refuses unless allowed.
        "networks": NetworkPolicy.parse("loopback"),
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


async def make_runtime(settings: Settings, clock: Clock | None = None) -> Runtime:
    return await Runtime.create(settings, clock=clock, app_settings={})


async def work_queue(
    runtime: Runtime,
    until: Callable[[], Awaitable[bool]],
    *,
    timeout: float = 30,
    deliver_twice: bool = False,
) -> int:
    """Run queue messages through the executor until `until()` holds; returns messages handled.

    Polls the queue every 50 ms (as the host does) rather than sleeping a guessed time.
    """
    handled = 0
    client = runtime.queue.client
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await until():
        if loop.time() > deadline:
            raise TimeoutError("condition not reached while working the queue")
        batch = [m async for m in client.receive_messages(max_messages=32, visibility_timeout=60)]
        if not batch:
            await asyncio.sleep(0.05)
            continue

        async def handle(message: object) -> None:
            parsed = AttemptMessage.from_json(message.content)  # type: ignore[attr-defined]
            runs = [runtime.executor.execute(parsed)]
            if deliver_twice:
                runs.append(runtime.executor.execute(parsed))
            await asyncio.gather(*runs)
            await client.delete_message(message)  # type: ignore[arg-type]

        await asyncio.gather(*(handle(m) for m in batch))
        handled += len(batch)
    return handled


SECOND = timedelta(seconds=1)


async def job_as_shown(runtime: Runtime, collection: str, job: str) -> StoredJob:
    """The job as the API shows it: its counters include attempts not yet folded into its row,
    its next execution time an occurrence dispatched but not started."""
    stored = await runtime.store.get_job(collection, job)
    assert stored is not None, f"no job {job}"
    [shown] = await runtime.store.with_status([stored])
    return shown


def api_client(runtime: Runtime) -> httpx.AsyncClient:
    """An HTTP client for the API app bound to `runtime`, in-process (ASGI)."""

    async def provide() -> Runtime:
        return runtime

    transport = httpx.ASGITransport(app=create_api(provide, iot_policies=[OWNER]))
    return httpx.AsyncClient(
        transport=transport, base_url="http://test", auth=SignIotRequests(OWNER)
    )
