"""A collection's job count and its deletion under concurrent API calls, against Azurite."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest

from shared.names import CollectionRef
from shared.runtime import Runtime
from tests.support.engine import api_client, work_queue
from tests.support.http_target import HttpTarget

pytestmark = pytest.mark.integration

COLL = "/api/jobCollections/race"
REF = CollectionRef.parse("race")
CONCURRENT = 200


@pytest.fixture
async def api(runtime: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client(runtime) as client:
        yield client


def future_job() -> dict[str, Any]:
    """A job that does not fire during the test (the fixed clock stands before its start)."""
    action = {"type": "Http", "request": {"uri": "http://127.0.0.1:9/hook", "method": "POST"}}
    return {"properties": {"startTime": "2031-01-01T00:00:00Z", "action": action}}


async def stored_rows(runtime: Runtime, ref: CollectionRef) -> list[str]:
    """Every row of the collection's partition, whatever its kind."""
    table = runtime.store.table_for(ref.key)
    query = "PartitionKey eq @pk"
    return [
        row["RowKey"]
        async for row in table.query_entities(query, parameters={"pk": ref.key}, select=["RowKey"])
    ]


async def create_all(api: httpx.AsyncClient, count: int) -> list[httpx.Response]:
    return await asyncio.gather(
        *(api.put(f"{COLL}/jobs/j{index:03d}", json=future_job()) for index in range(count))
    )


async def test_concurrent_creates_stop_exactly_at_max_job_count(api, runtime):
    quota = {"properties": {"quota": {"maxJobCount": 10}}}
    assert (await api.put(COLL, json=quota)).status_code == 201
    responses = await create_all(api, CONCURRENT)
    codes = [r.status_code for r in responses]
    assert (codes.count(201), codes.count(409)) == (10, CONCURRENT - 10), sorted(set(codes))
    refused = [r.json()["error"] for r in responses if r.status_code == 409]
    assert all(e["code"] == "ConflictError" and "maxJobCount" in e["message"] for e in refused)
    assert len(await runtime.store.collection_job_names(REF.key)) == 10
    # Replacing a job at the limit is not a new job; deleting one frees its place, once.
    kept = next(r.json()["name"].split("/")[1] for r in responses if r.status_code == 201)
    assert (await api.put(f"{COLL}/jobs/{kept}", json=future_job())).status_code == 200
    assert (await api.delete(f"{COLL}/jobs/{kept}")).status_code == 200
    again = await asyncio.gather(*(api.put(f"{COLL}/jobs/n{i}", json=future_job()) for i in "ab"))
    assert sorted(r.status_code for r in again) == [201, 409]
    assert len(await runtime.store.collection_job_names(REF.key)) == 10


async def test_concurrent_creates_without_a_limit_all_succeed(api, runtime):
    assert (await api.put(COLL, json={})).status_code == 201
    responses = await create_all(api, CONCURRENT)
    assert {r.status_code for r in responses} == {201}, [r.text for r in responses][:3]
    assert len(await runtime.store.collection_job_names(REF.key)) == CONCURRENT
    count = await runtime.store.job_count(REF.key)
    assert count is not None and count.jobs == CONCURRENT


async def test_concurrent_deletes_of_a_job_count_it_out_once(api, runtime):
    assert (await api.put(COLL, json={"properties": {"quota": {"maxJobCount": 3}}})).status_code
    for name in "abc":
        assert (await api.put(f"{COLL}/jobs/{name}", json=future_job())).status_code == 201
    deletes = await asyncio.gather(*(api.delete(f"{COLL}/jobs/a") for _ in range(5)))
    assert {r.status_code for r in deletes} <= {200, 404}
    count = await runtime.store.job_count(REF.key)
    assert count is not None and count.jobs == 2
    assert (await api.put(f"{COLL}/jobs/d", json=future_job())).status_code == 201
    assert (await api.put(f"{COLL}/jobs/e", json=future_job())).status_code == 409


async def test_a_collection_created_again_does_not_bring_back_rows_left_by_an_old_one(api, runtime):
    assert (await api.put(COLL, json={})).status_code == 201
    assert (await api.put(f"{COLL}/jobs/old", json=future_job())).status_code == 201
    # Only the collection row goes, as when a delete stopped midway or raced with creates.
    await runtime.store.delete_collection_row(REF)
    assert (await api.put(COLL, json={})).status_code == 201
    assert (await api.get(f"{COLL}/jobs")).json()["value"] == []
    assert (await api.get(f"{COLL}/jobs/old")).status_code == 404
    assert await stored_rows(runtime, REF) == ["meta|jobs"]


async def test_deleting_a_collection_while_jobs_are_created_leaves_nothing_that_runs(
    runtimes: Callable[..., Awaitable[Runtime]], target: HttpTarget
):
    runtime = await runtimes()  # the real clock: jobs without startTime are dispatched at once
    request = {"uri": f"{target.url}/hook", "method": "POST"}
    job = {"properties": {"action": {"type": "Http", "request": request}}}
    names = iter(f"j{index:04d}" for index in range(10 * CONCURRENT))
    codes: list[int] = []
    some_created, deleted = asyncio.Event(), asyncio.Event()

    async def keep_creating(client: httpx.AsyncClient) -> None:
        """One of several clients creating jobs in a steady stream until the DELETE returned."""
        for name in names:
            codes.append((await client.put(f"{COLL}/jobs/{name}", json=job)).status_code)
            if codes.count(201) == 20:
                some_created.set()
            if deleted.is_set():
                return

    async def delete_when_some_exist(client: httpx.AsyncClient) -> int:
        await some_created.wait()
        status = (await client.delete(COLL)).status_code
        deleted.set()
        return status

    async with api_client(runtime) as api:
        assert (await api.put(COLL, json={})).status_code == 201
        *_, status = await asyncio.gather(
            *(keep_creating(api) for _ in range(16)), delete_when_some_exist(api)
        )
        assert status == 200
        assert set(codes) <= {201, 404}, sorted(set(codes))
        assert (await api.put(f"{COLL}/jobs/late", json=job)).status_code == 404

        await runtime.dispatcher.dispatch_due()
        assert await stored_rows(runtime, REF) == []

        # Every message already queued for the collection is worked off: none reaches the target.
        async def queue_empty() -> bool:
            properties = await runtime.queue.client.get_queue_properties()
            return properties.approximate_message_count == 0

        handled = await work_queue(runtime, queue_empty)
        assert handled >= 20  # the jobs created before the DELETE had been dispatched at once
        assert target.requests == []

        # A collection of the same name starts empty and counts from zero.
        assert (await api.put(COLL, json={})).status_code == 201
        assert (await api.get(f"{COLL}/jobs")).json()["value"] == []
        assert (await api.put(f"{COLL}/jobs/fresh", json=future_job())).status_code == 201
        count = await runtime.store.job_count(REF.key)
        assert count is not None and count.jobs == 1
