"""(f) The dashboard's job list on 10,000 jobs over 20 collections: the first page of
GET /api/dashboard-data/jobs through the FastAPI app in process (httpx's ASGI transport), cold
(the instance's shared copy of the job rows expired), warm (the copy fresh), with a search, and
with a filter and a sort, p50 of REQUESTS each; and beside them the floor, measured in the same
run on the same Azurite: the same job rows read raw with the storage SDK, the columns the list
reads (`LISTING_COLUMNS`) and no more, not turned into jobs: the table queries a cold list
cannot avoid. The same read of every column is reported beside it, for context. Also the first
page's payload size, so that nobody ships 10,000 rows to the browser.

Seeding (not measured) is (a)'s: each collection is created through the API with its first job,
the other jobs are written as rows in the store's own entity format (`job_entity`) in batch
transactions. They get no due rows: nothing dispatches in (f).
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from azure.data.tables.aio import TableServiceClient

from bench.timer_pass import SEED_IN_FLIGHT, BenchApp, batches_per_partition, bench_app, http_job
from bench.util import bounded, median
from shared.dashboard.service import SNAPSHOT_SECONDS
from shared.engine.records import StoredJob
from shared.model.job import JobProperties, JobState
from shared.names import CollectionRef
from shared.storage.codecs import LISTING_COLUMNS, job_entity
from shared.storage.table_batch import Kind, Operation, submit

JOBS = 10_000
COLLECTIONS = 20
REQUESTS = 10
FLOOR_IN_FLIGHT = 8  # collections read at once: as many as the dashboard service reads at once
DISABLED_EVERY = 7  # every 7th job is disabled: the filter keeps about a seventh
SEARCH = "0042"  # job-000042, job-00042x, job-x0042x...: one job in a hundred or so
PAGE = "/dashboard-data/jobs"
JOB_ROWS = "PartitionKey eq @pk and RowKey ge 'job|' and RowKey lt 'job}'"


@dataclass(frozen=True)
class Plan:
    """Which job goes where: its collection's name, its name, its state, its start."""

    collection: str
    name: str
    state: JobState
    start: datetime


def plan_jobs(jobs: int, collections: int, first: datetime) -> list[Plan]:
    """`jobs` jobs dealt round-robin over `collections` collections; every DISABLED_EVERY-th
    disabled; starts one second apart per ten jobs (so nextRun sorts are not all ties)."""
    return [
        Plan(
            collection=collection_name(i % collections),
            name=f"job-{i:06d}",
            state=JobState.DISABLED if i % DISABLED_EVERY == 0 else JobState.ENABLED,
            start=first + timedelta(seconds=i // 10),
        )
        for i in range(jobs)
    ]


def collection_name(k: int) -> str:
    return f"dash{k:02d}"


async def measure_dashboard_list(
    connection: str, jobs: int = JOBS, collections: int = COLLECTIONS
) -> dict[str, Any]:
    async with bench_app(connection, "dash") as app:
        first = app.clock.now() + timedelta(days=2)
        started = time.perf_counter()
        plans = plan_jobs(jobs, collections, first)
        await seed(app, plans)
        seed_s = time.perf_counter() - started
        refs = [CollectionRef.parse(collection_name(k)) for k in range(min(jobs, collections))]
        floor, rows_read = await _floor(connection, app, refs, LISTING_COLUMNS)
        every_column, _ = await _floor(connection, app, refs, None)
        first_page = await _get(app, {})
        filtered = {"state": "Disabled", "sort": "nextRun", "order": "desc"}
        timed = {
            "cold": await _timed(app, {}, warm=False),
            "warm": await _timed(app, {}, warm=True),
            "search": await _timed(app, {"search": SEARCH}, warm=True),
            "filter_sort": await _timed(app, filtered, warm=True),
        }
    floor_p50 = median(floor)
    results: dict[str, Any] = {
        "jobs": jobs,
        "collections": len(refs),
        "seed_s": seed_s,
        "requests": REQUESTS,
        "floor_s": floor,
        "floor_p50_s": floor_p50,
        "floor_rows": rows_read,
        "every_column_p50_s": median(every_column),
        "total_listed": first_page["total"],
        "page_rows": len(first_page["value"]),
        "payload_bytes": first_page["bytes"],
    }
    for name, samples in timed.items():
        results[f"{name}_s"] = samples
        results[f"{name}_p50_s"] = median(samples)
        results[f"{name}_ratio"] = median(samples) / floor_p50 if floor_p50 > 0 else None
    return results


async def seed(app: BenchApp, plans: list[Plan]) -> None:
    """Each collection's first job through the API (which makes the collection's table), the
    rest as rows in batch transactions, SEED_IN_FLIGHT at once."""
    template = JobProperties.model_validate(http_job(plans[0].start)["properties"])
    rows: dict[str, list[dict[str, Any]]] = defaultdict(list)
    through_api: dict[str, Plan] = {}
    for plan in plans:
        if plan.collection not in through_api:
            through_api[plan.collection] = plan
            continue
        job = StoredJob(
            collection=CollectionRef.parse(plan.collection).key,
            name=plan.name,
            properties=template.model_copy(update={"start_time": plan.start}),
            state=plan.state,
            created_at=app.clock.now(),
            next_fire=plan.start if plan.state is JobState.ENABLED else None,
            scheduled_from=app.clock.now(),
        )
        rows[job.collection].append(job_entity(job))
    for plan in through_api.values():
        await app.put_collection(plan.collection)
        await app.put_job(plan.collection, plan.name, plan.start)
    store = app.runtime.store
    await bounded(
        SEED_IN_FLIGHT,
        (
            submit(
                store.table_for(batch[0]["PartitionKey"]),
                [Operation(Kind.INSERT, e) for e in batch],
            )
            for batch in batches_per_partition(rows)
        ),
    )


async def _floor(
    connection: str, app: BenchApp, refs: list[CollectionRef], columns: Sequence[str] | None
) -> tuple[list[float], int]:
    """REQUESTS times: every collection's job rows read raw (`columns`, or all, as SDK entities,
    nothing parsed), FLOOR_IN_FLIGHT collections at once, on a client of its own."""
    select = list(columns) if columns is not None else None
    tables = [app.runtime.store.table_for(ref.key).table_name for ref in refs]
    samples: list[float] = []
    rows = 0
    async with TableServiceClient.from_connection_string(connection) as service:

        async def read(pair: tuple[str, str]) -> int:
            table, key = pair
            client = service.get_table_client(table)
            return sum(
                [
                    1
                    async for _ in client.query_entities(
                        JOB_ROWS, parameters={"pk": key}, select=select
                    )
                ]
            )

        pairs = [(table, ref.key) for table, ref in zip(tables, refs, strict=True)]
        for _ in range(REQUESTS):
            started = time.perf_counter()
            counts = await bounded(FLOOR_IN_FLIGHT, (read(pair) for pair in pairs))
            samples.append(time.perf_counter() - started)
            rows = sum(counts)
    return samples, rows


async def _get(app: BenchApp, params: dict[str, str]) -> dict[str, Any]:
    response = await app.api.get(PAGE, params=params)
    response.raise_for_status()
    body: dict[str, Any] = response.json()
    return {**body, "bytes": len(response.content)}


async def _timed(app: BenchApp, params: dict[str, str], *, warm: bool) -> list[float]:
    """REQUESTS first pages. Cold: the copy is dropped before each. Warm: the copy is read
    again (untimed) whenever half its lifetime has gone, so no timed request finds it expired."""
    service = app.runtime.dashboard
    loop = asyncio.get_running_loop()
    primed = float("-inf")
    samples: list[float] = []
    for _ in range(REQUESTS):
        if not warm:
            service.forget()
        elif loop.time() - primed > SNAPSHOT_SECONDS / 2:
            service.forget()
            await _get(app, params)
            primed = loop.time()
        started = time.perf_counter()
        await _get(app, params)
        samples.append(time.perf_counter() - started)
    return samples
