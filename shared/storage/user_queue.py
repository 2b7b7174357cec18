"""A queue of the user's (not the app's): send one message, report what went wrong in words.

Used by StorageQueue actions. The queue is never created: a missing queue is the job's
misconfiguration. SDK retries are off (the job has its own retry policy), and every error comes
back as `QueueSendError` with one line that never quotes a connection string.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from azure.core.exceptions import AzureError, HttpResponseError, ResourceNotFoundError
from azure.storage.queue.aio import QueueClient

from shared.errors import ActionError


class QueueSendError(ActionError):
    """Sending failed; `status_code` is the storage service's answer when there was one."""

    def __init__(self, message: str, status_code: int | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code


@dataclass(frozen=True)
class UserQueue:
    """One queue, reached by a SAS URL or by a connection string (exactly one is given)."""

    queue_name: str
    queue_url: str | None = None  # https://<account>.queue.core.windows.net/<queue>?<sas>
    connection_string: str | None = None
    connection_name: str = "connection"  # how errors name the connection (never its value)

    async def send(self, message: str, timeout_seconds: float) -> tuple[str, str]:
        """Put `message` on the queue as plain text: (message id, "queue '...' in storage
        account '...'"). Raises QueueSendError."""
        client = self._client(timeout_seconds)
        where = f"queue '{self.queue_name}' in storage account '{client.account_name}'"
        try:
            async with client, asyncio.timeout(timeout_seconds):
                sent = await client.send_message(message)
        except ResourceNotFoundError as exc:
            # The storage SDK sets `error_code` on the errors it raises.
            if getattr(exc, "error_code", None) == "QueueNotFound":
                raise QueueSendError(
                    f"queue '{self.queue_name}' does not exist in storage account "
                    f"'{client.account_name}'",
                    404,
                ) from None
            raise QueueSendError(f"{where} not found: {_first_line(exc)}", 404) from None
        except HttpResponseError as exc:
            raise QueueSendError(
                f"sending to {where} failed: {_first_line(exc)}", exc.status_code
            ) from None
        except TimeoutError:
            raise QueueSendError(
                f"sending to {where} timed out after {timeout_seconds:g} s"
            ) from None
        except AzureError as exc:
            raise QueueSendError(f"sending to {where} failed: {_first_line(exc)}") from None
        return str(sent.id), where

    def _client(self, seconds: float) -> QueueClient:
        if self.queue_url is not None:
            return QueueClient.from_queue_url(
                self.queue_url, retry_total=0, connection_timeout=seconds, read_timeout=seconds
            )
        if not self.connection_string:
            raise QueueSendError(f"{self.connection_name} is not set")
        try:
            return QueueClient.from_connection_string(
                self.connection_string,
                self.queue_name,
                retry_total=0,
                connection_timeout=seconds,
                read_timeout=seconds,
            )
        except ValueError:
            # The value may be a secret: never echo it.
            raise QueueSendError(
                f"{self.connection_name} is not a storage connection string"
            ) from None


def _first_line(exc: AzureError) -> str:
    """Azure errors carry a multi-line dump (headers, XML body); the first line says what failed."""
    return (exc.message or str(exc) or type(exc).__name__).splitlines()[0]
