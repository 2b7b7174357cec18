"""StorageQueue actions: put the job's message on an Azure Storage queue.

The message is sent as plain text, exactly as given (no Base64 encode policy): the job owner
chooses the payload, and a consumer that expects Base64 (a Functions queue trigger with the
default `messageEncoding`) can be given a Base64 `message`. The queue is never created: a missing
queue is the job's misconfiguration and is reported as a failure.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from urllib.parse import parse_qs

from azure.core.exceptions import AzureError, HttpResponseError, ResourceNotFoundError
from azure.storage.queue.aio import QueueClient

from shared.actions.base import ActionContext, ActionOutcome
from shared.actions.scrub import scrub
from shared.errors import ActionError
from shared.model.actions import JobErrorAction, StorageQueueMessage


class StorageQueueActionRunner:
    """Sends with a short-lived `QueueClient`; SDK retries are off (the job has a retry policy)."""

    async def run(self, action: JobErrorAction, context: ActionContext) -> ActionOutcome:
        target = action.queue_message
        if target is None:
            raise ValueError("StorageQueue action without a queueMessage")
        outcome = await _send(target, context)
        # SDK errors may quote the request URL (the SAS token, its signature re-encoded) or,
        # for a connection string, its key.
        secrets = _secrets_of(target, context)
        return replace(outcome, message=scrub(outcome.message, secrets)) if secrets else outcome

    async def aclose(self) -> None:
        """Nothing to close: each run opens and closes its own client."""


def _secrets_of(target: StorageQueueMessage, context: ActionContext) -> list[str]:
    secrets: list[str] = []
    if target.sas_token:
        secrets.append(target.sas_token)
        secrets += parse_qs(target.sas_token).get("sig", [])
    connection = context.app_settings.get(target.connection_setting or "", "")
    for part in connection.split(";"):
        name, _, value = part.partition("=")
        if name.strip().lower() in ("accountkey", "sharedaccesssignature") and value:
            secrets.append(value)
            secrets += parse_qs(value).get("sig", [])
    return secrets


class _SettingError(ActionError):
    """The connectionSetting names no usable connection; the text never quotes its value."""


async def _send(target: StorageQueueMessage, context: ActionContext) -> ActionOutcome:
    seconds = context.default_timeout.total_seconds()
    refusal = context.settings.outbound.queue_refusal(target)
    if refusal is not None:
        return _failed(refusal[1])  # the write-time rule again: settings may have changed
    try:
        client = _client(target, context, seconds)
    except _SettingError as exc:
        return _failed(str(exc))
    where = f"queue '{target.queue_name}' in storage account '{client.account_name}'"
    try:
        async with client, asyncio.timeout(seconds):
            sent = await client.send_message(target.message)
    except ResourceNotFoundError as exc:
        # The storage SDK sets `error_code` on the errors it raises.
        if getattr(exc, "error_code", None) == "QueueNotFound":
            return _failed(
                f"queue '{target.queue_name}' does not exist in storage account "
                f"'{client.account_name}'",
                404,
            )
        return _failed(f"{where} not found: {_first_line(exc)}", 404)
    except HttpResponseError as exc:
        return _failed(f"sending to {where} failed: {_first_line(exc)}", exc.status_code)
    except TimeoutError:
        return _failed(f"sending to {where} timed out after {seconds:g} s")
    except AzureError as exc:
        return _failed(f"sending to {where} failed: {_first_line(exc)}")
    return ActionOutcome(
        succeeded=True,
        message=f"StorageQueue Action - Message {sent.id} sent to {where}",
        status_code=201,
    )


def _client(target: StorageQueueMessage, context: ActionContext, seconds: float) -> QueueClient:
    if target.queue_url is not None:
        return QueueClient.from_queue_url(
            target.queue_url, retry_total=0, connection_timeout=seconds, read_timeout=seconds
        )
    name = target.connection_setting
    connection = context.app_settings.get(name or "")
    if not connection:
        raise _SettingError(f"app setting '{name}' (connectionSetting) is not set")
    try:
        return QueueClient.from_connection_string(
            connection,
            target.queue_name,
            retry_total=0,
            connection_timeout=seconds,
            read_timeout=seconds,
        )
    except ValueError:
        # The setting's value may be a secret: never echo it.
        raise _SettingError(
            f"app setting '{name}' (connectionSetting) is not a storage connection string"
        ) from None


def _first_line(exc: AzureError) -> str:
    """Azure errors carry a multi-line dump (headers, XML body); the first line says what failed."""
    return (exc.message or str(exc) or type(exc).__name__).splitlines()[0]


def _failed(message: str, status_code: int | None = None) -> ActionOutcome:
    return ActionOutcome(
        succeeded=False, message=f"StorageQueue Action - {message}", status_code=status_code
    )
