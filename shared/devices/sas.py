"""IoT Hub's shared access signatures, checked as IoT Hub checks them (pure: no I/O, no clock).

A service client (azure-iot-hub 2.7.0, `sastoken.py`) sends, on every request,
`Authorization: SharedAccessSignature sr=<sr>&sig=<sig>&se=<expiry>&skn=<policy>` where
`sr = quote_plus(HostName)` (the host name as the client wrote it in its connection string,
port and path included: `localhost%3A7071%2Fapi`), `sig = quote(base64(HMAC-SHA256(
b64decode(policy key), sr + "\\n" + se)))` over the raw, still-encoded `sr` text, and `se` is
a Unix time (azure-iot-hub 2.7.0 `sastoken.py`, `_service_token_format`).

A token is accepted when `skn` names a configured policy, the signature recomputed over the raw
`sr` text matches (compared in constant time), `se` is not past (`CLOCK_SKEW_SECONDS` allowed),
`sr` decoded covers the request (it equals, ignoring case, the request's `host + path`, or is a
prefix of it ending at a `/`), and the policy has the right the operation needs.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from urllib.parse import quote, quote_plus, unquote, unquote_plus

from shared.errors import SchedulerError

SCHEME = "SharedAccessSignature"
# A client whose clock runs a little ahead (or a request that waited in a queue) is not refused
# for a token that expired moments ago; IoT Hub tokens live an hour, so a minute is small.
CLOCK_SKEW_SECONDS = 60
# IoT Hub's own bounds on a shared access key (decoded): 16 to 64 bytes.
MIN_KEY_BYTES = 16
MAX_KEY_BYTES = 64

_POLICY_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_FIELDS = ("sr", "sig", "se", "skn")
_DEFAULT_PORTS = {"http": "80", "https": "443"}


class IotRight(StrEnum):
    """IoT Hub's names for what a shared access policy permits (the service rights)."""

    REGISTRY_READ = "RegistryRead"
    REGISTRY_WRITE = "RegistryWrite"
    SERVICE_CONNECT = "ServiceConnect"


# As in IoT Hub, registry write access includes read access.
_IMPLIED = {IotRight.REGISTRY_WRITE: frozenset({IotRight.REGISTRY_READ})}


@dataclass(frozen=True)
class AccessPolicy:
    """A shared access policy: its name (`skn`), its decoded key and its rights."""

    name: str
    key: bytes = field(repr=False)  # a secret: never logged, echoed or compared in the clear
    rights: frozenset[IotRight]

    def grants(self, right: IotRight) -> bool:
        return right in self.rights or any(right in _IMPLIED.get(r, ()) for r in self.rights)


class SasRefused(SchedulerError):
    """The token does not authorise the request; the message says why and holds no secret."""


@dataclass(frozen=True)
class SasToken:
    """The four fields of a token, as sent (`resource` still URL-encoded, as it was signed)."""

    resource: str
    signature: str
    expiry: int
    key_name: str


def signature_of(resource: str, key: bytes, expiry: int) -> str:
    """base64(HMAC-SHA256(key, sr + "\\n" + se)) over the raw `sr` text, not URL-encoded."""
    digest = hmac.new(key, f"{resource}\n{expiry}".encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def sign(resource: str, key: bytes, expiry: int) -> str:
    """The `sig` value for a raw `sr` text, URL-encoded as the SDK sends it (`quote`)."""
    return quote(signature_of(resource, key, expiry))


def build_token(host_name: str, policy: str, key: bytes, expiry: int) -> str:
    """A complete header value for `host_name` (e.g. `localhost:7071/api`), as the SDK builds
    it: for tests and for users who script against the API without the SDK."""
    resource = quote_plus(host_name)
    signature = sign(resource, key, expiry)
    return f"{SCHEME} sr={resource}&sig={signature}&se={expiry}&skn={policy}"


def parse_token(header: str) -> SasToken:
    """The token in an Authorization header value; the fields may come in any order."""
    scheme, _, rest = header.strip().partition(" ")
    if scheme.lower() != SCHEME.lower() or not rest.strip():
        raise SasRefused(f"the Authorization header is not a {SCHEME} token")
    values: dict[str, str] = {}
    for part in rest.strip().split("&"):
        name, equals, value = part.partition("=")
        if not equals or name not in _FIELDS:
            raise SasRefused(f"the token has an unexpected field {shown(name)!r}")
        if name in values:
            raise SasRefused(f"the token has field {name!r} twice")
        values[name] = value
    missing = [name for name in _FIELDS if not values.get(name)]
    if missing:
        raise SasRefused(f"the token lacks {', '.join(missing)}")
    if not values["se"].isascii() or not values["se"].isdigit():
        raise SasRefused("the token's se is not a whole number of seconds")
    return SasToken(values["sr"], values["sig"], int(values["se"]), values["skn"])


def verify(
    header: str | None,
    *,
    policies: Mapping[str, AccessPolicy],
    scheme: str,
    host: str,
    path: str,
    right: IotRight | None,
    now: float,
) -> AccessPolicy:
    """The policy that signed the token, if it authorises `right` on `host + path` at `now`;
    `right=None` asks only for a valid token. Raises SasRefused otherwise."""
    if not header:
        raise SasRefused("the request has no Authorization header")
    token = parse_token(header)
    policy = policies.get(token.key_name)
    key = policy.key if policy else b"\0" * MIN_KEY_BYTES
    expected = signature_of(token.resource, key, token.expiry)
    # Compared even for an unknown policy, so timing does not tell which names exist.
    matches = hmac.compare_digest(expected.encode(), unquote(token.signature).encode())
    if policy is None or not matches:
        raise SasRefused("the signature does not match any shared access policy")
    if token.expiry + CLOCK_SKEW_SECONDS < now:
        raise SasRefused(f"the token expired (se={token.expiry})")
    if not covers(unquote_plus(token.resource), scheme, host, path):
        raise SasRefused(
            f"the token's sr {shown(unquote_plus(token.resource))!r} does not cover "
            f"{shown(host + path)!r}"
        )
    if right is not None and not policy.grants(right):
        raise SasRefused(f"policy {policy.name!r} does not grant {right.value}")
    return policy


def covers(resource: str, scheme: str, host: str, path: str) -> bool:
    """True when `resource` (decoded `sr`) is the request's `host + path` or a prefix of it
    that ends at a segment boundary, ignoring case; a default port (`:443` on https) written
    on one side and not the other does not matter."""
    wanted = _without_default_port(resource.strip().rstrip("/"), scheme).casefold()
    target = _without_default_port(f"{host}{path}", scheme).casefold()
    return bool(wanted) and (target == wanted or target.startswith(f"{wanted}/"))


def _without_default_port(text: str, scheme: str) -> str:
    host, slash, rest = text.partition("/")
    default = _DEFAULT_PORTS.get(scheme.lower())
    if default and host.endswith(f":{default}"):
        host = host[: -len(default) - 1]
    return f"{host}{slash}{rest}"


def parse_policies(text: str) -> tuple[AccessPolicy, ...]:
    """`name=<base64 key>:Right,Right;name2=<key>:Right`; ValueError naming the policy (never
    quoting a key) when an entry is malformed."""
    policies: list[AccessPolicy] = []
    for index, entry in enumerate(e.strip() for e in text.split(";")):
        if not entry:
            continue
        name, equals, rest = entry.partition("=")
        name = name.strip()
        where = f"policy {shown(name)!r}" if name else f"entry {index + 1}"
        if not equals or not _POLICY_NAME.fullmatch(name):
            raise ValueError(
                f"{where}: expected name=<base64 key>:<rights>, the name 1-64 letters, digits, "
                "'.', '_' or '-'"
            )
        key_text, colon, rights_text = rest.partition(":")
        if not colon:
            raise ValueError(f"{where}: the rights are missing (name=<key>:RegistryRead,...)")
        policies.append(
            AccessPolicy(name, _key(key_text.strip(), where), _rights(rights_text, where))
        )
    names = [p.name for p in policies]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"policy {duplicates[0]!r} is listed twice")
    return tuple(policies)


def _key(text: str, where: str) -> bytes:
    try:
        key = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(f"{where}: the key is not base64") from None
    if not MIN_KEY_BYTES <= len(key) <= MAX_KEY_BYTES:
        raise ValueError(
            f"{where}: the key must decode to {MIN_KEY_BYTES}-{MAX_KEY_BYTES} bytes "
            f"(it decodes to {len(key)})"
        )
    return key


def _rights(text: str, where: str) -> frozenset[IotRight]:
    by_name = {r.value.casefold(): r for r in IotRight}
    rights = set()
    for item in (i.strip() for i in text.split(",")):
        if item.casefold() not in by_name:
            known = ", ".join(r.value for r in IotRight)
            raise ValueError(f"{where}: unknown right {shown(item)!r} (known: {known})")
        rights.add(by_name[item.casefold()])
    return frozenset(rights)


def by_name(policies: Iterable[AccessPolicy]) -> dict[str, AccessPolicy]:
    return {policy.name: policy for policy in policies}


def shown(text: str, limit: int = 80) -> str:
    """Client text safe to put in a message or log line: printable, and cut to length."""
    return "".join(c if c.isprintable() else "?" for c in text[:limit])
