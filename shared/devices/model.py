"""Devices and twins as IoT Hub shows them, and the rules on what clients send: pure, no I/O.

`DeviceRecord` is one device with its twin, as stored (shared/storage/devices.py) and as the
registry (shared/devices/registry.py) changes it; `device_json` and `twin_json` are IoT Hub's
Device and Twin shapes (azure-iot-hub 2.7.0 field names). The `parse_*` functions turn request
bodies into checked values, raising `InvalidRequest` naming the field.

Etags: IoT Hub's are opaque base64 strings; ours are base64 of a counter that grows with every
change (the device's for the Device, the twin's `version` for the Twin), so they are stable
across reads and differ after every write. Concurrency itself is checked by the table's ETag.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import secrets
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Final
from urllib.parse import urlsplit

from shared.errors import InvalidRequest
from shared.timefmt import to_iso

MAX_DEVICE_ID = 128
# IoT Hub: ASCII letters and digits plus - . + % _ # * ? ! ( ) , : = @ $ '
DEVICE_ID_PATTERN = r"^[A-Za-z0-9\-.+%_#*?!(),:=@$']{1,128}$"
_DEVICE_ID = re.compile(DEVICE_ID_PATTERN[1:-1])
DEVICE_ID_RULE = "1-128 ASCII letters, digits and the characters - . + % _ # * ? ! ( ) , : = @ $ '"
NEVER = "0001-01-01T00:00:00Z"  # IoT Hub's "not yet" for activity times
MAX_PROPERTIES_CHARS = 32 * 1024  # IoT Hub: tags, desired and reported are 32 KB each
MAX_PROPERTY_DEPTH = 10  # IoT Hub: nesting of tags and properties
MAX_STATUS_REASON = 128
MAX_ENDPOINT_URI = 2048
AUTH_TYPES = ("sas", "selfSigned", "certificateAuthority", "none")
METHOD_TIMEOUT_DEFAULT = 30
METHOD_TIMEOUT_RANGE = (5, 300)
CONNECT_TIMEOUT_RANGE = (0, 300)
_HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]{1,256}")


class _Wildcard:
    def __repr__(self) -> str:
        return "ANY_ETAG"


ANY_ETAG: Final = _Wildcard()
"""`If-Match: *` (or `"*"`, as the SDK quotes it): any current version will do."""

IfMatch = str | _Wildcard | None


def check_device_id(device_id: str) -> str:
    """The id, if IoT Hub would take it; else a 400 naming `deviceId`."""
    if not _DEVICE_ID.fullmatch(device_id):
        raise InvalidRequest("deviceId", f"must be {DEVICE_ID_RULE}")
    return device_id


def parse_if_match(header: str | None) -> IfMatch:
    """`If-Match` as the SDK sends it: quoted (`"AAAAAAAAAAE="`, `"*"`) or bare."""
    if header is None or not header.strip():
        return None
    value = header.strip()
    if len(value) >= 2 and value[0] == value[-1] == '"':
        value = value[1:-1]
    return ANY_ETAG if value == "*" else value


def etag_of(counter: int) -> str:
    """An etag for the `counter`-th version (8 bytes, big-endian, base64, as IoT Hub's look)."""
    return base64.b64encode(counter.to_bytes(8, "big")).decode("ascii")


def generate_key() -> str:
    """A symmetric key as IoT Hub generates one: 32 random bytes, base64."""
    return base64.b64encode(secrets.token_bytes(32)).decode("ascii")


@dataclass(frozen=True)
class Endpoint:
    """Where the device takes direct methods and desired-property pushes (our extension).
    `headers` are write-only: they may hold the device's own credentials."""

    uri: str
    headers: Mapping[str, str] = field(default_factory=dict)

    def public_json(self) -> dict[str, Any]:
        shown: dict[str, Any] = {"uri": self.uri}
        if self.headers:
            shown["headerNames"] = sorted(self.headers)
        return shown


@dataclass(frozen=True)
class DeviceRecord:
    """One device and its twin, as stored."""

    device_id: str
    generation_id: str
    device_version: int
    status: str
    status_reason: str | None
    status_updated: datetime
    authentication: Mapping[str, Any]
    iot_edge: bool
    endpoint: Endpoint | None
    tags: Mapping[str, Any]
    desired: Mapping[str, Any]
    desired_version: int
    desired_updated: datetime
    reported: Mapping[str, Any]
    reported_version: int
    reported_updated: datetime
    twin_version: int

    @property
    def device_etag(self) -> str:
        return etag_of(self.device_version)

    @property
    def twin_etag(self) -> str:
        return etag_of(self.twin_version)

    def device_json(self) -> dict[str, Any]:
        """IoT Hub's Device, plus our `endpoint` (without its header values)."""
        shown: dict[str, Any] = {
            "deviceId": self.device_id,
            "generationId": self.generation_id,
            "etag": self.device_etag,
            "connectionState": "Disconnected",
            "status": self.status,
            "statusReason": self.status_reason,
            "connectionStateUpdatedTime": NEVER,
            "statusUpdatedTime": to_iso(self.status_updated),
            "lastActivityTime": NEVER,
            "cloudToDeviceMessageCount": 0,
            "authentication": dict(self.authentication),
            "capabilities": {"iotEdge": self.iot_edge},
        }
        if self.endpoint is not None:
            shown["endpoint"] = self.endpoint.public_json()
        return shown

    def twin_json(self) -> dict[str, Any]:
        """IoT Hub's Twin; also the document device queries are evaluated on."""
        return {
            "deviceId": self.device_id,
            "etag": self.twin_etag,
            "deviceEtag": self.device_etag,
            "status": self.status,
            "statusReason": self.status_reason,
            "statusUpdateTime": to_iso(self.status_updated),
            "connectionState": "Disconnected",
            "lastActivityTime": NEVER,
            "cloudToDeviceMessageCount": 0,
            "authenticationType": self.authentication.get("type", "sas"),
            "x509Thumbprint": _thumbprints(self.authentication),
            "version": self.twin_version,
            "capabilities": {"iotEdge": self.iot_edge},
            "tags": dict(self.tags),
            "properties": {
                "desired": _with_version(self.desired, self.desired_version, self.desired_updated),
                "reported": _with_version(
                    self.reported, self.reported_version, self.reported_updated
                ),
            },
        }

    def desired_json(self) -> dict[str, Any]:
        return _with_version(self.desired, self.desired_version, self.desired_updated)


def _with_version(properties: Mapping[str, Any], version: int, at: datetime) -> dict[str, Any]:
    return {**properties, "$metadata": {"$lastUpdated": to_iso(at)}, "$version": version}


def _thumbprints(authentication: Mapping[str, Any]) -> dict[str, Any]:
    found = authentication.get("x509Thumbprint") or {}
    return {
        "primaryThumbprint": found.get("primaryThumbprint"),
        "secondaryThumbprint": found.get("secondaryThumbprint"),
    }


# --- request bodies ------------------------------------------------------------------------


@dataclass(frozen=True)
class DeviceSpec:
    """What a Device PUT asks for. `endpoint` is `KEEP` when the body does not mention it (the
    SDK knows no such field, so its updates must not drop a registered endpoint)."""

    status: str
    status_reason: str | None
    authentication: Mapping[str, Any]
    iot_edge: bool
    endpoint: Endpoint | None | _Keep


class _Keep:
    def __repr__(self) -> str:
        return "KEEP"


KEEP: Final = _Keep()


def parse_device(
    body: Mapping[str, Any], device_id: str, stored_auth: Mapping[str, Any] | None = None
) -> DeviceSpec:
    """A Device body. Read-only fields (etag, generationId, connectionState, times, counts) are
    ignored, as IoT Hub does; sas keys left out are the stored ones on an update, and are
    generated on a create."""
    named = body.get("deviceId")
    if named is not None and named != device_id:
        raise InvalidRequest("deviceId", "must be the id in the path")
    status = body.get("status")
    if status is None:
        status = "enabled"
    if not isinstance(status, str) or status.lower() not in ("enabled", "disabled"):
        raise InvalidRequest("status", "must be enabled or disabled")
    reason = body.get("statusReason")
    if reason is not None and (not isinstance(reason, str) or len(reason) > MAX_STATUS_REASON):
        raise InvalidRequest("statusReason", f"must be a string of at most {MAX_STATUS_REASON}")
    capabilities = _object(body.get("capabilities"), "capabilities")
    iot_edge = capabilities.get("iotEdge", False)
    if not isinstance(iot_edge, bool):
        raise InvalidRequest("capabilities.iotEdge", "must be true or false")
    endpoint: Endpoint | None | _Keep = KEEP
    if "endpoint" in body:
        raw = body["endpoint"]
        endpoint = None if raw is None else parse_endpoint(raw)
    return DeviceSpec(
        status=status.lower(),
        status_reason=reason,
        authentication=parse_authentication(body.get("authentication"), stored_auth),
        iot_edge=iot_edge,
        endpoint=endpoint,
    )


def parse_authentication(value: object, stored: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """IoT Hub's authentication mechanism; sas keys left out (or null) are the `stored` ones
    if it has them, else generated."""
    raw = _object(value, "authentication")
    kind = raw.get("type") or "sas"
    if kind not in AUTH_TYPES:
        raise InvalidRequest("authentication.type", f"must be one of {', '.join(AUTH_TYPES)}")
    keys = _object(raw.get("symmetricKey"), "authentication.symmetricKey")
    prints = _object(raw.get("x509Thumbprint"), "authentication.x509Thumbprint")
    result: dict[str, Any] = {
        "type": kind,
        "symmetricKey": {"primaryKey": None, "secondaryKey": None},
        "x509Thumbprint": {"primaryThumbprint": None, "secondaryThumbprint": None},
    }
    if kind == "sas":
        kept = (stored or {}).get("symmetricKey") or {}
        result["symmetricKey"] = {
            name: _key(keys.get(name) or kept.get(name), f"authentication.symmetricKey.{name}")
            for name in ("primaryKey", "secondaryKey")
        }
    elif kind == "selfSigned":
        primary = prints.get("primaryThumbprint")
        if not isinstance(primary, str) or not re.fullmatch(
            r"[0-9A-Fa-f]{40}|[0-9A-Fa-f]{64}", primary
        ):
            raise InvalidRequest(
                "authentication.x509Thumbprint.primaryThumbprint",
                "must be a SHA-1 or SHA-256 thumbprint in hex",
            )
        secondary = prints.get("secondaryThumbprint")
        if secondary is not None and not (
            isinstance(secondary, str)
            and re.fullmatch(r"[0-9A-Fa-f]{40}|[0-9A-Fa-f]{64}", secondary)
        ):
            raise InvalidRequest(
                "authentication.x509Thumbprint.secondaryThumbprint",
                "must be a SHA-1 or SHA-256 thumbprint in hex",
            )
        result["x509Thumbprint"] = {"primaryThumbprint": primary, "secondaryThumbprint": secondary}
    return result


def _key(value: object, field_name: str) -> str:
    if value is None or value == "":
        return generate_key()
    if not isinstance(value, str):
        raise InvalidRequest(field_name, "must be a base64 string")
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidRequest(field_name, "must be valid base64") from None
    if not 16 <= len(raw) <= 64:
        raise InvalidRequest(field_name, "must decode to 16-64 bytes (IoT Hub's key length)")
    return value


def parse_endpoint(value: object) -> Endpoint:
    """`{"uri": "https://...", "headers": {...}}`: an absolute http(s) URL and plain headers."""
    raw = _object(value, "endpoint")
    uri = raw.get("uri")
    if not isinstance(uri, str) or not uri or len(uri) > MAX_ENDPOINT_URI:
        raise InvalidRequest(
            "endpoint.uri", f"must be an http(s) URL of at most {MAX_ENDPOINT_URI}"
        )
    try:
        parts = urlsplit(uri)
        host = parts.hostname
        parts.port  # noqa: B018 (a bad port raises here)
    except ValueError:
        raise InvalidRequest("endpoint.uri", "is not a valid URL") from None
    if parts.scheme not in ("http", "https") or not host:
        raise InvalidRequest("endpoint.uri", "must be an absolute http:// or https:// URL")
    if any(ord(c) < 33 or ord(c) > 126 for c in uri):
        raise InvalidRequest("endpoint.uri", "must be ASCII without spaces (percent-encode)")
    headers = _object(raw.get("headers"), "endpoint.headers")
    for name, header in headers.items():
        if not _HEADER_NAME.fullmatch(name):
            raise InvalidRequest("endpoint.headers", f"'{name[:40]}' is not a header name")
        if not isinstance(header, str) or any(c in header for c in "\r\n\0"):
            raise InvalidRequest(f"endpoint.headers.{name}", "must be a one-line string")
    unknown = set(raw) - {"uri", "headers", "headerNames"}
    if unknown:
        raise InvalidRequest(f"endpoint.{sorted(unknown)[0]}", "is not a field of endpoint")
    return Endpoint(uri, dict(headers))


def carry_endpoint_headers(new: Endpoint, stored: Endpoint | None) -> Endpoint:
    """A Device PUT that echoes a GET (same uri, header values not shown) keeps the headers."""
    if not new.headers and stored is not None and stored.uri == new.uri:
        return replace(new, headers=stored.headers)
    return new


def check_properties(field_name: str, value: object) -> dict[str, Any]:
    """Tags or properties: an object whose keys IoT Hub would take (no `.`, space or `$`
    first, no control characters), at most 10 levels deep and 32 KB as JSON."""
    root = _object(value, field_name)
    stack: list[tuple[object, str, int]] = [(root, field_name, 1)]
    while stack:
        node, path, depth = stack.pop()
        if not isinstance(node, dict):
            continue
        if depth > MAX_PROPERTY_DEPTH:
            raise InvalidRequest(path, f"nested deeper than {MAX_PROPERTY_DEPTH} levels")
        for key, item in node.items():
            if (
                not key
                or key.startswith("$")
                or any(c in key for c in ". ")
                or any(ord(c) < 32 for c in key)
            ):
                raise InvalidRequest(
                    path, f"'{key[:40]}' is not a property name (no '.', ' ' or leading '$')"
                )
            stack.append((item, f"{path}.{key}", depth + 1))
    if len(_json_text(root)) > MAX_PROPERTIES_CHARS:
        raise InvalidRequest(field_name, f"larger than {MAX_PROPERTIES_CHARS} bytes as JSON")
    return root


def without_metadata(value: object) -> object:
    """A desired or reported object as a client echoes it from a GET: `$metadata` and `$version`
    left out at the top (they are the service's, never the client's)."""
    if isinstance(value, dict):
        return {k: v for k, v in value.items() if k not in ("$metadata", "$version")}
    return value


@dataclass(frozen=True)
class MethodCall:
    """A CloudToDeviceMethod: what to call and how long to wait."""

    method_name: str
    payload: Any
    response_timeout: int
    connect_timeout: int


def parse_method(body: Mapping[str, Any]) -> MethodCall:
    name = body.get("methodName")
    if not isinstance(name, str) or not name.strip() or len(name) > 128:
        raise InvalidRequest("methodName", "is required: a string of 1-128 characters")
    if any(ord(c) < 32 or ord(c) > 126 for c in name):
        raise InvalidRequest("methodName", "must be printable ASCII")
    return MethodCall(
        method_name=name,
        payload=body.get("payload"),
        response_timeout=bounded_int(
            body, "responseTimeoutInSeconds", METHOD_TIMEOUT_RANGE, METHOD_TIMEOUT_DEFAULT
        ),
        connect_timeout=bounded_int(body, "connectTimeoutInSeconds", CONNECT_TIMEOUT_RANGE, 0),
    )


def bounded_int(body: Mapping[str, Any], name: str, bounds: tuple[int, int], default: int) -> int:
    """`body[name]` as an integer within `bounds` (inclusive), `default` when absent; a JSON
    integer only (no true, no 5.0): `InvalidRequest` naming the field otherwise."""
    value = body.get(name)
    if value is None:
        return default
    low, high = bounds
    if type(value) is not int or not low <= value <= high:
        raise InvalidRequest(name, f"must be an integer from {low} to {high}")
    return value


def new_generation_id() -> str:
    """IoT Hub's generationId tells a re-created device from the one deleted before it."""
    return str(uuid.uuid4().int)[:18]


def _object(value: object, field_name: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidRequest(field_name, "must be a JSON object")
    return value


def _json_text(value: object) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
