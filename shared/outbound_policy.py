"""What jobs may use of the app's own powers: its managed identity and its storage connections.

Any API caller writes jobs, so a job must not be able to

- ask the app's managed identity for a token of any audience and send it to a host of its choice:
  `ManagedServiceIdentity` is refused unless `SCHEDULER_IDENTITY_AUDIENCES` lists the audience
  (and, for a user-assigned identity, `SCHEDULER_IDENTITY_CLIENT_IDS` its client id);
- read any app setting as a connection string, or write into the queues the app consumes:
  `connectionSetting` may only name a setting listed in `SCHEDULER_QUEUE_CONNECTIONS`, and no
  queue action (by connection or by SAS) may target the execution queue, the device-work queue
  (broadcasts), their `-poison` queues or a host queue (`azure-webjobs-*`) in the app's own
  storage account.

The same `OutboundPolicy` checks a job when it is written (400) and again when it runs (a failed
attempt), so a setting narrowed later also stops jobs already stored. Refusals never say whether a
setting that is not listed exists.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from shared.errors import InvalidRequest
from shared.model.actions import JobErrorAction
from shared.model.auth import ManagedServiceIdentityAuthentication
from shared.model.job import JobProperties
from shared.storage.connections import queue_account

if TYPE_CHECKING:
    from shared.kinds.storage_queue import StorageQueueMessage

IDENTITY_AUDIENCES_SETTING = "SCHEDULER_IDENTITY_AUDIENCES"
IDENTITY_CLIENT_IDS_SETTING = "SCHEDULER_IDENTITY_CLIENT_IDS"
QUEUE_CONNECTIONS_SETTING = "SCHEDULER_QUEUE_CONNECTIONS"
EXECUTION_QUEUE_SETTING = "SCHEDULER_EXECUTION_QUEUE"
DEFAULT_EXECUTION_QUEUE = "scheduler-executions"
DEVICE_WORK_QUEUE_SETTING = "SCHEDULER_DEVICE_WORK_QUEUE"
DEFAULT_DEVICE_WORK_QUEUE = "scheduler-devicework"
DISPATCH_QUEUE_SETTING = "SCHEDULER_DISPATCH_QUEUE"
DEFAULT_DISPATCH_QUEUE = "scheduler-dispatch"
APP_STORAGE_SETTINGS = ("AzureWebJobsStorage", "SCHEDULER_STORAGE")
HOST_QUEUE_PREFIX = "azure-webjobs-"

_SETTING_NAME = re.compile(r"[A-Za-z0-9_.:-]{1,256}")


@dataclass(frozen=True)
class OutboundPolicy:
    """The allow-lists, and what the app's own storage account and queues are."""

    identity_audiences: frozenset[str] = frozenset()
    identity_client_ids: frozenset[str] = frozenset()
    queue_connections: frozenset[str] = frozenset()
    # Allowed connection settings whose account is the app's own.
    app_connections: frozenset[str] = frozenset()
    app_accounts: frozenset[str] = frozenset()  # account names of the app's storage
    app_queues: frozenset[str] = frozenset(
        {
            DEFAULT_EXECUTION_QUEUE,
            f"{DEFAULT_EXECUTION_QUEUE}-poison",
            DEFAULT_DEVICE_WORK_QUEUE,
            f"{DEFAULT_DEVICE_WORK_QUEUE}-poison",
            DEFAULT_DISPATCH_QUEUE,
            f"{DEFAULT_DISPATCH_QUEUE}-poison",
        }
    )

    @classmethod
    def from_settings(cls, settings: Mapping[str, str]) -> OutboundPolicy:
        """The policy of these app settings; `ValueError` naming a bad setting."""
        allowed = settings.get(QUEUE_CONNECTIONS_SETTING, "")
        names = tuple(_entries(allowed))
        key = (
            settings.get(IDENTITY_AUDIENCES_SETTING, ""),
            settings.get(IDENTITY_CLIENT_IDS_SETTING, ""),
            allowed,
            (
                (settings.get(EXECUTION_QUEUE_SETTING) or DEFAULT_EXECUTION_QUEUE).strip(),
                (settings.get(DEVICE_WORK_QUEUE_SETTING) or DEFAULT_DEVICE_WORK_QUEUE).strip(),
                (settings.get(DISPATCH_QUEUE_SETTING) or DEFAULT_DISPATCH_QUEUE).strip(),
            ),
            tuple(settings.get(name, "") for name in APP_STORAGE_SETTINGS),
            tuple(settings.get(name, "") for name in names),
        )
        return _parse(key)

    def identity_refusal(
        self, auth: ManagedServiceIdentityAuthentication
    ) -> tuple[str, str] | None:
        """(field, reason) when the job may not ask the app's identity for this token."""
        if auth.audience not in self.identity_audiences:
            return "audience", (
                f"ManagedServiceIdentity audience '{auth.audience}' is not one this app allows "
                f"jobs to request (setting {IDENTITY_AUDIENCES_SETTING})"
            )
        if auth.client_id is not None and auth.client_id not in self.identity_client_ids:
            return "clientId", (
                f"ManagedServiceIdentity clientId '{auth.client_id}' is not one this app allows "
                f"jobs to use (setting {IDENTITY_CLIENT_IDS_SETTING})"
            )
        return None

    def queue_refusal(self, message: StorageQueueMessage) -> tuple[str, str] | None:
        """(field, reason) when the job may not send this queue message."""
        name = message.connection_setting
        if name is not None and name not in self.queue_connections:
            # The same words whether or not a setting of that name exists.
            return "connectionSetting", (
                f"connectionSetting '{name}' is not a storage connection this app allows jobs "
                f"to use (setting {QUEUE_CONNECTIONS_SETTING})"
            )
        own_account = (
            name in self.app_connections
            if name is not None
            else message.storage_account in self.app_accounts
        )
        if own_account and self._is_app_queue(message.queue_name):
            return "queueName", (
                f"queue '{message.queue_name}' is one the app itself consumes; "
                "jobs may not write to it"
            )
        return None

    def _is_app_queue(self, queue: str) -> bool:
        return queue in self.app_queues or queue.startswith(HOST_QUEUE_PREFIX)

    def refusals(self, action: JobErrorAction, path: str) -> Iterator[tuple[str, str]]:
        """(field path, reason) of every refusal of an action; its kind knows where it goes."""
        for field, reason in action.kind.refusals(action.payload, self):
            yield f"{path}.{action.kind.payload_field}.{field}", reason

    def check_job(self, properties: JobProperties) -> None:
        """`InvalidRequest` (400) naming the first refused field of a job being written."""
        actions: list[tuple[str, JobErrorAction]] = [("properties.action", properties.action)]
        if properties.action.error_action is not None:
            actions.append(("properties.action.errorAction", properties.action.error_action))
        for path, action in actions:
            for field, reason in self.refusals(action, path):
                raise InvalidRequest(field, reason)


def _entries(text: str) -> Iterator[str]:
    for raw in text.split(","):
        entry = raw.strip()
        if entry:
            yield entry


@functools.lru_cache(maxsize=16)
def _parse(
    key: tuple[str, str, str, tuple[str, ...], tuple[str, ...], tuple[str, ...]],
) -> OutboundPolicy:
    audiences, client_ids, allowed, consumed, app_storage, allowed_values = key
    names = tuple(_entries(allowed))
    for name in names:
        if not _SETTING_NAME.fullmatch(name):
            raise ValueError(f"{QUEUE_CONNECTIONS_SETTING}: {name!r} is not an app setting name")
    app_endpoints = [found for text in app_storage if (found := queue_account(text)) is not None]
    app_accounts = frozenset(account for account, _ in app_endpoints if account)
    app_urls = frozenset(url for _, url in app_endpoints)
    app_connections = frozenset(
        name
        for name, value in zip(names, allowed_values, strict=True)
        if (found := queue_account(value)) is not None
        and (found[0] in app_accounts or found[1] in app_urls)
    )
    return OutboundPolicy(
        identity_audiences=frozenset(_entries(audiences)),
        identity_client_ids=frozenset(_entries(client_ids)),
        queue_connections=frozenset(names),
        app_connections=app_connections,
        app_accounts=app_accounts,
        app_queues=frozenset(name for queue in consumed for name in (queue, f"{queue}-poison")),
    )


__all__ = [
    "IDENTITY_AUDIENCES_SETTING",
    "IDENTITY_CLIENT_IDS_SETTING",
    "QUEUE_CONNECTIONS_SETTING",
    "OutboundPolicy",
]
