"""A real worker process killed mid-broadcast: another process takes over when the leases end.

The worker is `python -m devhost` running function_app.py (as tests/e2e/test_crash_takeover.py
starts it). Three devices answer at once, three hold their answer until released, so the kill
lands while the worker is mid-call on those three. Its queue messages stay invisible for the
host's visibility timeout, so only each claim's watch message (due when its lease ends) can bring
those devices back: a second process takes them over and calls them again with the same
Idempotency-Key; the three that answered are not called again; the statistics end exact."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path

import pytest

from shared.runtime import Runtime
from tests.e2e.test_crash_takeover import start_instance
from tests.support.device_endpoint import DeviceEndpoint
from tests.support.engine import make_runtime, make_settings

pytestmark = pytest.mark.e2e

FAST = ["f0", "f1", "f2"]
HELD = ["h0", "h1", "h2"]
JOB = "crash-bc"


async def until(check: Callable[[], Awaitable[bool]], timeout: float = 30) -> None:
    """Poll the store every 50 ms (as a host polls) until `check()` holds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await check():
        assert loop.time() < deadline, "condition not reached"
        await asyncio.sleep(0.05)


async def statistics(runtime: Runtime) -> dict[str, int]:
    return dict((await runtime.broadcasts.get(JOB)).get("deviceJobStatistics", {}))


async def test_a_broadcast_whose_worker_is_killed_mid_call_is_finished_by_another_process(
    tmp_path: Path, storage_connection: str, unique_name: str
) -> None:
    endpoint = await DeviceEndpoint().start()
    endpoint.held = frozenset(HELD)
    settings = make_settings(storage_connection, unique_name, lease_margin=timedelta(seconds=1))
    observer = await make_runtime(settings)  # registers devices, creates and reads the job
    first = await start_instance(tmp_path, storage_connection, unique_name)
    second = None
    try:
        for device_id in FAST + HELD:
            body = {"deviceId": device_id, "endpoint": {"uri": f"{endpoint.url}?d={device_id}"}}
            await observer.devices.put_device(device_id, body, None)
        request = {
            "type": "scheduleDeviceMethod",
            "cloudToDeviceMethod": {"methodName": "reboot", "responseTimeoutInSeconds": 5},
            "queryCondition": "*",
            "maxExecutionTimeInSeconds": 600,
        }
        await observer.broadcasts.create(JOB, request)
        await endpoint.wait_for(6, timeout=30)  # every device called; three hold their answer

        async def fast_ones_recorded() -> bool:
            return (await statistics(observer)).get("succeededCount") == 3

        await until(fast_ones_recorded)
        first.send_signal(signal.SIGKILL)
        await first.wait()
        assert await statistics(observer) == {
            "deviceCount": 6,
            "failedCount": 0,
            "succeededCount": 3,
            "runningCount": 3,
            "pendingCount": 0,
        }
        endpoint.release()

        second = await start_instance(tmp_path, storage_connection, unique_name)

        async def completed() -> bool:
            return bool((await observer.broadcasts.get(JOB))["status"] == "completed")

        await until(completed)
        assert await statistics(observer) == {
            "deviceCount": 6,
            "failedCount": 0,
            "succeededCount": 6,
            "runningCount": 0,
            "pendingCount": 0,
        }
        for device_id in FAST:
            [call] = endpoint.calls_of(device_id)
            assert call["Idempotency-Key"] == f"{JOB}:{device_id}"
        for device_id in HELD:
            calls = endpoint.calls_of(device_id)
            assert len(calls) == 2, device_id  # at the kill, then by the second process
            assert {c["Idempotency-Key"] for c in calls} == {f"{JOB}:{device_id}"}
        page = await observer.broadcasts.query_device_jobs(
            f"SELECT * FROM devices.jobs WHERE devices.jobs.jobId = '{JOB}'", 100, None
        )
        assert sorted(r["status"] for r in page.items) == ["completed"] * 6
    finally:
        for process in (first, second):
            if process is not None and process.returncode is None:
                process.kill()
                await process.wait()
        await observer.close()
        await endpoint.stop()
