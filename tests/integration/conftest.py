"""Integration fixtures: a runtime per test on the session's Azurite, and HTTP targets."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from shared.clock import Clock, FixedClock
from shared.kinds.http.runner import HttpActionRunner
from shared.runtime import Runtime
from shared.storage.device_work import DeviceWorkQueue
from tests.support.device_endpoint import DeviceEndpoint
from tests.support.engine import API_NOW, make_runtime, make_settings
from tests.support.http_target import HttpTarget


@pytest.fixture
async def runtimes(
    storage_connection: str, unique_name: str
) -> AsyncIterator[Callable[..., Awaitable[Runtime]]]:
    """Builds runtimes sharing this test's tables and queue (several = several app instances)."""
    made: list[Runtime] = []

    async def build(clock: Clock | None = None, **overrides: object) -> Runtime:
        runtime = await make_runtime(
            make_settings(storage_connection, unique_name, **overrides), clock
        )
        made.append(runtime)
        return runtime

    yield build
    for runtime in made:
        await runtime.close()


@pytest.fixture
async def runtime(runtimes: Callable[..., Awaitable[Runtime]]) -> Runtime:
    """One app instance whose clock stands still at API_NOW (the API tests)."""
    return await runtimes(clock=FixedClock(API_NOW))


@pytest.fixture
async def runner() -> AsyncIterator[HttpActionRunner]:
    """The HTTP action runner, its connections closed after the test."""
    made = HttpActionRunner()
    try:
        yield made
    finally:
        await made.aclose()


@pytest.fixture
async def target() -> AsyncIterator[HttpTarget]:
    server = await HttpTarget().start()
    yield server
    await server.stop()


@pytest.fixture
async def error_target() -> AsyncIterator[HttpTarget]:
    server = await HttpTarget().start()
    yield server
    await server.stop()


@pytest.fixture
async def device_endpoint() -> AsyncIterator[DeviceEndpoint]:
    """A device's endpoint on 127.0.0.1 (direct methods, desired pushes)."""
    endpoint = await DeviceEndpoint().start()
    yield endpoint
    await endpoint.stop()


@pytest.fixture
async def work(runtime: Runtime) -> AsyncIterator[DeviceWorkQueue]:
    """The runtime's device-work queue, to inspect or work its messages."""
    queue = DeviceWorkQueue.from_connection_string(
        runtime.settings.storage_connection, runtime.settings.device_work_queue
    )
    yield queue
    await queue.close()
