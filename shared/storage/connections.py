"""Reading storage connection strings the way the SDK reads them, for the start-up checks.

The settings (shared/config.py) and the outbound policy (shared/outbound_policy.py) need to know
whether a value is a connection string and which account and queue endpoint it names; asking the
SDK's own parser keeps them in step with what the clients later accept, and keeps the SDK's
imports in this package.
"""

from __future__ import annotations

from azure.data.tables import TableServiceClient
from azure.storage.queue import QueueServiceClient


def is_connection_string(connection: str) -> bool:
    """Whether both the table and the queue client accept `connection` (the job tables and the
    executions queue live in one account)."""
    try:
        TableServiceClient.from_connection_string(connection)
        QueueServiceClient.from_connection_string(connection)
    except ValueError:
        return False
    return True


def queue_account(connection: str) -> tuple[str, str] | None:
    """(account name, queue endpoint URL), both lower case and the URL without a trailing
    slash, of a connection string; None if it is not one."""
    if not connection:
        return None
    try:
        client = QueueServiceClient.from_connection_string(connection)
    except ValueError:
        return None
    return (client.account_name or "").lower(), client.url.rstrip("/").lower()


__all__ = ["is_connection_string", "queue_account"]
