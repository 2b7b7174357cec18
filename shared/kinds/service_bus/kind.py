"""The ServiceBusQueue and ServiceBusTopic kinds: `{"type": "ServiceBusQueue",
"serviceBusQueueMessage": {...}}` and `{"type": "ServiceBusTopic", "serviceBusTopicMessage":
{...}}`, one kind each (each kind has one payload field), sharing everything else.

Own setting: `SCHEDULER_SERVICE_BUS_HOST_PATTERN`, the endpoint's host (`{namespace}` replaced by
the namespace, lower-cased), checked at start-up; default `{namespace}.servicebus.windows.net`.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from shared.errors import ConfigError, InvalidRequest
from shared.kinds.base import ActionRunner, Kind
from shared.kinds.common.fields import field_get, field_key
from shared.kinds.service_bus.model import (
    ServiceBusMessage,
    ServiceBusQueueMessage,
    ServiceBusTopicMessage,
)
from shared.kinds.service_bus.runner import ServiceBusActionRunner
from shared.kinds.service_bus.wire import DEFAULT_HOST_PATTERN, host_pattern_problem

if TYPE_CHECKING:
    from shared.config import Settings

HOST_PATTERN_SETTING = "SCHEDULER_SERVICE_BUS_HOST_PATTERN"

M = TypeVar("M", bound=ServiceBusMessage)


class _ServiceBusKind(Kind[M], Generic[M]):
    settings = (
        HOST_PATTERN_SETTING,
        "SCHEDULER_HTTP_TIMEOUT_SECONDS",
        "SCHEDULER_ALLOWED_NETWORKS",
        "SCHEDULER_EXTRA_CA_CERTS",
    )

    def configure(self, app_settings: Mapping[str, str]) -> str:
        """The endpoint host pattern (`{namespace}` once, an optional port)."""
        pattern = app_settings.get(HOST_PATTERN_SETTING, DEFAULT_HOST_PATTERN).strip()
        reason = host_pattern_problem(pattern)
        if reason is not None:
            raise ConfigError(HOST_PATTERN_SETTING, f"{pattern!r} {reason}")
        return pattern

    def runner(self, settings: Settings) -> ActionRunner:
        return ServiceBusActionRunner(self)

    def timeout(self, payload: M, settings: Settings) -> timedelta:
        return settings.http_timeout  # the runner's bound (context.default_timeout)

    def secrets(self, payload: M, app_settings: Mapping[str, str]) -> list[str]:
        return [payload.authentication.sas_key.get_secret_value()]

    def public_json(self, payload: M) -> dict[str, Any]:
        return payload.public_json()

    def authenticates(self, payload: M) -> bool:
        return False  # a SAS key is the entity's own access, as a queue action's SAS token

    def carry_secrets(self, payload_json: dict[str, Any], stored: M, path: str) -> dict[str, Any]:
        """`authentication.sasKey` is kept while the namespace and the key name stay the same
        (a key belongs to one rule of one namespace)."""
        auth = field_get(payload_json, "authentication")
        if not isinstance(auth, dict) or field_get(auth, "sasKey") is not None:
            return payload_json
        kind = auth.get("type")
        if not isinstance(kind, str) or kind.casefold() != stored.authentication.type.casefold():
            return payload_json
        same_rule = (
            field_get(payload_json, "namespace") == stored.namespace
            and field_get(auth, "sasKeyName") == stored.authentication.sas_key_name
        )
        if not same_rule:
            raise InvalidRequest(
                f"{path}.authentication.sasKey",
                "authentication.sasKey must be given again when the namespace or sasKeyName "
                "changes",
            )
        key = stored.authentication.sas_key.get_secret_value()
        return {**payload_json, field_key(payload_json, "authentication"): {**auth, "sasKey": key}}


class ServiceBusQueueKind(_ServiceBusKind[ServiceBusQueueMessage]):
    type_names = ("ServiceBusQueue",)
    payload_field = "serviceBusQueueMessage"
    payload_model = ServiceBusQueueMessage


class ServiceBusTopicKind(_ServiceBusKind[ServiceBusTopicMessage]):
    type_names = ("ServiceBusTopic",)
    payload_field = "serviceBusTopicMessage"
    payload_model = ServiceBusTopicMessage


SERVICE_BUS_QUEUE = ServiceBusQueueKind()
SERVICE_BUS_TOPIC = ServiceBusTopicKind()
SERVICE_BUS_KINDS: tuple[Kind[Any], ...] = (SERVICE_BUS_QUEUE, SERVICE_BUS_TOPIC)

__all__ = [
    "HOST_PATTERN_SETTING",
    "SERVICE_BUS_KINDS",
    "SERVICE_BUS_QUEUE",
    "SERVICE_BUS_TOPIC",
    "ServiceBusQueueKind",
    "ServiceBusTopicKind",
]
