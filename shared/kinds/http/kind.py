"""The Http/Https kind: `{"type": "Http" | "Https", "request": {...}}`."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from pydantic import SecretStr

from shared.kinds.base import ActionRunner, Kind
from shared.kinds.http.model import HttpRequest
from shared.kinds.http.runner import HttpActionRunner
from shared.kinds.http.secret_carry import carry_into_request, check_identity_retarget
from shared.model.auth import ManagedServiceIdentityAuthentication
from shared.model.target import scheme_of

if TYPE_CHECKING:
    from shared.config import Settings
    from shared.outbound_policy import OutboundPolicy


class HttpKind(Kind[HttpRequest]):
    type_names = ("Http", "Https")
    payload_field = "request"
    payload_model = HttpRequest
    settings = (
        "SCHEDULER_HTTP_TIMEOUT_SECONDS",
        "SCHEDULER_ALLOWED_NETWORKS",
        "SCHEDULER_EXTRA_CA_CERTS",
        "SCHEDULER_AAD_AUTHORITY",
        "SCHEDULER_IDENTITY_AUDIENCES",
        "SCHEDULER_IDENTITY_CLIENT_IDS",
        "SCHEDULER_MAX_REQUEST_URI_LENGTH",
        "SCHEDULER_MAX_REQUEST_HEADER_COUNT",
        "SCHEDULER_MAX_REQUEST_HEADERS_LENGTH",
        "SCHEDULER_MAX_REQUEST_BODY_LENGTH",
    )

    def runner(self, settings: Settings) -> ActionRunner:
        return HttpActionRunner()

    def timeout(self, payload: HttpRequest, settings: Settings) -> timedelta:
        seconds = payload.timeout_seconds
        return timedelta(seconds=seconds) if seconds else settings.http_timeout

    def check(self, type_name: str, payload: HttpRequest) -> None:
        if type_name == "Https" and scheme_of(payload.uri) != "https":
            raise ValueError("request.uri must be an https:// URL when type is Https")

    def secrets(self, payload: HttpRequest, app_settings: Mapping[str, str]) -> list[str]:
        auth = payload.authentication
        if auth is None:
            return []
        values = (getattr(auth, name) for name in type(auth).model_fields)
        return [value.get_secret_value() for value in values if isinstance(value, SecretStr)]

    def public_json(self, payload: HttpRequest) -> dict[str, Any]:
        return payload.public_json()

    def refusals(self, payload: HttpRequest, policy: OutboundPolicy) -> Iterator[tuple[str, str]]:
        if isinstance(payload.authentication, ManagedServiceIdentityAuthentication):
            refusal = policy.identity_refusal(payload.authentication)
            if refusal is not None:
                yield f"authentication.{refusal[0]}", refusal[1]

    def authenticates(self, payload: HttpRequest) -> bool:
        auth = payload.authentication
        return auth is not None and auth.type != "NotSpecified"

    def carry_secrets(
        self, payload_json: dict[str, Any], stored: HttpRequest, path: str
    ) -> dict[str, Any]:
        return carry_into_request(payload_json, stored, path)

    def check_retarget(self, patch_json: dict[str, Any], stored: HttpRequest, path: str) -> None:
        check_identity_retarget(patch_json, stored, path)


HTTP = HttpKind()
