"""Broadcasts started by the scheduler (against Azurite, real device endpoints, signed clients):
a broadcast's start is a one-time job of the reserved collection `iothub-jobs`, fired through the
due index at its second (any distance ahead); the `Broadcast` action kind starts a broadcast at
each occurrence of any job and records its id and final statistics in the occurrence's history."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from typing import Any

import httpx
import pytest

from shared.broadcasts.starts import START_COLLECTION, start_job_name
from shared.clock import FixedClock
from shared.kinds.broadcast import BroadcastSettings
from shared.model.job import HistoryStatus
from shared.names import CollectionRef
from shared.runtime import Runtime
from shared.storage.device_work import DeviceWorkQueue, WorkMessage
from shared.timefmt import to_iso
from tests.integration.test_broadcasts import add_devices, device_jobs, drain, method_job
from tests.support.engine import API_NOW, api_client, work_queue

pytestmark = pytest.mark.integration

NIGHTLY = CollectionRef.parse("nightly")
STARTS = CollectionRef.parse(START_COLLECTION)


@pytest.fixture
async def api(runtime: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client(runtime) as client:
        yield client


def hub(path: str) -> str:
    return f"{path}?api-version=2021-04-12"


async def broadcast(api: httpx.AsyncClient, job_id: str) -> dict[str, Any]:
    response = await api.get(hub(f"/api/jobs/v2/{job_id}"))
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def broadcast_ids(api: httpx.AsyncClient) -> list[str]:
    response = await api.get(hub("/api/jobs/v2/query"))
    assert response.status_code == 200, response.text
    return sorted(job["jobId"] for job in response.json())


async def history_of(runtime: Runtime, ref: CollectionRef, job: str) -> list[Any]:
    records, _ = await runtime.store.history(ref.key, job, top=100)
    return sorted((r.properties for r in records), key=lambda p: p.start_time)


async def with_device_work(
    runtime: Runtime,
    work: DeviceWorkQueue,
    until: Callable[[], Awaitable[bool]],
) -> None:
    """Run the scheduler's attempts until `until()` holds while the device work is served
    alongside (an occurrence's attempt waits for its broadcast, which the device work ends)."""
    stop = asyncio.Event()

    async def serve() -> None:
        while not stop.is_set():
            batch = [m async for m in work.client.receive_messages(max_messages=32)]
            for message in batch:
                await runtime.broadcasts.engine.handle(WorkMessage.from_json(message.content))
                await work.client.delete_message(message)
            if not batch:
                await asyncio.sleep(0.05)

    server = asyncio.create_task(serve())
    try:
        await work_queue(runtime, until)
    finally:
        stop.set()
        await server


def history_count(runtime: Runtime, job: str, count: int) -> Callable[[], Awaitable[bool]]:
    async def reached() -> bool:
        return len(await history_of(runtime, NIGHTLY, job)) >= count

    return reached


def broadcast_action(**extra: Any) -> dict[str, Any]:
    return {
        "type": "Broadcast",
        "broadcast": {
            "type": "scheduleUpdateTwin",
            "updateTwin": {"properties": {"desired": {"refresh": "nightly"}}},
            "queryCondition": "tags.site = 'berlin'",
            "maxExecutionTimeInSeconds": 600,
            **extra,
        },
    }


def nightly_job(action: dict[str, Any], **properties: Any) -> dict[str, Any]:
    return {
        "properties": {
            "startTime": to_iso(API_NOW),
            "recurrence": {"frequency": "Day", "interval": 1, "count": 2},
            "action": action,
            **properties,
        }
    }


# --- the start through the due index -----------------------------------------------------------


async def test_a_start_30_days_ahead_fires_through_the_due_index_at_its_second(
    api, device_endpoint, work, runtime
):
    clock: FixedClock = runtime.clock
    await add_devices(api, device_endpoint, ["s1", "s2"])
    start = API_NOW + timedelta(days=30, seconds=7)
    created = await api.put(
        hub("/api/jobs/v2/later.1"), json=method_job("later.1", startTime=to_iso(start))
    )
    assert created.status_code == 200, created.text
    assert created.json()["status"] == "scheduled"
    # The start is a one-time job of the reserved collection, shown by the scheduler API.
    name = start_job_name("later.1")
    shown = (await api.get(f"/api/jobCollections/{START_COLLECTION}/jobs/{name}")).json()
    assert shown["properties"]["startTime"] == to_iso(start)
    assert shown["properties"]["action"]["broadcast"] == {"jobId": "later.1"}
    assert "recurrence" not in shown["properties"]
    # A repeated create (the SDK retries PUT) puts no second start job.
    again = await api.put(
        hub("/api/jobs/v2/later.1"), json=method_job("later.1", startTime=to_iso(start))
    )
    assert again.status_code == 200
    assert len(await runtime.store.collection_job_names(STARTS.key)) == 1

    for before in (timedelta(days=29), timedelta(minutes=3)):
        clock.set(start - before)
        assert (await runtime.dispatcher.dispatch_due()).dispatched == 0
        await drain(work, runtime)
        assert (await broadcast(api, "later.1"))["status"] == "scheduled"
    assert device_endpoint.calls == []

    clock.set(start)
    assert (await runtime.dispatcher.dispatch_due()).dispatched == 1
    await drain(work, runtime)
    job = await broadcast(api, "later.1")
    assert job["status"] == "completed", job
    assert job["deviceJobStatistics"]["succeededCount"] == 2
    assert len(device_endpoint.calls) == 2
    assert {r["startTimeUtc"] for r in await device_jobs(api, "later.1")} == {to_iso(start)}
    [row] = await history_of(runtime, STARTS, name)
    assert row.status is HistoryStatus.COMPLETED
    assert row.expected_execution_time == start
    assert "Broadcast later.1 started: deviceCount=2" in row.message


async def test_a_cancel_before_the_start_deletes_the_start_job(api, device_endpoint, work, runtime):
    await add_devices(api, device_endpoint, ["c1"])
    start = API_NOW + timedelta(days=3)
    body = method_job("early", startTime=to_iso(start))
    assert (await api.put(hub("/api/jobs/v2/early"), json=body)).status_code == 200
    cancelled = await api.post(hub("/api/jobs/v2/early/cancel"))
    assert cancelled.json()["status"] == "cancelled"
    assert await runtime.store.collection_job_names(STARTS.key) == []
    runtime.clock.set(start)
    assert (await runtime.dispatcher.dispatch_due()).dispatched == 0
    await drain(work, runtime)
    assert device_endpoint.calls == []


async def test_retention_deletes_the_start_job_and_its_history_with_the_broadcast(
    api, device_endpoint, work, runtime
):
    """The start job a broadcast put in `iothub-jobs` goes with the broadcast at
    SCHEDULER_BROADCAST_RETENTION_DAYS (30), its history too; a younger broadcast's stays."""
    clock: FixedClock = runtime.clock
    await add_devices(api, device_endpoint, ["g1"])
    for job_id in ("gone.1", "kept"):
        assert (await api.put(hub(f"/api/jobs/v2/{job_id}"), json=method_job(job_id))).is_success
        await drain(work, runtime)
        assert (await broadcast(api, job_id))["status"] == "completed"
        assert len(await history_of(runtime, STARTS, start_job_name(job_id))) == 1
        clock.advance(timedelta(days=10))
    gone, kept = start_job_name("gone.1"), start_job_name("kept")

    clock.advance(timedelta(days=10, seconds=1))  # "gone.1" ended 30 days + 1 s ago
    assert await runtime.broadcast_retention.run_if_due() > 0
    assert (await api.get(hub("/api/jobs/v2/gone.1"))).status_code == 404
    assert await runtime.store.collection_job_names(STARTS.key) == [kept]
    shown = await api.get(f"/api/jobCollections/{START_COLLECTION}/jobs/{gone}")
    assert shown.status_code == 404, shown.text
    assert await history_of(runtime, STARTS, gone) == []
    assert len(await history_of(runtime, STARTS, kept)) == 1
    assert (await broadcast(api, "kept"))["status"] == "completed"


# --- recurring broadcasts: the Broadcast kind ----------------------------------------------------


async def test_a_nightly_job_broadcasts_to_the_tagged_devices_at_each_occurrence(
    api, device_endpoint, work, runtime
):
    await add_devices(api, device_endpoint, ["b1", "b2"])
    await add_devices(api, device_endpoint, ["m1"])
    tags = await api.patch(hub("/api/twins/m1"), json={"tags": {"site": "munich"}})
    assert tags.status_code == 200, tags.text
    await runtime.jobs.put_collection(NIGHTLY, {})
    put = await api.put(
        "/api/jobCollections/nightly/jobs/refresh", json=nightly_job(broadcast_action())
    )
    assert put.status_code == 201, put.text

    await with_device_work(runtime, work, history_count(runtime, "refresh", 1))
    runtime.clock.set(API_NOW + timedelta(days=1))
    assert (await runtime.dispatcher.dispatch_due()).dispatched == 1
    await with_device_work(runtime, work, history_count(runtime, "refresh", 2))

    rows = await history_of(runtime, NIGHTLY, "refresh")
    assert [row.status for row in rows] == [HistoryStatus.COMPLETED] * 2
    ids = await broadcast_ids(api)
    assert len(ids) == 2
    for row, job_id, day in zip(rows, ids, ("20300506", "20300507"), strict=True):
        assert job_id.startswith(f"refresh@{day}T080000Z.")
        assert row.message == (
            f"Broadcast {job_id} completed: deviceCount=2, succeededCount=2, failedCount=0"
        )
        assert (await broadcast(api, job_id))["status"] == "completed"
    for device_id, expected in (("b1", "nightly"), ("b2", "nightly"), ("m1", None)):
        twin = (await api.get(hub(f"/api/twins/{device_id}"))).json()
        assert twin["properties"]["desired"].get("refresh") == expected


async def test_an_aborted_broadcast_fails_its_occurrence_and_the_retry_starts_no_other(
    api, device_endpoint, work, runtime
):
    await add_devices(api, device_endpoint, ["o1", "o2", "o3"], reachable=False)
    await runtime.jobs.put_collection(NIGHTLY, {})
    abort = {
        "criteriaList": [
            {
                "failureType": "FAILED",
                "action": "CANCEL",
                "thresholdPercentage": 50,
                "minNumberOfExecutedThings": 1,
            }
        ]
    }
    action = broadcast_action(
        type="scheduleDeviceMethod",
        updateTwin=None,
        cloudToDeviceMethod={"methodName": "reboot"},
        rollout={"maximumPerMinute": 60},
        abortConfig=abort,
    )
    action["broadcast"].pop("updateTwin")
    action["retryPolicy"] = {"retryType": "Fixed", "retryInterval": "PT1S", "retryCount": 1}
    put = await api.put(
        "/api/jobCollections/nightly/jobs/reboot", json=nightly_job(action, recurrence=None)
    )
    assert put.status_code == 201, put.text

    async def retried() -> bool:
        return len(await history_of(runtime, NIGHTLY, "reboot")) >= 2

    await with_device_work(runtime, work, retried)
    [job_id] = await broadcast_ids(api)
    rows = await history_of(runtime, NIGHTLY, "reboot")
    assert [(row.status, row.retry_count) for row in rows] == [
        (HistoryStatus.FAILED, 0),
        (HistoryStatus.FAILED, 1),
    ]
    for row in rows:
        assert row.message.startswith(f"Broadcast {job_id} cancelled (abortConfig: FAILED")
        assert "deviceCount=3, succeededCount=0, failedCount=" in row.message
    assert (await broadcast(api, job_id))["status"] == "cancelled"


async def test_a_retry_waits_again_for_the_same_broadcast_still_running(
    api, device_endpoint, work, runtime, runtimes
):
    """The occurrence's wait is bounded (SCHEDULER_BROADCAST_WAIT_SECONDS, 1 s here): past it
    the attempt fails saying so, and its retry finds the same broadcast instead of starting
    another (the second device's rollout slot is a minute away)."""
    waits_a_second = {"Broadcast": BroadcastSettings(timedelta(seconds=1))}
    short = await runtimes(clock=runtime.clock, kind_settings=waits_a_second)
    await add_devices(api, device_endpoint, ["w1", "w2"])
    await short.jobs.put_collection(NIGHTLY, {})
    action = broadcast_action(
        type="scheduleDeviceMethod",
        cloudToDeviceMethod={"methodName": "reboot"},
        rollout={"maximumPerMinute": 1},
    )
    action["broadcast"].pop("updateTwin")
    action["retryPolicy"] = {"retryType": "Fixed", "retryInterval": "PT1S", "retryCount": 1}
    await short.jobs.put_job(NIGHTLY, "slow", nightly_job(action, recurrence=None))

    async def retried() -> bool:
        return len(await history_of(short, NIGHTLY, "slow")) >= 2

    await with_device_work(short, work, retried)
    [job_id] = await broadcast_ids(api)
    for row in await history_of(short, NIGHTLY, "slow"):
        assert row.status is HistoryStatus.FAILED
        assert row.message.startswith(f"Broadcast {job_id} still running after 1 s: deviceCount=2")
    assert len(device_endpoint.calls) == 1
    assert (await broadcast(api, job_id))["status"] == "running"


@pytest.mark.parametrize(
    ("broadcast", "field"),
    [
        ({"queryCondition": "*"}, "properties.action.broadcast.type"),
        (
            {
                "type": "scheduleUpdateTwin",
                "queryCondition": "*",
                "updateTwin": {"tags": {"a": 1}, "etag": "AAAA"},
            },
            "properties.action.broadcast.updateTwin.etag",
        ),
        (
            {
                "type": "scheduleDeviceMethod",
                "queryCondition": "*",
                "cloudToDeviceMethod": {"methodName": "m"},
                "maxExecutionTimeInSeconds": 0,
            },
            "properties.action.broadcast.maxExecutionTimeInSeconds",
        ),
        ({"jobId": "a b"}, "properties.action.broadcast.jobId"),
        (
            {"jobId": "ab", "queryCondition": "*"},
            "properties.action.broadcast.queryCondition",
        ),
        ({"startTime": "2030-01-01T00:00:00Z"}, "properties.action.broadcast.startTime"),
    ],
)
async def test_a_bad_broadcast_action_is_a_400_naming_the_field(api, runtime, broadcast, field):
    await runtime.jobs.put_collection(NIGHTLY, {})
    body = nightly_job({"type": "Broadcast", "broadcast": broadcast})
    response = await api.put("/api/jobCollections/nightly/jobs/bad", json=body)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["target"] == field, response.json()
