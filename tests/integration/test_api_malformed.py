"""Malformed input to the management API (ASGI, in-process, on Azurite): every case gets a clear
4xx in ARM's error shape (`{"error": {"code", "message", "target"?}}`) with `x-ms-request-id`,
and leaves the store exactly as it was (every row of the three tables with its ETag, and the
executions queue's length), checked around each request.

Cases are grouped (one runtime per group, `subtests` for each case) to keep the module fast.

What happens to the less obvious inputs (the documented behaviour):
- duplicate keys in a JSON object are refused (400, `body`): parsers disagree on which one wins,
  so accepting them would make what is stored depend on the client's JSON library;
- `NaN`, `Infinity` and `-Infinity` are not JSON (RFC 8259) and are refused (400, `body`), and
  so are numbers Python cannot hold as such (`1e400`, read as infinity; 5000-digit integers);
- the body must be UTF-8 (a BOM is ignored); a lone surrogate, as bytes or as a `\\uD800`
  escape, is refused (400; the escape's target names its field);
- nesting deeper than 64 levels is refused (400, `body`), however deep it goes;
- a body over 64 KiB is a 413 whether or not it declares its length (a chunked body is counted
  as it arrives); a job over 16 KiB (Azure Scheduler's job size) is a 400 naming `body`;
- a Content-Type other than `application/json` or `application/*+json` is a 415; no
  Content-Type at all is read as JSON;
- a `/` in a name (`%2F`) is refused by the front door (400, `path`): decoded, it would route to
  another resource (`ops%2Fjobs%2Fx` is `ops/jobs/x`); so is an empty segment (`//`, a trailing
  `/`), which the router would otherwise answer with a redirect;
- names follow Azure Scheduler's rule (1-100 letters, digits, `-`, `_`, starting with a letter
  or digit), so `#`, `?`, `\\`, `|`, `.`, control characters, spaces and non-ASCII letters are
  400s naming the segment; ARM segments follow ARM's rules (subscription ids: 1-64 letters,
  digits and `-`; resource groups: 1-90 letters, digits and `_-.()`, not ending in `.`).
"""

from __future__ import annotations

import itertools
import json
from collections.abc import AsyncIterator
from typing import Any, cast

import httpx
import pytest
from azure.data.tables.aio import TableServiceClient

from shared.names import DEFAULT_RESOURCE_GROUP, DEFAULT_SUBSCRIPTION
from shared.runtime import Runtime
from tests.support.engine import API_NOW, api_client

pytestmark = pytest.mark.integration

NOW = API_NOW
SHORT = "/api/jobCollections"
ARM_COLLECTIONS = (
    f"/api/subscriptions/{DEFAULT_SUBSCRIPTION}/resourceGroups/{DEFAULT_RESOURCE_GROUP}"
    "/providers/Microsoft.Scheduler/jobCollections"
)
BASE = f"{SHORT}/ops"
JOB = f"{BASE}/jobs/existing"
NEW_JOB = f"{BASE}/jobs/fresh"
JSON = {"content-type": "application/json"}


def job_body(**properties: Any) -> dict[str, Any]:
    action = {"type": "Http", "request": {"uri": "https://example.com/hook", "method": "POST"}}
    return {"properties": {"action": action, "recurrence": {"frequency": "Hour"}, **properties}}


def queue_job() -> dict[str, Any]:
    message = {"storageAccount": "acct1", "queueName": "q-1", "sasToken": "t", "message": "m"}
    return {
        "properties": {
            "action": {
                "type": "StorageQueue",
                "queueMessage": message,
                "errorAction": {"type": "StorageQueue", "queueMessage": dict(message)},
            }
        }
    }


@pytest.fixture
async def api(runtime: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client(runtime) as client:
        assert (await client.put(BASE, json={"properties": {}})).status_code == 201
        assert (await client.put(JOB, json=job_body())).status_code == 201
        yield client


async def snapshot(runtime: Runtime) -> dict[str, Any]:
    """Every table of the app, every row (with its ETag), and the queue's length."""
    state: dict[str, Any] = {}
    prefix = runtime.settings.table_prefix
    async with TableServiceClient.from_connection_string(
        runtime.settings.storage_connection
    ) as service:
        async for item in service.list_tables():
            if not item.name.startswith(prefix):
                continue
            table = service.get_table_client(item.name)
            rows = [(dict(row), row.metadata.get("etag")) async for row in table.list_entities()]
            state[table.table_name] = sorted(rows, key=lambda row: json.dumps(row, default=str))
    properties = await runtime.queue.client.get_queue_properties()
    state["queue"] = properties.approximate_message_count
    return state


async def refused(
    api: httpx.AsyncClient,
    runtime: Runtime,
    method: str,
    url: str,
    status: int,
    *,
    code: str | None = None,
    target: str | None = None,
    **kwargs: Any,
) -> dict[str, Any]:
    """Sends the request; asserts the status, the ARM error, the request id and an unchanged
    store. Returns the error object."""
    before = await snapshot(runtime)
    response = await api.request(method, url, **kwargs)
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers.get("x-ms-request-id"), response.headers
    assert response.headers["content-type"].startswith("application/json"), response.headers
    body = response.json()
    assert set(body) == {"error"}, body
    error: dict[str, Any] = body["error"]
    assert isinstance(error["code"], str) and error["code"], error
    assert isinstance(error["message"], str) and error["message"], error
    if code is not None:
        assert error["code"] == code, error
    if target is not None:
        assert error.get("target") == target, error
    assert await snapshot(runtime) == before, "the store changed"
    return error


# -- bodies ----------------------------------------------------------------------------------

# Every operation that reads a body (the ARM path family shares the code; one case is enough).
BODY_TARGETS = [
    ("PUT", NEW_JOB),
    ("PUT", JOB),
    ("PATCH", JOB),
    ("PUT", f"{SHORT}/freshcollection"),
    ("PUT", BASE),
    ("PATCH", BASE),
    ("PUT", f"{ARM_COLLECTIONS}/ops/jobs/fresh"),
]


NOT_AN_OBJECT = [
    pytest.param(b"{nope", id="invalid-json"),
    pytest.param(b'{"properties": {', id="truncated"),
    pytest.param(b'{"properties": {}} trailing', id="trailing-garbage"),
    pytest.param(b"{'properties': {}}", id="single-quotes"),
    pytest.param(b"[]", id="array"),
    pytest.param(b'[{"properties": {}}]', id="array-of-object"),
    pytest.param(b'"properties"', id="string"),
    pytest.param(b"12", id="number"),
    pytest.param(b"null", id="null"),
    pytest.param(b"true", id="boolean"),
    pytest.param(b'{"properties": {"state": NaN}}', id="nan"),
    pytest.param(b'{"properties": {"state": Infinity}}', id="infinity"),
    pytest.param(b'{"location": -Infinity}', id="minus-infinity"),
    pytest.param(b'{"properties": {"recurrence": {"interval": 1e400}}}', id="float-overflow"),
    pytest.param(b'{"location": ' + b"9" * 5000 + b"}", id="5000-digit-number"),
    pytest.param(b'{"properties": {}, "properties": {}}', id="duplicate-keys"),
    pytest.param(b'{"tags": {"a": "1", "a": "2"}}', id="duplicate-nested-keys"),
    pytest.param(b'{"location": "caf\xe9"}', id="latin-1-bytes"),
    pytest.param(b"\xff\xfe{\x00}\x00", id="utf-16"),
    pytest.param(b'{"location": "\xed\xa0\x80"}', id="utf-8-encoded-surrogate"),
    pytest.param(b'{"a": ' * 70 + b"1" + b"}" * 70, id="nested-70-objects"),
    pytest.param(b"[" * 30000 + b"]" * 30000, id="nested-30000-arrays"),
    pytest.param(b'{"properties": ' + b"[" * 20000 + b"]" * 20000 + b"}", id="deep-inner"),
]


async def test_bodies_that_are_not_a_json_object_are_400s_naming_the_body(api, runtime, subtests):
    for (raw,), (method, url) in itertools.product(
        (cast(tuple[bytes], param.values) for param in NOT_AN_OBJECT), BODY_TARGETS
    ):
        with subtests.test(method=method, url=url, body=raw[:40]):
            await refused(
                api,
                runtime,
                method,
                url,
                400,
                code="BadRequest",
                target="body",
                content=raw,
                headers=JSON,
            )


async def test_an_empty_body_where_one_is_required_is_a_400(api, runtime, subtests):
    for method, url in [("PUT", NEW_JOB), ("PATCH", JOB), ("PATCH", BASE)]:
        for raw in [b"", b"  \r\n\t"]:
            with subtests.test(method=method, url=url, raw=raw):
                await refused(api, runtime, method, url, 400, target="body", content=raw)


async def test_a_utf_8_bom_is_ignored(api):
    raw = b"\xef\xbb\xbf" + json.dumps(job_body()).encode()
    response = await api.put(NEW_JOB, content=raw, headers=JSON)
    assert response.status_code == 201, response.text


async def test_lone_surrogate_escapes_are_refused_naming_the_field(api, runtime, subtests):
    for escape in ["\\ud800", "ab\\udfffcd", "\\udc00\\ud800"]:
        with subtests.test(escape=escape):
            raw = json.dumps(job_body()).replace('"POST"', f'"POST", "body": "{escape}"').encode()
            await refused(
                api,
                runtime,
                "PUT",
                NEW_JOB,
                400,
                target="properties.action.request.body",
                content=raw,
                headers=JSON,
            )
    with subtests.test(where="key"):
        raw = b'{"tags": {"\\ud800": "x"}}'
        await refused(api, runtime, "PATCH", BASE, 400, target="tags", content=raw)


WRONG_TYPES: list[tuple[tuple[str, ...], Any, str]] = [
    (("recurrence", "interval"), "ten", "properties.recurrence.interval"),
    (("recurrence", "interval"), 1.5, "properties.recurrence.interval"),
    (("recurrence", "interval"), [1], "properties.recurrence.interval"),
    (("recurrence", "frequency"), 3, "properties.recurrence.frequency"),
    (("recurrence", "count"), "many", "properties.recurrence.count"),
    (("recurrence", "endTime"), "soon", "properties.recurrence.endTime"),
    (("recurrence", "schedule"), "daily", "properties.recurrence.schedule"),
    (("recurrence", "schedule", "hours"), "nine", "properties.recurrence.schedule.hours"),
    (("recurrence", "schedule", "hours"), [25], "properties.recurrence.schedule.hours"),
    (("recurrence", "schedule", "hours"), [[9]], "properties.recurrence.schedule.hours"),
    (("recurrence",), "hourly", "properties.recurrence"),
    (("startTime",), "yesterday", "properties.startTime"),
    (("startTime",), [], "properties.startTime"),
    (("startTime",), {}, "properties.startTime"),
    (("state",), 1, "properties.state"),
    (("action",), "http://example.com", "properties.action"),
    (("action", "type"), None, "properties.action.type"),
    (("action", "request"), [], "properties.action.request"),
    (("action", "request", "headers"), ["a: b"], "properties.action.request.headers"),
    (("action", "request", "headers"), {"a": 1}, "properties.action.request.headers.a"),
    (("action", "request", "method"), 7, "properties.action.request.method"),
    (("action", "request", "uri"), {"href": "x"}, "properties.action.request.uri"),
    (("action", "request", "body"), {"json": 1}, "properties.action.request.body"),
    (("action", "request", "timeoutSeconds"), "30s", "properties.action.request.timeoutSeconds"),
    (("action", "retryPolicy"), "none", "properties.action.retryPolicy"),
    (("action", "retryPolicy", "retryCount"), -1, "properties.action.retryPolicy.retryCount"),
    (
        ("action", "retryPolicy", "retryInterval"),
        "thirty",
        "properties.action.retryPolicy.retryInterval",
    ),
    (("action", "errorAction"), 5, "properties.action.errorAction"),
    (("action", "request", "authentication"), "Basic", "properties.action.request"),
]


async def test_wrong_field_types_are_400s_naming_the_field(api, runtime, subtests):
    for path, value, target in WRONG_TYPES:
        for method, url in [("PUT", NEW_JOB), ("PATCH", JOB)]:
            with subtests.test(method=method, field=".".join(path), value=value):
                body = job_body()
                node = body["properties"]
                for key in path[:-1]:
                    node = node.setdefault(key, {})
                node[path[-1]] = value
                error = await refused(api, runtime, method, url, 400, code="BadRequest", json=body)
                assert error["target"].startswith(target), error


async def test_a_number_is_not_a_start_time(api, runtime):
    body = job_body(startTime=12)
    await refused(api, runtime, "PUT", NEW_JOB, 400, target="properties.startTime", json=body)


async def test_a_boolean_is_not_an_interval(api, runtime):
    body = job_body(recurrence={"frequency": "Hour", "interval": True})
    await refused(
        api, runtime, "PUT", NEW_JOB, 400, target="properties.recurrence.interval", json=body
    )


def _with_unknown(body: dict[str, Any], path: tuple[str, ...]) -> dict[str, Any]:
    node = body
    for key in path:
        node = node.setdefault(key, {})
    node["colour"] = "blue"
    return body


UNKNOWN_JOB_FIELDS: list[tuple[Any, tuple[str, ...], str]] = [
    (job_body, (), "colour"),
    (job_body, ("properties",), "properties.colour"),
    (job_body, ("properties", "action"), "properties.action.colour"),
    (job_body, ("properties", "action", "request"), "properties.action.request.colour"),
    (job_body, ("properties", "recurrence"), "properties.recurrence.colour"),
    (job_body, ("properties", "recurrence", "schedule"), "properties.recurrence.schedule.colour"),
    (job_body, ("properties", "action", "retryPolicy"), "properties.action.retryPolicy.colour"),
    (queue_job, ("properties", "action", "queueMessage"), "properties.action.queueMessage"),
    (queue_job, ("properties", "action", "errorAction"), "properties.action.errorAction.colour"),
    (
        queue_job,
        ("properties", "action", "errorAction", "queueMessage"),
        "properties.action.errorAction.queueMessage",
    ),
]


async def test_unknown_job_fields_at_every_level_are_400s_naming_them(api, runtime, subtests):
    for make, path, target in UNKNOWN_JOB_FIELDS:
        for method, url in [("PUT", NEW_JOB), ("PATCH", JOB)]:
            with subtests.test(method=method, at=".".join(path)):
                body = _with_unknown(make(), path)
                error = await refused(api, runtime, method, url, 400, code="BadRequest", json=body)
                assert error["target"].startswith(target), error
                assert "colour" in error["target"] or "colour" in error["message"], error


async def test_unknown_authentication_fields_are_refused_without_echoing_secrets(api, runtime):
    body = job_body()
    body["properties"]["action"]["request"]["authentication"] = {
        "type": "Basic",
        "username": "u",
        "password": "hunter2-secret",
        "colour": "blue",
    }
    error = await refused(api, runtime, "PUT", NEW_JOB, 400, json=body)
    assert error["target"] == "properties.action.request.authentication", error
    assert "colour" in error["message"] and "hunter2" not in json.dumps(error), error


BAD_COLLECTIONS: list[tuple[dict[str, Any], str]] = [
    ({"colour": 1}, "colour"),
    ({"properties": {"colour": 1}}, "properties.colour"),
    ({"properties": {"sku": {"name": "Standard", "colour": 1}}}, "properties.sku.colour"),
    ({"properties": {"sku": "Standard"}}, "properties.sku"),
    ({"properties": {"quota": {"colour": 1}}}, "properties.quota.colour"),
    (
        {"properties": {"quota": {"maxRecurrence": {"frequency": "Hour", "colour": 1}}}},
        "properties.quota.maxRecurrence.colour",
    ),
    ({"tags": ["a"]}, "tags"),
    ({"tags": {"a": 1}}, "tags.a"),
    ({"location": 5}, "location"),
    ({"location": "x" * 101}, "location"),
    ({"properties": {"quota": {"maxJobCount": "many"}}}, "properties.quota.maxJobCount"),
    ({"properties": {"quota": {"maxJobCount": 0}}}, "properties.quota.maxJobCount"),
    ({"properties": []}, "properties"),
    ({"properties": {"state": "Deleted"}}, "properties.state"),
]


async def test_bad_collection_bodies_are_400s_naming_the_field(api, runtime, subtests):
    for body, target in BAD_COLLECTIONS:
        for method, url in [("PUT", BASE), ("PATCH", BASE), ("PUT", f"{SHORT}/freshcollection")]:
            with subtests.test(method=method, url=url, body=body):
                await refused(
                    api, runtime, method, url, 400, code="BadRequest", target=target, json=body
                )


async def test_a_body_over_64_kib_with_content_length_is_a_413(api, runtime, subtests):
    raw = json.dumps({"tags": {"t": "x" * (65 * 1024)}}).encode()
    for method, url in BODY_TARGETS:
        with subtests.test(method=method, url=url):
            error = await refused(
                api, runtime, method, url, 413, target="body", content=raw, headers=JSON
            )
            assert error["code"] == "RequestEntityTooLarge"


async def test_a_content_length_that_is_not_a_size_is_a_413(api, runtime, subtests):
    for declared in ["-1", "abc", "1e9", str(10**30)]:
        with subtests.test(declared=declared):
            request = api.build_request("PUT", NEW_JOB, content=b"{}", headers=JSON)
            request.headers["content-length"] = declared
            before = await snapshot(runtime)
            response = await api.send(request)
            assert response.status_code == 413, response.text
            assert response.json()["error"]["code"] == "RequestEntityTooLarge"
            assert response.headers["x-ms-request-id"]
            assert await snapshot(runtime) == before


async def test_a_chunked_body_over_64_kib_without_content_length_is_a_413(api, runtime, subtests):
    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"tags": {"t": "'
        for _ in range(80):
            yield b"x" * 1024
        yield b'"}}'

    for method, url in BODY_TARGETS:
        with subtests.test(method=method, url=url):
            request = api.build_request(method, url, content=chunks(), headers=JSON)
            assert "content-length" not in request.headers
            before = await snapshot(runtime)
            response = await api.send(request)
            assert response.status_code == 413, response.text
            error = response.json()["error"]
            assert error["code"] == "RequestEntityTooLarge" and error["target"] == "body"
            assert response.headers["x-ms-request-id"]
            assert await snapshot(runtime) == before


async def test_a_valid_job_over_16_kib_is_a_400_naming_the_body(api, runtime, subtests):
    body = job_body()
    request = body["properties"]["action"]["request"]
    request["body"] = "b" * 8000
    request["headers"] = {f"x-h{i}": "v" * 60 for i in range(50)}  # 50 headers, < 4096 chars
    body["properties"]["action"]["errorAction"] = {
        "type": "Http",
        "request": {"uri": "https://example.com/error", "method": "POST", "body": "e" * 8000},
    }
    assert 16 * 1024 < len(json.dumps(body)) < 64 * 1024
    for method, url in [("PUT", NEW_JOB), ("PUT", JOB), ("PATCH", JOB)]:
        with subtests.test(method=method, url=url):
            error = await refused(api, runtime, method, url, 400, target="body", json=body)
            assert "16384" in error["message"], error


async def test_a_body_that_is_not_json_by_its_content_type_is_a_415(api, runtime, subtests):
    raw = json.dumps(job_body()).encode()
    for content_type in [
        "text/plain",
        "application/x-www-form-urlencoded",
        "application/xml",
        "multipart/form-data; boundary=x",
        "text/json",
        "application/jsonp",
    ]:
        for method, url in BODY_TARGETS:
            with subtests.test(content_type=content_type, method=method, url=url):
                error = await refused(
                    api,
                    runtime,
                    method,
                    url,
                    415,
                    content=raw,
                    headers={"content-type": content_type},
                )
                assert error["code"] == "UnsupportedMediaType" and error["target"] == "body"


async def test_json_content_types_and_none_are_accepted(api, subtests):
    raw = json.dumps(job_body()).encode()
    for content_type in [
        None,
        "application/json",
        "Application/JSON; charset=utf-8",
        "application/merge-patch+json",
    ]:
        with subtests.test(content_type=content_type):
            request = api.build_request("PUT", NEW_JOB, content=raw)
            request.headers.pop("content-type", None)
            if content_type is not None:
                request.headers["content-type"] = content_type
            response = await api.send(request)
            assert response.status_code == 201, response.text
            assert (await api.delete(NEW_JOB)).status_code == 200


# -- names in the path -----------------------------------------------------------------------

BAD_NAMES = [
    pytest.param("a%23b", id="hash"),
    pytest.param("a%3Fb", id="question-mark"),
    pytest.param("a%5Cb", id="backslash"),
    pytest.param("a%00b", id="nul"),
    pytest.param("a%01b", id="control-01"),
    pytest.param("a%7Fb", id="del-7f"),
    pytest.param("a%0Ab", id="newline"),
    pytest.param("a%20b", id="space"),
    pytest.param("%20", id="only-space"),
    pytest.param("a%09", id="trailing-tab"),
    pytest.param("caf%C3%A9", id="unicode-letter"),
    pytest.param("%E6%97%A5%E6%9C%AC", id="cjk"),
    pytest.param("a%FFb", id="invalid-utf-8"),
    pytest.param("a%7Cb", id="pipe-key-separator"),
    pytest.param("a.b", id="dot"),
    pytest.param("%2E%2E", id="dot-dot"),
    pytest.param("-lead", id="leading-hyphen"),
    pytest.param("_lead", id="leading-underscore"),
    pytest.param("a" * 101, id="101-characters"),
    pytest.param("a%25b", id="percent"),
    pytest.param("a'b", id="quote"),
]

NAME_PLACES = [
    ("PUT", f"{BASE}/jobs/{{}}", "jobName"),
    ("GET", f"{BASE}/jobs/{{}}", "jobName"),
    ("PATCH", f"{BASE}/jobs/{{}}", "jobName"),
    ("DELETE", f"{BASE}/jobs/{{}}", "jobName"),
    ("POST", f"{BASE}/jobs/{{}}/run", "jobName"),
    ("GET", f"{BASE}/jobs/{{}}/history", "jobName"),
    ("PUT", f"{SHORT}/{{}}", "jobCollectionName"),
    ("DELETE", f"{SHORT}/{{}}", "jobCollectionName"),
    ("GET", f"{SHORT}/{{}}/jobs", "jobCollectionName"),
    ("POST", f"{SHORT}/{{}}/disable", "jobCollectionName"),
    ("PUT", f"{ARM_COLLECTIONS}/{{}}", "jobCollectionName"),
    ("PUT", f"{ARM_COLLECTIONS}/ops/jobs/{{}}", "jobName"),
]


async def test_names_that_break_azure_scheduler_rules_are_400s_naming_the_segment(
    api, runtime, subtests
):
    for (name,), (method, template, target) in itertools.product(
        (param.values for param in BAD_NAMES), NAME_PLACES
    ):
        with subtests.test(method=method, url=template, name=name):
            body = job_body() if "/jobs/" in template else {"properties": {}}
            kwargs: dict[str, Any] = {"json": body} if method in ("PUT", "PATCH") else {}
            url = template.format(name)
            await refused(
                api, runtime, method, url, 400, code="BadRequest", target=target, **kwargs
            )


SLASHED = [
    f"{BASE}/jobs/a%2Fb",
    f"{BASE}/jobs/a%2fb",
    f"{SHORT}/a%2Fb",
    f"{SHORT}/ops%2Fjobs%2Ffresh",  # decoded, it would be job 'fresh' of 'ops'
    f"{ARM_COLLECTIONS}/ops%2Fjobs%2Ffresh",
    f"{BASE}/jobs/%2F",
    f"{BASE}/jobs/a%2Fb/run",
]


async def test_a_slash_in_a_name_is_refused_not_routed(api, runtime, subtests):
    for url in SLASHED:
        for method in ["PUT", "GET", "DELETE", "POST"]:
            with subtests.test(method=method, url=url):
                kwargs: dict[str, Any] = {"json": job_body()} if method == "PUT" else {}
                await refused(
                    api, runtime, method, url, 400, code="BadRequest", target="path", **kwargs
                )


EMPTY_SEGMENTS = [
    ("PUT", f"{BASE}/jobs/"),
    ("GET", f"{BASE}/jobs/"),
    ("PUT", f"{SHORT}/"),
    ("GET", f"{SHORT}/"),
    ("GET", f"{SHORT}//jobs"),
    ("PUT", f"{SHORT}//jobs/x"),
    ("GET", f"{ARM_COLLECTIONS}/"),
    ("DELETE", f"{BASE}/"),
    ("POST", f"{BASE}/jobs//run"),
]


async def test_empty_names_are_refused_not_redirected(api, runtime, subtests):
    for method, url in EMPTY_SEGMENTS:
        with subtests.test(method=method, url=url):
            kwargs: dict[str, Any] = {"json": job_body()} if method == "PUT" else {}
            await refused(
                api, runtime, method, url, 400, code="BadRequest", target="path", **kwargs
            )


async def test_a_100_character_name_is_the_longest_accepted(api):
    name = "a" * 100
    assert (await api.put(f"{BASE}/jobs/{name}", json=job_body())).status_code == 201
    assert (await api.put(f"{SHORT}/{name}", json={})).status_code == 201
    job = (await api.get(f"{BASE}/jobs/{name}")).json()
    assert job["name"] == f"ops/{name}"
    assert (await api.get(f"{SHORT}/{name}")).json()["name"] == name


BAD_SEGMENTS = [
    (("a%23b", DEFAULT_RESOURCE_GROUP), "subscriptionId"),
    (("a%3Fb", DEFAULT_RESOURCE_GROUP), "subscriptionId"),
    (("a%5Cb", DEFAULT_RESOURCE_GROUP), "subscriptionId"),
    (("a%00b", DEFAULT_RESOURCE_GROUP), "subscriptionId"),
    (("a%7Cb", DEFAULT_RESOURCE_GROUP), "subscriptionId"),
    (("a_b", DEFAULT_RESOURCE_GROUP), "subscriptionId"),
    (("a" * 65, DEFAULT_RESOURCE_GROUP), "subscriptionId"),
    ((DEFAULT_SUBSCRIPTION, "rg."), "resourceGroupName"),
    ((DEFAULT_SUBSCRIPTION, "r%23g"), "resourceGroupName"),
    ((DEFAULT_SUBSCRIPTION, "r%7Cg"), "resourceGroupName"),
    ((DEFAULT_SUBSCRIPTION, "r%01g"), "resourceGroupName"),
    ((DEFAULT_SUBSCRIPTION, "r%20g"), "resourceGroupName"),
    ((DEFAULT_SUBSCRIPTION, "r" * 91), "resourceGroupName"),
]


async def test_bad_arm_segments_are_400s_naming_them(api, runtime, subtests):
    suffixes = ["", "/ops", "/ops/jobs/existing", "/ops/jobs/existing/history"]
    for ((subscription, group), target), suffix in itertools.product(BAD_SEGMENTS, suffixes):
        url = (
            f"/api/subscriptions/{subscription}/resourceGroups/{group}"
            f"/providers/Microsoft.Scheduler/jobCollections{suffix}"
        )
        with subtests.test(method="GET", url=url):
            await refused(api, runtime, "GET", url, 400, code="BadRequest", target=target)
        if suffix in ("/ops", "/ops/jobs/existing"):
            with subtests.test(method="PUT", url=url):
                body = job_body() if "jobs" in suffix else {}
                await refused(api, runtime, "PUT", url, 400, target=target, json=body)


async def test_bad_subscription_in_list_by_subscription_is_a_400(api, runtime, subtests):
    for subscription in ["a%23b", "a%7Cb", "a%00", "a" * 65]:
        with subtests.test(subscription=subscription):
            url = f"/api/subscriptions/{subscription}/providers/Microsoft.Scheduler/jobCollections"
            await refused(api, runtime, "GET", url, 400, target="subscriptionId")


# -- query parameters ------------------------------------------------------------------------

BAD_QUERIES: list[tuple[str, str]] = [
    (f"{BASE}/jobs?$top=0", "query.$top"),
    (f"{BASE}/jobs?$top=101", "query.$top"),
    (f"{BASE}/jobs?$top=abc", "query.$top"),
    (f"{BASE}/jobs?$top=-5", "query.$top"),
    (f"{BASE}/jobs?$top=1e2", "query.$top"),
    (f"{BASE}/jobs?$top=", "query.$top"),
    (f"{BASE}/jobs?$skip=-1", "query.$skip"),
    (f"{BASE}/jobs?$skip=x", "query.$skip"),
    (f"{BASE}/jobs?$filter=state%20eq%20'Bogus'", "$filter"),
    (f"{BASE}/jobs?$filter=name%20eq%20'x'", "$filter"),
    (f"{BASE}/jobs?$filter=state%20ne%20'Enabled'", "$filter"),
    (f"{BASE}/jobs?$filter=%27%3B%20drop", "$filter"),
    (f"{BASE}/jobs?$filter=", "$filter"),
    (f"{BASE}/jobs?$filter=" + "x" * 201, "query.$filter"),
    (f"{BASE}/jobs?$skiptoken=" + "x" * 301, "query.$skiptoken"),
    (f"{JOB}/history?$filter=state%20eq%20'Enabled'", "$filter"),
    (f"{JOB}/history?$filter=status%20eq%20'Maybe'", "$filter"),
    (f"{JOB}/history?$top=0", "query.$top"),
    (f"{JOB}/occurrences?count=0", "query.count"),
    (f"{JOB}/occurrences?count=1001", "query.count"),
    (f"{JOB}/occurrences?count=ten", "query.count"),
    (f"{JOB}/occurrences?after=tomorrow", "query.after"),
    (f"{SHORT}?$top=0", "query.$top"),
    (f"{ARM_COLLECTIONS}?$top=abc", "query.$top"),
]


async def test_bad_query_parameters_are_400s_naming_them(api, runtime, subtests):
    for url, target in BAD_QUERIES:
        with subtests.test(url=url):
            await refused(api, runtime, "GET", url, 400, code="BadRequest", target=target)


async def test_a_forged_skiptoken_is_not_a_5xx(api, runtime, subtests):
    for token in ["garbage", "%00", "job%7Cz", "a" * 300, "eyJub3QiOiAiYSB0b2tlbiJ9", "%FF"]:
        for url in [f"{BASE}/jobs", f"{JOB}/history", SHORT]:
            with subtests.test(url=url, token=token):
                before = await snapshot(runtime)
                response = await api.get(f"{url}?$skiptoken={token}")
                assert response.status_code in (200, 400), response.text
                assert response.headers["x-ms-request-id"]
                assert await snapshot(runtime) == before


async def test_an_unsupported_api_version_is_a_400(api, runtime, subtests):
    versions = ["bogus", "2015-01-01", "2016-03-01%00", "", "2016-03-01-preview", "x" * 500]
    places = [("GET", JOB), ("PUT", NEW_JOB), ("DELETE", JOB), ("GET", "/api/nope")]
    for version, (method, url) in itertools.product(versions, places):
        with subtests.test(method=method, url=url, version=version):
            kwargs: dict[str, Any] = {"json": job_body()} if method == "PUT" else {}
            error = await refused(
                api,
                runtime,
                method,
                f"{url}?api-version={version}",
                400,
                target="api-version",
                **kwargs,
            )
            assert "2016-03-01" in error["message"]


async def test_supported_api_versions_are_accepted(api, subtests):
    for version in ["2016-03-01", "2016-01-01", "2014-08-01-preview"]:
        with subtests.test(version=version):
            response = await api.get(f"{JOB}?api-version={version}")
            assert response.status_code == 200, response.text
            created = await api.put(f"{NEW_JOB}?api-version={version}", json=job_body())
            assert created.status_code == 201, created.text
            assert (await api.delete(f"{NEW_JOB}?api-version={version}")).status_code == 200


# -- verbs and unknown paths -----------------------------------------------------------------

WRONG_VERBS: list[tuple[str, str]] = [
    ("POST", JOB),
    ("POST", BASE),
    ("GET", f"{JOB}/run"),
    ("DELETE", f"{JOB}/run"),
    ("PUT", f"{BASE}/enable"),
    ("GET", f"{BASE}/disable"),
    ("PUT", f"{BASE}/jobs"),
    ("DELETE", f"{BASE}/jobs"),
    ("POST", f"{JOB}/history"),
    ("PATCH", f"{JOB}/occurrences"),
    ("PUT", SHORT),
    ("DELETE", ARM_COLLECTIONS),
    ("TRACE", JOB),
]


async def test_wrong_verbs_are_405s_in_arm_shape_with_allow(api, runtime, subtests):
    for method, url in WRONG_VERBS:
        with subtests.test(method=method, url=url):
            await refused(api, runtime, method, url, 405, code="InvalidHttpVerb")
            response = await api.request(method, url)
            assert response.headers.get("allow"), response.headers


UNKNOWN_PATHS = [
    "/api/nope",
    "/api/jobCollections/ops/nope",
    "/api/jobCollections/ops/jobs/existing/nope",
    "/api/subscriptions/x/resourceGroups/y/providers/Other.Provider/jobCollections",
    "/nope",
]


async def test_unknown_paths_are_404s_in_arm_shape(api, runtime, subtests):
    for url in UNKNOWN_PATHS:
        for method in ["GET", "PUT", "DELETE"]:
            with subtests.test(method=method, url=url):
                await refused(api, runtime, method, url, 404, code="ResourceNotFound")


# -- edge values -----------------------------------------------------------------------------


async def test_a_start_time_before_year_1000_is_answered_in_rfc_3339(api):
    """Found by Schemathesis: `strftime("%Y")` wrote year 999 as `999`, a 500 in the response
    model (occurrences) and a date-time no client can read (job)."""
    body = job_body(startTime="0999-01-01T00:00:00Z")
    created = await api.put(NEW_JOB, json=body)
    assert created.status_code == 201, created.text
    assert created.json()["properties"]["startTime"] == "0999-01-01T00:00:00Z"
    assert (await api.get(NEW_JOB)).json()["properties"]["startTime"] == "0999-01-01T00:00:00Z"
    preview = await api.get(f"{JOB}/occurrences", params={"after": "0999-01-01T00:00:00Z"})
    assert preview.status_code == 200, preview.text
    assert preview.json()["value"][0] == "0999-01-01T00:00:00Z"


@pytest.mark.parametrize(
    "properties",
    [
        pytest.param(
            {"startTime": "0001-01-01T00:00:00Z", "recurrence": {"frequency": "Minute"}},
            id="start-at-year-1",
        ),
        pytest.param(
            {
                "startTime": "9999-12-31T23:00:00Z",
                "recurrence": {"frequency": "Month", "interval": 18},
            },
            id="start-near-year-9999",
        ),
    ],
)
async def test_a_start_time_at_the_edge_of_the_calendar_is_not_a_500(api, runtime, properties):
    body = job_body(**properties)
    response = await api.put(NEW_JOB, json=body)
    assert response.status_code < 500, response.text


@pytest.mark.parametrize(
    ("recurrence", "after"),
    [
        pytest.param({"frequency": "Hour"}, "9999-12-31T23:59:59Z", id="after-year-9999"),
        pytest.param(
            {
                "frequency": "Day",
                "timeZone": "America/St_Johns",
                "schedule": {"hours": [2], "minutes": [30]},
            },
            "0001-01-01T12:00:00Z",
            id="after-year-1-in-a-time-zone",
        ),
    ],
)
async def test_occurrences_after_the_edge_of_the_calendar_are_not_a_500(api, recurrence, after):
    assert (await api.put(NEW_JOB, json=job_body(recurrence=recurrence))).status_code == 201
    response = await api.get(f"{NEW_JOB}/occurrences", params={"after": after, "count": 5})
    assert response.status_code < 500, response.text


EXTREME_TIMES = [
    pytest.param(
        {"startTime": "0001-01-01T00:00:00+14:00"}, "properties.startTime", id="start-in-year-0"
    ),
    pytest.param(
        {"startTime": "9999-12-31T23:00:00-14:00"},
        "properties.startTime",
        id="start-in-year-10000",
    ),
    pytest.param(
        {
            "startTime": "0001-01-01T00:00:00Z",
            "recurrence": {"frequency": "Day", "timeZone": "Pacific/Kiritimati"},
        },
        "properties.startTime",
        id="start-off-the-calendar-in-the-zone",
    ),
    pytest.param(
        {"recurrence": {"frequency": "Day", "timeZone": "A" * 300}},
        "properties.recurrence.timeZone",
        id="time-zone-of-300-characters",
    ),
    pytest.param(
        {"recurrence": {"frequency": "Day", "timeZone": "America"}},
        "properties.recurrence.timeZone",
        id="time-zone-that-is-a-folder",
    ),
    pytest.param(
        {"recurrence": {"frequency": "Day", "endTime": "9999-12-31T23:00:00-14:00"}},
        "properties.recurrence.endTime",
        id="end-in-year-10000",
    ),
]


@pytest.mark.parametrize(("properties", "target"), EXTREME_TIMES)
async def test_times_off_the_calendar_are_400s_naming_the_field(api, runtime, properties, target):
    """Each was a 500 (OverflowError, OSError) before."""
    body = job_body(**properties)
    await refused(api, runtime, "PUT", NEW_JOB, 400, code="BadRequest", target=target, json=body)


async def test_occurrences_after_that_utc_cannot_hold_is_a_400_naming_after(api, runtime):
    url = f"{JOB}/occurrences?after=0001-01-01T00:00:00%2B14:00"
    await refused(api, runtime, "GET", url, 400, code="BadRequest", target="query.after")


@pytest.mark.parametrize(
    "cron", ["* * * * *", "0 0 0 29 2 1", "59 59 23 31 12 *"], ids=["minutely", "sparse", "last"]
)
async def test_cron_jobs_at_the_end_of_the_calendar_are_not_a_500(api, cron):
    body = job_body(startTime="9999-12-31T23:58:00Z", recurrence={"cron": cron})
    response = await api.put(NEW_JOB, json=body)
    assert response.status_code in (201, 400), response.text
    preview = await api.get(f"{JOB}/occurrences", params={"after": "9999-12-31T23:59:59Z"})
    assert preview.status_code == 200, preview.text
