"""(a) The cost of one timer pass: `dispatch_due()` over 1,000 due one-time jobs, alone in their
tables or beside 100,000 stored jobs whose next occurrence is days ahead.

The due jobs are created through the management API (the FastAPI app, in process, over
httpx's ASGI transport) on a runtime whose FixedClock reads a day before their start, so
creation does not dispatch them; the clock then moves to one second before the first start and
exactly one pass is timed. Going through the API keeps the bench independent of how the service
keys collections internally.

The 100,000 other jobs are written as rows in the store's own entity format (`job_entity`)
through batch transactions, and indexed with the due index's `put_many`; that is not measured.
Their collections are created through the API.
"""

from __future__ import annotations

import asyncio
import cProfile
import inspect
import io
import multiprocessing
import pstats
from collections import defaultdict
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import asynccontextmanager, contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import httpx

from bench.util import CpuMeter, CpuSample, bounded, count_requests, unique_name
from shared.api.app import create_api
from shared.clock import FixedClock
from shared.config import Settings
from shared.engine import dispatcher as dispatcher_module
from shared.engine.dispatcher import DispatchReport
from shared.engine.records import DueEntry, StoredJob
from shared.model.job import JobProperties, JobState
from shared.names import CollectionRef
from shared.runtime import Runtime
from shared.storage.codecs import job_entity
from shared.storage.store import JobStore
from shared.storage.table_batch import MAX_OPERATIONS, Kind, Operation, submit
from shared.timefmt import to_iso

Row = TypeVar("Row")

DUE_JOBS = 1_000
OTHER_JOBS = 100_000
OTHER_COLLECTIONS = 4
REPEATS = 3
# Port 9 (discard) on loopback: a valid action nobody answers; the executor does not run in (a).
UNREACHABLE = "http://127.0.0.1:9/never-called"
CREATE_IN_FLIGHT = 32
SEED_IN_FLIGHT = 8
SEED_PROCESSES = 2


@dataclass
class PassSample:
    cpu: CpuSample
    report: DispatchReport


@dataclass
class SeedResult:
    jobs: int
    transactions: int
    seconds: float


@dataclass
class BenchApp:
    """A runtime on its own tables and queue, its FixedClock, and an API client bound to it."""

    runtime: Runtime
    clock: FixedClock
    api: httpx.AsyncClient

    async def put_collection(self, name: str) -> None:
        response = await self.api.put(f"/jobCollections/{name}", json={})
        response.raise_for_status()

    async def delete_collection(self, name: str) -> None:
        response = await self.api.delete(f"/jobCollections/{name}")
        response.raise_for_status()

    async def put_job(self, collection: str, name: str, start: datetime) -> None:
        response = await self.api.put(
            f"/jobCollections/{collection}/jobs/{name}", json=http_job(start)
        )
        response.raise_for_status()


@asynccontextmanager
async def bench_app(connection: str, kind: str) -> AsyncIterator[BenchApp]:
    prefix = unique_name(kind)
    clock = FixedClock(base_time())
    settings = Settings(storage_connection=connection, table_prefix=prefix, execution_queue=prefix)
    runtime = await Runtime.create(settings, clock=clock, app_settings={})

    async def provide() -> Runtime:
        return runtime

    transport = httpx.ASGITransport(app=create_api(provide))
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://bench/api") as api:
            yield BenchApp(runtime, clock, api)
    finally:
        await runtime.close()


def base_time() -> datetime:
    """Tomorrow, whole minute: a FixedClock never meets real time, so any future instant works."""
    return (datetime.now(UTC) + timedelta(days=1)).replace(second=0, microsecond=0)


def http_job(start: datetime) -> dict[str, Any]:
    return {
        "properties": {
            "startTime": to_iso(start),
            "action": {"type": "Http", "request": {"uri": UNREACHABLE, "method": "POST"}},
        }
    }


async def create_due_jobs(app: BenchApp, collection: str, first: datetime) -> None:
    """1,000 one-time jobs created a day before `first`, their starts spread over the minute
    from `first`: all within the 120 s lookahead of a pass one second before `first`."""
    app.clock.set(first - timedelta(days=1))
    await app.put_collection(collection)
    starts = [first + timedelta(seconds=i * 60 // DUE_JOBS) for i in range(DUE_JOBS)]
    await bounded(
        CREATE_IN_FLIGHT,
        (app.put_job(collection, f"due-{i:04d}", start) for i, start in enumerate(starts)),
    )
    app.clock.set(first - timedelta(seconds=1))


async def timed_pass(
    app: BenchApp, collection: str, first: datetime, meter: CpuMeter
) -> PassSample:
    await create_due_jobs(app, collection, first)
    with meter.measure() as cpu:
        report = await app.runtime.dispatcher.dispatch_due()
    if report.dispatched != DUE_JOBS:
        raise RuntimeError(f"the pass dispatched {report.dispatched} of {DUE_JOBS}: {report}")
    # Nothing executes the runs this pass made: gone, they cannot be resumed by the next
    # repetition's pass (an hour later on the clock), which would then measure that too.
    await app.delete_collection(collection)
    return PassSample(cpu, report)


async def passes_alone(connection: str, meter: CpuMeter) -> list[PassSample]:
    """(i): each repetition in fresh, empty tables and a fresh queue."""
    samples = []
    for _ in range(REPEATS):
        async with bench_app(connection, "alone") as app:
            samples.append(await timed_pass(app, "due", base_time(), meter))
    return samples


async def passes_beside_others(
    connection: str, meter: CpuMeter
) -> tuple[list[PassSample], SeedResult, dict[str, Any]]:
    """(ii): one table set seeded once with 100,000 jobs; each repetition adds 1,000 fresh due
    jobs in a new collection, an hour after the previous repetition's. Then one profile_pass
    in the same tables, to see which calls the stored jobs make dearer."""
    async with bench_app(connection, "crowd") as app:
        first = base_time()
        with meter.measure() as seeding:
            transactions = await seed_other_jobs(app, first + timedelta(days=2))
        seed = SeedResult(OTHER_JOBS, transactions, seeding.wall)
        samples = []
        for repetition in range(REPEATS):
            at = first + timedelta(hours=repetition)
            samples.append(await timed_pass(app, f"due{repetition}", at, meter))
        later = first + timedelta(hours=REPEATS)
        return samples, seed, await profile_pass(app, "due-profile", later, meter)


# -- seeding ---------------------------------------------------------------------------------


async def seed_other_jobs(app: BenchApp, first: datetime) -> int:
    """OTHER_JOBS enabled one-time jobs, ten starting per second from `first`, spread over
    OTHER_COLLECTIONS collections; returns the number of batch transactions.

    The first job of each collection goes through the API; the rest are written as rows, in
    transactions, each core seeding a share of the collections in its own process."""
    names = [f"bulk{k}" for k in range(OTHER_COLLECTIONS)]
    for k, name in enumerate(names):
        await app.put_collection(name)
        await app.put_job(name, other_name(k), other_start(first, k))
    partition_of = {name: CollectionRef.parse(name).key for name in names}
    settings = app.runtime.settings
    context = multiprocessing.get_context("spawn")
    loop = asyncio.get_running_loop()
    with ProcessPoolExecutor(SEED_PROCESSES, mp_context=context) as pool:
        shares = [
            loop.run_in_executor(pool, _seed_share, settings, partition_of, first, share)
            for share in range(SEED_PROCESSES)
        ]
        return sum(await asyncio.gather(*shares))


def other_name(i: int) -> str:
    return f"other-{i:06d}"


def other_start(first: datetime, i: int) -> datetime:
    return first + timedelta(seconds=i // 10)


def _seed_share(
    settings: Settings, partition_of: dict[str, str], first: datetime, share: int
) -> int:
    """In a worker process: the jobs of every SEED_PROCESSES-th collection."""
    return asyncio.run(_seed_rows(settings, partition_of, first, share))


async def _seed_rows(
    settings: Settings, partition_of: dict[str, str], first: datetime, share: int
) -> int:
    template = JobProperties.model_validate(http_job(first)["properties"])
    created = first - timedelta(days=2)
    job_rows: dict[str, list[dict[str, Any]]] = defaultdict(list)
    due_rows: dict[str, list[DueEntry]] = defaultdict(list)
    for i in range(OTHER_COLLECTIONS, OTHER_JOBS):
        if i % OTHER_COLLECTIONS % SEED_PROCESSES != share:
            continue
        start = other_start(first, i)
        job = StoredJob(
            collection=partition_of[f"bulk{i % OTHER_COLLECTIONS}"],
            name=other_name(i),
            properties=template.model_copy(update={"start_time": start}),
            state=JobState.ENABLED,
            created_at=created,
            next_fire=start,
            scheduled_from=created,
        )
        job_rows[job.collection].append(job_entity(job))
        due_rows[job.collection].append(DueEntry(start, job.collection, job.name))
    store = JobStore.from_settings(settings)
    try:
        job_batches = batches_per_partition(job_rows)
        due_batches = batches_per_partition(due_rows)
        await bounded(
            SEED_IN_FLIGHT,
            (
                submit(
                    store.table_for(rows[0]["PartitionKey"]),
                    [Operation(Kind.INSERT, e) for e in rows],
                )
                for rows in job_batches
            ),
        )
        await bounded(
            SEED_IN_FLIGHT, (store.due_index.put_many(entries, created) for entries in due_batches)
        )
    finally:
        await store.close()
    return len(job_batches) + len(due_batches)


def batches_per_partition(rows: dict[str, list[Row]]) -> list[list[Row]]:
    """Each partition's rows in slices of at most 100 (one entity-group transaction each)."""
    return [
        partition[i : i + MAX_OPERATIONS]
        for partition in rows.values()
        for i in range(0, len(partition), MAX_OPERATIONS)
    ]


# -- where the time goes ---------------------------------------------------------------------


async def profile_alone(connection: str, meter: CpuMeter, with_cprofile: bool) -> dict[str, Any]:
    """profile_pass in fresh tables, like (i)."""
    async with bench_app(connection, "prof") as app:
        return await profile_pass(app, "due", base_time(), meter, with_cprofile)


async def profile_pass(
    app: BenchApp, collection: str, first: datetime, meter: CpuMeter, with_cprofile: bool = False
) -> dict[str, Any]:
    """One extra pass, not part of the medians, with the dispatcher's _CONCURRENCY set to 1 for
    its duration, so that the wall time and the Python/Azurite CPU of each store and queue call
    can be attributed to it; also counts the HTTP requests on the wire."""
    await create_due_jobs(app, collection, first)
    profiler = cProfile.Profile()
    prefix = app.runtime.settings.table_prefix
    with (
        _timing_calls(app.runtime, meter) as steps,
        _one_at_a_time(),
        count_requests(prefix) as requests,
        meter.measure() as cpu,
    ):
        if with_cprofile:
            profiler.enable()
        await app.runtime.dispatcher.dispatch_due()
        profiler.disable()
    result: dict[str, Any] = {
        "wall_s": cpu.wall,
        "python_cpu_s": cpu.python_cpu,
        "azurite_cpu_s": cpu.azurite_cpu,
        "steps": {name: _step(samples) for name, samples in steps.items()},
        "requests": dict(requests.most_common()),
    }
    if with_cprofile:
        text = io.StringIO()
        pstats.Stats(profiler, stream=text).sort_stats("cumulative").print_stats(25)
        result["cprofile_top"] = text.getvalue()
    return result


def _step(samples: list[CpuSample]) -> dict[str, float]:
    """One kind of call over the whole pass: CPU spread over the occurrences dispatched."""
    return {
        "calls": len(samples),
        "wall_s": sum(s.wall for s in samples),
        "python_cpu_ms_per_occurrence": 1000 * sum(s.python_cpu for s in samples) / DUE_JOBS,
        "azurite_cpu_ms_per_occurrence": 1000 * sum(s.azurite_cpu for s in samples) / DUE_JOBS,
    }


@contextmanager
def _timing_calls(runtime: Runtime, meter: CpuMeter) -> Iterator[dict[str, list[CpuSample]]]:
    """Record every call of the store's public async methods and of queue.send, while the
    block runs (the wrappers shadow the methods on these instances only)."""
    steps: dict[str, list[CpuSample]] = defaultdict(list)
    store = runtime.store
    names = [
        name
        for name in dir(type(store))
        if not name.startswith("_") and inspect.iscoroutinefunction(getattr(store, name))
    ]
    for name in names:
        _time_calls(store, name, f"store.{name}", steps, meter)
    _time_calls(runtime.queue, "send", "queue.send", steps, meter)
    try:
        yield steps
    finally:
        for name in names:
            delattr(store, name)
        delattr(runtime.queue, "send")


@contextmanager
def _one_at_a_time() -> Iterator[None]:
    """One send and one slice at a time, so that no two recorded calls overlap."""
    saved = dispatcher_module._CONCURRENCY, dispatcher_module._SLICES_IN_FLIGHT
    dispatcher_module._CONCURRENCY, dispatcher_module._SLICES_IN_FLIGHT = 1, 1
    try:
        yield
    finally:
        dispatcher_module._CONCURRENCY, dispatcher_module._SLICES_IN_FLIGHT = saved


_inside_timed_call: ContextVar[bool] = ContextVar("inside_timed_call", default=False)


def _time_calls(
    owner: object, method: str, label: str, into: dict[str, list[CpuSample]], meter: CpuMeter
) -> None:
    """Shadow `owner.method` (on this instance only) with a version that records each call;
    a call made from inside another recorded call counts in that one, not on its own."""
    original = getattr(owner, method)

    async def timed(*args: Any, **kwargs: Any) -> Any:
        if _inside_timed_call.get():
            return await original(*args, **kwargs)
        token = _inside_timed_call.set(True)
        try:
            with meter.measure() as sample:
                result = await original(*args, **kwargs)
        finally:
            _inside_timed_call.reset(token)
        into[label].append(sample)
        return result

    setattr(owner, method, timed)
