"""(c) Lateness through the real app: function_app.py in devhost (HTTP API, dispatch timer, queue
executor with host.json's polling) on the bench's Azurite, firing 1,000 one-time HTTP jobs at a
sink on 127.0.0.1.

The jobs are created over the API, their starts spread evenly over one minute that begins
LEAD_SECONDS after creation starts: beyond the 120 s lookahead, so the timer dispatches them,
not the API. A temporary project directory holds a copy of host.json, so the run depends on no
local.settings.json and leaves none behind.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from bench.sink import Arrival, ProcessSink
from bench.util import CpuMeter, LoadSampler, bounded, percentile, unique_name
from devhost.azurite import PROJECT_ROOT
from devhost.host import DevHost
from shared import runtime as runtime_module
from shared.config import Settings
from shared.names import CollectionRef
from shared.storage.store import JobStore
from shared.timefmt import to_iso

JOBS = 1_000
COLLECTION = "lateness"
SCHEDULE = "0 * * * * *"  # the production default: one pass a minute, at second 0
LOOKAHEAD_SECONDS = 120  # Settings' default, which the app uses here
LEAD_SECONDS = 150
WINDOW_SECONDS = 60
API_IN_FLIGHT = 16
# Give up this long after the last start time; a healthy run ends seconds after it.
DEADLINE_AFTER_WINDOW_SECONDS = 90
# After the last expected request, listen this much longer for duplicates.
DUPLICATE_GRACE_SECONDS = 3.0


@dataclass
class TimerPass:
    at: str
    duration_ms: float
    summary: str = ""


class AppLog(logging.Handler):
    """Reads the app's own log lines: the dispatch timer's passes (the dispatcher's summary
    comes first, then devhost's "Executed" line with the duration), and when the executor
    started each attempt ("Attempt: ... lateness=" = start - due, before the HTTP call)."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.passes: list[TimerPass] = []
        self.started_late_ms: dict[tuple[str, str], float] = {}  # (job, nominal) -> ms
        self._summary = ""

    def emit(self, record: logging.LogRecord) -> None:
        args = record.args if isinstance(record.args, tuple) else ()
        message = str(record.msg)
        if record.name == "shared.engine.dispatcher" and message.startswith("Dispatch pass"):
            self._summary = record.getMessage()
        elif record.name == "shared.engine.executor" and message.startswith("Attempt:"):
            # "Attempt: collection=.. job=.. nominal=.. phase=.. attempt=.. outcome=.. lateness=..s"
            fields = dict(part.split("=", 1) for part in record.getMessage().split() if "=" in part)
            nominal = datetime.fromisoformat(fields["nominal"])
            late = float(fields["lateness"].rstrip("s"))
            self.started_late_ms[(fields["job"], to_iso(nominal))] = 1000 * late
        elif record.name == "devhost.invoker" and args and args[0] == "dispatch_due_jobs":
            duration_ms = float(str(args[2]))
            started = datetime.fromtimestamp(record.created - duration_ms / 1000, UTC)
            self.passes.append(TimerPass(started.strftime("%H:%M:%S.%f")[:-3], duration_ms))
            self.passes[-1].summary, self._summary = self._summary, ""


@dataclass
class Creation:
    seconds: float
    within_lookahead: int  # jobs the API itself may have dispatched (start - created <= 120 s)


def job_body(sink_url: str, start: datetime) -> dict[str, Any]:
    return {
        "properties": {
            "startTime": to_iso(start),
            "action": {"type": "Http", "request": {"uri": f"{sink_url}/fire", "method": "POST"}},
        }
    }


async def create_jobs(api_url: str, sink_url: str, window_start: datetime) -> Creation:
    """PUT the collection, then the jobs over HTTP, 16 at a time; startTime has whole seconds."""
    starts = [window_start + timedelta(seconds=i * WINDOW_SECONDS // JOBS) for i in range(JOBS)]
    created: list[datetime] = [window_start] * JOBS
    started = time.perf_counter()
    async with httpx.AsyncClient(base_url=api_url, timeout=60) as client:
        response = await client.put(f"/jobCollections/{COLLECTION}", json={})
        response.raise_for_status()

        async def put(i: int) -> None:
            answer = await client.put(
                f"/jobCollections/{COLLECTION}/jobs/job-{i:04d}", json=job_body(sink_url, starts[i])
            )
            answer.raise_for_status()
            created[i] = datetime.now(UTC)

        await bounded(API_IN_FLIGHT, (put(i) for i in range(JOBS)))
    within = sum(
        (start - at).total_seconds() <= LOOKAHEAD_SECONDS
        for start, at in zip(starts, created, strict=True)
    )
    return Creation(time.perf_counter() - started, within)


async def wait_until(changed: asyncio.Event, done: Any, deadline: float) -> bool:
    """Wake on each sink request until `done()` holds or the monotonic `deadline` passes."""
    loop = asyncio.get_running_loop()
    while True:
        changed.clear()
        if done():
            return True
        remaining = deadline - loop.time()
        if remaining <= 0:
            return False
        try:
            await asyncio.wait_for(changed.wait(), remaining)
        except TimeoutError:
            pass


def distinct_jobs(arrivals: list[Arrival]) -> int:
    return len({(a.job, a.expected) for a in arrivals})


def summarize(
    arrivals: list[Arrival], started_late_ms: dict[tuple[str, str], float]
) -> dict[str, Any]:
    """Lateness of each occurrence's first request; duplicates and missing jobs; and how late
    the executor started the attempts (the rest of the lateness is the HTTP call)."""
    first: dict[tuple[str, str], Arrival] = {}
    for arrival in sorted(arrivals, key=lambda a: a.at):
        first.setdefault((arrival.job, arrival.expected), arrival)
    late_by_expected = sorted(
        (a.expected, (a.at - datetime.fromisoformat(a.expected)).total_seconds() * 1000)
        for a in first.values()
    )
    late_ms = [ms for _, ms in late_by_expected]
    by_second: dict[str, list[float]] = {}
    started_by_second: dict[str, list[float]] = {}
    for expected, ms in late_by_expected:
        by_second.setdefault(expected, []).append(ms)
    for (_, nominal), ms in started_late_ms.items():
        started_by_second.setdefault(nominal, []).append(ms)
    started = list(started_late_ms.values())
    arrived = {job for job, _ in first}
    expected_jobs = {f"job-{i:04d}" for i in range(JOBS)}
    return {
        "requests": len(arrivals),
        "distinct": len(first),
        "duplicates": len(arrivals) - len(first),
        "missing": sorted(expected_jobs - arrived),
        "unexpected": sorted(arrived - expected_jobs),
        "p50_ms": percentile(late_ms, 50) if late_ms else None,
        "p90_ms": percentile(late_ms, 90) if late_ms else None,
        "p99_ms": percentile(late_ms, 99) if late_ms else None,
        "max_ms": max(late_ms) if late_ms else None,
        "min_ms": min(late_ms) if late_ms else None,
        "early": sum(ms < 0 for ms in late_ms),
        "started_p50_ms": percentile(started, 50) if started else None,
        "started_p99_ms": percentile(started, 99) if started else None,
        # Per expected second (about 17 jobs each): how many, median and worst lateness.
        "by_second": [
            {
                "expected": second,
                "jobs": len(ms),
                "p50_ms": percentile(ms, 50),
                "max_ms": max(ms),
                "started_p50_ms": percentile(started_by_second.get(second) or [0.0], 50),
            }
            for second, ms in by_second.items()
        ],
    }


async def measure_lateness(connection: str, meter: CpuMeter) -> dict[str, Any]:
    prefix = unique_name("late")
    changed = asyncio.Event()
    sink = await ProcessSink(changed).start()
    sampler = LoadSampler(meter)
    loop = asyncio.get_running_loop()
    with watching_app_log() as app_log, tempfile.TemporaryDirectory() as project:
        shutil.copy(PROJECT_ROOT / "host.json", Path(project) / "host.json")
        host = DevHost(
            "function_app:app",
            project_dir=Path(project),
            settings_overrides=app_settings(connection, prefix),
            port=0,
        )
        try:
            await host.start()
            begun = datetime.now(UTC)
            window_start = (begun + timedelta(seconds=LEAD_SECONDS + 1)).replace(microsecond=0)
            creation = await create_jobs(host.api_url, sink.url, window_start)
            last_start = window_start + timedelta(seconds=WINDOW_SECONDS)
            deadline = loop.time() + (last_start - datetime.now(UTC)).total_seconds()
            sampler.start()
            with meter.measure() as waiting:
                completed = await wait_until(
                    changed,
                    lambda: distinct_jobs(sink.snapshot()) >= JOBS,
                    deadline + DEADLINE_AFTER_WINDOW_SECONDS,
                )
            await sampler.stop()
            if completed:
                await asyncio.sleep(DUPLICATE_GRACE_SECONDS)  # room for a late duplicate
        finally:
            await sampler.stop()
            await host.stop()
            await _close_app_runtime()
            await sink.stop()
    result = summarize(sink.snapshot(), app_log.started_late_ms)
    for second in result["by_second"]:
        # The load from a second before the jobs were due until the last of them arrived.
        due = datetime.fromisoformat(second["expected"]).timestamp()
        second["load"] = sampler.around(due - 1, due + second["max_ms"] / 1000)
    result["stored"] = await stored_state(connection, prefix)
    result.update(
        schedule=SCHEDULE,
        created_via=f"HTTP API (httpx, {API_IN_FLIGHT} in flight)",
        creation_s=creation.seconds,
        within_lookahead_at_creation=creation.within_lookahead,
        window_start=to_iso(window_start),
        lead_s=(window_start - begun).total_seconds(),
        completed=completed,
        waiting_cpu=vars(waiting),
        timer_passes=[vars(p) for p in app_log.passes],
    )
    return result


def app_settings(connection: str, prefix: str) -> dict[str, str]:
    """The app settings devhost puts in the environment; they win over any local.settings."""
    return {
        "AzureWebJobsStorage": connection,
        "SCHEDULER_TABLE_PREFIX": prefix,
        "SCHEDULER_EXECUTION_QUEUE": f"{prefix}-exec",
        "SCHEDULER_DEVICE_WORK_QUEUE": f"{prefix}-dw",
        "SCHEDULER_DISPATCH_QUEUE": f"{prefix}-disp",
        "DISPATCH_SCHEDULE": SCHEDULE,
        # HTTP actions may not reach loopback unless allowed (shared/kinds/http/network_guard.py).
        "SCHEDULER_ALLOWED_NETWORKS": "loopback",
    }


@contextmanager
def watching_app_log() -> Iterator[AppLog]:
    """Route the app's INFO lines we read to an AppLog (the console still shows WARNING+)."""
    app_log = AppLog()
    loggers = [
        logging.getLogger(name)
        for name in ("devhost.invoker", "shared.engine.dispatcher", "shared.engine.executor")
    ]
    for logger in loggers:
        logger.setLevel(logging.INFO)
        logger.addHandler(app_log)
    # devhost's own CLI hides this too: leaving the loop cancels the ASGI lifespan task.
    logging.getLogger("azure.functions.AsgiMiddleware").addFilter(_no_shutdown_failure)
    try:
        yield app_log
    finally:
        for logger in loggers:
            logger.removeHandler(app_log)


async def stored_state(connection: str, prefix: str) -> dict[str, Any]:
    """What the app's tables say afterwards: each job's state, and runs still in flight (a
    one-time job that fired and was recorded is Completed and has no run row left)."""
    store = JobStore.from_settings(Settings(storage_connection=connection, table_prefix=prefix))
    table = store.table_for(CollectionRef.parse(COLLECTION).key)
    try:
        states: Counter[str] = Counter()
        async for entity in table.query_entities(
            "RowKey ge 'job|' and RowKey lt 'job}'", select=["state"]
        ):
            states[entity["state"]] += 1
        runs = [
            entity["RowKey"]
            async for entity in table.query_entities(
                "RowKey ge 'run|' and RowKey lt 'run}'", select=["RowKey"]
            )
        ]
    finally:
        await store.close()
    return {"job_states": dict(states), "runs_left": runs}


def _no_shutdown_failure(record: logging.LogRecord) -> bool:
    return not record.getMessage().startswith("Failed ASGI shutdown")


async def _close_app_runtime() -> None:
    """The app builds its Runtime lazily per event loop and nothing closes it on host stop;
    close it here so its storage clients do not outlive the loop."""
    runtimes = getattr(runtime_module, "_runtimes", {})
    runtime = runtimes.pop(asyncio.get_running_loop(), None)
    if runtime is not None:
        await runtime.close()
