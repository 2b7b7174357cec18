"""Broadcast jobs over HTTP (ASGI, in-process) against Azurite, with a real device endpoint on
127.0.0.1: IoT Hub's jobs API, the per-device records, rollout, abort, cancel and racing workers.
The device-work queue is driven here message by message (as the queue trigger would)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from datetime import timedelta
from typing import Any

import httpx
import pytest
from azure.core.credentials import AzureNamedKeyCredential
from azure.core.exceptions import ServiceRequestError
from azure.data.tables.aio import TableClient

from shared.broadcasts.engine import ENDPOINT_FRESH, BroadcastEngine
from shared.broadcasts.planning import total
from shared.broadcasts.records import DeviceJob
from shared.clock import Clock, FixedClock
from shared.devices.call_budget import CallBudget
from shared.devices.calls import DeviceCaller
from shared.devices.model import Endpoint, MethodCall
from shared.devices.registry import DeviceRegistry
from shared.runtime import Runtime
from shared.storage.broadcasts import BroadcastRows, bucket_of
from shared.storage.device_work import DeviceWorkQueue, WorkMessage
from shared.storage.devices import DeviceRows
from shared.storage.queue import AttemptMessage
from tests.integration.test_devices_api import assert_hub_error
from tests.support.device_endpoint import DeviceEndpoint
from tests.support.engine import API_NOW, api_client

pytestmark = pytest.mark.integration


@pytest.fixture
async def api(runtime: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client(runtime) as client:
        client.params = httpx.QueryParams({"api-version": "2021-04-12"})
        yield client


async def drain(queue: DeviceWorkQueue, *runtimes: Runtime) -> int:
    """Handle every visible message until none is left: the scheduler's attempts (a
    broadcast's start job) and the device work (with the runtimes in turn); returns how many
    device-work messages were handled."""
    handled = 0
    while True:
        attempts = await run_attempts(runtimes[0])
        batch = [m async for m in queue.client.receive_messages(max_messages=32)]
        if not batch and not attempts:
            return handled
        for message in batch:
            runtime = runtimes[handled % len(runtimes)]
            await runtime.broadcasts.engine.handle(WorkMessage.from_json(message.content))
            await queue.client.delete_message(message)
            handled += 1


async def run_attempts(runtime: Runtime) -> int:
    """Execute the visible messages of the scheduler's queue once (as the queue trigger)."""
    client = runtime.queue.client
    batch = [m async for m in client.receive_messages(max_messages=32, visibility_timeout=60)]
    for message in batch:
        await runtime.executor.execute(AttemptMessage.from_json(message.content))
        await client.delete_message(message)
    return len(batch)


async def add_devices(
    api: httpx.AsyncClient, endpoint: DeviceEndpoint, ids: list[str], *, reachable: bool = True
) -> None:
    for device_id in ids:
        body: dict[str, Any] = {"deviceId": device_id}
        if reachable:
            body["endpoint"] = {"uri": f"{endpoint.url}?d={device_id}"}
        response = await api.put(f"/api/devices/{device_id}", json=body)
        assert response.status_code == 200, response.text
        tags = await api.patch(f"/api/twins/{device_id}", json={"tags": {"site": "berlin"}})
        assert tags.status_code == 200, tags.text


def twin_job(job_id: str) -> dict[str, Any]:
    return {
        "jobId": job_id,
        "type": "scheduleUpdateTwin",
        "updateTwin": {"properties": {"desired": {"fw": "2.0"}}, "etag": "*"},
        "queryCondition": "tags.site = 'berlin'",
        "maxExecutionTimeInSeconds": 600,
    }


def method_job(job_id: str, **extra: Any) -> dict[str, Any]:
    return {
        "jobId": job_id,
        "type": "scheduleDeviceMethod",
        "cloudToDeviceMethod": {"methodName": "reboot", "payload": {"a": 1}},
        "queryCondition": "tags.site = 'berlin'",
        "maxExecutionTimeInSeconds": 600,
        **extra,
    }


async def device_jobs(api: httpx.AsyncClient, job_id: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    token: str | None = None
    while True:
        headers = {"x-ms-max-item-count": "7"}
        if token:
            headers["x-ms-continuation"] = token
        response = await api.post(
            "/api/devices/query",
            json={"query": f"SELECT * FROM devices.jobs WHERE devices.jobs.jobId = '{job_id}'"},
            headers=headers,
        )
        assert response.status_code == 200, response.text
        assert response.headers["x-ms-item-type"] == "deviceJob"
        found.extend(response.json())
        token = response.headers.get("x-ms-continuation")
        if token is None:
            return found


# --- the API ---------------------------------------------------------------------------------


async def test_create_is_idempotent_another_body_is_409_and_bad_input_names_the_field(api):
    created = await api.put("/api/jobs/v2/j1", json=method_job("j1"))
    assert created.status_code == 200, created.text
    body = created.json()
    assert body["jobId"] == "j1" and body["type"] == "scheduleDeviceMethod"
    assert body["status"] == "queued"
    assert body["endTime"].startswith("9999-12-31T23:59:59")
    again = await api.put("/api/jobs/v2/j1", json=method_job("j1"))
    assert again.status_code == 200 and again.json()["jobId"] == "j1"
    other = await api.put("/api/jobs/v2/j1", json=method_job("j1", maxExecutionTimeInSeconds=60))
    assert_hub_error(other, 409, "Conflict")
    too_long = await api.put(f"/api/jobs/v2/{'j' * 65}", json=method_job("j" * 65))
    assert too_long.status_code == 400
    bad_timeout = method_job("j2")
    bad_timeout["cloudToDeviceMethod"]["responseTimeoutInSeconds"] = 301
    message = assert_hub_error(
        await api.put("/api/jobs/v2/j2", json=bad_timeout), 400, "ArgumentInvalid"
    )
    assert "cloudToDeviceMethod.responseTimeoutInSeconds" in message
    bad_abort = method_job("j3", abortConfig={"criteriaList": [{"failureType": "NOPE"}]})
    message = assert_hub_error(
        await api.put("/api/jobs/v2/j3", json=bad_abort), 400, "ArgumentInvalid"
    )
    assert "abortConfig.criteriaList[0].failureType" in message
    bad_condition = method_job("j4", queryCondition="tags.x = ")
    assert_hub_error(await api.put("/api/jobs/v2/j4", json=bad_condition), 400, "ArgumentInvalid")
    assert_hub_error(await api.get("/api/jobs/v2/nope"), 404, "DeviceNotFound")


async def test_query_filters_pages_by_parameters_and_headers_and_answers_the_sdk_an_object(api):
    later = "2031-01-01T00:00:00Z"
    for job_id in ("a1", "a2", "a3"):
        response = await api.put(f"/api/jobs/v2/{job_id}", json=method_job(job_id, startTime=later))
        assert response.status_code == 200, response.text
    twin_job = {
        "jobId": "t1",
        "type": "scheduleUpdateTwin",
        "updateTwin": {"properties": {"desired": {"x": 1}}, "etag": "*"},
        "queryCondition": "*",
    }
    assert (await api.put("/api/jobs/v2/t1", json=twin_job)).status_code == 200
    assert (await api.post("/api/jobs/v2/a3/cancel")).json()["status"] == "cancelled"

    first = await api.get(
        "/api/jobs/v2/query", params={"jobType": "scheduleDeviceMethod", "pageSize": 1}
    )
    assert first.status_code == 200, first.text
    assert [j["jobId"] for j in first.json()] == ["a1"]
    assert first.json()[0]["status"] == "scheduled"
    token = first.headers["x-ms-continuation"]
    rest = await api.get(
        "/api/jobs/v2/query",
        params={"jobType": "scheduleDeviceMethod"},
        headers={"x-ms-continuation": token, "x-ms-max-item-count": "5"},
    )
    assert [j["jobId"] for j in rest.json()] == ["a2", "a3"]
    assert "x-ms-continuation" not in rest.headers
    cancelled = await api.get("/api/jobs/v2/query", params={"jobStatus": "canceled"})
    assert [j["jobId"] for j in cancelled.json()] == ["a3"]
    sdk = await api.get(
        "/api/jobs/v2/query",
        params={"jobType": "scheduleUpdateTwin"},
        headers={"User-Agent": "azure-iot-hub/2.7.0 iothubgatewayserviceapis/1.0"},
    )
    assert sdk.json()["type"] == "jobResponse"
    assert [j["jobId"] for j in sdk.json()["items"]] == ["t1"]
    bad = await api.get("/api/jobs/v2/query", params={"jobStatus": "sleeping"})
    assert "jobStatus" in assert_hub_error(bad, 400, "ArgumentInvalid")
    bad_size = await api.get("/api/jobs/v2/query", params={"pageSize": 0})
    assert "pageSize" in assert_hub_error(bad_size, 400, "ArgumentInvalid")


# --- the engine ------------------------------------------------------------------------------


async def test_a_method_broadcast_to_30_devices_with_failures_ends_with_exact_statistics(
    api, device_endpoint, work, runtime
):
    reachable = [f"d{i:02d}" for i in range(20)]
    offline = [f"x{i:02d}" for i in range(10)]
    await add_devices(api, device_endpoint, reachable)
    await add_devices(api, device_endpoint, offline, reachable=False)
    assert (await api.put("/api/jobs/v2/m1", json=method_job("m1"))).status_code == 200
    await drain(work, runtime)

    job = (await api.get("/api/jobs/v2/m1")).json()
    assert job["status"] == "completed", job
    assert job["deviceJobStatistics"] == {
        "deviceCount": 30,
        "failedCount": 10,
        "succeededCount": 20,
        "runningCount": 0,
        "pendingCount": 0,
    }
    assert len(device_endpoint.calls) == 20
    keys = sorted(headers["Idempotency-Key"] for headers, _ in device_endpoint.calls)
    assert keys == [f"m1:{d}" for d in reachable]
    records = {r["deviceId"]: r for r in await device_jobs(api, "m1")}
    assert len(records) == 30
    assert records["d00"]["status"] == "completed"
    assert records["d00"]["outcome"] == {
        "deviceMethodResponse": {"status": 201, "payload": {"echo": {"a": 1}}}
    }
    assert records["x00"]["status"] == "failed"
    assert records["x00"]["error"]["code"] == "DeviceNotOnline"


async def test_a_twin_broadcast_sets_the_desired_properties_of_every_selected_device(
    api, device_endpoint, work, runtime
):
    await add_devices(api, device_endpoint, ["t1", "t2", "t3"])
    body = {
        "type": "scheduleUpdateTwin",
        "updateTwin": {"properties": {"desired": {"fw": "2.0"}}, "etag": "*"},
        "queryCondition": "deviceId IN ['t1', 't3']",
    }
    assert (await api.put("/api/jobs/v2/tw", json=body)).status_code == 200
    await drain(work, runtime)
    job = (await api.get("/api/jobs/v2/tw")).json()
    assert job["status"] == "completed"
    assert job["deviceJobStatistics"]["succeededCount"] == 2
    for device_id, expected in (("t1", "2.0"), ("t2", None), ("t3", "2.0")):
        twin = (await api.get(f"/api/twins/{device_id}")).json()
        assert twin["properties"]["desired"].get("fw") == expected


async def test_rollout_hides_each_device_message_until_its_slot(
    api, device_endpoint, work, runtime
):
    await add_devices(api, device_endpoint, ["r1", "r2", "r3"])
    job = method_job("ro", rollout={"maximumPerMinute": 1})
    assert (await api.put("/api/jobs/v2/ro", json=job)).status_code == 200
    await drain(work, runtime)  # the start, then the one device whose slot is now
    assert len(device_endpoint.calls) == 1
    stats = (await api.get("/api/jobs/v2/ro")).json()["deviceJobStatistics"]
    assert stats["succeededCount"] == 1 and stats["pendingCount"] == 2
    assert await work.client.peek_messages(max_messages=32) == []

    cancelled = await api.post("/api/jobs/v2/ro/cancel")
    assert cancelled.json()["status"] == "cancelled"
    await drain(work, runtime)  # the sweep
    final = (await api.get("/api/jobs/v2/ro")).json()
    assert final["status"] == "cancelled"
    assert final["deviceJobStatistics"] == {
        "deviceCount": 3,
        "failedCount": 2,
        "succeededCount": 1,
        "runningCount": 0,
        "pendingCount": 0,
    }
    statuses = sorted(r["status"] for r in await device_jobs(api, "ro"))
    assert statuses == ["canceled", "canceled", "completed"]


async def test_the_abort_threshold_cancels_the_job_and_names_the_criterion(
    api, device_endpoint, work, runtime
):
    await add_devices(api, device_endpoint, [f"o{i}" for i in range(6)], reachable=False)
    job = method_job(
        "ab",
        rollout={"maximumPerMinute": 2},
        abortConfig={
            "criteriaList": [
                {
                    "failureType": "FAILED",
                    "action": "CANCEL",
                    "thresholdPercentage": 50,
                    "minNumberOfExecutedThings": 1,
                }
            ]
        },
    )
    assert (await api.put("/api/jobs/v2/ab", json=job)).status_code == 200
    await drain(work, runtime)
    final = (await api.get("/api/jobs/v2/ab")).json()
    assert final["status"] == "cancelled"
    assert "abortConfig: FAILED reached 50%" in final["failureReason"]
    stats = final["deviceJobStatistics"]
    assert stats["failedCount"] == 6 and stats["deviceCount"] == 6


async def test_retries_call_a_failing_device_again_and_count_it_once(
    api, device_endpoint, work, runtime
):
    await add_devices(api, device_endpoint, ["f1"], reachable=False)
    job = method_job(
        "rt", retryConfig={"criteriaList": [{"failureType": "ALL", "numberOfRetries": 2}]}
    )
    assert (await api.put("/api/jobs/v2/rt", json=job)).status_code == 200
    handled = await drain(work, runtime)
    assert handled == 3  # three attempts (the start is the scheduler's; the sweep is hidden)
    final = (await api.get("/api/jobs/v2/rt")).json()
    assert final["deviceJobStatistics"]["failedCount"] == 1
    assert final["status"] == "completed"


async def test_two_workers_racing_on_the_same_messages_call_each_device_once(
    api, device_endpoint, work, runtimes: Callable[..., Awaitable[Runtime]], runtime
):
    other = await runtimes(clock=runtime.clock)
    ids = [f"c{i:02d}" for i in range(12)]
    await add_devices(api, device_endpoint, ids)
    assert (await api.put("/api/jobs/v2/rc", json=method_job("rc"))).status_code == 200
    await runtime.broadcasts.engine.start("rc")
    messages = [m async for m in work.client.receive_messages(max_messages=32)]
    device_messages = [WorkMessage.from_json(m.content) for m in messages]
    device_messages = [m for m in device_messages if m.action == "devices"]
    assert sorted(d for m in device_messages for d, _ in m.work()) == ids
    await asyncio.gather(
        *(rt.broadcasts.engine.handle(m) for m in device_messages for rt in (runtime, other))
    )
    assert sorted(h["Idempotency-Key"] for h, _ in device_endpoint.calls) == [
        f"rc:{d}" for d in ids
    ]
    final = (await api.get("/api/jobs/v2/rc")).json()
    assert final["status"] == "completed"
    assert final["deviceJobStatistics"]["succeededCount"] == 12


# --- hardening -------------------------------------------------------------------------------


async def test_a_clock_with_microseconds_still_records_every_result(
    api, device_endpoint, work, runtimes: Callable[..., Awaitable[Runtime]]
):
    """Regression: the claim compared its in-memory lease (microseconds) with the stored one
    (milliseconds), took its own claim for a takeover and left every device `running`."""
    uneven = await runtimes(clock=FixedClock(API_NOW + timedelta(microseconds=123456)))
    await add_devices(api, device_endpoint, ["u1", "u2", "u3"])
    async with api_client(uneven) as client:
        client.params = httpx.QueryParams({"api-version": "2021-04-12"})
        assert (await client.put("/api/jobs/v2/us", json=method_job("us"))).status_code == 200
        await drain(work, uneven)
        final = (await client.get("/api/jobs/v2/us")).json()
    assert final["status"] == "completed", final
    assert final["deviceJobStatistics"]["succeededCount"] == 3
    assert final["deviceJobStatistics"]["runningCount"] == 0


async def test_starters_racing_to_add_the_same_records_count_each_device_once(runtime):
    """Regression: a starter that lost the insert race to another retried the same inserts
    until it gave up with `Conflict: the counters of ... keep changing`."""
    settings = runtime.settings
    rows = BroadcastRows.from_connection_string(
        settings.storage_connection, settings.broadcasts_table
    )
    ids = [f"s{i}" for i in range(40)]
    records = [DeviceJob("sr", "scheduleDeviceMethod", d, "pending", API_NOW, API_NOW) for d in ids]
    await asyncio.gather(*(rows.add_pending(records) for _ in range(4)))
    stats = total(await rows.stats("sr"))
    assert stats.pending == 40 and stats.device_count == 40
    assert len([r async for r, _ in rows.records("sr")]) == 40
    await rows.close()


async def test_the_time_limit_fails_what_is_not_done_and_the_job_with_exact_statistics(
    api, device_endpoint, work, runtime
):
    """maxExecutionTimeInSeconds: the devices still waiting for their rollout slot, and one
    whose worker died mid-call (running, its lease over), fail with JobExpired; the job ends
    `failed` and its statistics add up to deviceCount."""
    await add_devices(api, device_endpoint, ["e1", "e2", "e3", "e4"])
    job = method_job("ex", rollout={"maximumPerMinute": 1}, maxExecutionTimeInSeconds=120)
    assert (await api.put("/api/jobs/v2/ex", json=job)).status_code == 200
    await drain(work, runtime)  # the start and the first device; the others wait for slots
    assert len(device_endpoint.calls) == 1
    settings = runtime.settings
    rows = BroadcastRows.from_connection_string(
        settings.storage_connection, settings.broadcasts_table
    )
    pending = sorted([r.device_id async for r, _ in rows.records("ex", status="pending")])
    dead_worker = pending[0]  # as a worker that claimed it and was killed would leave it
    claimed = await rows.change(
        "ex",
        dead_worker,
        lambda r: replace(r, status="running", started=API_NOW, lease_until=API_NOW),
    )
    assert claimed is not None
    await rows.close()

    assert isinstance(runtime.clock, FixedClock)
    runtime.clock.advance(timedelta(seconds=121))
    await runtime.broadcasts.engine.handle(WorkMessage("sweep", "ex"))  # due at the limit
    final = (await api.get("/api/jobs/v2/ex")).json()
    assert final["status"] == "failed", final
    assert "maxExecutionTimeInSeconds (120 s) elapsed" in final["failureReason"]
    assert final["deviceJobStatistics"] == {
        "deviceCount": 4,
        "failedCount": 3,
        "succeededCount": 1,
        "runningCount": 0,
        "pendingCount": 0,
    }
    records = await device_jobs(api, "ex")
    expired = [r for r in records if r["status"] == "failed"]
    assert len(expired) == 3
    assert {r["error"]["code"] for r in expired} == {"JobExpired"}
    assert all("maxExecutionTimeInSeconds" in r["error"]["description"] for r in expired)
    # A device message surfacing after the limit calls nobody.
    await runtime.broadcasts.engine.handle(WorkMessage("device", "ex", pending[1], 0))
    assert len(device_endpoint.calls) == 1


async def test_finished_broadcasts_go_after_the_retention_days_in_bounded_passes(
    api, device_endpoint, work, runtime
):
    """SCHEDULER_BROADCAST_RETENTION_DAYS (default 30): a broadcast that ended longer ago goes
    with its records; a younger one and one still running stay; each pass deletes a bounded
    number of rows and the next goes on."""
    await add_devices(api, device_endpoint, [f"k{i:02d}" for i in range(12)])
    assert (await api.put("/api/jobs/v2/old", json=method_job("old"))).status_code == 200
    await drain(work, runtime)
    assert (await api.get("/api/jobs/v2/old")).json()["status"] == "completed"
    later = method_job("young", startTime="2030-05-20T08:00:00Z")
    assert (await api.put("/api/jobs/v2/young", json=later)).status_code == 200
    assert isinstance(runtime.clock, FixedClock)
    runtime.clock.advance(timedelta(days=14))
    await runtime.broadcasts.engine.start("young")
    await drain(work, runtime)
    assert (await api.get("/api/jobs/v2/young")).json()["status"] == "completed"
    running = method_job("busy", rollout={"maximumPerMinute": 1})
    assert (await api.put("/api/jobs/v2/busy", json=running)).status_code == 200
    await drain(work, runtime)  # one device called, the others wait for their slots

    retention = runtime.broadcast_retention
    runtime.clock.advance(timedelta(days=16, seconds=1))  # "old" ended 30 days + 1 s ago
    deleted, done = await retention.purge(runtime.clock.now(), 5)
    assert (deleted, done) == (5, False)
    assert (await api.get("/api/jobs/v2/old")).status_code == 200  # the job row goes last
    assert await retention.run_if_due() > 0
    assert_hub_error(await api.get("/api/jobs/v2/old"), 404, "DeviceNotFound")
    assert await device_jobs(api, "old") == []
    assert await retention.run_if_due() == 0  # done: the next pass waits its interval
    assert (await api.get("/api/jobs/v2/young")).json()["status"] == "completed"
    assert len(await device_jobs(api, "young")) == 12
    assert (await api.get("/api/jobs/v2/busy")).json()["status"] == "running"


async def test_two_starters_and_two_workers_racing_call_each_device_once_with_exact_counts(
    api, device_endpoint, work, runtimes: Callable[..., Awaitable[Runtime]], runtime
):
    """A start delivered twice at once (two instances) and every message handled by both:
    each device is recorded once, called once, and the statistics add up."""
    other = await runtimes(clock=runtime.clock)
    ids = [f"w{i:02d}" for i in range(40)]
    await add_devices(api, device_endpoint, ids)
    assert (await api.put("/api/jobs/v2/rs", json=method_job("rs"))).status_code == 200
    await asyncio.gather(runtime.broadcasts.engine.start("rs"), other.broadcasts.engine.start("rs"))
    messages: list[str] = []
    while batch := [m.content async for m in work.client.receive_messages(max_messages=32)]:
        messages.extend(batch)
    device_messages = [WorkMessage.from_json(m) for m in messages]
    device_messages = [m for m in device_messages if m.action == "devices"]
    assert {d for m in device_messages for d, _ in m.work()} == set(ids)
    await asyncio.gather(
        *(rt.broadcasts.engine.handle(m) for m in device_messages for rt in (runtime, other))
    )
    assert sorted(h["Idempotency-Key"] for h, _ in device_endpoint.calls) == [
        f"rs:{d}" for d in ids
    ]
    final = (await api.get("/api/jobs/v2/rs")).json()
    assert final["status"] == "completed"
    assert final["deviceJobStatistics"] == {
        "deviceCount": 40,
        "failedCount": 0,
        "succeededCount": 40,
        "runningCount": 0,
        "pendingCount": 0,
    }


async def test_a_worker_that_died_after_recording_the_last_device_leaves_the_end_to_its_message(
    api, device_endpoint, work, runtime
):
    """The worker recorded the last device's result and died before ending the job: its
    message, delivered again, finds the record done and ends the job (not the time limit)."""
    await add_devices(api, device_endpoint, ["z1", "z2"])
    assert (await api.put("/api/jobs/v2/zz", json=method_job("zz"))).status_code == 200
    await runtime.broadcasts.engine.start("zz")
    messages = [m async for m in work.client.receive_messages(max_messages=32)]
    device_messages = [WorkMessage.from_json(m.content) for m in messages]
    work_items = sorted(w for m in device_messages if m.action == "devices" for w in m.work())
    first, last = (WorkMessage.chunk("zz", [item]) for item in work_items)
    await runtime.broadcasts.engine.handle(first)
    settings = runtime.settings
    rows = BroadcastRows.from_connection_string(
        settings.storage_connection, settings.broadcasts_table
    )
    done = await rows.change(  # what the dead worker had stored
        "zz", work_items[1][0], lambda r: replace(r, status="completed", ended=API_NOW)
    )
    await rows.close()
    assert done is not None
    assert (await api.get("/api/jobs/v2/zz")).json()["status"] == "running"

    await runtime.broadcasts.engine.handle(last)  # the host delivers it again
    final = (await api.get("/api/jobs/v2/zz")).json()
    assert final["status"] == "completed"
    assert final["deviceJobStatistics"]["succeededCount"] == 2
    assert len(device_endpoint.calls) == 1  # the dead worker's call is not repeated


# --- chunks: the devices of one bucket in one message -----------------------------------------


def same_bucket(prefix: str, count: int) -> list[str]:
    """`count` device ids whose records share one bucket (so one chunk holds them all)."""
    by_bucket: dict[int, list[str]] = {}
    for i in range(10_000):
        device_id = f"{prefix}{i:04d}"
        ids = by_bucket.setdefault(bucket_of(device_id), [])
        ids.append(device_id)
        if len(ids) == count:
            return ids
    raise AssertionError("no bucket filled")


async def chunk_messages(work: DeviceWorkQueue) -> list[WorkMessage]:
    """The visible `devices` messages, received (hidden for the queue's default timeout)."""
    found: list[WorkMessage] = []
    while batch := [m.content async for m in work.client.receive_messages(max_messages=32)]:
        found.extend(WorkMessage.from_json(m) for m in batch)
    return [m for m in found if m.action == "devices"]


async def test_a_chunk_claim_that_loses_a_race_is_decided_again_on_a_fresh_read(runtime):
    """The claim transaction is checked against what was read: another writer moved one record
    meanwhile, so it fails as a whole, and the claim decided again claims only the others;
    the counters count each record once."""
    settings = runtime.settings
    rows = BroadcastRows.from_connection_string(
        settings.storage_connection, settings.broadcasts_table
    )
    ids = same_bucket("cr", 4)
    bucket = bucket_of(ids[0])
    records = [DeviceJob("cr", "scheduleDeviceMethod", d, "pending", API_NOW, API_NOW) for d in ids]
    await rows.add_pending(records)
    stale = await rows.read_chunk("cr", bucket, ids)
    lease = API_NOW + timedelta(minutes=1)
    other = await rows.change(
        "cr", ids[1], lambda r: replace(r, status="running", lease_until=lease)
    )
    assert other is not None

    def claim(record: DeviceJob) -> DeviceJob | None:
        if record.status != "pending":
            return None
        return replace(record, status="running", lease_until=API_NOW + timedelta(seconds=30))

    claimed = await rows.change_chunk("cr", bucket, ids, claim, known=stale)
    assert sorted(after.device_id for _, after in claimed.changed) == [ids[0], ids[2], ids[3]]
    assert claimed.state.stats == total(await rows.stats("cr"))
    assert total(await rows.stats("cr")).running == 4
    assert total(await rows.stats("cr")).pending == 0
    # The state it returns is what the next change is checked against: no read needed.
    again = await rows.change_chunk(
        "cr", bucket, [ids[0]], lambda r: replace(r, status="completed"), known=claimed.state
    )
    assert [after.status for _, after in again.changed] == ["completed"]
    assert total(await rows.stats("cr")).succeeded == 1
    await rows.close()


async def test_a_result_recorded_after_another_lost_a_race_is_still_recorded(runtime):
    """A chunk claims two devices in one write, then records their results one at a time
    against the state its last write left. The first result's write loses a race (another
    chunk of the bucket moved the counters) and is decided again on a fresh read of its own
    record; the second result must still find its record in the state that write returns.
    It used not to (the fresh read replaced the state): the result was skipped as if its record
    were not stored, the device stayed running until its lease ended and its watch called it
    again: every duplicate call of the 2,000-device probe, with no process crashed."""
    settings = runtime.settings
    rows = BroadcastRows.from_connection_string(
        settings.storage_connection, settings.broadcasts_table
    )
    a, b, other = same_bucket("rr", 3)
    bucket = bucket_of(a)
    await rows.add_pending(
        DeviceJob("rr", "scheduleDeviceMethod", d, "pending", API_NOW, API_NOW)
        for d in (a, b, other)
    )
    lease = API_NOW + timedelta(seconds=60)
    claimed = await rows.change_chunk(
        "rr",
        bucket,
        [a, b],
        lambda r: replace(r, status="running", lease_until=lease),
        known=await rows.read_chunk("rr", bucket, [a, b]),
    )
    # Another chunk of the bucket claims its device: the counters row's ETag moves on.
    await rows.change_chunk("rr", bucket, [other], lambda r: replace(r, status="running"))

    def done(record: DeviceJob) -> DeviceJob | None:
        if record.status != "running" or record.lease_until != lease:
            return None
        return replace(record, status="completed", lease_until=None)

    first = await rows.change_chunk("rr", bucket, [a], done, known=claimed.state)
    assert [after.device_id for _, after in first.changed] == [a]
    second = await rows.change_chunk("rr", bucket, [b], done, known=first.state)
    assert [after.device_id for _, after in second.changed] == [b]
    statistics = total(await rows.stats("rr"))
    assert (statistics.succeeded, statistics.running, statistics.pending) == (2, 1, 0)
    await rows.close()


async def test_a_chunk_with_mixed_outcomes_ends_with_exact_statistics(
    api, device_endpoint, work, runtime
):
    """One chunk: devices that answer, one that times out, two unreachable ones retried once
    (in chunks of their own) and failing again: every count exact, the timeout counted."""
    ids = same_bucket("mx", 6)
    fine, slow, offline = ids[:3], ids[3], ids[4:]
    device_endpoint.held = frozenset([slow])
    await add_devices(api, device_endpoint, [*fine, slow])
    await add_devices(api, device_endpoint, offline, reachable=False)
    job = method_job(
        "mx",
        retryConfig={"criteriaList": [{"failureType": "FAILED", "numberOfRetries": 1}]},
    )
    job["cloudToDeviceMethod"]["responseTimeoutInSeconds"] = 5
    assert (await api.put("/api/jobs/v2/mx", json=job)).status_code == 200
    await run_attempts(runtime)  # the start job: one chunk message for the six
    [chunk] = await chunk_messages(work)
    assert sorted(chunk.work()) == [(d, 0) for d in ids]
    await runtime.broadcasts.engine.handle(chunk)
    retries = await chunk_messages(work)  # one per write that recorded a retry
    assert sorted(w for m in retries for w in m.work()) == [(d, 1) for d in offline]
    for retry in retries:
        await runtime.broadcasts.engine.handle(retry)

    final = (await api.get("/api/jobs/v2/mx")).json()
    assert final["status"] == "completed", final
    assert final["deviceJobStatistics"] == {
        "deviceCount": 6,
        "failedCount": 3,
        "succeededCount": 3,
        "runningCount": 0,
        "pendingCount": 0,
    }
    records = {r["deviceId"]: r for r in await device_jobs(api, "mx")}
    assert records[slow]["error"]["code"] == "GatewayTimeout"
    assert {records[d]["error"]["code"] for d in offline} == {"DeviceNotOnline"}
    settings = runtime.settings
    rows = BroadcastRows.from_connection_string(
        settings.storage_connection, settings.broadcasts_table
    )
    stored = {r.device_id: r async for r, _ in rows.records("mx")}
    assert total(await rows.stats("mx")).timed_out == 1
    await rows.close()
    assert {d: stored[d].attempt for d in offline} == dict.fromkeys(offline, 1)
    assert sorted(device_endpoint.callers) == sorted([*fine, slow])


async def test_a_worker_killed_mid_chunk_leaves_only_its_unfinished_calls_to_the_watch(
    api, device_endpoint, work, runtimes: Callable[..., Awaitable[Runtime]], runtime
):
    """The worker dies while two of its chunk's calls are in flight: the three that answered
    were recorded already (group commits do not wait for the slow ones); when the lease ends,
    the chunk's watch message, handled by another instance, calls only the two again, with the
    same Idempotency-Key, and the statistics end exact."""
    other = await runtimes(clock=runtime.clock)
    ids = same_bucket("kc", 5)
    fast, held = ids[:3], ids[3:]
    device_endpoint.held = frozenset(held)
    await add_devices(api, device_endpoint, ids)
    job = method_job("kc")
    job["cloudToDeviceMethod"]["responseTimeoutInSeconds"] = 5
    assert (await api.put("/api/jobs/v2/kc", json=job)).status_code == 200
    await run_attempts(runtime)
    [chunk] = await chunk_messages(work)
    worker = asyncio.create_task(runtime.broadcasts.engine.handle(chunk))
    await device_endpoint.wait_for(5)

    async def statistics() -> dict[str, int]:
        return dict((await api.get("/api/jobs/v2/kc")).json()["deviceJobStatistics"])

    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    while (await statistics())["succeededCount"] < 3:  # polls the store, as a host would
        assert loop.time() < deadline
        await asyncio.sleep(0.05)
    worker.cancel()  # the worker dies mid-call: nothing more of it reaches the store
    with pytest.raises(asyncio.CancelledError):
        await worker
    assert (await statistics())["runningCount"] == 2
    device_endpoint.release()

    assert isinstance(runtime.clock, FixedClock)
    watch = WorkMessage.chunk("kc", [(d, 0) for d in ids])  # what the claim sent
    await other.broadcasts.engine.handle(watch)  # before the lease ends: nobody is called
    assert len(device_endpoint.calls) == 5
    runtime.clock.advance(timedelta(seconds=5 + 5 + 31))  # connect + response + margin
    await other.broadcasts.engine.handle(watch)
    final = (await api.get("/api/jobs/v2/kc")).json()
    assert final["status"] == "completed", final
    assert final["deviceJobStatistics"]["succeededCount"] == 5
    for device_id in fast:
        assert [c["Idempotency-Key"] for c in device_endpoint.calls_of(device_id)] == [
            f"kc:{device_id}"
        ]
    for device_id in held:
        assert [c["Idempotency-Key"] for c in device_endpoint.calls_of(device_id)] == [
            f"kc:{device_id}"
        ] * 2


async def test_a_single_device_message_from_an_earlier_version_still_runs_its_device(
    api, device_endpoint, work, runtime
):
    await add_devices(api, device_endpoint, ["v1", "v2"])
    assert (await api.put("/api/jobs/v2/ov", json=method_job("ov"))).status_code == 200
    await run_attempts(runtime)
    chunks = await chunk_messages(work)
    old = '{"v": 1, "do": "device", "job": "ov", "device": "v1", "attempt": 0}'
    await runtime.broadcasts.engine.handle(WorkMessage.from_json(old))
    assert device_endpoint.callers == ["v1"]
    for chunk in chunks:  # the new messages leave the device the old one ran alone
        await runtime.broadcasts.engine.handle(chunk)
    assert sorted(device_endpoint.callers) == ["v1", "v2"]
    final = (await api.get("/api/jobs/v2/ov")).json()
    assert final["status"] == "completed"
    assert final["deviceJobStatistics"]["succeededCount"] == 2


# --- the process's call budget: sub-chunk claims, one lease per device ------------------------


def engine_with(
    runtime: Runtime, budget: CallBudget, device_table: TableClient, clock: Clock | None = None
) -> BroadcastEngine:
    """An engine of this runtime's stores whose registry has its own call budget and reads the
    devices from `device_table` (one instance's view), on `clock` (the runtime's if None)."""
    settings = runtime.settings
    clock = clock or runtime.clock
    rows = BroadcastRows.from_connection_string(
        settings.storage_connection, settings.broadcasts_table
    )
    queue = DeviceWorkQueue.from_connection_string(
        settings.storage_connection, settings.device_work_queue
    )
    registry = DeviceRegistry(DeviceRows(device_table), DeviceCaller(settings, budget), clock)
    return BroadcastEngine(rows, queue, registry, clock, settings.lease_margin)


async def test_each_device_of_a_big_chunk_is_leased_for_one_device_timeout(
    api, device_endpoint, work, runtime
):
    """Ten devices in one chunk, all called at once: each one's lease is one device timeout
    plus the margin from its claim, not a multiple for the chunk's size."""
    ids = same_bucket("lt", 10)
    device_endpoint.held = frozenset(ids)
    await add_devices(api, device_endpoint, ids)
    job = method_job("lt")
    job["cloudToDeviceMethod"]["responseTimeoutInSeconds"] = 5
    assert (await api.put("/api/jobs/v2/lt", json=job)).status_code == 200
    await run_attempts(runtime)
    [chunk] = await chunk_messages(work)
    worker = asyncio.create_task(runtime.broadcasts.engine.handle(chunk))
    await device_endpoint.wait_for(10)
    rows = BroadcastRows.from_connection_string(
        runtime.settings.storage_connection, runtime.settings.broadcasts_table
    )
    leases = {r.lease_until async for r, _ in rows.records("lt")}
    assert leases == {API_NOW + timedelta(seconds=5 + 5) + runtime.settings.lease_margin}
    device_endpoint.release()
    await worker
    assert (await api.get("/api/jobs/v2/lt")).json()["status"] == "completed"
    await rows.close()


async def test_a_chunk_claims_its_devices_as_slots_of_the_process_budget_free_up(
    api, device_endpoint, work, runtime
):
    """A budget of 3 calls and a chunk of 7 slow devices: 3 are claimed (running, leased) and
    called, the other 4 stay pending, not leased, until slots free up; then every device is
    called once and the job completes with exact statistics."""
    ids = same_bucket("sb", 7)
    device_endpoint.held = frozenset(ids)
    await add_devices(api, device_endpoint, ids)
    assert (await api.put("/api/jobs/v2/sb", json=method_job("sb"))).status_code == 200
    await run_attempts(runtime)
    [chunk] = await chunk_messages(work)
    engine = engine_with(runtime, CallBudget(3), runtime.store.tables.devices)
    worker = asyncio.create_task(engine.handle(chunk))
    await device_endpoint.wait_for(3)
    statistics = (await api.get("/api/jobs/v2/sb")).json()["deviceJobStatistics"]
    assert (statistics["runningCount"], statistics["pendingCount"]) == (3, 4)
    assert len(device_endpoint.calls) == 3
    device_endpoint.release()
    await worker
    final = (await api.get("/api/jobs/v2/sb")).json()
    assert final["status"] == "completed", final
    assert final["deviceJobStatistics"]["succeededCount"] == 7
    assert sorted(device_endpoint.callers) == sorted(ids)


async def test_a_storage_fault_before_the_calls_puts_the_devices_back_to_pending(
    api, device_endpoint, work, runtime
):
    """The registry cannot be read (its storage refuses connections) for a twin update (which
    writes the device's row): nobody is changed, the message fails (the host retries it) and
    the devices are pending again at once, so the retry claims them instead of waiting for
    their leases to end."""
    ids = same_bucket("sf", 3)
    await add_devices(api, device_endpoint, ids)
    assert (await api.put("/api/jobs/v2/sf", json=twin_job("sf"))).status_code == 200
    await run_attempts(runtime)
    [chunk] = await chunk_messages(work)
    dead = TableClient(
        endpoint="http://127.0.0.1:9",
        table_name="nothing",
        credential=AzureNamedKeyCredential("nobody", "bm9ib2R5"),
        retry_total=0,
    )
    engine = engine_with(runtime, CallBudget(), dead)
    with pytest.raises(ServiceRequestError):
        await engine.handle(chunk)
    await dead.close()
    statistics = (await api.get("/api/jobs/v2/sf")).json()["deviceJobStatistics"]
    assert (statistics["runningCount"], statistics["pendingCount"]) == (0, 3)
    assert device_endpoint.calls == []
    await runtime.broadcasts.engine.handle(chunk)  # the host's retry: no lease to wait for
    final = (await api.get("/api/jobs/v2/sf")).json()
    assert final["deviceJobStatistics"]["succeededCount"] == 3, final


def dead_table() -> TableClient:
    """A device table whose storage refuses every connection."""
    return TableClient(
        endpoint="http://127.0.0.1:9",
        table_name="nothing",
        credential=AzureNamedKeyCredential("nobody", "bm9ib2R5"),
        retry_total=0,
    )


async def test_a_method_broadcast_calls_its_devices_without_reading_their_rows(
    api, device_endpoint, work, runtime
):
    """The start's snapshot carries each device's endpoint in its record: a chunk run soon
    after calls every device although the registry cannot be read at all (before, each call
    read the device's row first: one storage request per device). The record keeps the
    endpoint (its headers may be credentials) only while the device is open, and the
    devices.jobs records never show it."""
    ids = same_bucket("nr", 3)
    await add_devices(api, device_endpoint, ids)
    assert (await api.put("/api/jobs/v2/nr", json=method_job("nr"))).status_code == 200
    await run_attempts(runtime)
    [chunk] = await chunk_messages(work)
    dead = dead_table()
    await engine_with(runtime, CallBudget(), dead).handle(chunk)
    await dead.close()
    final = (await api.get("/api/jobs/v2/nr")).json()
    assert final["status"] == "completed", final
    assert final["deviceJobStatistics"]["succeededCount"] == 3
    assert sorted(device_endpoint.callers) == sorted(ids)
    rows = BroadcastRows.from_connection_string(
        runtime.settings.storage_connection, runtime.settings.broadcasts_table
    )
    assert [r.endpoint async for r, _ in rows.records("nr")] == [None, None, None]
    await rows.close()
    records = await api.post(
        "/api/devices/query", json={"query": "SELECT * FROM devices.jobs WHERE jobId = 'nr'"}
    )
    assert "uri" not in records.text and "endpoint" not in records.text


async def test_an_endpoint_older_than_its_freshness_is_read_again_before_the_call(
    api, device_endpoint, work, runtime
):
    """A chunk that runs more than ENDPOINT_FRESH after the snapshot reads each device's row
    before its call (here the registry cannot be read: a storage fault, the message fails)."""
    ids = same_bucket("ol", 2)
    await add_devices(api, device_endpoint, ids)
    assert (await api.put("/api/jobs/v2/ol", json=method_job("ol"))).status_code == 200
    await run_attempts(runtime)
    [chunk] = await chunk_messages(work)
    later = FixedClock(runtime.clock.now() + ENDPOINT_FRESH + timedelta(seconds=1))
    dead = dead_table()
    with pytest.raises(ServiceRequestError):
        await engine_with(runtime, CallBudget(), dead, later).handle(chunk)
    await dead.close()
    assert device_endpoint.calls == []


async def test_a_device_that_moved_after_the_start_is_called_where_it_is_now(
    api, device_endpoint, work, runtime
):
    """The snapshot carried an endpoint nobody answers at; the device registered its real one
    after the start. Its call cannot connect to the carried endpoint, so its row is read and
    it is called at the new one, once, and succeeds."""
    [device_id] = same_bucket("mv", 1)
    body = {"deviceId": device_id, "endpoint": {"uri": "http://127.0.0.1:9/gone"}}
    assert (await api.put(f"/api/devices/{device_id}", json=body)).status_code == 200
    tags = {"tags": {"site": "berlin"}}
    assert (await api.patch(f"/api/twins/{device_id}", json=tags)).status_code == 200
    assert (await api.put("/api/jobs/v2/mv", json=method_job("mv"))).status_code == 200
    await run_attempts(runtime)
    [chunk] = await chunk_messages(work)
    moved = {"deviceId": device_id, "endpoint": {"uri": f"{device_endpoint.url}?d={device_id}"}}
    response = await api.put(f"/api/devices/{device_id}", json=moved, headers={"If-Match": '"*"'})
    assert response.status_code == 200, response.text
    await runtime.broadcasts.engine.handle(chunk)
    final = (await api.get("/api/jobs/v2/mv")).json()
    assert final["deviceJobStatistics"]["succeededCount"] == 1, final
    assert device_endpoint.callers == [device_id]


async def test_the_answers_of_one_claim_are_recorded_in_one_transaction(
    api, device_endpoint, work, runtime
):
    """Twelve devices of one chunk, claimed together and answering within milliseconds of each
    other: their results go in one group commit (the recorder waits a moment for the calls
    still in flight) rather than the first answer alone and the others after it."""
    ids = same_bucket("gc", 12)
    device_endpoint.held = frozenset(ids[::2])  # half answer a moment after the others
    await add_devices(api, device_endpoint, ids)
    assert (await api.put("/api/jobs/v2/gc", json=method_job("gc"))).status_code == 200
    await run_attempts(runtime)
    [chunk] = await chunk_messages(work)
    engine = engine_with(runtime, CallBudget(16), runtime.store.tables.devices)
    writes: list[int] = []
    change_chunk = engine._rows.change_chunk

    async def counted(*args: Any, **kwargs: Any) -> Any:
        change = await change_chunk(*args, **kwargs)
        writes.append(len(change.changed))
        return change

    engine._rows.change_chunk = counted  # type: ignore[method-assign]
    worker = asyncio.create_task(engine.handle(chunk))
    await device_endpoint.wait_for(12)
    device_endpoint.release()
    await worker
    final = (await api.get("/api/jobs/v2/gc")).json()
    assert final["deviceJobStatistics"]["succeededCount"] == 12, final
    assert writes == [12, 12]  # the claim, then every result


async def test_chunks_of_one_bucket_in_one_process_lose_no_race_to_each_other(
    api, device_endpoint, work, runtime
):
    """Sixty devices of one bucket start as two chunks; run at once by one process, their
    claims and results take turns on the bucket's counter row, each against the ETag the last
    one left: no transaction fails, so neither chunk reads its records again."""
    ids = same_bucket("cl", 60)
    await add_devices(api, device_endpoint, ids)
    assert (await api.put("/api/jobs/v2/cl", json=method_job("cl"))).status_code == 200
    await run_attempts(runtime)
    chunks = await chunk_messages(work)
    assert len(chunks) == 2
    engine = engine_with(runtime, CallBudget(), runtime.store.tables.devices)
    reads: list[int] = []
    read_chunk = engine._rows.read_chunk

    async def counted(*args: Any, **kwargs: Any) -> Any:
        reads.append(1)
        return await read_chunk(*args, **kwargs)

    engine._rows.read_chunk = counted  # type: ignore[method-assign]
    await asyncio.gather(*(engine.handle(chunk) for chunk in chunks))
    final = (await api.get("/api/jobs/v2/cl")).json()
    assert final["status"] == "completed", final
    assert final["deviceJobStatistics"]["succeededCount"] == 60, final
    assert sorted(device_endpoint.callers) == sorted(ids)
    assert len(reads) == 2  # each chunk's one read: no lost race


async def test_a_chunk_claimed_in_three_parts_sends_one_watch(api, device_endpoint, work, runtime):
    """A budget of 4 and a chunk of 12: three claims, one watch message (the first claim's,
    covering every device of the chunk); a watch per claim cost a queue message each."""
    ids = same_bucket("ow", 12)
    await add_devices(api, device_endpoint, ids)
    assert (await api.put("/api/jobs/v2/ow", json=method_job("ow"))).status_code == 200
    await run_attempts(runtime)
    [chunk] = await chunk_messages(work)
    before = (await work.client.get_queue_properties()).approximate_message_count
    sent: list[WorkMessage] = []
    engine = engine_with(runtime, CallBudget(4), runtime.store.tables.devices)
    send = engine._queue.send

    async def counted(message: WorkMessage, **kwargs: Any) -> None:
        sent.append(message)
        await send(message, **kwargs)

    engine._queue.send = counted  # type: ignore[method-assign]
    await engine.handle(chunk)
    final = (await api.get("/api/jobs/v2/ow")).json()
    assert final["deviceJobStatistics"]["succeededCount"] == 12, final
    assert len(device_endpoint.calls) == 12
    [watch] = sent
    assert sorted(d for d, _ in watch.work()) == sorted(ids)
    after = (await work.client.get_queue_properties()).approximate_message_count
    assert after == before + 1


async def test_a_full_budget_of_calls_to_one_host_runs_at_once(device_endpoint, runtime):
    """A host's connections are split over a few pools (httpcore's cost per call grows with
    its pool): 32 calls at once to one host, the whole budget, still all reach the device
    before any answers, none waiting for a connection; then 32 more reuse them."""
    caller = DeviceCaller(runtime.settings, CallBudget(32))
    ids = [f"hp{i:02d}" for i in range(32)]
    device_endpoint.held = frozenset(ids)
    call = MethodCall("reboot", {}, 30, 0)

    async def one(device_id: str) -> int:
        endpoint = Endpoint(f"{device_endpoint.url}?d={device_id}")
        return (await caller.invoke(device_id, endpoint, call)).status

    calls = asyncio.gather(*(one(d) for d in ids))
    await device_endpoint.wait_for(32)
    device_endpoint.release()
    first = await calls
    again = await asyncio.gather(*(one(d) for d in ids))
    assert len(first) == len(again) == 32 and len(set(first + again)) == 1
    assert len(device_endpoint.calls) == 64
    await caller.aclose()
