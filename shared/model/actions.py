"""What a job does when it fires: its action, optional error action and retry policy.

Shapes follow Azure Scheduler 2016-03-01 (`JobAction`, `JobErrorAction`, `HttpRequest`,
`StorageQueueMessage`, `RetryPolicy`) with three extensions: `request.timeoutSeconds`,
`queueMessage.connectionSetting` (so a queue can be reached by an app setting, e.g. Azurite) and
Cloud Scheduler's exponential backoff (`retryType: Exponential`). Service Bus actions are refused
with a clear message rather than silently ignored. `request.authentication` is one of the kinds in
`shared.model.auth`; its secrets are write-only (`public_json()` shows each kind's public fields).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Literal, get_args

from pydantic import Field, ValidationInfo, field_validator, model_validator

from shared.model.auth import (
    ClientCertificateAuthentication,
    HttpAuthentication,
    parse_authentication,
    public_authentication_json,
)
from shared.model.common import ApiModel, CaseInsensitiveEnum, Integer
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

MIN_RETRY_INTERVAL = timedelta(seconds=1)
MAX_RETRY_INTERVAL = timedelta(days=548)  # "18 months"
MAX_RETRY_COUNT = 20
MAX_DOUBLINGS = 20

DEFAULT_RETRY_INTERVAL = timedelta(seconds=30)
DEFAULT_RETRY_COUNT = 4
DEFAULT_MIN_BACKOFF = timedelta(seconds=5)
DEFAULT_MAX_BACKOFF = timedelta(hours=1)
DEFAULT_MAX_DOUBLINGS = 5

HttpMethod = Literal["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"]
_METHODS: frozenset[str] = frozenset(get_args(HttpMethod))

# Always `fullmatch`: with `match` and `$`, a value ending in a newline would pass.
_QUEUE_NAME = re.compile(r"(?!.*--)[a-z0-9][a-z0-9-]{1,61}[a-z0-9]")
_ACCOUNT_NAME = re.compile(r"[a-z0-9]{3,24}")
_SETTING_NAME = re.compile(r"[A-Za-z0-9_.:-]{1,256}")
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # RFC 9110 token
_HEADER_VALUE = re.compile(r"[\x20-\x7e\t]*")  # printable ASCII: what httpx can send
_COMPUTED_HEADERS = frozenset({"content-length", "transfer-encoding"})
_UNSUPPORTED_TYPES = {"servicebusqueue": "ServiceBusQueue", "servicebustopic": "ServiceBusTopic"}

# Write-only fields: accepted on input, never returned (docs/azure-scheduler.md §6). Within
# `authentication`, only each kind's public fields are shown (a whitelist).
_SECRET_KEYS = frozenset({"sasToken"})


class ActionType(CaseInsensitiveEnum):
    HTTP = "Http"
    HTTPS = "Https"
    STORAGE_QUEUE = "StorageQueue"


class RetryType(CaseInsensitiveEnum):
    NONE = "None"
    FIXED = "Fixed"
    EXPONENTIAL = "Exponential"


def _without_secrets(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            key: (
                public_authentication_json(item)
                if key == "authentication" and isinstance(item, dict)
                else _without_secrets(item)
            )
            for key, item in value.items()
            if key not in _SECRET_KEYS
        }
    if isinstance(value, list):
        return [_without_secrets(item) for item in value]
    return value


class _ActionModel(ApiModel):
    def public_json(self) -> dict[str, Any]:
        """`to_json_dict()` minus write-only secrets (SAS tokens, passwords): safe to return."""
        result: dict[str, Any] = _without_secrets(self.to_json_dict())
        return result


class HttpRequest(_ActionModel):
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

    @model_validator(mode="after")
    def _certificate_needs_https(self) -> HttpRequest:
        # Refused rather than sent without the certificate: plain HTTP has no TLS to present it in.
        if isinstance(self.authentication, ClientCertificateAuthentication) and (
            scheme_of(self.uri) != "https"
        ):
            raise ValueError("authentication: ClientCertificate needs an https:// uri")
        return self


class StorageQueueMessage(_ActionModel):
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

    @property
    def queue_url(self) -> str | None:
        """The SAS URL of the queue; None when the queue is reached through `connectionSetting`."""
        if self.storage_account is None or self.sas_token is None:
            return None
        return f"https://{self.storage_account}.queue.core.windows.net/{self.queue_name}?{self.sas_token}"


class RetryPolicy(_ActionModel):
    """How often an occurrence is retried after a failure; omitted values get the defaults."""

    retry_type: RetryType = RetryType.FIXED
    retry_interval: timedelta | None = None
    retry_count: Integer | None = Field(default=None, ge=0, le=MAX_RETRY_COUNT)
    min_backoff: timedelta | None = None
    max_backoff: timedelta | None = None
    max_doublings: Integer | None = Field(default=None, ge=0, le=MAX_DOUBLINGS)

    @field_validator("retry_interval", "min_backoff", "max_backoff")
    @classmethod
    def _duration_bounds(cls, value: timedelta | None) -> timedelta | None:
        if value is not None and not MIN_RETRY_INTERVAL <= value <= MAX_RETRY_INTERVAL:
            raise ValueError("must be between PT1S and 548 days (18 months)")
        return value

    @model_validator(mode="after")
    def _fill_defaults(self) -> RetryPolicy:
        exponential_fields = {
            "minBackoff": self.min_backoff,
            "maxBackoff": self.max_backoff,
            "maxDoublings": self.max_doublings,
        }
        if self.retry_type is RetryType.EXPONENTIAL:
            if self.retry_interval is not None:
                raise ValueError(
                    "retryInterval does not apply to retryType Exponential "
                    "(use minBackoff, maxBackoff, maxDoublings)"
                )
            if self.min_backoff is None:
                self.min_backoff = DEFAULT_MIN_BACKOFF
            if self.max_backoff is None:
                self.max_backoff = max(DEFAULT_MAX_BACKOFF, self.min_backoff)
            if self.max_doublings is None:
                self.max_doublings = DEFAULT_MAX_DOUBLINGS
            if self.min_backoff > self.max_backoff:
                raise ValueError("maxBackoff must not be shorter than minBackoff")
        else:
            for name, value in exponential_fields.items():
                if value is not None:
                    raise ValueError(f"{name} only applies to retryType Exponential")
        if self.retry_type is RetryType.FIXED and self.retry_interval is None:
            self.retry_interval = DEFAULT_RETRY_INTERVAL
        if self.retry_type is not RetryType.NONE and self.retry_count is None:
            self.retry_count = DEFAULT_RETRY_COUNT
        return self

    def delay_before_retry(self, retries_done: int) -> timedelta | None:
        """The wait before the next retry, or None when no retry is left.

        `retries_done` counts the retries already made (0 after the first failure). Exponential
        follows Cloud Scheduler: the delay doubles `maxDoublings` times, then grows linearly by the
        last doubled step, capped at `maxBackoff` (min 10 s, max 300 s, 3 doublings:
        10, 20, 40, 80, 160, 240, 300, 300 s).
        """
        if retries_done < 0:
            raise ValueError("retries_done must not be negative")
        if self.retry_type is RetryType.NONE or retries_done >= (self.retry_count or 0):
            return None
        if self.retry_type is RetryType.FIXED:
            return self.retry_interval
        assert self.min_backoff and self.max_backoff and self.max_doublings is not None
        step = self.min_backoff.total_seconds()
        if retries_done <= self.max_doublings:
            seconds = step * 2**retries_done
        else:
            seconds = step * 2**self.max_doublings * (retries_done - self.max_doublings + 1)
        return min(timedelta(seconds=seconds), self.max_backoff)


class JobErrorAction(_ActionModel):
    """An action without `errorAction`: what runs once the main action's retries are exhausted."""

    type: ActionType
    request: HttpRequest | None = None
    queue_message: StorageQueueMessage | None = None
    retry_policy: RetryPolicy | None = None

    @field_validator("type", mode="before")
    @classmethod
    def _refuse_service_bus(cls, value: object) -> object:
        if isinstance(value, str) and value.casefold() in _UNSUPPORTED_TYPES:
            name = _UNSUPPORTED_TYPES[value.casefold()]
            raise ValueError(f"{name} actions are not supported by this scheduler")
        return value

    @model_validator(mode="after")
    def _target_matches_type(self) -> JobErrorAction:
        if self.type is ActionType.STORAGE_QUEUE:
            if self.queue_message is None:
                raise ValueError("queueMessage is required when type is StorageQueue")
            if self.request is not None:
                raise ValueError("request is not allowed when type is StorageQueue")
            return self
        if self.request is None:
            raise ValueError(f"request is required when type is {self.type.value}")
        if self.queue_message is not None:
            raise ValueError(f"queueMessage is not allowed when type is {self.type.value}")
        if self.type is ActionType.HTTPS and scheme_of(self.request.uri) != "https":
            raise ValueError("request.uri must be an https:// URL when type is Https")
        return self

    def effective_retry_policy(self) -> RetryPolicy:
        """The policy to apply: a missing one is Azure Scheduler's default, 4 retries 30 s apart."""
        return self.retry_policy if self.retry_policy is not None else RetryPolicy()


class JobAction(JobErrorAction):
    error_action: JobErrorAction | None = None

    @field_validator("error_action", mode="before")
    @classmethod
    def _no_nesting(cls, value: object) -> object:
        if isinstance(value, dict) and ({"errorAction", "error_action"} & value.keys()):
            raise ValueError("errorAction cannot have an errorAction of its own (no nesting)")
        return value
