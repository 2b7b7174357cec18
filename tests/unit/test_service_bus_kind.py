"""The Service Bus kinds' model: fields validated with errors naming them, `sasKey` never shown
and kept across a PATCH while it reaches the same rule, the host pattern checked at start-up."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import ValidationError

from shared.config import Settings
from shared.errors import ConfigError, InvalidRequest
from shared.kinds.service_bus.kind import SERVICE_BUS_QUEUE, SERVICE_BUS_TOPIC
from shared.kinds.service_bus.model import ServiceBusQueueMessage, TransportType
from shared.model.actions import JobAction
from shared.model.job import load_stored_definition
from shared.secret_carry import carry_secrets

KEY = "c2VuZC1rZXktdGhhdC1tdXN0LW5ldmVyLWxlYWs="
CONNECTION = {"AzureWebJobsStorage": "UseDevelopmentStorage=true"}


def queue_message(**fields: Any) -> dict[str, Any]:
    return {
        "namespace": "shop-ns",
        "queueName": "orders",
        "message": "hello",
        "transportType": "netmessaging",
        "authentication": {"type": "SharedAccessKey", "sasKeyName": "sender", "sasKey": KEY},
        **fields,
    }


def action(**fields: Any) -> dict[str, Any]:
    return {"type": "ServiceBusQueue", "serviceBusQueueMessage": queue_message(**fields)}


def targets(data: dict[str, Any]) -> list[str]:
    with pytest.raises(ValidationError) as info:
        JobAction.model_validate(data)
    return [".".join(str(part) for part in error["loc"]) for error in info.value.errors()]


def test_a_queue_action_with_a_topic_error_action_is_read() -> None:
    topic = {**queue_message(), "topicPath": "events/all"}
    del topic["queueName"]
    parsed = JobAction.model_validate(
        {**action(), "errorAction": {"type": "servicebustopic", "serviceBusTopicMessage": topic}}
    )
    assert parsed.kind is SERVICE_BUS_QUEUE
    assert parsed.error_action is not None and parsed.error_action.kind is SERVICE_BUS_TOPIC
    payload = parsed.payload_as(ServiceBusQueueMessage)
    assert payload is not None and payload.transport_type is TransportType.NET_MESSAGING


@pytest.mark.parametrize(
    ("fields", "target"),
    [
        ({"namespace": "ab"}, "serviceBusQueueMessage.namespace"),
        ({"namespace": "shop-sb"}, "serviceBusQueueMessage.namespace"),
        ({"queueName": "a//b"}, "serviceBusQueueMessage.queueName"),
        ({"transportType": "Carrier"}, "serviceBusQueueMessage.transportType"),
        (
            {"authentication": {"type": "Basic", "sasKeyName": "s", "sasKey": "k"}},
            "serviceBusQueueMessage.authentication.type",
        ),
        (
            {"authentication": {"type": "SharedAccessKey", "sasKeyName": "s"}},
            "serviceBusQueueMessage.authentication.sasKey",
        ),
        (
            {"brokeredMessageProperties": {"timeToLive": "soon"}},
            "serviceBusQueueMessage.brokeredMessageProperties.timeToLive",
        ),
        (
            {"brokeredMessageProperties": {"sessionId": "a", "partitionKey": "b"}},
            "serviceBusQueueMessage.brokeredMessageProperties.partitionKey",
        ),
        (
            {"brokeredMessageProperties": {"forcePersistence": "yes"}},
            "serviceBusQueueMessage.brokeredMessageProperties.forcePersistence",
        ),
        (
            {"customMessageProperties": {"Authorization": "x"}},
            "serviceBusQueueMessage.customMessageProperties.Authorization",
        ),
        (
            {"customMessageProperties": {"app": "line\nbreak"}},
            "serviceBusQueueMessage.customMessageProperties.app",
        ),
    ],
)
def test_bad_fields_are_refused_naming_them(fields: dict[str, Any], target: str) -> None:
    assert target in targets(action(**fields))


def test_a_topic_payload_under_a_queue_type_is_refused() -> None:
    data = {"type": "ServiceBusQueue", "serviceBusTopicMessage": queue_message()}
    assert all(t.startswith("serviceBusTopicMessage") for t in targets(data))


def test_public_json_never_shows_the_key() -> None:
    parsed = JobAction.model_validate(action())
    shown = parsed.public_json()
    assert shown["serviceBusQueueMessage"]["authentication"] == {
        "type": "SharedAccessKey",
        "sasKeyName": "sender",
    }
    assert KEY not in json.dumps(shown) and KEY not in repr(parsed)
    # The store keeps it (JSON dumps write it out), or the action could not run.
    assert KEY in json.dumps(parsed.to_json_dict())


def stored_job() -> Any:
    return load_stored_definition({"action": JobAction.model_validate(action()).to_json_dict()})


def shown_back(**fields: Any) -> dict[str, Any]:
    """What a client writes back after a GET: the definition without the key."""
    message = {**queue_message(), **fields}
    message["authentication"] = {"type": "SharedAccessKey", "sasKeyName": "sender"}
    return {
        "properties": {"action": {"type": "ServiceBusQueue", "serviceBusQueueMessage": message}}
    }


def test_a_patch_keeps_the_key_while_namespace_and_key_name_stay() -> None:
    body = carry_secrets(shown_back(message="changed", queueName="other"), stored_job())
    assert isinstance(body, dict)
    auth = body["properties"]["action"]["serviceBusQueueMessage"]["authentication"]
    assert auth["sasKey"] == KEY


def test_a_patch_to_another_namespace_must_give_the_key_again() -> None:
    with pytest.raises(InvalidRequest) as info:
        carry_secrets(shown_back(namespace="other-ns"), stored_job())
    assert info.value.field == "properties.action.serviceBusQueueMessage.authentication.sasKey"


def test_the_host_pattern_is_checked_at_start() -> None:
    settings = Settings.from_env(CONNECTION)
    assert settings.for_kind(SERVICE_BUS_QUEUE) == "{namespace}.servicebus.windows.net"
    local = Settings.from_env(
        {**CONNECTION, "SCHEDULER_SERVICE_BUS_HOST_PATTERN": "{namespace}.servicebus.test:8443"}
    )
    assert local.for_kind(SERVICE_BUS_TOPIC) == "{namespace}.servicebus.test:8443"
    with pytest.raises(ConfigError, match="^SCHEDULER_SERVICE_BUS_HOST_PATTERN: .*exactly once"):
        Settings.from_env({**CONNECTION, "SCHEDULER_SERVICE_BUS_HOST_PATTERN": "sb.example.com"})
