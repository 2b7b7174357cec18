"""The device registry over HTTP (ASGI, in-process) against Azurite, with real device endpoints
on 127.0.0.1: IoT Hub's paths, shapes, etags, paging and error shape."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import httpx
import pytest

from shared.api.app import create_api
from shared.devices.sas import AccessPolicy, IotRight
from shared.kinds.http.network_guard import NetworkPolicy
from shared.runtime import Runtime
from tests.support.engine import api_client
from tests.support.http_target import HttpTarget
from tests.support.iot import OWNER, SignIotRequests

pytestmark = pytest.mark.integration

API_VERSION = {"api-version": "2021-04-12"}


@pytest.fixture
async def api(runtime: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client(runtime) as client:
        client.params = httpx.QueryParams(API_VERSION)
        yield client


def assert_hub_error(response: httpx.Response, status: int, code: str) -> str:
    assert response.status_code == status, response.text
    assert response.headers["iothub-errorcode"] == code
    body = response.json()
    assert body["Message"].startswith(f"ErrorCode:{code};"), body
    assert body["ExceptionMessage"].startswith("Tracking ID:")
    return str(body["Message"])


# --- devices ---------------------------------------------------------------------------------


async def test_create_generates_keys_get_returns_the_device_and_a_second_create_is_409(api):
    created = await api.put("/api/devices/d1", json={"deviceId": "d1"})
    assert created.status_code == 200, created.text
    device = created.json()
    assert device["deviceId"] == "d1" and device["status"] == "enabled"
    keys = device["authentication"]["symmetricKey"]
    assert device["authentication"]["type"] == "sas"
    assert (
        keys["primaryKey"] and keys["secondaryKey"] and keys["primaryKey"] != keys["secondaryKey"]
    )
    assert (await api.get("/api/devices/d1")).json() == device
    again = await api.put("/api/devices/d1", json={"deviceId": "d1"})
    assert_hub_error(again, 409, "DeviceAlreadyExists")


async def test_update_needs_the_current_etag_or_a_wildcard_quoted_or_not(api):
    device = (await api.put("/api/devices/d1", json={})).json()
    stale = device["etag"]
    updated = await api.put(
        "/api/devices/d1",
        json={**device, "status": "disabled"},
        headers={"If-Match": f'"{stale}"'},
    )
    assert updated.status_code == 200, updated.text
    assert updated.json()["status"] == "disabled" and updated.json()["etag"] != stale
    # Keys left out on an update are kept, not regenerated.
    assert updated.json()["authentication"] == device["authentication"]
    refused = await api.put("/api/devices/d1", json={}, headers={"If-Match": f'"{stale}"'})
    assert_hub_error(refused, 412, "PreconditionFailed")
    for wildcard in ("*", '"*"'):
        assert (
            await api.put("/api/devices/d1", json={}, headers={"If-Match": wildcard})
        ).status_code == 200
    missing = await api.put("/api/devices/nobody", json={}, headers={"If-Match": '"*"'})
    assert_hub_error(missing, 404, "DeviceNotFound")


async def test_delete_with_a_stale_etag_is_412_then_204_then_404(api):
    device = (await api.put("/api/devices/d1", json={})).json()
    await api.put("/api/devices/d1", json={}, headers={"If-Match": "*"})
    stale = await api.delete("/api/devices/d1", headers={"If-Match": f'"{device["etag"]}"'})
    assert_hub_error(stale, 412, "PreconditionFailed")
    assert (await api.delete("/api/devices/d1", headers={"If-Match": '"*"'})).status_code == 204
    assert_hub_error(await api.get("/api/devices/d1"), 404, "DeviceNotFound")
    assert_hub_error(await api.delete("/api/devices/d1"), 404, "DeviceNotFound")


async def test_ids_with_iot_hub_punctuation_round_trip_and_bad_ids_are_400(api):
    odd = "a-.+%_#*?!(),:=@$'z"
    path = "/api/devices/a-.+%25_%23*%3F!(),:=@$'z"
    created = await api.put(path, json={})
    assert created.status_code == 200, created.text
    assert created.json()["deviceId"] == odd
    assert (await api.get(path)).json()["deviceId"] == odd
    for bad in ("caf%C3%A9", "x" * 129, "a%20b", "a;b"):
        response = await api.put(f"/api/devices/{bad}", json={})
        message = assert_hub_error(response, 400, "ArgumentInvalid")
        assert "deviceId" in message


async def test_bad_bodies_are_400_in_iot_hub_shape_naming_the_field(api):
    cases = [
        ({"status": "on"}, "status"),
        ({"deviceId": "other"}, "deviceId"),
        (
            {"authentication": {"type": "sas", "symmetricKey": {"primaryKey": "!!"}}},
            "authentication.symmetricKey.primaryKey",
        ),
        ({"authentication": {"type": "magic"}}, "authentication.type"),
        ({"endpoint": {"uri": "ftp://x/"}}, "endpoint.uri"),
        ({"endpoint": {"uri": "http://x/", "headers": {"a": "b\r\nc"}}}, "endpoint.headers.a"),
    ]
    for body, field in cases:
        message = assert_hub_error(
            await api.put("/api/devices/d1", json=body), 400, "ArgumentInvalid"
        )
        assert field in message, (body, message)
    not_json = await api.put(
        "/api/devices/d1", content=b"{nope", headers={"content-type": "application/json"}
    )
    assert_hub_error(not_json, 400, "ArgumentInvalid")
    assert_hub_error(await api.get("/api/devices", params={"top": "all"}), 400, "ArgumentInvalid")


async def test_list_devices_honours_top(api):
    for n in range(5):
        await api.put(f"/api/devices/d{n}", json={})
    assert len((await api.get("/api/devices")).json()) == 5
    listed = (await api.get("/api/devices", params={"top": 3})).json()
    assert len(listed) == 3 and all(d["deviceId"].startswith("d") for d in listed)


# --- twins -----------------------------------------------------------------------------------


async def test_twin_patch_merges_null_removes_and_desired_version_bumps(api):
    await api.put("/api/devices/d1", json={})
    twin = (await api.get("/api/twins/d1")).json()
    assert twin["deviceId"] == "d1" and twin["tags"] == {}
    assert twin["properties"]["desired"]["$version"] == 1
    patched = await api.patch(
        "/api/twins/d1",
        json={
            "tags": {"site": "berlin", "floor": 2},
            "properties": {"desired": {"fan": {"on": True}}},
        },
        headers={"If-Match": f'"{twin["etag"]}"'},
    )
    assert patched.status_code == 200, patched.text
    after = patched.json()
    assert after["tags"] == {"site": "berlin", "floor": 2}
    assert after["properties"]["desired"]["fan"] == {"on": True}
    assert after["properties"]["desired"]["$version"] == 2
    assert after["version"] == twin["version"] + 1 and after["etag"] != twin["etag"]
    # Tags only: the desired version stays; null removes a key.
    again = (await api.patch("/api/twins/d1", json={"tags": {"floor": None}})).json()
    assert again["tags"] == {"site": "berlin"}
    assert again["properties"]["desired"]["$version"] == 2
    stale = await api.patch(
        "/api/twins/d1", json={"tags": {"x": 1}}, headers={"If-Match": f'"{twin["etag"]}"'}
    )
    assert_hub_error(stale, 412, "PreconditionFailed")


async def test_twin_put_replaces_tags_and_desired_but_not_reported(api):
    await api.put("/api/devices/d1", json={})
    await api.patch("/api/twins/d1", json={"tags": {"a": 1}, "properties": {"desired": {"x": 1}}})
    await api.patch("/api/twins/d1/reported", json={"fw": "1.0"})
    replaced = await api.put(
        "/api/twins/d1",
        json={"tags": {"b": 2}, "properties": {"desired": {"y": 2}, "reported": {"ignored": 1}}},
        headers={"If-Match": '"*"'},
    )
    assert replaced.status_code == 200, replaced.text
    twin = replaced.json()
    assert twin["tags"] == {"b": 2}
    desired = {k: v for k, v in twin["properties"]["desired"].items() if not k.startswith("$")}
    assert desired == {"y": 2}
    assert twin["properties"]["reported"]["fw"] == "1.0"
    assert "ignored" not in twin["properties"]["reported"]
    assert twin["properties"]["reported"]["$version"] == 2


async def test_bad_twin_bodies_and_unknown_twins(api):
    await api.put("/api/devices/d1", json={})
    for body, field in [
        ({"tags": {"a.b": 1}}, "tags"),
        ({"tags": {"$x": 1}}, "tags"),
        ({"tags": []}, "tags"),
        ({"properties": {"desired": "x"}}, "properties.desired"),
    ]:
        message = assert_hub_error(
            await api.patch("/api/twins/d1", json=body), 400, "ArgumentInvalid"
        )
        assert field in message
    assert_hub_error(await api.get("/api/twins/nobody"), 404, "DeviceNotFound")


# --- desired push and direct methods ---------------------------------------------------------


async def test_a_desired_change_is_pushed_to_the_endpoint(api, device_endpoint):
    await api.put(
        "/api/devices/d1",
        json={"endpoint": {"uri": device_endpoint.url, "headers": {"x-device-key": "s3cret"}}},
    )
    shown = (await api.get("/api/devices/d1")).json()["endpoint"]
    assert shown == {"uri": device_endpoint.url, "headerNames": ["x-device-key"]}
    assert "s3cret" not in (await api.get("/api/devices/d1")).text
    await api.patch("/api/twins/d1", json={"properties": {"desired": {"fan": 3}}})
    await device_endpoint.wait_for(1)
    headers, body = device_endpoint.calls[0]
    assert headers["iothub-desired-version"] == "2"
    assert headers["x-device-key"] == "s3cret"
    assert body["desired"]["fan"] == 3 and body["desired"]["$version"] == 2
    # A tags-only change is not pushed; an SDK-style update (no endpoint field) keeps it.
    await api.patch("/api/twins/d1", json={"tags": {"a": 1}})
    await api.put("/api/devices/d1", json={"status": "enabled"}, headers={"If-Match": "*"})
    await api.patch("/api/twins/d1", json={"properties": {"desired": {"fan": 4}}})
    await device_endpoint.wait_for(2)
    assert len(device_endpoint.calls) == 2
    assert device_endpoint.calls[1][1]["desired"]["$version"] == 3


async def test_a_failed_push_does_not_fail_the_twin_write(api):
    dead = await HttpTarget().start()
    url = dead.url
    await dead.stop()  # nothing listens there any more
    await api.put("/api/devices/d1", json={"endpoint": {"uri": url}})
    patched = await api.patch("/api/twins/d1", json={"properties": {"desired": {"x": 1}}})
    assert patched.status_code == 200
    assert patched.json()["properties"]["desired"]["$version"] == 2


async def test_a_method_is_posted_to_the_endpoint_and_its_answer_returned(api, device_endpoint):
    await api.put("/api/devices/d1", json={"endpoint": {"uri": device_endpoint.url}})
    answer = await api.post(
        "/api/twins/d1/methods",
        json={"methodName": "reboot", "payload": {"delay": 5}, "responseTimeoutInSeconds": 30},
    )
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"status": 201, "payload": {"echo": {"delay": 5}}}
    headers, body = device_endpoint.calls[0]
    assert headers["iothub-method-name"] == "reboot"
    assert body == {"methodName": "reboot", "payload": {"delay": 5}}


async def test_a_method_without_endpoint_or_with_a_dead_one_is_device_not_online(api):
    await api.put("/api/devices/d1", json={})
    no_endpoint = await api.post("/api/twins/d1/methods", json={"methodName": "reboot"})
    assert_hub_error(no_endpoint, 404, "DeviceNotOnline")
    dead = await HttpTarget().start()
    url = dead.url
    await dead.stop()
    await api.put("/api/devices/d1", json={"endpoint": {"uri": url}}, headers={"If-Match": "*"})
    refused = await api.post("/api/twins/d1/methods", json={"methodName": "reboot"})
    assert_hub_error(refused, 404, "DeviceNotOnline")
    assert_hub_error(
        await api.post("/api/twins/nobody/methods", json={"methodName": "x"}), 404, "DeviceNotFound"
    )


async def test_a_method_answered_too_late_is_a_gateway_timeout(api, device_endpoint):
    device_endpoint.delay = 30
    await api.put("/api/devices/d1", json={"endpoint": {"uri": device_endpoint.url}})
    started = asyncio.get_running_loop().time()
    late = await api.post(
        "/api/twins/d1/methods", json={"methodName": "slow", "responseTimeoutInSeconds": 5}
    )
    assert_hub_error(late, 504, "GatewayTimeout")
    assert asyncio.get_running_loop().time() - started < 15


async def test_method_bodies_are_checked(api):
    await api.put("/api/devices/d1", json={})
    for body, field in [
        ({}, "methodName"),
        ({"methodName": "x", "responseTimeoutInSeconds": 4}, "responseTimeoutInSeconds"),
        ({"methodName": "x", "responseTimeoutInSeconds": 301}, "responseTimeoutInSeconds"),
        ({"methodName": "x", "connectTimeoutInSeconds": "5"}, "connectTimeoutInSeconds"),
    ]:
        message = assert_hub_error(
            await api.post("/api/twins/d1/methods", json=body), 400, "ArgumentInvalid"
        )
        assert field in message


async def test_the_network_guard_refuses_a_loopback_endpoint_unless_allowed(
    runtimes, device_endpoint
):
    runtime = await runtimes(networks=NetworkPolicy.parse(""))
    async with api_client(runtime) as api:
        await api.put("/api/devices/d1", json={"endpoint": {"uri": device_endpoint.url}})
        refused = await api.post("/api/twins/d1/methods", json={"methodName": "reboot"})
        message = assert_hub_error(refused, 404, "DeviceNotOnline")
        assert "loopback" in message
        await api.patch("/api/twins/d1", json={"properties": {"desired": {"x": 1}}})
    assert device_endpoint.calls == []


# --- queries ---------------------------------------------------------------------------------


async def _query(api: httpx.AsyncClient, text: str, **headers: str) -> httpx.Response:
    return await api.post("/api/devices/query", json={"query": text}, headers=headers)


async def test_query_pages_across_partitions_with_continuations(api):
    for n in range(23):
        await api.put(f"/api/devices/q{n:02d}", json={})
        await api.patch(
            f"/api/twins/q{n:02d}", json={"tags": {"site": "berlin" if n % 2 else "paris"}}
        )
    seen: list[str] = []
    token: str | None = None
    pages = 0
    while True:
        headers = {"x-ms-max-item-count": "4"}
        if token:
            headers["x-ms-continuation"] = token
        page = await _query(api, "SELECT * FROM devices WHERE tags.site = 'berlin'", **headers)
        assert page.status_code == 200, page.text
        assert page.headers["x-ms-item-type"] == "twin"
        items = page.json()
        assert len(items) <= 4
        seen += [twin["deviceId"] for twin in items]
        pages += 1
        token = page.headers.get("x-ms-continuation")
        if token is None:
            break
    assert sorted(seen) == [f"q{n:02d}" for n in range(23) if n % 2]
    assert len(seen) == len(set(seen)) and pages >= 3
    everything = await _query(api, "SELECT * FROM devices")
    assert len(everything.json()) == 23 and "x-ms-continuation" not in everything.headers


async def test_query_by_device_ids_uses_point_reads_and_pages(api):
    for n in range(5):
        await api.put(f"/api/devices/p{n}", json={})
    text = "SELECT * FROM devices WHERE deviceId IN ['p4', 'p1', 'p3', 'missing']"
    first = await _query(api, text, **{"x-ms-max-item-count": "2"})
    assert [t["deviceId"] for t in first.json()] == ["p1", "p3"]
    token = first.headers["x-ms-continuation"]
    assert json.loads(__import__("base64").urlsafe_b64decode(token)) == {"id": "p3"}
    second = await _query(api, text, **{"x-ms-continuation": token})
    assert [t["deviceId"] for t in second.json()] == ["p4"]
    assert "x-ms-continuation" not in second.headers


async def test_device_job_queries_are_empty_for_now_and_bad_queries_are_400(api):
    jobs = await _query(api, "SELECT * FROM devices.jobs WHERE devices.jobs.jobId = 'j1'")
    assert jobs.status_code == 200 and jobs.json() == []
    assert jobs.headers["x-ms-item-type"] == "deviceJob"
    message = assert_hub_error(
        await _query(api, "SELECT * FROM devices WHERE"), 400, "ArgumentInvalid"
    )
    assert "position" in message
    for headers in ({"x-ms-max-item-count": "101"}, {"x-ms-max-item-count": "x"}):
        assert_hub_error(
            await _query(api, "SELECT * FROM devices", **headers), 400, "ArgumentInvalid"
        )
    bad_token = await _query(api, "SELECT * FROM devices", **{"x-ms-continuation": "%%%"})
    assert_hub_error(bad_token, 400, "ArgumentInvalid")
    no_query = await api.post("/api/devices/query", json={})
    assert "query" in assert_hub_error(no_query, 400, "ArgumentInvalid")


async def test_each_device_route_asks_for_its_iot_hub_right(runtime: Runtime) -> None:
    """A read-only policy reads the registry but cannot change it or call a device; no token
    gets IoT Hub's 401 and nothing is stored."""
    reader = AccessPolicy("reader", b"r" * 32, frozenset({IotRight.REGISTRY_READ}))

    async def provide() -> Runtime:
        return runtime

    app = create_api(provide, iot_policies=[OWNER, reader])
    transport = httpx.ASGITransport(app=app)
    params = httpx.QueryParams(API_VERSION)
    async with (
        httpx.AsyncClient(transport=transport, base_url="http://test", params=params) as anon,
        httpx.AsyncClient(
            transport=transport,
            base_url="http://test",
            params=params,
            auth=SignIotRequests(reader),
        ) as read_only,
    ):
        refused = await read_only.put("/api/devices/ro-1", json={"deviceId": "ro-1"})
        unsigned = await anon.put("/api/devices/ro-1", json={"deviceId": "ro-1"})
        method = await read_only.post(
            "/api/twins/ro-1/methods", json={"methodName": "reboot", "payload": {}}
        )
        listed = await read_only.get("/api/devices")
        missing = await read_only.get("/api/devices/ro-1")
    assert refused.status_code == 401, refused.text
    assert refused.headers["iothub-errorcode"] == "IotHubUnauthorizedAccess"
    assert unsigned.status_code == 401
    assert method.status_code == 401
    assert listed.status_code == 200 and listed.json() == []
    assert missing.status_code == 404, "nothing was stored by the refused writes"
