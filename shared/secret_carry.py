"""Which stored secrets a PUT or PATCH of a job may keep without giving them again.

Secrets are write-only, so a client that reads a job and writes it back (a PATCH merges into the
definition as GET shows it) cannot send them. They are carried over from the stored job, per
action (main and error action), only while they would reach the same place:

- an HTTP action's `password` / `pfx` / `secret`: same authentication type and the same origin
  (scheme, host, port) of `request.uri`; for `ActiveDirectoryOAuth` also the same tenant and
  clientId (a secret belongs to its client);
- a queue action's `sasToken`: the same `storageAccount`.

When the place changed and the authentication still needs the secret, the write is refused with
400 naming the field: a changed target must never receive the old target's credentials.

`ManagedServiceIdentity` stores no secret, but its token is a credential too: a PATCH that moves
such an action to another origin must state its `authentication` again (a PUT always states it).
"""

from __future__ import annotations

from typing import Any

from pydantic.alias_generators import to_snake

from shared.errors import InvalidRequest
from shared.kinds.http.model import HttpRequest
from shared.kinds.storage_queue import StorageQueueMessage
from shared.model.actions import JobErrorAction
from shared.model.auth import (
    ActiveDirectoryOAuthAuthentication,
    BasicAuthentication,
    ClientCertificateAuthentication,
    ManagedServiceIdentityAuthentication,
)
from shared.model.job import JobProperties
from shared.model.target import origin_of


def carry_secrets(body: object, stored: JobProperties | None) -> object:
    """`body` (a job PUT body) with the stored secrets it may keep filled in; the input is not
    changed. Raises `InvalidRequest` for a secret that must be given again."""
    if stored is None or not isinstance(body, dict):
        return body
    enveloped = "properties" in body
    properties = body.get("properties") if enveloped else body
    if not isinstance(properties, dict):
        return body
    prefix = "properties." if enveloped else ""
    properties = dict(properties)
    action = _get(properties, "action")
    if not isinstance(action, dict):
        return body
    action = _carry_into_action(action, stored.action, f"{prefix}action")
    error_key = _key(action, "errorAction")
    error_action = action.get(error_key)
    if isinstance(error_action, dict) and stored.action.error_action is not None:
        action[error_key] = _carry_into_action(
            error_action, stored.action.error_action, f"{prefix}action.errorAction"
        )
    properties[_key(properties, "action")] = action
    return {**body, "properties": properties} if enveloped else properties


def check_identity_retarget(patch: dict[str, Any], stored: JobProperties) -> None:
    """Refuse a PATCH that moves an action using the app's managed identity to another origin
    without stating its `authentication` again (it would otherwise carry over unseen)."""
    properties = patch.get("properties")
    action = _get(properties, "action") if isinstance(properties, dict) else None
    if not isinstance(action, dict):
        return
    pairs: list[tuple[dict[str, Any], JobErrorAction, str]] = [
        (action, stored.action, "properties.action")
    ]
    error_action = _get(action, "errorAction")
    if isinstance(error_action, dict) and stored.action.error_action is not None:
        pairs.append((error_action, stored.action.error_action, "properties.action.errorAction"))
    for given, old, path in pairs:
        request = _get(given, "request")
        old_request = old.payload_as(HttpRequest)
        if not isinstance(request, dict) or old_request is None:
            continue
        if not isinstance(old_request.authentication, ManagedServiceIdentityAuthentication):
            continue
        uri = _get(request, "uri")
        if not isinstance(uri, str) or _get(request, "authentication") is not None:
            continue
        try:
            moved = origin_of(uri) != origin_of(old_request.uri)
        except ValueError:
            continue  # the uri is refused by validation, with its own message
        if moved:
            raise InvalidRequest(
                f"{path}.request.authentication",
                "authentication must be given again when the target changes (the app's "
                "managed identity token would go to the new host)",
            )


def _carry_into_action(action: dict[str, Any], stored: JobErrorAction, path: str) -> dict[str, Any]:
    action = dict(action)
    request = _get(action, "request")
    if isinstance(request, dict) and stored.payload_as(HttpRequest) is not None:
        action[_key(action, "request")] = _carry_into_request(request, stored, f"{path}.request")
    message = _get(action, "queueMessage")
    if isinstance(message, dict) and stored.payload_as(StorageQueueMessage) is not None:
        key = _key(action, "queueMessage")
        action[key] = _carry_into_queue_message(message, stored, f"{path}.queueMessage")
    return action


def _carry_into_request(
    request: dict[str, Any], stored: JobErrorAction, path: str
) -> dict[str, Any]:
    stored_request = stored.payload_as(HttpRequest)
    assert stored_request is not None
    auth = _get(request, "authentication")
    old = stored_request.authentication
    if not isinstance(auth, dict) or old is None:
        return request
    kind = auth.get("type")
    if not isinstance(kind, str) or kind.casefold() != old.type.casefold():
        return request  # another kind of authentication: nothing of the old one applies
    secrets = _stored_secrets(old, auth)
    if not secrets:
        return request
    uri = _get(request, "uri")
    try:
        same_target = isinstance(uri, str) and origin_of(uri) == origin_of(stored_request.uri)
    except ValueError:
        return request  # the uri is refused by validation, with its own message
    if isinstance(old, ActiveDirectoryOAuthAuthentication):
        same_client = _get(auth, "tenant") == old.tenant and _get(auth, "clientId") == old.client_id
        if same_target and not same_client:
            name = next(iter(secrets))
            raise InvalidRequest(
                f"{path}.authentication.{name}",
                f"authentication.{name} must be given again when the tenant or clientId changes",
            )
    if not same_target:
        name = next(iter(secrets))
        raise InvalidRequest(
            f"{path}.authentication.{name}",
            f"authentication.{name} must be given again when the target changes",
        )
    return {**request, _key(request, "authentication"): {**auth, **secrets}}


def _stored_secrets(old: object, auth: dict[str, Any]) -> dict[str, str]:
    """The stored secrets the new authentication object leaves out, by JSON name."""
    if isinstance(old, BasicAuthentication) and _get(auth, "password") is None:
        return {"password": old.password.get_secret_value()}
    if isinstance(old, ActiveDirectoryOAuthAuthentication) and _get(auth, "secret") is None:
        return {"secret": old.secret.get_secret_value()}
    if isinstance(old, ClientCertificateAuthentication) and _get(auth, "pfx") is None:
        # A pfx and its password go together: a new pfx never takes the old password.
        carried = {"pfx": old.pfx.get_secret_value()}
        if old.password is not None and _get(auth, "password") is None:
            carried["password"] = old.password.get_secret_value()
        return carried
    return {}


def _carry_into_queue_message(
    message: dict[str, Any], stored: JobErrorAction, path: str
) -> dict[str, Any]:
    stored_message = stored.payload_as(StorageQueueMessage)
    assert stored_message is not None
    old_token = stored_message.sas_token
    account = _get(message, "storageAccount")
    if old_token is None or account is None or _get(message, "sasToken") is not None:
        return message
    if account != stored_message.storage_account:
        raise InvalidRequest(
            f"{path}.sasToken",
            "queueMessage.sasToken must be given again when the storage account changes",
        )
    return {**message, "sasToken": old_token}


def _key(data: dict[str, Any], camel: str) -> str:
    """The spelling `data` uses for a field: camelCase (the API's) or snake_case (also read)."""
    snake = to_snake(camel)
    return snake if snake in data and camel not in data else camel


def _get(data: dict[str, Any], camel: str) -> Any:
    return data.get(_key(data, camel))


__all__ = ["carry_secrets", "check_identity_retarget"]
