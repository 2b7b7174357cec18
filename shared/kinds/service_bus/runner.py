"""Sends one Service Bus message per attempt through Service Bus's REST API.

The request comes from `wire.send_request` (SAS token signed for the entity, BrokerProperties,
custom properties as quoted headers, `x-ms-retrypolicy: NoRetry`) and goes through the same
outbound network guard as HTTP actions (`send_guarded`). `MessageId` defaults to the attempt's
idempotency key, the same for every attempt of one occurrence, so a send repeated after a lost
answer is dropped by the entity's duplicate detection when it is on. 201 is success; any other
answer, a refusal by the guard, a timeout or a transport failure is a failed attempt whose message
says what Service Bus (or the network) said. The key and the token never appear in it.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from http import HTTPStatus
from typing import TYPE_CHECKING
from urllib.parse import parse_qs

import httpx

from shared.errors import ActionError, InvalidRequest
from shared.kinds.base import ActionContext, ActionOutcome, Kind
from shared.kinds.common.scrub import margin, scrub
from shared.kinds.http.guarded import GuardedResponse, send_guarded
from shared.kinds.service_bus.model import ServiceBusMessage, ServiceBusQueueMessage
from shared.kinds.service_bus.wire import send_request

if TYPE_CHECKING:
    from typing import Any

    from shared.model.actions import JobErrorAction

MAX_BODY_BYTES = 2048  # as much of an error answer as job history keeps (as for HTTP actions)
TOKEN_SLACK = timedelta(minutes=5)  # the SAS token outlives the attempt by this (clock skew)


class ServiceBusActionRunner:
    """One per runtime per kind; holds nothing between sends (each has its own client)."""

    def __init__(self, kind: Kind[Any]) -> None:
        self._kind = kind

    async def run(self, action: JobErrorAction, context: ActionContext) -> ActionOutcome:
        target = action.payload
        if not isinstance(target, ServiceBusMessage):
            raise ValueError(f"{action.type} action without a Service Bus message")
        what = _entity_words(target)
        seconds = context.default_timeout.total_seconds()
        brokered = target.brokered()
        brokered.setdefault("messageId", context.idempotency_key)
        key = target.authentication.sas_key.get_secret_value()
        try:
            url, headers, body = send_request(
                target.namespace,
                target.entity_path,
                target.message,
                brokered,
                target.custom_message_properties or {},
                context.settings.for_kind(self._kind),
                key_name=target.authentication.sas_key_name,
                key=key,
                expiry=datetime.now(UTC) + context.default_timeout + TOKEN_SLACK,
                entity_field=(
                    "queueName" if isinstance(target, ServiceBusQueueMessage) else "topicPath"
                ),
            )
        except InvalidRequest as error:  # a definition stored before a rule existed
            return self._failed(f"Not sent: {self._kind.payload_field}.{error}")
        token = headers["Authorization"]
        secrets = [key, token, *parse_qs(token.partition(" ")[2]).get("sig", [])]
        try:
            async with asyncio.timeout(seconds):
                response = await send_guarded(
                    "POST",
                    url,
                    headers=headers,
                    content=body,
                    settings=context.settings,
                    timeout=seconds,
                    max_body=MAX_BODY_BYTES + margin(secrets),
                )
        except ActionError as error:  # the guard, or the extra CA bundle
            return self._failed(scrub(str(error), secrets))
        except (TimeoutError, httpx.TimeoutException):
            return self._failed(f"Send to {what} timed out after {seconds:g} s")
        except (httpx.HTTPError, httpx.InvalidURL, OSError) as error:
            reason = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
            return self._failed(scrub(f"Could not send to {what}: {reason}", secrets))
        message_id = brokered["messageId"]
        if response.status_code == HTTPStatus.CREATED:
            return ActionOutcome(
                succeeded=True,
                message=scrub(
                    f"{self._kind.name} Action - Message '{message_id}' sent to {what} "
                    "(201 Created)",
                    secrets,
                ),
                status_code=201,
            )
        return ActionOutcome(
            succeeded=False,
            message=scrub(f"{self._kind.name} Action - {_answer(response, target, what)}", secrets),
            status_code=response.status_code,
        )

    async def aclose(self) -> None:
        """Nothing to close: each send opens and closes its own client."""

    def _failed(self, message: str) -> ActionOutcome:
        return ActionOutcome(succeeded=False, message=f"{self._kind.name} Action - {message}")


def _entity_words(target: ServiceBusMessage) -> str:
    noun = "queue" if isinstance(target, ServiceBusQueueMessage) else "topic"
    return f"{noun} '{target.entity_path}' in namespace '{target.namespace}'"


def _answer(response: GuardedResponse, target: ServiceBusMessage, what: str) -> str:
    """`Service Bus answered 410 Gone: entity 'orders' does not exist in namespace 'shop'`, plus
    what the service said (its body, cut)."""
    status = response.status_code
    reason = response.reason_phrase or _phrase(status)
    entity, namespace = target.entity_path, target.namespace
    key_name = target.authentication.sas_key_name
    meaning = {
        400: f"the message to {what} or its properties were refused",
        401: (
            f"the shared access key '{key_name}' was refused by namespace '{namespace}' "
            "(wrong key name or key, or a rule that does not cover the entity)"
        ),
        403: (
            f"the key '{key_name}' may not send to {what}, or the entity's quota or message "
            "size was exceeded"
        ),
        404: f"namespace '{namespace}' does not serve entity '{entity}'",
        410: f"entity '{entity}' does not exist in namespace '{namespace}'",
    }.get(status)
    if meaning is None:
        meaning = f"the service failed to take the message for {what}"
    text = response.body.decode("utf-8", errors="replace")[:MAX_BODY_BYTES]
    detail = f" Body: {text}" if text else ""
    return f"Service Bus answered {status} {reason}: {meaning}.{detail}"


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""


__all__ = ["ServiceBusActionRunner"]
