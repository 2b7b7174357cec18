"""Service Bus's REST wire format for one message: the SAS token, the URL, the headers, the body.

Pure functions, no I/O, so the rules are tested by known answers and the runner only sends what
`send_request` built. Every rule here is one the REST reference states; docs/service-bus.md §1-§5
keeps the facts with their sources, and says which mapping could not be verified.

Problems with the input are reported, never repaired: each `*_problem` function returns the
reason (or None) for a model's validator, and `send_request` raises `InvalidRequest` naming the
field, so both become a 400 that says which field and why.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import NamedTuple
from urllib.parse import quote_plus

from pydantic import TypeAdapter, ValidationError

from shared.errors import InvalidRequest

DEFAULT_HOST_PATTERN = "{namespace}.servicebus.windows.net"
DEFAULT_CONTENT_TYPE = "text/plain; charset=utf-8"  # the message is a string, sent as UTF-8

# Azure Scheduler's camelCase `brokeredMessageProperties` -> the BrokerProperties JSON keys
# (docs/service-bus.md §3). `contentType` is not among them: it travels as Content-Type.
BROKER_PROPERTY_KEYS: Mapping[str, str] = {
    "correlationId": "CorrelationId",
    "forcePersistence": "ForcePersistence",
    "label": "Label",
    "messageId": "MessageId",
    "partitionKey": "PartitionKey",
    "replyTo": "ReplyTo",
    "replyToSessionId": "ReplyToSessionId",
    "scheduledEnqueueTimeUtc": "ScheduledEnqueueTimeUtc",
    "sessionId": "SessionId",
    "timeToLive": "TimeToLive",
    "to": "To",
    "viaPartitionKey": "ViaPartitionKey",
}
BROKERED_FIELDS = frozenset(BROKER_PROPERTY_KEYS) | {"contentType"}
PARTITION_KEY_MAX = 128  # docs/service-bus.md §3

# Headers a custom property may not be named after: the ones this request sets, and the
# transport's own, which Service Bus excludes from properties (docs/service-bus.md §4).
RESERVED_HEADERS = frozenset(
    name.lower()
    for name in (
        "Authorization",
        "BrokerProperties",
        "Content-Type",
        "Content-Length",
        "Content-Encoding",
        "Transfer-Encoding",
        "Host",
        "Connection",
        "Keep-Alive",
        "Expect",
        "Upgrade",
        "TE",
        "Trailer",
        "Proxy-Authorization",
        "Proxy-Connection",
        "Accept",
        "Accept-Encoding",
        "User-Agent",
        "Date",
        "Idempotency-Key",
        "x-ms-retrypolicy",
    )
)

_NAMESPACE = re.compile(r"[A-Za-z][A-Za-z0-9-]*")
_NAMESPACE_BAD_ENDINGS = ("-", "-sb", "-mgmt")
_ENTITY_SEGMENT = re.compile(r"[A-Za-z0-9._-]+")
ENTITY_PATH_MAX = 260
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # an HTTP field name (RFC 9110 token)
_PRINTABLE_ASCII = re.compile(r"[\x20-\x7e]*")
_HOST_PORT = re.compile(r"[A-Za-z0-9.-]+(:[0-9]{1,5})?")
_DURATION: TypeAdapter[timedelta] = TypeAdapter(timedelta)
_INSTANT: TypeAdapter[datetime] = TypeAdapter(datetime)


class SendRequest(NamedTuple):
    """What to POST: unpacks as `(url, headers, body)`."""

    url: str
    headers: dict[str, str]
    body: bytes


# --- the SAS token -------------------------------------------------------------------------------


def sas_token(resource_uri: str, key_name: str, key: str, expiry: datetime) -> str:
    """`SharedAccessSignature sr=..&sig=..&se=..&skn=..` for `resource_uri`, valid until `expiry`.

    As Microsoft's Python sample does it (docs/service-bus.md §2): `sr` is the resource URI encoded
    by `urllib.parse.quote_plus` (no lower-casing), the string to sign is that encoded URI, a line
    feed and the expiry in whole seconds since the epoch, the HMAC-SHA256 key is the key's text
    as UTF-8 (the base64 text itself, not its decoded bytes), and the base64 signature is
    URL-encoded. Every character that is not unreserved is encoded in `sig` and `skn` too (the
    sample leaves `/` as is in `sig`; the C#, Java and Node samples encode it; both decode alike).
    """
    if expiry.tzinfo is None:
        raise ValueError("expiry must be an aware datetime")
    encoded_uri = quote_plus(resource_uri)
    expires = str(int(expiry.timestamp()))
    digest = hmac.new(
        key.encode("utf-8"), f"{encoded_uri}\n{expires}".encode(), hashlib.sha256
    ).digest()
    signature = quote_plus(base64.b64encode(digest).decode("ascii"))
    return (
        f"SharedAccessSignature sr={encoded_uri}&sig={signature}"
        f"&se={expires}&skn={quote_plus(key_name)}"
    )


# --- validation: each returns the reason, or None ------------------------------------------------


def namespace_problem(namespace: str) -> str | None:
    """Service Bus's namespace naming rules (docs/service-bus.md §5); it is also a DNS label."""
    if not 6 <= len(namespace) <= 50:
        return "must be 6 to 50 characters long"
    if not _NAMESPACE.fullmatch(namespace):
        return "must start with a letter and hold only letters, digits and hyphens"
    if namespace.lower().endswith(_NAMESPACE_BAD_ENDINGS):
        return "must not end with '-', '-sb' or '-mgmt'"
    return None


def entity_path_problem(path: str) -> str | None:
    """A queue name or topic path: segments of letters, digits, '.', '-', '_' joined by '/'."""
    if not path:
        return "must not be empty"
    if len(path) > ENTITY_PATH_MAX:
        return f"must be at most {ENTITY_PATH_MAX} characters long"
    if path.startswith("/") or path.endswith("/"):
        return "must not start or end with '/'"
    for segment in path.split("/"):
        if not segment:
            return "must not hold an empty segment ('//')"
        if segment in (".", ".."):
            return "must not hold a '.' or '..' segment"
        if not _ENTITY_SEGMENT.fullmatch(segment):
            return "segments may hold only letters, digits, '.', '-' and '_'"
    return None


def property_name_problem(name: str) -> str | None:
    """A custom property travels as an HTTP header named after it (docs/service-bus.md §4)."""
    if not _TOKEN.fullmatch(name):
        return "must be an HTTP header name: letters, digits and !#$%&'*+.^_`|~- only"
    if name.lower() in RESERVED_HEADERS:
        return f"'{name}' is a header the request sets itself"
    return None


def header_value_problem(value: str) -> str | None:
    """HTTP header values here are printable ASCII: no line breaks, controls or other scripts."""
    if not _PRINTABLE_ASCII.fullmatch(value):
        return "must be printable ASCII (it travels as an HTTP header value)"
    return None


def host_pattern_problem(pattern: str) -> str | None:
    """The endpoint setting: a host[:port] holding `{namespace}` once (the real one by default)."""
    if pattern.count("{namespace}") != 1:
        return "must hold '{namespace}' exactly once"
    if not _HOST_PORT.fullmatch(pattern.replace("{namespace}", "namespace")):
        return "must be a host name with an optional port, like {namespace}.servicebus.windows.net"
    return None


# --- the request ---------------------------------------------------------------------------------


def entity_url(namespace: str, entity_path: str, host_pattern: str = DEFAULT_HOST_PATTERN) -> str:
    """`https://{host}/{path}`: the entity, which the SAS token is scoped to."""
    host = host_pattern.replace("{namespace}", namespace.lower())
    return f"https://{host}/{entity_path}"


def broker_properties(brokered: Mapping[str, object]) -> dict[str, object]:
    """The BrokerProperties JSON object for Scheduler's `brokeredMessageProperties`.

    `timeToLive` (a duration, as a timedelta or ISO-8601 text) becomes seconds; the time of
    `scheduledEnqueueTimeUtc` (a datetime or ISO-8601 text; without an offset it is UTC) becomes
    RFC 1123 text (`Sun, 06 Nov 1994 08:49:37 GMT`), whole seconds. Raises `InvalidRequest`.
    """
    properties: dict[str, object] = {}
    for field, value in brokered.items():
        if value is None:
            continue
        where = f"brokeredMessageProperties.{field}"
        if field == "contentType":
            continue
        key = BROKER_PROPERTY_KEYS.get(field)
        if key is None:
            raise InvalidRequest(where, f"unknown; known: {', '.join(sorted(BROKERED_FIELDS))}")
        if field == "forcePersistence":
            if not isinstance(value, bool):
                raise InvalidRequest(where, "must be true or false")
            properties[key] = value
        elif field == "timeToLive":
            properties[key] = _seconds(where, value)
        elif field == "scheduledEnqueueTimeUtc":
            properties[key] = _rfc1123(where, value)
        else:
            if not isinstance(value, str):
                raise InvalidRequest(where, "must be a string")
            properties[key] = value
    for field in ("partitionKey", "viaPartitionKey"):
        value = properties.get(BROKER_PROPERTY_KEYS[field])
        if isinstance(value, str) and len(value) > PARTITION_KEY_MAX:
            raise InvalidRequest(
                f"brokeredMessageProperties.{field}",
                f"must be at most {PARTITION_KEY_MAX} characters long",
            )
    session, partition = properties.get("SessionId"), properties.get("PartitionKey")
    if session is not None and partition is not None and session != partition:
        raise InvalidRequest(
            "brokeredMessageProperties.partitionKey",
            "must equal sessionId when both are given",
        )
    return properties


def custom_headers(custom: Mapping[str, str]) -> dict[str, str]:
    """Custom properties as headers, each value in double quotes so Service Bus keeps it a string
    (unquoted text would be read as a boolean or a number, or refused; docs/service-bus.md §4)."""
    headers: dict[str, str] = {}
    seen: set[str] = set()
    for name, value in custom.items():
        where = f"customMessageProperties.{name}"
        reason = property_name_problem(name)
        if reason is None and name.lower() in seen:
            reason = "repeats another property's name (header names ignore case)"
        if reason is None:
            reason = header_value_problem(value) if isinstance(value, str) else "must be a string"
        if reason is not None:
            raise InvalidRequest(where, reason)
        seen.add(name.lower())
        headers[name] = f'"{value}"'
    return headers


def send_request(
    namespace: str,
    entity_path: str,
    message: str | None,
    brokered: Mapping[str, object],
    custom: Mapping[str, str],
    host_pattern: str = DEFAULT_HOST_PATTERN,
    *,
    key_name: str,
    key: str,
    expiry: datetime,
    entity_field: str = "queueName",
) -> SendRequest:
    """The Send Message request (docs/service-bus.md §1): `POST https://{host}/{path}/messages`,
    signed for the entity until `expiry`. `entity_field` names the path in problems (`queueName`
    or `topicPath`). Raises `InvalidRequest` for anything Service Bus would refuse."""
    reason = namespace_problem(namespace)
    if reason is not None:
        raise InvalidRequest("namespace", reason)
    reason = entity_path_problem(entity_path)
    if reason is not None:
        raise InvalidRequest(entity_field, reason)
    reason = host_pattern_problem(host_pattern)
    if reason is not None:
        raise InvalidRequest("hostPattern", reason)
    if not key_name or header_value_problem(key_name) is not None:
        raise InvalidRequest("authentication.sasKeyName", "must be non-empty printable ASCII")
    if not key:
        raise InvalidRequest("authentication.sasKey", "must not be empty")
    content_type = brokered.get("contentType")
    if content_type is None:
        content_type = DEFAULT_CONTENT_TYPE
    elif not isinstance(content_type, str) or not content_type.strip():
        raise InvalidRequest("brokeredMessageProperties.contentType", "must be a non-empty string")
    else:
        reason = header_value_problem(content_type)
        if reason is not None:
            raise InvalidRequest("brokeredMessageProperties.contentType", reason)
    properties = broker_properties(brokered)
    resource = entity_url(namespace, entity_path, host_pattern)
    headers = {
        "Authorization": sas_token(resource, key_name, key, expiry),
        "Content-Type": content_type,
        "x-ms-retrypolicy": "NoRetry",  # the job's retry policy decides, not the broker
    }
    if properties:
        headers["BrokerProperties"] = json.dumps(properties, separators=(",", ":"))
    headers.update(custom_headers(custom))
    return SendRequest(f"{resource}/messages", headers, (message or "").encode("utf-8"))


def _seconds(where: str, value: object) -> int | float:
    if isinstance(value, str):
        try:
            value = _DURATION.validate_python(value)
        except ValidationError:
            raise InvalidRequest(where, "must be an ISO-8601 duration such as PT1H") from None
    if not isinstance(value, timedelta):
        raise InvalidRequest(where, "must be an ISO-8601 duration such as PT1H")
    seconds = value.total_seconds()
    if seconds <= 0:
        raise InvalidRequest(where, "must be longer than zero")
    return int(seconds) if seconds.is_integer() else seconds


def _rfc1123(where: str, value: object) -> str:
    if isinstance(value, str):
        try:
            value = _INSTANT.validate_python(value)
        except ValidationError:
            raise InvalidRequest(where, "must be an ISO-8601 date-time") from None
    if not isinstance(value, datetime):
        raise InvalidRequest(where, "must be an ISO-8601 date-time")
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return format_datetime(value.astimezone(UTC).replace(microsecond=0), usegmt=True)


__all__ = [
    "BROKER_PROPERTY_KEYS",
    "DEFAULT_CONTENT_TYPE",
    "DEFAULT_HOST_PATTERN",
    "RESERVED_HEADERS",
    "SendRequest",
    "broker_properties",
    "custom_headers",
    "entity_path_problem",
    "entity_url",
    "header_value_problem",
    "host_pattern_problem",
    "namespace_problem",
    "property_name_problem",
    "sas_token",
    "send_request",
]
