"""bench (c)'s sink runs in a process of its own, so the app's GIL does not delay its stamps."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
from datetime import UTC, datetime

import httpx

from bench.sink import EXPECTED_HEADER, JOB_HEADER, ProcessSink


async def test_the_sink_stamps_arrivals_in_its_own_process() -> None:
    changed = asyncio.Event()
    sink = await ProcessSink(changed).start()
    try:
        assert sink.pid is not None and sink.pid != os.getpid()
        before = datetime.now(UTC)
        headers = {EXPECTED_HEADER: "2030-01-01T00:00:00Z", JOB_HEADER: "job-0001"}
        async with httpx.AsyncClient() as client:
            answer = await client.post(f"{sink.url}/fire", headers=headers, content=b"x")
        assert answer.status_code == 200
        await asyncio.wait_for(changed.wait(), 10)
        [arrival] = sink.snapshot()
        assert (arrival.expected, arrival.job) == ("2030-01-01T00:00:00Z", "job-0001")
        assert before <= arrival.at <= datetime.now(UTC)
    finally:
        await sink.stop()
    assert sink.pid not in {child.pid for child in multiprocessing.active_children()}
