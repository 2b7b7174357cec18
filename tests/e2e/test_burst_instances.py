"""A burst through real processes: two app instances (`python -m devhost` running
function_app.py) take the slices a timer pass hands out on the dispatch queue, each slice twice
(the pass runs twice), and each of a few hundred occurrences due at one second reaches the
sink exactly once."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from shared.clock import FixedClock
from shared.concurrency import run_bounded
from shared.model.job import JobState
from shared.names import CollectionRef
from shared.timefmt import to_iso
from tests.e2e.test_crash_takeover import start_instance
from tests.support.engine import make_runtime, make_settings
from tests.support.http_target import HttpTarget

pytestmark = pytest.mark.e2e

REF = CollectionRef.parse("burst")
JOBS = 300
LEAD_SECONDS = 25


async def drain(process: asyncio.subprocess.Process, lines: list[str]) -> None:
    """Read the instance's output as it comes, so a full pipe never blocks its logging."""
    assert process.stdout is not None
    async for line in process.stdout:
        lines.append(line.decode(errors="replace"))


async def test_two_instances_dispatch_a_burst_each_occurrence_once(
    tmp_path: Path, storage_connection: str, unique_name: str
) -> None:
    target = await HttpTarget().start()
    folders = [tmp_path / f"instance{number}" for number in range(2)]
    for folder in folders:
        folder.mkdir()
    started = await asyncio.gather(  # together: each takes seconds to import the app
        *(start_instance(folder, storage_connection, unique_name) for folder in folders),
        return_exceptions=True,
    )
    instances = [i for i in started if isinstance(i, asyncio.subprocess.Process)]
    if len(instances) < len(started):  # one failed to start: stop the other, then say why
        for instance in instances:
            instance.kill()
            await instance.wait()
        raise next(e for e in started if isinstance(e, BaseException))
    output: list[list[str]] = [[] for _ in instances]
    drains = [
        asyncio.create_task(drain(instance, lines))
        for instance, lines in zip(instances, output, strict=True)
    ]
    settings = make_settings(storage_connection, unique_name)
    # Time to create the jobs (a few seconds; asserted below to leave 5 s) and dispatch them.
    due = (datetime.now(UTC) + timedelta(seconds=LEAD_SECONDS)).replace(microsecond=0)
    creator = await make_runtime(settings, FixedClock(due - timedelta(days=1)))
    timer = await make_runtime(settings)  # the real clock, as the timer's instance has
    try:
        await creator.jobs.put_collection(REF, {"properties": {"state": "Enabled"}})
        job = {
            "properties": {
                "startTime": to_iso(due),
                "action": {"type": "Http", "request": {"uri": f"{target.url}/burst"}},
            }
        }

        async def put(index: int) -> None:
            await creator.jobs.put_job(REF, f"b{index:04d}", job)

        await run_bounded(16, put, range(JOBS))
        assert datetime.now(UTC) < due - timedelta(seconds=5), "the jobs took too long to create"
        first = await timer.dispatcher.dispatch_due(spread=True)
        again = await timer.dispatcher.dispatch_due(spread=True)  # every slice handed out twice
        assert first.handed_out == again.handed_out == 3
        wait = (due - datetime.now(UTC)).total_seconds() + 60
        await target.wait_for(JOBS, timeout=wait)

        async def all_completed() -> bool:
            found = await timer.store.get_jobs((REF.key, f"b{i:04d}") for i in range(JOBS))
            return all(job.state is JobState.COMPLETED for job in found.values())

        deadline = asyncio.get_running_loop().time() + 30
        while not await all_completed():  # every attempt recorded: no call is still to come
            assert asyncio.get_running_loop().time() < deadline, "runs still in flight"
            await asyncio.sleep(0.2)  # polls storage, as the host polls its queues
        keys = [r.headers["Idempotency-Key"] for r in target.requests]
        assert len(keys) == JOBS and len(set(keys)) == JOBS
        assert min(r.at for r in target.requests) >= due, "an occurrence fired before its second"
        slices = sum("Dispatch slice" in line for lines in output for line in lines)
        assert slices >= 3, "the instances dispatched the slices"
    finally:
        for instance in instances:
            if instance.returncode is None:
                instance.terminate()
                await instance.wait()
        for task in drains:
            task.cancel()
        await creator.close()
        await timer.close()
        await target.stop()
