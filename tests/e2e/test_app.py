"""End to end: the real function_app.py in the local host on Azurite, driven over HTTP."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from devhost.host import DevHost
from shared.runtime import close_current_runtime
from shared.timefmt import from_iso, to_iso
from tests.support.app_settings import app_settings
from tests.support.http_target import HttpTarget

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
async def app_host(
    tmp_path: Path, storage_connection: str, unique_name: str
) -> AsyncIterator[Callable[..., Any]]:
    """Starts function_app.py in devhost with this test's tables and queue."""
    shutil.copy(ROOT / "host.json", tmp_path / "host.json")
    hosts: list[DevHost] = []

    async def start(**settings: str) -> DevHost:
        overrides = app_settings(
            storage_connection, unique_name, **{"DISPATCH_SCHEDULE": "0 * * * * *", **settings}
        )
        host = DevHost(project_dir=tmp_path, settings_overrides=overrides, port=0)
        await host.start()
        hosts.append(host)
        return host

    yield start
    for host in hosts:
        await host.stop()
    await close_current_runtime()


@pytest.fixture
async def sink() -> AsyncIterator[HttpTarget]:
    server = await HttpTarget().start()
    yield server
    await server.stop()


async def until(check: Callable[[], Any], timeout: float = 30) -> Any:
    """Poll an HTTP condition with a deadline (the app works in the background)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        result = await check()
        if result:
            return result
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError("condition not reached")
        await asyncio.sleep(0.2)


def job(uri: str, **properties: Any) -> dict[str, Any]:
    action = properties.pop("action", {})
    return {
        "properties": {
            "action": {"type": "Http", "request": {"uri": uri, "method": "POST"}, **action},
            **properties,
        }
    }


async def test_a_job_created_over_http_fires_at_its_second(app_host, sink):
    host = await app_host()
    async with httpx.AsyncClient(base_url=host.api_url) as api:
        assert (await api.put("/jobCollections/e2e", json={})).status_code == 201
        due = (datetime.now(UTC) + timedelta(seconds=3)).replace(microsecond=0)
        response = await api.put(
            "/jobCollections/e2e/jobs/soon", json=job(f"{sink.url}/soon", startTime=to_iso(due))
        )
        assert response.status_code == 201, response.text
        [request] = await sink.wait_for(1)
        assert due <= request.at < due + timedelta(seconds=1)

        async def completed() -> Any:
            body = (await api.get("/jobCollections/e2e/jobs/soon")).json()
            return body if body["properties"]["state"] == "Completed" else None

        body = await until(completed)
        assert body["properties"]["status"]["executionCount"] == 1
        history = (await api.get("/jobCollections/e2e/jobs/soon/history")).json()["value"]
        assert [h["properties"]["status"] for h in history] == ["Completed"]


async def test_the_timer_dispatches_occurrences_beyond_creation_time(app_host, sink):
    # Look only 2 s ahead and tick every second, so the timer, not the API, dispatches.
    host = await app_host(DISPATCH_SCHEDULE="* * * * * *", SCHEDULER_LOOKAHEAD_SECONDS="2")
    async with httpx.AsyncClient(base_url=host.api_url) as api:
        await api.put("/jobCollections/e2e", json={})
        start = (datetime.now(UTC) + timedelta(seconds=6)).replace(microsecond=0)
        body = job(
            f"{sink.url}/tick",
            startTime=to_iso(start),
            recurrence={"frequency": "Minute", "interval": 1, "count": 1},
        )
        created = await api.put("/jobCollections/e2e/jobs/timed", json=body)
        assert created.json()["properties"]["status"]["nextExecutionTime"] == to_iso(start)
        [request] = await sink.wait_for(1, timeout=20)
        assert start <= request.at < start + timedelta(seconds=1)
        expected = from_iso(request.headers["x-ms-scheduler-expected-execution-time"])
        assert expected == start


async def test_retries_then_error_action_then_faulted_through_the_host(app_host, sink):
    alert = await HttpTarget().start()
    try:
        host = await app_host()
        sink.statuses = [503]
        action = {
            "retryPolicy": {"retryType": "Fixed", "retryInterval": "PT1S", "retryCount": 1},
            "errorAction": {
                "type": "Http",
                "request": {"uri": f"{alert.url}/alert", "method": "POST", "body": "failed"},
                "retryPolicy": {"retryType": "None"},
            },
        }
        async with httpx.AsyncClient(base_url=host.api_url) as api:
            await api.put("/jobCollections/e2e", json={})
            await api.put("/jobCollections/e2e/jobs/doomed", json=job(sink.url, action=action))
            [alerted] = await alert.wait_for(1)
            assert alerted.body == "failed"

            async def faulted() -> Any:
                body = (await api.get("/jobCollections/e2e/jobs/doomed")).json()
                return body if body["properties"]["state"] == "Faulted" else None

            body = await until(faulted)
            status = body["properties"]["status"]
            assert (status["executionCount"], status["failureCount"], status["faultedCount"]) == (
                1,
                2,
                1,
            )
            history = (await api.get("/jobCollections/e2e/jobs/doomed/history")).json()["value"]
            assert [
                (h["properties"]["actionName"], h["properties"]["status"]) for h in history
            ] == [
                ("ErrorAction", "Completed"),
                ("MainAction", "Failed"),
                ("MainAction", "Failed"),
            ]
            assert len(sink.requests) == 2
    finally:
        await alert.stop()


async def test_a_configured_function_key_guards_the_api_like_azure(app_host):
    host = await app_host(DEVHOST_FUNCTION_KEY="k3y")
    async with httpx.AsyncClient(base_url=host.api_url) as api:
        for refused in (
            await api.get("/jobCollections"),
            await api.get("/jobCollections", params={"code": "nope"}),
        ):
            assert refused.status_code == 401
            assert refused.json()["error"]["code"] == "Unauthorized"
        keyed = await api.get("/jobCollections", headers={"x-functions-key": "k3y"})
        assert keyed.status_code == 200 and keyed.json() == {"value": []}
        assert (await api.get("/jobCollections", params={"code": "k3y"})).status_code == 200


@pytest.mark.parametrize(
    ("path", "status", "code", "target"),
    [
        # Routed to the app through its catch-all, as in Azure; the app names the field.
        ("/api/jobCollections/a%0Ab", 400, "BadRequest", "jobCollectionName"),
        ("/api/jobCollections/demo/jobs/j%0A1", 400, "BadRequest", "jobName"),
        ("/api/no%0Athing", 404, "ResourceNotFound", None),
        # Outside the catch-all: the local host's own 404, in the same shape.
        ("/api%0A", 404, "ResourceNotFound", "path"),
        ("/%0A", 404, "ResourceNotFound", "path"),
    ],
)
async def test_a_path_with_control_characters_gets_the_api_json_error(
    app_host, path, status, code, target
):
    host = await app_host()
    async with httpx.AsyncClient(base_url=host.base_url) as client:
        response = await client.get(path)

    assert response.status_code == status
    assert response.headers["content-type"] == "application/json"
    error = response.json()["error"]
    assert error["code"] == code
    assert error.get("target") == target


async def test_a_service_bus_action_runs_on_demand_through_the_local_host(app_host, tmp_path):
    """The real app process sends to the HTTPS stand-in (namespace `localhost`, which resolves
    without help), trusting its CA; history says what was sent, and never shows the key."""
    from tests.support.service_bus_endpoint import SasRule, ServiceBusEndpoint

    key = "ZTJlLWtleS10aGF0LW11c3QtbmV2ZXItbGVhaw=="
    endpoint = await ServiceBusEndpoint().start()
    try:
        endpoint.add_namespace("localhost", [SasRule("sender", key)])
        endpoint.add_entity("localhost", "orders")
        ca = tmp_path / "stand-in-ca.pem"
        ca.write_bytes(endpoint.ca_pem)
        host = await app_host(
            SCHEDULER_SERVICE_BUS_HOST_PATTERN=f"{{namespace}}:{endpoint.port}",
            SCHEDULER_EXTRA_CA_CERTS=str(ca),
            SCHEDULER_ALLOWED_NETWORKS="127.0.0.0/8,::1/128",
        )
        action = {
            "type": "ServiceBusQueue",
            "serviceBusQueueMessage": {
                "namespace": "localhost",
                "queueName": "orders",
                "message": "from e2e",
                "authentication": {
                    "type": "SharedAccessKey",
                    "sasKeyName": "sender",
                    "sasKey": key,
                },
            },
        }
        body = {"properties": {"startTime": "2099-01-01T00:00:00Z", "action": action}}
        async with httpx.AsyncClient(base_url=host.api_url) as api:
            await api.put("/jobCollections/e2e", json={})
            created = await api.put("/jobCollections/e2e/jobs/bus", json=body)
            assert created.status_code == 201, created.text
            assert key not in created.text
            assert (await api.post("/jobCollections/e2e/jobs/bus/run")).status_code in (200, 202)
            await endpoint.wait_for(lambda e: len(e.messages) == 1)
            assert endpoint.messages[0].body == b"from e2e"

            async def recorded() -> Any:
                rows = (await api.get("/jobCollections/e2e/jobs/bus/history")).json()["value"]
                return rows or None

            [row] = await until(recorded)
            assert "ServiceBusQueue Action - Message" in row["properties"]["message"]
            assert "(201 Created)" in row["properties"]["message"]
            assert key not in (await api.get("/jobCollections/e2e/jobs/bus/history")).text
    finally:
        await endpoint.stop()
