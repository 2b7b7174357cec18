"""Which stored secrets a PUT or PATCH of a job may keep without giving them again.

Secrets are write-only, so a client that reads a job and writes it back (a PATCH merges into the
definition as GET shows it) cannot send them. They are carried over from the stored job, per
action (main and error action), by the stored action's kind (`Kind.carry_secrets`), and only into
a payload of the same kind: the kind decides while which fields stay the same a secret still
reaches the same place (an HTTP action's origin, a queue action's storage account), and refuses
with 400 naming the field when it must be given again. A kind's `check_retarget` refuses a PATCH
that moves a credential without a secret (the app's managed identity) to another target.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from shared.kinds.common.fields import field_get, field_key
from shared.model.actions import JobErrorAction
from shared.model.job import JobProperties


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
    action = field_get(properties, "action")
    if not isinstance(action, dict):
        return body
    action = _carry_into_action(action, stored.action, f"{prefix}action")
    error_key = field_key(action, "errorAction")
    error_action = action.get(error_key)
    if isinstance(error_action, dict) and stored.action.error_action is not None:
        action[error_key] = _carry_into_action(
            error_action, stored.action.error_action, f"{prefix}action.errorAction"
        )
    properties[field_key(properties, "action")] = action
    return {**body, "properties": properties} if enveloped else properties


def check_identity_retarget(patch: dict[str, Any], stored: JobProperties) -> None:
    """Refuse a PATCH that moves an action holding a credential without a secret (the app's
    managed identity) to another target without stating it again (each kind decides)."""
    properties = patch.get("properties")
    action = field_get(properties, "action") if isinstance(properties, dict) else None
    if not isinstance(action, dict):
        return
    for given, old, path in _pairs(action, stored):
        field = old.kind.payload_field
        payload = field_get(given, field)
        if isinstance(payload, dict):
            old.kind.check_retarget(payload, old.payload, f"{path}.{field}")


def _pairs(
    action: dict[str, Any], stored: JobProperties
) -> Iterator[tuple[dict[str, Any], JobErrorAction, str]]:
    yield action, stored.action, "properties.action"
    error_action = field_get(action, "errorAction")
    if isinstance(error_action, dict) and stored.action.error_action is not None:
        yield error_action, stored.action.error_action, "properties.action.errorAction"


def _carry_into_action(action: dict[str, Any], stored: JobErrorAction, path: str) -> dict[str, Any]:
    """The stored action's kind fills in its payload (found under its field, either spelling)."""
    action = dict(action)
    kind = stored.kind
    key = field_key(action, kind.payload_field)
    payload = action.get(key)
    if isinstance(payload, dict):
        action[key] = kind.carry_secrets(payload, stored.payload, f"{path}.{kind.payload_field}")
    return action


__all__ = ["carry_secrets", "check_identity_retarget"]
