"""The app's identity and storage through the API and the executor: refused unless allowed, and
a job can never forge an execution message (issue 7)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from azure.storage.queue.aio import QueueClient

from shared.kinds.base import ActionContext
from shared.kinds.storage_queue import StorageQueueActionRunner
from shared.model.actions import JobAction
from shared.outbound_policy import OutboundPolicy
from shared.runtime import Runtime
from tests.support.engine import api_client

pytestmark = pytest.mark.integration

BASE = "/api/jobCollections/policy"
MSI = {"type": "ManagedServiceIdentity", "audience": "https://vault.azure.net"}


def http_job(authentication: dict[str, Any]) -> dict[str, Any]:
    request = {"uri": "https://example.com/x", "authentication": authentication}
    return {
        "properties": {
            "startTime": "2099-01-01T00:00:00Z",
            "action": {"type": "Https", "request": request},
        }
    }


def queue_job(**queue_message: str) -> dict[str, Any]:
    return {
        "properties": {
            "startTime": "2099-01-01T00:00:00Z",
            "action": {"type": "StorageQueue", "queueMessage": {"message": "m", **queue_message}},
        }
    }


async def test_managed_identity_is_refused_unless_its_audience_is_listed(
    runtimes: Callable[..., Awaitable[Runtime]],
) -> None:
    closed = await runtimes()
    async with api_client(closed) as api:
        assert (await api.put(BASE, json={})).status_code == 201
        answer = await api.put(f"{BASE}/jobs/j", json=http_job(MSI))
        assert answer.status_code == 400, answer.text
        error = answer.json()["error"]
        assert error["target"] == "properties.action.request.authentication.audience"
        assert "SCHEDULER_IDENTITY_AUDIENCES" in error["message"]

    policy = OutboundPolicy.from_settings({"SCHEDULER_IDENTITY_AUDIENCES": MSI["audience"]})
    opened = await runtimes(outbound=policy)
    async with api_client(opened) as api:
        assert (await api.put(f"{BASE}/jobs/j", json=http_job(MSI))).status_code == 201
        other = {"authentication": {"audience": "https://management.azure.com"}}
        patch = {"properties": {"action": {"request": other}}}
        answer = await api.patch(f"{BASE}/jobs/j", json=patch)
        assert answer.status_code == 400, answer.text
        user_assigned = {
            "properties": {"action": {"request": {"authentication": {"clientId": "u"}}}}
        }
        answer = await api.patch(f"{BASE}/jobs/j", json=user_assigned)
        assert answer.json()["error"]["target"] == (
            "properties.action.request.authentication.clientId"
        )


async def test_moving_a_managed_identity_action_needs_its_authentication_again(
    runtimes: Callable[..., Awaitable[Runtime]],
) -> None:
    """The identity's token is a credential too: a PATCH that sends the action elsewhere must
    say so, else the new host would get the app's token for the old target's audience."""
    policy = OutboundPolicy.from_settings({"SCHEDULER_IDENTITY_AUDIENCES": MSI["audience"]})
    runtime = await runtimes(outbound=policy)
    async with api_client(runtime) as api:
        assert (await api.put(BASE, json={})).status_code == 201
        assert (await api.put(f"{BASE}/jobs/j", json=http_job(MSI))).status_code == 201
        moved: dict[str, Any] = {
            "properties": {"action": {"request": {"uri": "https://elsewhere.example/x"}}}
        }
        answer = await api.patch(f"{BASE}/jobs/j", json=moved)
        assert answer.status_code == 400, answer.text
        error = answer.json()["error"]
        assert error["target"] == "properties.action.request.authentication"
        assert "given again when the target changes" in error["message"]
        shown = (await api.get(f"{BASE}/jobs/j")).json()["properties"]["action"]["request"]
        assert shown["uri"] == "https://example.com/x"  # nothing stored
        moved["properties"]["action"]["request"]["authentication"] = MSI  # stated again
        assert (await api.patch(f"{BASE}/jobs/j", json=moved)).status_code == 200
        same_origin = {
            "properties": {"action": {"request": {"uri": "https://elsewhere.example/y"}}}
        }
        assert (await api.patch(f"{BASE}/jobs/j", json=same_origin)).status_code == 200


async def test_connection_setting_must_be_listed_and_the_error_reveals_nothing(
    runtimes: Callable[..., Awaitable[Runtime]], storage_connection: str
) -> None:
    policy = OutboundPolicy.from_settings(
        {"SCHEDULER_QUEUE_CONNECTIONS": "JobQueues", "JobQueues": storage_connection}
    )
    runtime = await runtimes(outbound=policy)
    async with api_client(runtime) as api:
        assert (await api.put(BASE, json={})).status_code == 201
        messages = []
        for name in ("AzureWebJobsStorage", "PATH", "NoSuchSetting"):
            job = queue_job(queueName="jobs", connectionSetting=name)
            answer = await api.put(f"{BASE}/jobs/j", json=job)
            assert answer.status_code == 400, answer.text
            error = answer.json()["error"]
            assert error["target"] == "properties.action.queueMessage.connectionSetting"
            messages.append(error["message"].replace(name, "X"))
        assert len(set(messages)) == 1
        job = queue_job(queueName="jobs", connectionSetting="JobQueues")
        assert (await api.put(f"{BASE}/jobs/j", json=job)).status_code == 201


async def test_a_job_cannot_write_into_the_apps_execution_queue(
    runtimes: Callable[..., Awaitable[Runtime]], storage_connection: str, unique_name: str
) -> None:
    """Reproduced before: a job forged an execution message that the executor processed."""
    app_settings = {
        "AzureWebJobsStorage": storage_connection,
        "SCHEDULER_QUEUE_CONNECTIONS": "AzureWebJobsStorage",
        "SCHEDULER_EXECUTION_QUEUE": f"{unique_name}-exec",
        "SCHEDULER_DEVICE_WORK_QUEUE": f"{unique_name}-dw",
        "SCHEDULER_DISPATCH_QUEUE": f"{unique_name}-disp",
    }
    runtime = await runtimes(outbound=OutboundPolicy.from_settings(app_settings))
    execution_queue = runtime.settings.execution_queue
    forged = '{"collection": "x", "job": "y"}'
    async with api_client(runtime) as api:
        assert (await api.put(BASE, json={})).status_code == 201
        device_work = runtime.settings.device_work_queue
        for queue in (
            execution_queue,
            f"{execution_queue}-poison",
            device_work,
            f"{device_work}-poison",
        ):
            job = queue_job(
                queueName=queue, connectionSetting="AzureWebJobsStorage", message=forged
            )
            answer = await api.put(f"{BASE}/jobs/j", json=job)
            assert answer.status_code == 400, answer.text
            assert answer.json()["error"]["target"] == "properties.action.queueMessage.queueName"

    # A job stored before the rule (or under other settings) is refused again when it runs.
    action = JobAction.model_validate(
        queue_job(queueName=execution_queue, connectionSetting="AzureWebJobsStorage")["properties"][
            "action"
        ]
    )
    context = ActionContext(
        collection="c",
        job="j",
        nominal=datetime(2030, 1, 1, tzinfo=UTC),
        attempt_tag="t",
        request_id="r",
        idempotency_key="k",
        retry_count=0,
        repeat_count=0,
        default_timeout=timedelta(seconds=10),
        settings=runtime.settings,
        app_settings=app_settings,
    )
    outcome = await StorageQueueActionRunner().run(action, context)
    assert not outcome.succeeded
    assert "is one the app itself consumes" in outcome.message
    async with QueueClient.from_connection_string(storage_connection, execution_queue) as client:
        assert (await client.peek_messages()) == []


async def test_a_job_stored_under_wider_settings_can_still_be_disabled(
    runtimes: Callable[..., Awaitable[Runtime]],
) -> None:
    policy = OutboundPolicy.from_settings({"SCHEDULER_IDENTITY_AUDIENCES": MSI["audience"]})
    wide = await runtimes(outbound=policy)
    async with api_client(wide) as api:
        assert (await api.put(BASE, json={})).status_code == 201
        assert (await api.put(f"{BASE}/jobs/j", json=http_job(MSI))).status_code == 201
    narrow = await runtimes()
    async with api_client(narrow) as api:
        state = {"properties": {"state": "Disabled"}}
        answer = await api.patch(f"{BASE}/jobs/j", json=state)
        assert answer.status_code == 200, answer.text
        assert (await api.post(f"{BASE}/disable")).status_code == 200
        request = {"uri": "https://example.org/", "authentication": MSI}
        moved = {"properties": {"action": {"request": request}}}
        answer = await api.patch(f"{BASE}/jobs/j", json=moved)
        assert answer.json()["error"]["target"] == (
            "properties.action.request.authentication.audience"
        )
