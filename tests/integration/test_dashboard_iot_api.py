"""The dashboard's broadcast and device routes (/api/dashboard-data/...): the same services as the
IoT Hub paths, behind the function key instead of a shared access signature, paged, and never
showing a device's keys or endpoint header values. In-process (ASGI) against Azurite, with a real
device endpoint on 127.0.0.1."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from shared.runtime import Runtime
from shared.storage.device_work import DeviceWorkQueue
from tests.integration.test_broadcasts import add_devices, drain, method_job
from tests.support.device_endpoint import DeviceEndpoint
from tests.support.engine import api_client

pytestmark = pytest.mark.integration

DATA = "/api/dashboard-data"
HEADER_SECRET = "device-header-secret-0815"


@pytest.fixture
async def api(runtime: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client(runtime) as client:
        yield client


async def all_pages(api: httpx.AsyncClient, path: str, **params: Any) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    continuation = ""
    while True:
        answer = await api.get(path, params={**params, "continuation": continuation})
        assert answer.status_code == 200, answer.text
        found.extend(answer.json()["value"])
        continuation = answer.json()["continuation"]
        if continuation is None:
            return found


async def test_devices_are_listed_paged_and_searched_without_keys_or_header_values(
    api, device_endpoint: DeviceEndpoint
):
    await add_devices(api, device_endpoint, ["pump-1", "pump-2", "fan-1"])
    guarded = {
        "deviceId": "pump-3",
        "endpoint": {"uri": f"{device_endpoint.url}?token=t", "headers": {"x-k": HEADER_SECRET}},
    }
    created = await api.put("/api/devices/pump-3", json=guarded)
    assert created.status_code == 200, created.text
    key = created.json()["authentication"]["symmetricKey"]["primaryKey"]
    await api.patch("/api/twins/pump-3", json={"tags": {"site": "paris"}})

    answer = await api.get(f"{DATA}/devices")
    assert answer.status_code == 200, answer.text
    rows = {row["deviceId"]: row for row in answer.json()["value"]}
    assert sorted(rows) == ["fan-1", "pump-1", "pump-2", "pump-3"]
    assert rows["pump-3"]["endpointHost"] == f"127.0.0.1:{device_endpoint.port}"
    assert rows["pump-3"]["status"] == "enabled"
    for secret in (key, HEADER_SECRET, "token=t", "?d="):
        assert secret not in answer.text

    paged = await all_pages(api, f"{DATA}/devices", top=3)
    assert sorted(row["deviceId"] for row in paged) == sorted(rows)
    by_prefix = await all_pages(api, f"{DATA}/devices", prefix="pump-")
    assert sorted(row["deviceId"] for row in by_prefix) == ["pump-1", "pump-2", "pump-3"]
    both = await all_pages(api, f"{DATA}/devices", prefix="pump", condition="tags.site = 'berlin'")
    assert sorted(row["deviceId"] for row in both) == ["pump-1", "pump-2"]

    bad = await api.get(f"{DATA}/devices", params={"condition": "tags.site = "})
    assert bad.status_code == 400
    error = bad.json()["error"]
    assert error["target"] == "condition"
    assert error["message"].endswith("at position 13")  # counted in the condition


async def test_broadcasts_are_listed_read_paged_by_device_status_and_cancelled(
    api, runtime: Runtime, device_endpoint: DeviceEndpoint, work: DeviceWorkQueue
):
    reachable = [f"d{i:02d}" for i in range(5)]
    await add_devices(api, device_endpoint, reachable)
    await add_devices(api, device_endpoint, ["x00", "x01"], reachable=False)
    assert (await api.put("/api/jobs/v2/b1", json=method_job("b1"))).status_code == 200
    await drain(work, runtime)
    later = method_job("b2", startTime="2099-01-01T00:00:00Z")
    assert (await api.put("/api/jobs/v2/b2", json=later)).status_code == 200

    listed = await all_pages(api, f"{DATA}/broadcasts", top=1)
    assert [(b["jobId"], b["status"]) for b in listed] == [("b1", "completed"), ("b2", "scheduled")]
    only = await api.get(f"{DATA}/broadcasts", params={"jobStatus": "scheduled"})
    assert [b["jobId"] for b in only.json()["value"]] == ["b2"]
    one = (await api.get(f"{DATA}/broadcast", params={"id": "b1"})).json()
    assert one["deviceJobStatistics"]["succeededCount"] == 5
    assert one["deviceJobStatistics"]["failedCount"] == 2

    devices = await all_pages(api, f"{DATA}/broadcast-devices", id="b1", top=2)
    assert len(devices) == 7
    failed = await all_pages(api, f"{DATA}/broadcast-devices", id="b1", status="failed")
    assert sorted(d["deviceId"] for d in failed) == ["x00", "x01"]
    assert all(d["error"]["code"] for d in failed)
    done = await api.get(f"{DATA}/broadcast-devices", params={"id": "b1", "status": "completed"})
    assert done.json()["value"][0]["outcome"]["deviceMethodResponse"]["status"] == 201

    cancelled = await api.post(f"{DATA}/broadcast-cancel", params={"id": "b2"})
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["status"] == "cancelled"

    for path, params, field in (
        ("broadcast", {"id": "no'quote"}, "id"),
        ("broadcast-devices", {"id": "b1", "status": "nope"}, "status"),
        ("broadcasts", {"jobStatus": "nope"}, "jobStatus"),
        ("broadcasts", {"top": "0"}, "top"),
    ):
        bad = await api.get(f"{DATA}/{path}", params=params)
        assert bad.status_code == 400, (path, bad.text)
        assert field in bad.json()["error"]["target"], bad.text
    missing = await api.get(f"{DATA}/broadcast", params={"id": "nope"})
    assert missing.status_code == 404
