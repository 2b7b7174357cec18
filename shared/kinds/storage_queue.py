"""The StorageQueue kind: put the job's message on an Azure Storage queue.

`{"type": "StorageQueue", "queueMessage": {storageAccount + sasToken | connectionSetting,
queueName, message}}`. `connectionSetting` (ours) names an app setting holding a connection
string, so a queue can be reached by a setting (e.g. Azurite); only the settings listed in
`SCHEDULER_QUEUE_CONNECTIONS` may be named.

The message is sent as plain text, exactly as given (no Base64 encode policy): the job owner
chooses the payload, and a consumer that expects Base64 (a Functions queue trigger with the
default `messageEncoding`) can be given a Base64 `message`. The queue is never created: a missing
queue is the job's misconfiguration and is reported as a failure.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from datetime import timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

from pydantic import field_validator, model_validator

from shared.errors import InvalidRequest
from shared.kinds.base import ActionContext, ActionOutcome, ActionRunner, Kind
from shared.kinds.common.fields import field_get
from shared.model.common import ApiModel
from shared.storage.user_queue import QueueSendError, UserQueue

if TYPE_CHECKING:
    from shared.config import Settings
    from shared.model.actions import JobErrorAction
    from shared.outbound_policy import OutboundPolicy

# Always `fullmatch`: with `match` and `$`, a value ending in a newline would pass.
_QUEUE_NAME = re.compile(r"(?!.*--)[a-z0-9][a-z0-9-]{1,61}[a-z0-9]")
_ACCOUNT_NAME = re.compile(r"[a-z0-9]{3,24}")
_SETTING_NAME = re.compile(r"[A-Za-z0-9_.:-]{1,256}")


class StorageQueueMessage(ApiModel):
    storage_account: str | None = None
    queue_name: str
    sas_token: str | None = None
    message: str
    connection_setting: str | None = None

    @field_validator("queue_name")
    @classmethod
    def _azure_queue_name(cls, name: str) -> str:
        if not _QUEUE_NAME.fullmatch(name):
            raise ValueError(
                "queueName must be 3-63 characters of lowercase letters, digits and single "
                "hyphens, starting and ending with a letter or digit"
            )
        return name

    @field_validator("storage_account")
    @classmethod
    def _azure_account_name(cls, name: str | None) -> str | None:
        if name is not None and not _ACCOUNT_NAME.fullmatch(name):
            raise ValueError("storageAccount must be 3-24 lowercase letters and digits")
        return name

    @field_validator("sas_token")
    @classmethod
    def _strip_question_mark(cls, token: str | None) -> str | None:
        if token is None:
            return None
        token = token.removeprefix("?")
        if not token:
            raise ValueError("sasToken must not be empty")
        return token

    @field_validator("connection_setting")
    @classmethod
    def _setting_name(cls, name: str | None) -> str | None:
        if name is not None and not _SETTING_NAME.fullmatch(name):
            raise ValueError(
                "connectionSetting must be an app setting name (letters, digits, _.:-)"
            )
        return name

    @model_validator(mode="after")
    def _one_way_to_reach_the_queue(self) -> StorageQueueMessage:
        by_account = self.storage_account is not None or self.sas_token is not None
        if self.connection_setting is not None and by_account:
            raise ValueError(
                "connectionSetting: give either connectionSetting or "
                "storageAccount + sasToken, not both"
            )
        if self.connection_setting is None:
            if self.storage_account is None:
                raise ValueError(
                    "storageAccount is required (with sasToken), or give connectionSetting"
                )
            if self.sas_token is None:
                raise ValueError(
                    "sasToken is required with storageAccount, or give connectionSetting"
                )
        return self

    def public_json(self) -> dict[str, Any]:
        """The message as responses show it: `sasToken` is write-only."""
        data = self.to_json_dict()
        data.pop("sasToken", None)
        return data

    @property
    def queue_url(self) -> str | None:
        """The SAS URL of the queue; None when the queue is reached through `connectionSetting`."""
        if self.storage_account is None or self.sas_token is None:
            return None
        return f"https://{self.storage_account}.queue.core.windows.net/{self.queue_name}?{self.sas_token}"


class StorageQueueActionRunner:
    """Sends with a short-lived client per message (nothing to keep open between runs)."""

    async def run(self, action: JobErrorAction, context: ActionContext) -> ActionOutcome:
        target = action.payload_as(StorageQueueMessage)
        if target is None:
            raise ValueError("StorageQueue action without a queueMessage")
        refusal = context.settings.outbound.queue_refusal(target)
        if refusal is not None:
            return _failed(refusal[1])  # the write-time rule again: settings may have changed
        seconds = context.default_timeout.total_seconds()
        try:
            sent, where = await queue_of(target, context.app_settings).send(target.message, seconds)
        except QueueSendError as exc:
            return _failed(str(exc), exc.status_code)
        return ActionOutcome(
            succeeded=True,
            message=f"StorageQueue Action - Message {sent} sent to {where}",
            status_code=201,
        )

    async def aclose(self) -> None:
        """Nothing to close: each run opens and closes its own client."""


def queue_of(target: StorageQueueMessage, app_settings: Mapping[str, str]) -> UserQueue:
    """The queue a message goes to: by its SAS URL, or by the connection its setting holds."""
    name = target.connection_setting
    return UserQueue(
        queue_name=target.queue_name,
        queue_url=target.queue_url,
        connection_string=app_settings.get(name) if name is not None else None,
        connection_name=f"app setting '{name}' (connectionSetting)",
    )


def _failed(message: str, status_code: int | None = None) -> ActionOutcome:
    return ActionOutcome(
        succeeded=False, message=f"StorageQueue Action - {message}", status_code=status_code
    )


class StorageQueueKind(Kind[StorageQueueMessage]):
    type_names = ("StorageQueue",)
    payload_field = "queueMessage"
    payload_model = StorageQueueMessage
    settings = ("SCHEDULER_QUEUE_CONNECTIONS", "SCHEDULER_HTTP_TIMEOUT_SECONDS")

    def runner(self, settings: Settings) -> ActionRunner:
        return StorageQueueActionRunner()

    def timeout(self, payload: StorageQueueMessage, settings: Settings) -> timedelta:
        return settings.http_timeout  # the runner's bound (context.default_timeout)

    def secrets(self, payload: StorageQueueMessage, app_settings: Mapping[str, str]) -> list[str]:
        # SDK errors may quote the request URL (the SAS token, its signature re-encoded) or,
        # for a connection string, its key.
        secrets: list[str] = []
        if payload.sas_token:
            secrets.append(payload.sas_token)
            secrets += parse_qs(payload.sas_token).get("sig", [])
        connection = app_settings.get(payload.connection_setting or "", "")
        for part in connection.split(";"):
            name, _, value = part.partition("=")
            if name.strip().lower() in ("accountkey", "sharedaccesssignature") and value:
                secrets.append(value)
                secrets += parse_qs(value).get("sig", [])
        return secrets

    def public_json(self, payload: StorageQueueMessage) -> dict[str, Any]:
        return payload.public_json()

    def refusals(
        self, payload: StorageQueueMessage, policy: OutboundPolicy
    ) -> Iterator[tuple[str, str]]:
        refusal = policy.queue_refusal(payload)
        if refusal is not None:
            yield refusal

    def carry_secrets(
        self, payload_json: dict[str, Any], stored: StorageQueueMessage, path: str
    ) -> dict[str, Any]:
        """`sasToken` is kept while `storageAccount` stays the same."""
        account = field_get(payload_json, "storageAccount")
        if stored.sas_token is None or account is None:
            return payload_json
        if field_get(payload_json, "sasToken") is not None:
            return payload_json
        if account != stored.storage_account:
            raise InvalidRequest(
                f"{path}.sasToken",
                "queueMessage.sasToken must be given again when the storage account changes",
            )
        return {**payload_json, "sasToken": stored.sas_token}


STORAGE_QUEUE = StorageQueueKind()
