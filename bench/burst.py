"""(e) Bursts through the real app: N daily HTTP jobs ("every day at 09:00", the commonest
schedule) due at the SAME second (1,000, 5,000 and 10,000 by default), created over the API far
enough ahead that the dispatch timer, not the API, dispatches them (the adaptive lead,
shared/engine/lead.py, and the dispatch queue's slices), in devhost on the bench's Azurite, firing
at a sink on 127.0.0.1.

For each burst: did the last "Dispatched" (its message on the queue) come before the second, and
by how much; the time from the second to the last arrival at the sink; p50/p99 lateness; and
the floor, measured in the same run just before the burst and again just after it (the lower
of the two counts: Azurite removes deleted messages a minute later, in one sweep that stalls it
for seconds, and that may land in either; from 5,000 on, where the floor takes minutes, once,
before): how long the same Azurite takes to receive (32 per
request, as the host) and delete N plain messages, two receivers (host.json's batchSize +
newBatchThreshold: 64 in flight), plus how long the sink takes to answer N requests (64 in
flight).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import shutil
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import httpx
from azure.core.exceptions import ResourceNotFoundError
from azure.storage.queue import QueueMessage, TextBase64EncodePolicy
from azure.storage.queue.aio import QueueClient

from bench.lateness import (
    LOOKAHEAD_SECONDS,
    SCHEDULE,
    _close_app_runtime,
    app_settings,
    wait_until,
    watching_app_log,
)
from bench.sink import ProcessSink
from bench.util import CpuMeter, bounded, percentile, unique_name
from devhost.azurite import PROJECT_ROOT
from devhost.host import DevHost
from shared.engine.lead import lead_for
from shared.timefmt import to_iso

SIZES = (1_000, 5_000, 10_000)
COLLECTION = "burst"
API_IN_FLIGHT = 16
# Jobs the API creates per second, at worst, to place the second beyond creation + lead.
CREATE_RATE_FLOOR = 40.0
SPARE_SECONDS = 30
HOST_IN_FLIGHT = 64  # the floor: two receivers of 32 (a host fetch), deletes as they come
DEADLINE_AFTER_SECOND = 300
DUPLICATE_GRACE_SECONDS = 3.0
ONE_FLOOR_FROM = 5_000  # bursts this big measure their floor once, before the burst


class DispatchLog(logging.Handler):
    """When each occurrence's message went on the queue (the dispatcher's "Dispatched:" line)."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.last_at = 0.0
        self.count = 0
        self.slices = 0
        self.passes: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        message = str(record.msg)
        if message.startswith("Dispatched:"):
            self.count += 1
            self.last_at = max(self.last_at, record.created)
        elif message.startswith(("Dispatch slice", "Dispatch pass")):
            text = record.getMessage()
            self.slices += message.startswith("Dispatch slice")
            if message.startswith("Dispatch pass"):
                self.passes.append(text)
            # A recovered row had its run made but its row not deleted (a storage error after
            # the send): its message is sent again now, and that is when it is on the queue.
            found = re.search(r"(\d+) recovered", text)
            if found and int(found.group(1)):
                self.count += int(found.group(1))
                self.last_at = max(self.last_at, record.created)


def job_body(sink_url: str, due: datetime) -> dict[str, Any]:
    """A job due every day at `due`'s time of day, first at `due`."""
    return {
        "properties": {
            "startTime": to_iso(due),
            "recurrence": {"frequency": "Day", "interval": 1},
            "action": {"type": "Http", "request": {"uri": f"{sink_url}/fire", "method": "POST"}},
        }
    }


async def create_burst(api_url: str, sink_url: str, jobs: int, due: datetime) -> float:
    started = time.perf_counter()
    async with httpx.AsyncClient(base_url=api_url, timeout=60) as client:
        (await client.put(f"/jobCollections/{COLLECTION}", json={})).raise_for_status()

        async def put(i: int) -> None:
            answer = await client.put(
                f"/jobCollections/{COLLECTION}/jobs/job-{i:05d}", json=job_body(sink_url, due)
            )
            answer.raise_for_status()

        await bounded(API_IN_FLIGHT, (put(i) for i in range(jobs)))
    return time.perf_counter() - started


async def one_burst(connection: str, jobs: int, meter: CpuMeter) -> dict[str, Any]:
    prefix = unique_name("burst")
    changed = asyncio.Event()
    sink = await ProcessSink(changed).start()
    dispatch_log = DispatchLog()
    dispatcher_logger = logging.getLogger("shared.engine.dispatcher")
    loop = asyncio.get_running_loop()
    floor_before = await measure_floor(connection, jobs)
    with watching_app_log(), tempfile.TemporaryDirectory() as project:
        dispatcher_logger.addHandler(dispatch_log)
        shutil.copy(PROJECT_ROOT / "host.json", Path(project) / "host.json")
        host = DevHost(
            "function_app:app",
            project_dir=Path(project),
            settings_overrides=app_settings(connection, prefix),
            port=0,
        )
        try:
            await host.start()
            ahead = jobs / CREATE_RATE_FLOOR + LOOKAHEAD_SECONDS + SPARE_SECONDS
            ahead += lead_for(jobs).total_seconds()
            due = (datetime.now(UTC) + timedelta(seconds=ahead)).replace(microsecond=0)
            creation_s = await create_burst(host.api_url, sink.url, jobs, due)
            created_ahead = (due - datetime.now(UTC)).total_seconds()
            deadline = loop.time() + (due - datetime.now(UTC)).total_seconds()
            with meter.measure() as waiting:
                completed = await wait_until(
                    changed,
                    lambda: len({a.job for a in sink.snapshot()}) >= jobs,
                    deadline + DEADLINE_AFTER_SECOND,
                )
            if completed:
                await asyncio.sleep(DUPLICATE_GRACE_SECONDS)  # room for a late duplicate
        finally:
            dispatcher_logger.removeHandler(dispatch_log)
            await host.stop()
            await _close_app_runtime()
            await sink.stop()
    arrivals = sink.snapshot()
    first: dict[str, datetime] = {}
    for arrival in sorted(arrivals, key=lambda a: a.at):
        first.setdefault(arrival.job, arrival.at)
    late_ms = sorted((at - due).total_seconds() * 1000 for at in first.values())
    last_dispatch = (
        datetime.fromtimestamp(dispatch_log.last_at, UTC) if dispatch_log.count else None
    )
    # The sweep's stall (seconds) matters beside a small floor only; a big one takes minutes
    # (Azurite's queue slows with every message it holds): measured once, before.
    floor_after = await measure_floor(connection, jobs) if jobs < ONE_FLOOR_FROM else floor_before
    floor = min(floor_before, floor_after, key=lambda f: f["floor_s"])
    return {
        "jobs": jobs,
        "due": to_iso(due),
        "creation_s": creation_s,
        "created_ahead_s": created_ahead,
        "dispatched": dispatch_log.count,
        "slices": dispatch_log.slices,
        "passes": [p for p in dispatch_log.passes if not p.startswith("Dispatch pass: 0 ")],
        "dispatch_margin_s": (due - last_dispatch).total_seconds() if last_dispatch else None,
        "arrived": len(first),
        "duplicates": len(arrivals) - len(first),
        "last_arrival_s": late_ms[-1] / 1000 if late_ms else None,
        "p50_ms": percentile(late_ms, 50) if late_ms else None,
        "p99_ms": percentile(late_ms, 99) if late_ms else None,
        "early": sum(ms < 0 for ms in late_ms),
        "completed": completed,
        "waiting_cpu": vars(waiting),
        **floor,
        "floor_before_s": floor_before["floor_s"],
        "floor_after_s": floor_after["floor_s"],
    }


async def measure_floor(connection: str, count: int) -> dict[str, float]:
    """The same Azurite receiving and deleting `count` plain messages, and the sink answering
    `count` requests, each 64 in flight: what the burst cannot beat."""
    client = QueueClient.from_connection_string(
        connection, unique_name("floor"), message_encode_policy=TextBase64EncodePolicy()
    )
    async with client:
        await client.create_queue()
        await bounded(32, (client.send_message("x" * 120, time_to_live=-1) for _ in range(count)))
        started = time.perf_counter()

        async def worker() -> None:
            while True:
                batch = [
                    m
                    async for m in client.receive_messages(
                        max_messages=32, messages_per_page=32, visibility_timeout=600
                    )
                ]
                if not batch:
                    return
                await asyncio.gather(*(delete(m) for m in batch))

        async def delete(message: QueueMessage) -> None:
            # At 10,000 messages Azurite took over 600 s: a message surfaced again, the other
            # receiver took it, and its first receipt no longer deletes it (the second does).
            with contextlib.suppress(ResourceNotFoundError):
                await client.delete_message(message)

        await asyncio.gather(*(worker() for _ in range(HOST_IN_FLIGHT // 32)))
        queue_s = time.perf_counter() - started
    sink = await ProcessSink(asyncio.Event()).start()
    try:
        # aiohttp, as the app's HTTP actions send (shared/kinds/http/pinned_transport.py).
        connector = aiohttp.TCPConnector(limit=HOST_IN_FLIGHT)
        async with aiohttp.ClientSession(connector=connector) as http:

            async def post() -> None:
                async with http.post(f"{sink.url}/floor") as answer:
                    await answer.read()

            started = time.perf_counter()
            await bounded(HOST_IN_FLIGHT, (post() for _ in range(count)))
            sink_s = time.perf_counter() - started
    finally:
        await sink.stop()
    return {"floor_queue_s": queue_s, "floor_sink_s": sink_s, "floor_s": queue_s + sink_s}


async def measure_bursts(
    connection: str,
    meter: CpuMeter,
    sizes: tuple[int, ...] = SIZES,
    measured: Callable[[dict[str, Any]], None] = lambda _: None,
) -> dict[str, Any]:
    """Each burst in turn; `measured` is given the figures so far after each one."""
    figures: dict[str, Any] = {"schedule": SCHEDULE, "runs": []}
    for jobs in sizes:
        print(f"(e)     burst of {jobs:,} occurrences at one second ...", flush=True)
        figures["runs"].append(await one_burst(connection, jobs, meter))
        measured(figures)
    return figures


__all__ = ["SIZES", "measure_bursts"]
