"""Continuous WebJobs against Azurite with real child processes: a holder per job (a lease row),
hand-overs at the end of each time slice, restarts after a crash, stop and start, and the
timer's watch restarting a job whose holder is gone."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from shared.kinds.webjob import WebJobSettings
from shared.kinds.webjob.catalog import WEBJOBS_REF
from shared.kinds.webjob.continuous import CONTINUOUS_MESSAGE
from shared.runtime import Runtime
from shared.storage.continuous import RUNNING, ContinuousRow, ContinuousRows
from shared.storage.device_work import DeviceWorkQueue, WorkMessage
from tests.support.engine import api_client
from tests.support.webjobs import write_job

pytestmark = pytest.mark.integration

Build = Callable[..., Awaitable[Runtime]]

LOOPER = """\
import os, time
shutdown = os.environ["WEBJOBS_SHUTDOWN_FILE"]
print("type=" + os.environ["WEBJOBS_TYPE"])
n = 0
while not os.path.exists(shutdown):
    print(f"line {n}")
    n += 1
    time.sleep(0.1)
print("shutdown file seen")
"""

CRASHER = """\
import sys, time
for n in range(3):
    print(f"line {n}")
    time.sleep(0.1)
print("crashing")
sys.exit(3)
"""


async def continuous_runtime(
    runtimes: Build, root: Path, slice_seconds: float, restart_delay: float
) -> Runtime:
    options = WebJobSettings(
        root=root,
        continuous_slice_seconds=slice_seconds,
        continuous_restart_delay_seconds=restart_delay,
    )
    return await runtimes(kind_settings={"WebJob": options})


@pytest.fixture
async def host(runtimes: Build, tmp_path: Path) -> AsyncIterator[Callable[..., Awaitable[Runtime]]]:
    """A runtime plus a worker doing what the Functions host does with the device-work queue:
    each message is an invocation of its own (here a task), deleted once received."""
    tasks: set[asyncio.Task[None]] = set()
    workers: list[asyncio.Task[None]] = []
    queues: list[DeviceWorkQueue] = []

    async def serve(runtime: Runtime, queue: DeviceWorkQueue) -> None:
        while True:
            async for message in queue.client.receive_messages(max_messages=16):
                await queue.client.delete_message(message)
                work = WorkMessage.from_json(message.content)
                if work.action == CONTINUOUS_MESSAGE:
                    tasks.add(asyncio.create_task(runtime.continuous.handle(work.job_id)))
            await asyncio.sleep(0.05)  # the host's polling interval, not a synchronisation

    async def build(
        script: str, body: str, slice_seconds: float = 30, delay: float = 60
    ) -> Runtime:
        write_job(tmp_path, "continuous", "worker", script, body)
        runtime = await continuous_runtime(runtimes, tmp_path, slice_seconds, delay)
        queue = await DeviceWorkQueue.from_connection_string(
            runtime.settings.storage_connection, runtime.settings.device_work_queue
        ).ensure()
        queues.append(queue)
        workers.append(asyncio.create_task(serve(runtime, queue)))
        return runtime

    yield build
    for worker in workers:
        worker.cancel()
    await asyncio.gather(*workers, return_exceptions=True)
    await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 30)
    for queue in queues:
        await queue.close()


async def runs_of(runtime: Runtime) -> list[list[str]]:
    """Each run's output lines, oldest run first (by the time of its first line)."""
    outputs = runtime.store.outputs
    runs = []
    for name in await outputs.job_outputs(WEBJOBS_REF.key, "continuous-worker"):
        found = await outputs.read(name)
        if found is not None and found.data:
            runs.append(found.data.decode().splitlines())
    return sorted(runs, key=lambda lines: lines[0])


def stamp(line: str) -> datetime:
    return datetime.strptime(line.split(" ", 1)[0], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 30) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await check():
        if loop.time() > deadline:
            raise TimeoutError("condition not reached")
        await asyncio.sleep(0.05)


async def status_is(runtime: Runtime, wanted: str) -> bool:
    return (await runtime.continuous.status("worker")).status == wanted


async def test_hands_over_each_slice_then_stops_and_starts_again(host: Build) -> None:
    runtime = await host("run.py", LOOPER, slice_seconds=2)
    assert await status_is(runtime, "Stopped")
    await runtime.continuous.start("worker")

    async def three_runs_and_running() -> bool:
        runs = await runs_of(runtime)
        return len(runs) >= 3 and any("line 3" in line for line in runs[-1])

    await eventually(three_runs_and_running)
    assert await status_is(runtime, "Running")
    runs = await runs_of(runtime)
    for ended, next_run in zip(runs, runs[1:], strict=False):
        text = "\n".join(ended)
        assert "Handing over to the next invocation" in text
        assert "shutdown file seen" in text  # a graceful stop, not a kill
        assert "type=continuous" in text
        assert stamp(next_run[0]) - stamp(ended[-1]) < timedelta(seconds=5)

    await runtime.continuous.stop("worker")
    await eventually(lambda: status_is(runtime, "Stopped"))
    last = "\n".join((await runs_of(runtime))[-1])
    assert "Stop requested" in last and "shutdown file seen" in last
    count = len(await runs_of(runtime))

    await runtime.continuous.start("worker")

    async def runs_again() -> bool:
        runs = await runs_of(runtime)
        return len(runs) > count and any("line 2" in line for line in runs[-1])

    await eventually(runs_again)
    assert await status_is(runtime, "Running")
    await runtime.continuous.stop("worker")
    await eventually(lambda: status_is(runtime, "Stopped"))


async def test_a_crash_restarts_after_the_delay(host: Build) -> None:
    runtime = await host("run.py", CRASHER, delay=1)
    await runtime.continuous.start("worker")
    await eventually(lambda: status_is(runtime, "PendingRestart"))
    detail = (await runtime.continuous.status("worker")).detail
    assert "exit code 3" in detail

    async def two_runs() -> bool:
        return len(await runs_of(runtime)) >= 2

    await eventually(two_runs)
    first, second = (await runs_of(runtime))[:2]
    assert "Process went down with exit code 3" in "\n".join(first)
    gap = stamp(second[0]) - stamp(first[-1])
    assert timedelta(seconds=0.9) <= gap < timedelta(seconds=5)
    async with api_client(runtime) as client:  # Kudu's log_url is the current run's output
        shown = (await client.get("/api/continuouswebjobs/worker")).json()
        assert shown["status"] in {"Running", "PendingRestart"}
        log = await client.get(shown["log_url"])
        assert log.status_code == 200 and "line 0" in log.text
    await runtime.continuous.stop("worker")
    await eventually(lambda: status_is(runtime, "Stopped"))


async def test_the_watch_restarts_a_job_whose_holder_is_gone(host: Build) -> None:
    runtime = await host("run.py", LOOPER, delay=1)
    rows = await ContinuousRows.from_connection_string(
        runtime.settings.storage_connection, runtime.settings.continuous_table
    ).ensure()
    try:
        # A holder that died: it took the lease and stopped renewing it.
        now = datetime.now(UTC)
        abandoned = ContinuousRow(
            "worker", RUNNING, RUNNING, holder="dead", lease_until=now - timedelta(seconds=1)
        )
        assert await rows.write(abandoned) is not None
        assert await status_is(runtime, "PendingRestart")
        assert await runtime.continuous.watch() == 1
        assert await runtime.continuous.watch() == 0  # once is enough

        async def running_again() -> bool:
            runs = await runs_of(runtime)
            return bool(runs) and any("line 2" in line for line in runs[-1])

        await eventually(running_again)
        assert await status_is(runtime, "Running")
        await runtime.continuous.stop("worker")
        await eventually(lambda: status_is(runtime, "Stopped"))
    finally:
        await rows.close()
