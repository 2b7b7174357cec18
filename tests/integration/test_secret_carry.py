"""A changed target never inherits the stored secrets (issue 7): PATCH and PUT through the API,
the store on Azurite, and a real target that shows what it was sent."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from shared.names import CollectionRef
from shared.runtime import Runtime
from tests.support.actions import queue_message_of, request_of
from tests.support.engine import api_client, work_queue
from tests.support.http_target import HttpTarget
from tests.unit.test_auth_models import PASSWORD as PFX_PASSWORD
from tests.unit.test_auth_models import make_pfx

pytestmark = pytest.mark.integration

BASE = "/api/jobCollections/carry"
JOB = f"{BASE}/jobs/j"
SECRET = "basic-pw-6620"
BASIC = {"type": "Basic", "username": "alice", "password": SECRET}
AAD = {
    "type": "ActiveDirectoryOAuth",
    "tenant": "contoso.onmicrosoft.com",
    "audience": "api://x",
    "clientId": "client-1",
    "secret": "aad-secret-7781",
}


@pytest.fixture
async def api(runtime: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client(runtime) as client:
        assert (await client.put(BASE, json={"properties": {}})).status_code == 201
        yield client


def http_job(uri: str, authentication: dict[str, Any], **action: Any) -> dict[str, Any]:
    request = {"uri": uri, "method": "POST", "authentication": authentication}
    return {
        "properties": {
            "startTime": "2099-01-01T00:00:00Z",
            "action": {"type": "Http", "request": request, **action},
        }
    }


async def stored_action(runtime: Runtime) -> Any:
    job = await runtime.jobs.get_job(CollectionRef.parse("carry"), "j")
    return job.properties.action


def refused(answer: httpx.Response, target: str, message: str) -> None:
    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    assert error["target"] == target
    assert message in error["message"]


async def test_patching_the_uri_to_another_host_does_not_send_the_password_there(
    api: httpx.AsyncClient, runtime: Runtime, target: HttpTarget, error_target: HttpTarget
) -> None:
    assert (await api.put(JOB, json=http_job(f"{target.url}/a", BASIC))).status_code == 201
    moved: dict[str, Any] = {
        "properties": {"action": {"request": {"uri": f"{error_target.url}/b"}}}
    }
    answer = await api.patch(JOB, json=moved)
    refused(
        answer,
        "properties.action.request.authentication.password",
        "authentication.password must be given again when the target changes",
    )
    assert SECRET not in answer.text
    request = request_of(await stored_action(runtime))
    assert request.uri == f"{target.url}/a"  # nothing stored
    # Given again, the move is accepted and the new host gets the new password only.
    moved["properties"]["action"]["request"]["authentication"] = {"password": "new-pw-1"}
    answer = await api.patch(JOB, json=moved)
    assert answer.status_code == 200, answer.text
    assert (await api.post(f"{JOB}/run")).status_code == 200
    await work_queue(runtime, lambda: _has_requests(error_target))
    expected = "Basic " + base64.b64encode(b"alice:new-pw-1").decode()
    assert error_target.requests[0].headers["Authorization"] == expected
    assert target.requests == []


async def _has_requests(target: HttpTarget) -> bool:
    return bool(target.requests)


async def test_a_patch_on_the_same_origin_keeps_the_secrets(
    api: httpx.AsyncClient, runtime: Runtime, target: HttpTarget
) -> None:
    assert (await api.put(JOB, json=http_job(f"{target.url}/a", BASIC))).status_code == 201
    same_origin = {"properties": {"action": {"request": {"uri": f"{target.url}/other?x=1"}}}}
    assert (await api.patch(JOB, json=same_origin)).status_code == 200
    auth: Any = request_of(await stored_action(runtime)).authentication
    assert auth.password.get_secret_value() == SECRET


@pytest.mark.parametrize(
    "new_uri",
    ["http://127.0.0.2:{port}/a", "https://127.0.0.1:{port}/a", "http://127.0.0.1:1/a"],
)
async def test_a_new_host_scheme_or_port_is_a_changed_target(
    api: httpx.AsyncClient, target: HttpTarget, new_uri: str
) -> None:
    assert (await api.put(JOB, json=http_job(f"{target.url}/a", BASIC))).status_code == 201
    uri = new_uri.format(port=target.port)
    answer = await api.patch(JOB, json={"properties": {"action": {"request": {"uri": uri}}}})
    refused(answer, "properties.action.request.authentication.password", "target changes")


async def test_a_put_that_replaces_follows_the_same_rule(
    api: httpx.AsyncClient, runtime: Runtime, target: HttpTarget
) -> None:
    assert (await api.put(JOB, json=http_job(f"{target.url}/a", BASIC))).status_code == 201
    public = {"type": "Basic", "username": "alice"}  # what GET shows
    answer = await api.put(JOB, json=http_job("http://127.0.0.2:9/a", public))
    refused(answer, "properties.action.request.authentication.password", "target changes")
    # The same target: the body as GET showed it keeps the stored password.
    assert (await api.put(JOB, json=http_job(f"{target.url}/b", public))).status_code == 200
    auth: Any = request_of(await stored_action(runtime)).authentication
    assert auth.password.get_secret_value() == SECRET


async def test_aad_secret_is_not_carried_to_another_host_or_client(
    api: httpx.AsyncClient, target: HttpTarget
) -> None:
    assert (await api.put(JOB, json=http_job(f"{target.url}/a", AAD))).status_code == 201
    moved = {"properties": {"action": {"request": {"uri": "http://127.0.0.2:9/"}}}}
    refused(
        await api.patch(JOB, json=moved),
        "properties.action.request.authentication.secret",
        "authentication.secret must be given again when the target changes",
    )
    other_client = {"properties": {"action": {"request": {"authentication": {"clientId": "c2"}}}}}
    refused(
        await api.patch(JOB, json=other_client),
        "properties.action.request.authentication.secret",
        "when the tenant or clientId changes",
    )


async def test_client_certificate_is_not_carried_to_another_host(
    api: httpx.AsyncClient, runtime: Runtime
) -> None:
    pfx = make_pfx()
    cert = {"type": "ClientCertificate", "pfx": pfx, "password": PFX_PASSWORD}
    body = http_job("https://127.0.0.1:9/a", cert, type="Https")
    assert (await api.put(JOB, json=body)).status_code == 201
    moved = {"properties": {"action": {"request": {"uri": "https://127.0.0.2:9/a"}}}}
    answer = await api.patch(JOB, json=moved)
    refused(answer, "properties.action.request.authentication.pfx", "target changes")
    assert PFX_PASSWORD not in answer.text
    state = {"properties": {"state": "Disabled"}}
    assert (await api.patch(JOB, json=state)).status_code == 200
    kept: Any = request_of(await stored_action(runtime)).authentication
    assert kept.pfx.get_secret_value() == pfx
    assert kept.password.get_secret_value() == PFX_PASSWORD


async def test_error_action_secrets_follow_the_same_rule(
    api: httpx.AsyncClient, target: HttpTarget
) -> None:
    error_action = {
        "type": "Http",
        "request": {"uri": f"{target.url}/err", "authentication": BASIC},
    }
    body = http_job(f"{target.url}/a", {"type": "NotSpecified"}, errorAction=error_action)
    assert (await api.put(JOB, json=body)).status_code == 201
    moved = {"properties": {"action": {"errorAction": {"request": {"uri": "http://127.0.0.2:9/"}}}}}
    refused(
        await api.patch(JOB, json=moved),
        "properties.action.errorAction.request.authentication.password",
        "target changes",
    )


async def test_sas_token_is_not_carried_to_another_storage_account(
    api: httpx.AsyncClient, runtime: Runtime
) -> None:
    queue = {
        "storageAccount": "acct1",
        "queueName": "jobs",
        "sasToken": "sv=1&sig=s3cr3t",
        "message": "m",
    }
    body = {
        "properties": {
            "startTime": "2099-01-01T00:00:00Z",
            "action": {"type": "StorageQueue", "queueMessage": queue},
        }
    }
    assert (await api.put(JOB, json=body)).status_code == 201
    moved = {"properties": {"action": {"queueMessage": {"storageAccount": "acct2"}}}}
    answer = await api.patch(JOB, json=moved)
    refused(
        answer,
        "properties.action.queueMessage.sasToken",
        "queueMessage.sasToken must be given again when the storage account changes",
    )
    assert "s3cr3t" not in answer.text
    renamed = {"properties": {"action": {"queueMessage": {"queueName": "other"}}}}
    assert (await api.patch(JOB, json=renamed)).status_code == 200
    assert queue_message_of(await stored_action(runtime)).sas_token == "sv=1&sig=s3cr3t"
