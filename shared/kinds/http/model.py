"""The payload of Http and Https actions: Azure Scheduler's `HttpRequest`, plus `timeoutSeconds`.

Limits are Azure Scheduler's (docs/azure-scheduler.md §5); the app settings may change them,
passed in as validation context `limits` (see shared/config.py). `authentication` is one of the
kinds in `shared.model.auth`; its secrets are write-only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal, get_args

from pydantic import Field, ValidationInfo, field_validator, model_validator

from shared.model.auth import (
    ClientCertificateAuthentication,
    HttpAuthentication,
    parse_authentication,
    public_authentication_json,
)
from shared.model.common import ApiModel, Integer
from shared.model.target import callable_http_url, scheme_of

# Azure Scheduler limits (docs/azure-scheduler.md §5).


@dataclass(frozen=True)
class RequestLimits:
    """Azure Scheduler's limits on an action's request; the app settings may change them
    (passed in as validation context `limits`, see shared/config.py)."""

    uri_length: int = 2048
    header_count: int = 50
    headers_length: int = 4096
    body_length: int = 8192


DEFAULT_LIMITS = RequestLimits()
# Stored jobs are re-read without limits: lowering a setting must not make them unreadable.
NO_LIMITS = RequestLimits(10**9, 10**9, 10**9, 10**9)


def _limits(info: ValidationInfo) -> RequestLimits:
    context = info.context if isinstance(info.context, dict) else {}
    limits = context.get("limits", DEFAULT_LIMITS)
    return limits if isinstance(limits, RequestLimits) else DEFAULT_LIMITS


MAX_TIMEOUT_SECONDS = 600

HttpMethod = Literal["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"]
_METHODS: frozenset[str] = frozenset(get_args(HttpMethod))

_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # RFC 9110 token
_HEADER_VALUE = re.compile(r"[\x20-\x7e\t]*")  # printable ASCII: what httpx can send
_COMPUTED_HEADERS = frozenset({"content-length", "transfer-encoding"})


class HttpRequest(ApiModel):
    uri: str
    method: HttpMethod = "GET"
    headers: dict[str, str] | None = None
    body: str | None = None
    authentication: HttpAuthentication | None = None
    timeout_seconds: Integer | None = Field(default=None, ge=1, le=MAX_TIMEOUT_SECONDS)

    @field_validator("uri")
    @classmethod
    def _absolute_http_url(cls, uri: str, info: ValidationInfo) -> str:
        limit = _limits(info).uri_length
        if len(uri) > limit:
            raise ValueError(f"uri is longer than {limit} characters")
        stored = isinstance(info.context, dict) and info.context.get("stored") is True
        if not stored:  # a job written before these checks must still load (and then fail)
            callable_http_url(uri)
        return uri

    @field_validator("method", mode="before")
    @classmethod
    def _upper_method(cls, method: object) -> object:
        if isinstance(method, str):
            if method.upper() not in _METHODS:
                raise ValueError(f"method must be one of {', '.join(sorted(_METHODS))}")
            return method.upper()
        return method

    @field_validator("headers")
    @classmethod
    def _sendable_headers(
        cls, headers: dict[str, str] | None, info: ValidationInfo
    ) -> dict[str, str] | None:
        if headers is None:
            return None
        limits = _limits(info)
        if len(headers) > limits.header_count:
            raise ValueError(f"headers: at most {limits.header_count} headers are allowed")
        if sum(len(k) + len(v) for k, v in headers.items()) > limits.headers_length:
            raise ValueError(
                f"headers: names and values total more than {limits.headers_length} chars"
            )
        for name, value in headers.items():
            if not _HEADER_NAME.fullmatch(name):
                raise ValueError(f"headers: {name!r} is not a valid header name")
            if not _HEADER_VALUE.fullmatch(value):
                raise ValueError(f"headers: the value of {name!r} must be printable ASCII")
            if name.lower() in _COMPUTED_HEADERS:
                raise ValueError(f"headers: {name} is computed from the body; do not set it")
        return headers

    @field_validator("body")
    @classmethod
    def _body_size(cls, body: str | None, info: ValidationInfo) -> str | None:
        limit = _limits(info).body_length
        if body is not None and len(body) > limit:
            raise ValueError(f"body is longer than {limit} characters")
        return body

    @field_validator("authentication", mode="before")
    @classmethod
    def _authentication_of_its_kind(cls, auth: object) -> object:
        return parse_authentication(auth)

    def public_json(self) -> dict[str, Any]:
        """The request as responses show it: of `authentication`, only its public fields."""
        data = self.to_json_dict()
        if isinstance(data.get("authentication"), dict):
            data["authentication"] = public_authentication_json(data["authentication"])
        return data

    @model_validator(mode="after")
    def _certificate_needs_https(self) -> HttpRequest:
        # Refused rather than sent without the certificate: plain HTTP has no TLS to present it in.
        if isinstance(self.authentication, ClientCertificateAuthentication) and (
            scheme_of(self.uri) != "https"
        ):
            raise ValueError("authentication: ClientCertificate needs an https:// uri")
        return self
