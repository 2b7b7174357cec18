"""Service Bus queue and topic actions through the API and the executor, against the test
Azurite and the local HTTPS Service Bus stand-in (which checks the SAS signature, path, headers
and body as the REST reference describes): sent with the exact broker and custom properties,
retried and handed to a (topic) error action when the key is wrong, a clear message for a
missing entity, refused by the network guard, and the key never shown or logged."""

from __future__ import annotations

import logging
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from shared.kinds.http.network_guard import NetworkPolicy
from shared.kinds.service_bus.kind import SERVICE_BUS_QUEUE, SERVICE_BUS_TOPIC
from shared.names import CollectionRef
from shared.runtime import Runtime
from tests.support.engine import api_client, work_queue
from tests.support.service_bus_endpoint import SasRule, ServiceBusEndpoint

pytestmark = pytest.mark.integration

KEY = "c2VuZC1rZXktdGhhdC1tdXN0LW5ldmVyLWxlYWs="
WRONG_KEY = "d3Jvbmcta2V5LXRoYXQtbXVzdC1uZXZlci1sZWFr"
NAMESPACE = "shop-ns"
REF = CollectionRef.parse("bus")
JOBS = "/api/jobCollections/bus/jobs"


@pytest.fixture
async def endpoint(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[ServiceBusEndpoint]:
    server = await ServiceBusEndpoint().start()
    server.add_namespace(NAMESPACE, [SasRule("sender", KEY)])
    server.add_entity(NAMESPACE, "orders")
    server.add_entity(NAMESPACE, "alerts/all")
    real = socket.getaddrinfo

    def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        name = host.decode() if isinstance(host, bytes) else host
        if name == f"{NAMESPACE}.{server.domain}":
            return real("127.0.0.1", port, *args, **kwargs)
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)  # the namespace's DNS name
    yield server
    await server.stop()


@pytest.fixture
async def bus_runtime(
    runtimes: Callable[..., Awaitable[Runtime]], endpoint: ServiceBusEndpoint, tmp_path: Path
) -> Runtime:
    ca = tmp_path / "stand-in-ca.pem"
    ca.write_bytes(endpoint.ca_pem)
    pattern = endpoint.host_pattern
    runtime = await runtimes(
        kind_settings={SERVICE_BUS_QUEUE.name: pattern, SERVICE_BUS_TOPIC.name: pattern},
        extra_ca_certs=str(ca),
    )
    await runtime.jobs.put_collection(REF, {"properties": {"state": "Enabled"}})
    return runtime


def queue_action(key: str = KEY, **fields: Any) -> dict[str, Any]:
    return {
        "type": "ServiceBusQueue",
        "serviceBusQueueMessage": {
            "namespace": NAMESPACE,
            "queueName": "orders",
            "message": "order 42",
            "transportType": "AMQP",
            "authentication": {"type": "SharedAccessKey", "sasKeyName": "sender", "sasKey": key},
            **fields,
        },
    }


def topic_action() -> dict[str, Any]:
    message = queue_action()["serviceBusQueueMessage"]
    del message["queueName"]
    return {
        "type": "ServiceBusTopic",
        "serviceBusTopicMessage": {**message, "topicPath": "alerts/all", "message": "failed"},
    }


def job(action: dict[str, Any]) -> dict[str, Any]:
    # A start far ahead: only "run now" makes it run.
    return {"properties": {"startTime": "2099-01-01T00:00:00Z", "action": action}}


async def run_now(runtime: Runtime, name: str, action: dict[str, Any]) -> None:
    async with api_client(runtime) as api:
        created = await api.put(f"{JOBS}/{name}", json=job(action))
        assert created.status_code == 201, created.text
        assert (await api.post(f"{JOBS}/{name}/run")).status_code in (200, 202)


async def history(runtime: Runtime, name: str) -> list[Any]:
    records, _ = await runtime.store.history(REF.key, name, top=20)
    return [record.properties for record in records]


async def test_run_now_sends_the_message_with_its_exact_properties(
    bus_runtime: Runtime, endpoint: ServiceBusEndpoint
) -> None:
    brokered = {
        "contentType": "application/json",
        "correlationId": "corr-1",
        "label": "orders",
        "timeToLive": "PT1H",
        "scheduledEnqueueTimeUtc": "2030-01-02T03:04:05Z",
        "forcePersistence": True,
    }
    custom = {"appname": "FromScheduler", "region": "eu-west"}
    action = queue_action(brokeredMessageProperties=brokered, customMessageProperties=custom)
    await run_now(bus_runtime, "send", action)

    async def sent() -> bool:
        return len(await history(bus_runtime, "send")) == 1

    await work_queue(bus_runtime, sent)
    [message] = endpoint.messages
    assert (message.namespace, message.entity, message.body) == (NAMESPACE, "orders", b"order 42")
    assert message.content_type == "application/json"
    message_id = message.broker_properties.pop("MessageId")
    assert message.broker_properties == {
        "CorrelationId": "corr-1",
        "Label": "orders",
        "TimeToLive": 3600,
        "ScheduledEnqueueTimeUtc": "Wed, 02 Jan 2030 03:04:05 GMT",
        "ForcePersistence": True,
    }
    assert message.custom_properties == custom  # quoted on the wire: strings, no extra header
    [row] = await history(bus_runtime, "send")
    assert row.status.value == "Completed"
    assert row.message == (
        f"Run on demand. ServiceBusQueue Action - Message '{message_id}' sent to queue "
        f"'orders' in namespace '{NAMESPACE}' (201 Created)"
    )


async def test_a_wrong_key_is_retried_then_the_topic_error_action_runs(
    bus_runtime: Runtime, endpoint: ServiceBusEndpoint, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    action = {
        **queue_action(key=WRONG_KEY),
        "retryPolicy": {"retryType": "Fixed", "retryInterval": "PT1S", "retryCount": 1},
        "errorAction": topic_action(),
    }
    await run_now(bus_runtime, "wrong", action)

    async def error_action_ran() -> bool:
        return len(endpoint.messages) == 1 and len(await history(bus_runtime, "wrong")) >= 3

    await work_queue(bus_runtime, error_action_ran)
    assert [r.status for r in endpoint.rejections] == [401, 401]
    [sent] = endpoint.messages
    assert (sent.entity, sent.body) == ("alerts/all", b"failed")
    rows = await history(bus_runtime, "wrong")
    failures = [row.message for row in rows if row.status.value == "Failed"]
    assert len(failures) == 2
    assert all(
        "Service Bus answered 401 Unauthorized: the shared access key 'sender' was refused" in text
        for text in failures
    )
    assert any("ServiceBusTopic Action - Message" in row.message for row in rows)
    # The key (any form) is in no response, history row or log line; nor is a token.
    async with api_client(bus_runtime) as api:
        shown = [
            (await api.get(f"{JOBS}/wrong")).text,
            (await api.get(JOBS)).text,
            (await api.get(f"{JOBS}/wrong/history")).text,
        ]
    logged = "\n".join(record.getMessage() for record in caplog.records)
    for text in [*shown, *(row.message for row in rows), logged]:
        for secret in (KEY, WRONG_KEY, "SharedAccessSignature", "sig="):
            assert secret not in text


async def test_a_missing_entity_is_a_clear_410(
    bus_runtime: Runtime, endpoint: ServiceBusEndpoint
) -> None:
    action = {**queue_action(queueName="nope"), "retryPolicy": {"retryType": "None"}}
    await run_now(bus_runtime, "gone", action)

    async def failed() -> bool:
        return len(await history(bus_runtime, "gone")) == 1

    await work_queue(bus_runtime, failed)
    [row] = await history(bus_runtime, "gone")
    assert row.message.startswith(
        "Run on demand. ServiceBusQueue Action - Service Bus answered 410 Gone: entity 'nope' "
        f"does not exist in namespace '{NAMESPACE}'. Body: <Error><Code>410</Code>"
    )


async def test_the_network_guard_refuses_a_namespace_outside_the_allowed_networks(
    runtimes: Callable[..., Awaitable[Runtime]], endpoint: ServiceBusEndpoint, tmp_path: Path
) -> None:
    pattern = endpoint.host_pattern
    runtime = await runtimes(
        kind_settings={SERVICE_BUS_QUEUE.name: pattern, SERVICE_BUS_TOPIC.name: pattern},
        networks=NetworkPolicy.parse(""),
    )
    await runtime.jobs.put_collection(REF, {"properties": {"state": "Enabled"}})
    await run_now(runtime, "guarded", {**queue_action(), "retryPolicy": {"retryType": "None"}})

    async def failed() -> bool:
        return len(await history(runtime, "guarded")) == 1

    await work_queue(runtime, failed)
    [row] = await history(runtime, "guarded")
    assert row.message == (
        f"Run on demand. ServiceBusQueue Action - Refused to call 'https://{NAMESPACE}.servicebus.test:"
        f"{endpoint.port}': {NAMESPACE}.servicebus.test resolves to 127.0.0.1, a loopback "
        "address; allow it with SCHEDULER_ALLOWED_NETWORKS (add 'loopback')"
    )
    assert endpoint.messages == [] and endpoint.rejections == []
