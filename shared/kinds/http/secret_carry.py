"""Which stored secrets of an HTTP action a PUT or PATCH may keep without giving them again.

`password` / `pfx` / `secret` are carried over while the authentication type and the origin
(scheme, host, port) of `request.uri` stay the same; for `ActiveDirectoryOAuth` also the tenant and
clientId (a secret belongs to its client). When the place changed and the authentication still
needs the secret, the write is refused with 400 naming the field: a changed target must never
receive the old target's credentials.

`ManagedServiceIdentity` stores no secret, but its token is a credential too: a PATCH that moves
such an action to another origin must state its `authentication` again (a PUT always states it).
"""

from __future__ import annotations

from typing import Any

from shared.errors import InvalidRequest
from shared.kinds.common.fields import field_get, field_key
from shared.kinds.http.model import HttpRequest
from shared.model.auth import (
    ActiveDirectoryOAuthAuthentication,
    BasicAuthentication,
    ClientCertificateAuthentication,
    ManagedServiceIdentityAuthentication,
)
from shared.model.target import origin_of


def carry_into_request(
    request: dict[str, Any], stored_request: HttpRequest, path: str
) -> dict[str, Any]:
    """`request` with the stored secrets it may keep; `path` locates it (`...action.request`)."""
    auth = field_get(request, "authentication")
    old = stored_request.authentication
    if not isinstance(auth, dict) or old is None:
        return request
    kind = auth.get("type")
    if not isinstance(kind, str) or kind.casefold() != old.type.casefold():
        return request  # another kind of authentication: nothing of the old one applies
    secrets = _stored_secrets(old, auth)
    if not secrets:
        return request
    uri = field_get(request, "uri")
    try:
        same_target = isinstance(uri, str) and origin_of(uri) == origin_of(stored_request.uri)
    except ValueError:
        return request  # the uri is refused by validation, with its own message
    if isinstance(old, ActiveDirectoryOAuthAuthentication):
        same_client = (
            field_get(auth, "tenant") == old.tenant and field_get(auth, "clientId") == old.client_id
        )
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
    return {**request, field_key(request, "authentication"): {**auth, **secrets}}


def check_identity_retarget(
    request: dict[str, Any], stored_request: HttpRequest, path: str
) -> None:
    """Refuse a PATCH that moves a request using the app's managed identity to another origin
    without stating its `authentication` again (it would otherwise carry over unseen)."""
    if not isinstance(stored_request.authentication, ManagedServiceIdentityAuthentication):
        return
    uri = field_get(request, "uri")
    if not isinstance(uri, str) or field_get(request, "authentication") is not None:
        return
    try:
        moved = origin_of(uri) != origin_of(stored_request.uri)
    except ValueError:
        return  # the uri is refused by validation, with its own message
    if moved:
        raise InvalidRequest(
            f"{path}.authentication",
            "authentication must be given again when the target changes (the app's "
            "managed identity token would go to the new host)",
        )


def _stored_secrets(old: object, auth: dict[str, Any]) -> dict[str, str]:
    """The stored secrets the new authentication object leaves out, by JSON name."""
    if isinstance(old, BasicAuthentication) and field_get(auth, "password") is None:
        return {"password": old.password.get_secret_value()}
    if isinstance(old, ActiveDirectoryOAuthAuthentication) and field_get(auth, "secret") is None:
        return {"secret": old.secret.get_secret_value()}
    if isinstance(old, ClientCertificateAuthentication) and field_get(auth, "pfx") is None:
        # A pfx and its password go together: a new pfx never takes the old password.
        carried = {"pfx": old.pfx.get_secret_value()}
        if old.password is not None and field_get(auth, "password") is None:
            carried["password"] = old.password.get_secret_value()
        return carried
    return {}


__all__ = ["carry_into_request", "check_identity_retarget"]
