"""The payloads of the ServiceBusQueue and ServiceBusTopic actions (Azure Scheduler 2016-03-01).

`serviceBusQueueMessage` (`queueName`) / `serviceBusTopicMessage` (`topicPath`), each with
`namespace`, `message`, `transportType`, `authentication {type: SharedAccessKey, sasKeyName,
sasKey}`, `brokeredMessageProperties` and `customMessageProperties`. `sasKey` is write-only.
Every rule Service Bus would enforce is checked here through `wire.py`'s problem functions, so a
bad value is a 400 naming its field, not a failed attempt later.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from pydantic import Field, StrictBool, field_validator, model_validator

from shared.errors import InvalidRequest
from shared.kinds.service_bus.wire import (
    broker_properties,
    custom_headers,
    entity_path_problem,
    header_value_problem,
    namespace_problem,
)
from shared.model.auth import WriteOnly
from shared.model.common import ApiModel, CaseInsensitiveEnum, IsoDateTime, field_error


class TransportType(CaseInsensitiveEnum):
    """Accepted for compatibility; every message is sent over HTTPS (Service Bus's REST API)."""

    NOT_SPECIFIED = "NotSpecified"
    NET_MESSAGING = "NetMessaging"
    AMQP = "AMQP"


class ServiceBusAuthenticationType(CaseInsensitiveEnum):
    SHARED_ACCESS_KEY = "SharedAccessKey"


class ServiceBusAuthentication(ApiModel):
    type: ServiceBusAuthenticationType
    sas_key_name: str = Field(min_length=1, max_length=256)
    sas_key: WriteOnly = Field(min_length=1, max_length=256)  # stored, never shown

    @field_validator("sas_key_name")
    @classmethod
    def _printable(cls, name: str) -> str:
        reason = header_value_problem(name)
        if reason is not None:
            raise ValueError(f"sasKeyName {reason}")
        return name


class BrokeredMessageProperties(ApiModel):
    content_type: str | None = None
    correlation_id: str | None = None
    force_persistence: StrictBool | None = None
    label: str | None = None
    message_id: str | None = None
    partition_key: str | None = None
    reply_to: str | None = None
    reply_to_session_id: str | None = None
    scheduled_enqueue_time_utc: IsoDateTime | None = None
    session_id: str | None = None
    time_to_live: timedelta | None = None
    to: str | None = None
    via_partition_key: str | None = None

    def wire_dict(self) -> dict[str, object]:
        """camelCase names to values, as `wire.broker_properties` takes them."""
        return self.model_dump(by_alias=True, exclude_none=True)


class ServiceBusMessage(ApiModel):
    """What the queue and topic payloads share; `entity_field` names the entity's JSON field."""

    namespace: str
    message: str | None = None
    transport_type: TransportType = TransportType.NOT_SPECIFIED
    authentication: ServiceBusAuthentication
    brokered_message_properties: BrokeredMessageProperties | None = None
    custom_message_properties: dict[str, str] | None = None

    @field_validator("namespace")
    @classmethod
    def _namespace(cls, namespace: str) -> str:
        reason = namespace_problem(namespace)
        if reason is not None:
            raise ValueError(f"namespace {reason}")
        return namespace

    @model_validator(mode="after")
    def _properties_as_service_bus_reads_them(self) -> ServiceBusMessage:
        """The broker and custom properties must make a request Service Bus accepts."""
        try:
            if self.brokered_message_properties is not None:
                brokered = self.brokered_message_properties.wire_dict()
                content_type = brokered.get("contentType")
                if isinstance(content_type, str):
                    reason = header_value_problem(content_type) or (
                        None if content_type.strip() else "must not be empty"
                    )
                    if reason is not None:
                        raise InvalidRequest("brokeredMessageProperties.contentType", reason)
                broker_properties(brokered)
            custom_headers(self.custom_message_properties or {})
        except InvalidRequest as error:
            raise field_error(error.field, None, error.reason) from None
        return self

    @property
    def entity_path(self) -> str:
        raise NotImplementedError

    def brokered(self) -> dict[str, object]:
        properties = self.brokered_message_properties
        return properties.wire_dict() if properties is not None else {}

    def public_json(self) -> dict[str, Any]:
        """The payload as responses show it: `authentication.sasKey` is write-only."""
        data = self.to_json_dict()
        data.get("authentication", {}).pop("sasKey", None)
        return data


def _entity(name: str, path: str) -> str:
    reason = entity_path_problem(path)
    if reason is not None:
        raise ValueError(f"{name} {reason}")
    return path


class ServiceBusQueueMessage(ServiceBusMessage):
    queue_name: str

    @field_validator("queue_name")
    @classmethod
    def _queue_name(cls, path: str) -> str:
        return _entity("queueName", path)

    @property
    def entity_path(self) -> str:
        return self.queue_name


class ServiceBusTopicMessage(ServiceBusMessage):
    topic_path: str

    @field_validator("topic_path")
    @classmethod
    def _topic_path(cls, path: str) -> str:
        return _entity("topicPath", path)

    @property
    def entity_path(self) -> str:
        return self.topic_path


__all__ = [
    "BrokeredMessageProperties",
    "ServiceBusAuthentication",
    "ServiceBusMessage",
    "ServiceBusQueueMessage",
    "ServiceBusTopicMessage",
    "TransportType",
]
