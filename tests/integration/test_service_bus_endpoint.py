"""Requests built by the Service Bus wire format, sent over HTTPS to the local stand-in, which
checks them as Service Bus does: 201 for a good send, 401/403/410/400 for the documented faults.
The stand-in recomputes signatures on its own, so this also cross-checks the signer."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from shared.kinds.service_bus.wire import SendRequest, send_request
from tests.support.service_bus_endpoint import (
    LISTEN,
    MANAGE,
    SEND,
    SasRule,
    ServiceBusEndpoint,
)

pytestmark = pytest.mark.integration  # a real HTTPS server on 127.0.0.1; no Azurite

NAMESPACE = "contoso-orders"
SENDER = SasRule("SendRule", "c2VuZC1rZXktMTExMTExMTExMTExMTExMTExMTExMTE=", frozenset({SEND}))
LISTENER = SasRule(
    "ListenRule", "bGlzdGVuLWtleS0yMjIyMjIyMjIyMjIyMjIyMjIyMjI=", frozenset({LISTEN})
)
OWNER = SasRule("Owner", "b3duZXIta2V5LTMzMzMzMzMzMzMzMzMzMzMzMzMzMzM=", frozenset({MANAGE}))
QUEUE_ONLY = SasRule("QueueSender", "cXVldWUta2V5LTQ0NDQ0NDQ0NDQ0NDQ0NDQ0NDQ0NDQ=")


@pytest.fixture
async def endpoint() -> AsyncIterator[ServiceBusEndpoint]:
    server = ServiceBusEndpoint()
    server.add_namespace(NAMESPACE, [SENDER, LISTENER, OWNER])
    server.add_entity(NAMESPACE, "orders", rules=[QUEUE_ONLY])
    server.add_entity(NAMESPACE, "events/eu", max_message_bytes=1024)
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def client(endpoint: ServiceBusEndpoint) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(verify=endpoint.client_ssl_context(), trust_env=False) as made:
        yield made


def build(
    endpoint: ServiceBusEndpoint,
    entity: str = "orders",
    rule: SasRule = SENDER,
    *,
    key: str | None = None,
    expiry: datetime | None = None,
    message: str = "hello",
    brokered: dict[str, object] | None = None,
    custom: dict[str, str] | None = None,
) -> SendRequest:
    return send_request(
        NAMESPACE,
        entity,
        message,
        brokered or {},
        custom or {},
        endpoint.host_pattern,
        key_name=rule.name,
        key=rule.key if key is None else key,
        expiry=expiry or datetime.now(UTC) + timedelta(minutes=5),
    )


async def post(
    endpoint: ServiceBusEndpoint, client: httpx.AsyncClient, request: SendRequest
) -> httpx.Response:
    return await endpoint.post(client, request.url, request.headers, request.body)


async def test_a_correct_send_is_accepted_with_201_and_recorded(
    endpoint: ServiceBusEndpoint, client: httpx.AsyncClient
) -> None:
    request = build(
        endpoint,
        message='{"order": 1}',
        brokered={
            "contentType": "application/json",
            "messageId": "occurrence-1",
            "timeToLive": "PT1H",
            "scheduledEnqueueTimeUtc": "2030-01-01T08:00:00Z",
            "forcePersistence": True,
        },
        custom={"appname": "FromScheduler", "price": "299.98"},
    )

    response = await post(endpoint, client, request)

    assert response.status_code == 201, response.text
    await endpoint.wait_for(lambda server: len(server.messages) == 1)
    message = endpoint.messages[0]
    assert (message.namespace, message.entity, message.key_name) == (
        NAMESPACE,
        "orders",
        "SendRule",
    )
    assert message.body == b'{"order": 1}'
    assert message.content_type == "application/json"
    assert message.broker_properties == {
        "MessageId": "occurrence-1",
        "TimeToLive": 3600,
        "ScheduledEnqueueTimeUtc": "Tue, 01 Jan 2030 08:00:00 GMT",
        "ForcePersistence": True,
    }
    # Quoted by the wire format, both stay the strings given (unquoted, "299.98" would be a double).
    assert {k.lower(): v for k, v in message.custom_properties.items()} == {
        "appname": "FromScheduler",
        "price": "299.98",
    }


async def test_topics_entity_rules_and_manage_rights_send_too(
    endpoint: ServiceBusEndpoint, client: httpx.AsyncClient
) -> None:
    for entity, rule in (("events/eu", SENDER), ("orders", QUEUE_ONLY), ("orders", OWNER)):
        response = await post(endpoint, client, build(endpoint, entity, rule))
        assert response.status_code == 201, (entity, rule.name, response.text)
    await endpoint.wait_for(lambda server: len(server.messages) == 3)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"key": "d3Jvbmcta2V5LTU1NTU1NTU1NTU1NTU1NTU1NTU1NTU="}, "invalid signature"),
        ({"expiry": datetime.now(UTC) - timedelta(seconds=5)}, "expired"),
        ({"rule": SasRule("Nobody", SENDER.key)}, "Unknown key name 'Nobody'"),
    ],
    ids=["wrong-key", "expired", "unknown-key-name"],
)
async def test_bad_tokens_are_refused_with_401(
    endpoint: ServiceBusEndpoint,
    client: httpx.AsyncClient,
    change: dict[str, object],
    reason: str,
) -> None:
    response = await post(endpoint, client, build(endpoint, **change))  # type: ignore[arg-type]

    assert response.status_code == 401
    assert reason in response.text
    assert endpoint.messages == []


async def test_a_token_for_another_entity_or_a_tampered_one_is_refused_with_401(
    endpoint: ServiceBusEndpoint, client: httpx.AsyncClient
) -> None:
    for_orders = build(endpoint, "orders")
    moved = SendRequest(for_orders.url.replace("/orders/", "/events/eu/"), *for_orders[1:])
    response = await post(endpoint, client, moved)
    assert response.status_code == 401
    assert "does not cover" in response.text

    # An entity-level rule does not exist for another entity.
    response = await post(endpoint, client, build(endpoint, "events/eu", QUEUE_ONLY))
    assert response.status_code == 401

    # A later expiry pasted into a good token breaks its signature.
    later = str(int(time.time()) + 86400)
    headers = dict(for_orders.headers)
    token = headers["Authorization"]
    headers["Authorization"] = token.replace(token.split("&se=")[1].split("&")[0], later)
    response = await post(endpoint, client, SendRequest(for_orders.url, headers, for_orders.body))
    assert response.status_code == 401
    assert "invalid signature" in response.text
    assert endpoint.messages == []


async def test_a_missing_entity_is_410(
    endpoint: ServiceBusEndpoint, client: httpx.AsyncClient
) -> None:
    response = await post(endpoint, client, build(endpoint, "no-such-queue"))

    assert response.status_code == 410
    assert "does not exist" in response.text


async def test_a_listen_only_rule_or_a_too_large_message_is_403(
    endpoint: ServiceBusEndpoint, client: httpx.AsyncClient
) -> None:
    response = await post(endpoint, client, build(endpoint, rule=LISTENER))
    assert response.status_code == 403
    assert "does not grant Send" in response.text

    response = await post(endpoint, client, build(endpoint, "events/eu", message="x" * 1025))
    assert response.status_code == 403
    assert "larger than 1024 bytes" in response.text
    await endpoint.wait_for(lambda server: len(server.rejections) == 2)
    assert endpoint.messages == []


async def test_malformed_properties_are_400(
    endpoint: ServiceBusEndpoint, client: httpx.AsyncClient
) -> None:
    good = build(endpoint)
    for extra, reason in (
        ({"BrokerProperties": '{"Priority": 1}'}, "Unknown broker property"),
        ({"BrokerProperties": "{not json"}, "not JSON"),
        ({"appname": "FromScheduler"}, "neither quoted nor"),  # unquoted text is refused
        ({"Content-Type": ""}, "No Content-Type"),
    ):
        request = SendRequest(good.url, {**good.headers, **extra}, good.body)
        response = await post(endpoint, client, request)
        assert response.status_code == 400, extra
        assert reason in response.text
    assert endpoint.messages == []
