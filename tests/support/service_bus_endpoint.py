"""A local HTTPS stand-in for Service Bus's REST send endpoint, on 127.0.0.1.

No Service Bus emulator runs here without Docker, so this server checks a Send Message request
the way the REST reference describes it (docs/service-bus.md §6) and answers as the service would:
201 and the message recorded; 401 for a token that is malformed, expired, signed wrongly, for an
unknown key name or for another resource; 403 for a rule without the Send right or a message
past the entity's size; 410 for an entity that does not exist; 400 for malformed broker or custom
properties or a missing Content-Type. The signature is recomputed here from the rule's key,
independently of the app's signer, so a mistake in either shows.

Namespaces are told apart by the Host header: `{namespace}.{domain}:{port}` (`host_pattern`).
Its certificate (from a CA made per server) covers `*.{domain}` and `localhost`; `post` sends a
request to 127.0.0.1 with the job's host in Host and in TLS SNI, as the network guard pins
connections. Tests await what arrived through `wait_for` (an event, not a sleep).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import shutil
import ssl
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from pathlib import Path
from urllib.parse import unquote_plus

import httpx
from aiohttp import web
from cryptography.hazmat.primitives import serialization

from tests.support.test_ca import issue, make_ca

SEND, LISTEN, MANAGE = "Send", "Listen", "Manage"
DEFAULT_MAX_MESSAGE_BYTES = 256 * 1024  # the Standard tier's message size
# The broker's documented property keys, with the JSON type each takes.
BROKER_KEYS: dict[str, type | tuple[type, ...]] = {
    "CorrelationId": str,
    "ForcePersistence": bool,
    "Label": str,
    "MessageId": str,
    "PartitionKey": str,
    "ReplyTo": str,
    "ReplyToSessionId": str,
    "ScheduledEnqueueTimeUtc": str,
    "SessionId": str,
    "TimeToLive": (int, float),
    "To": str,
    "ViaPartitionKey": str,
}
# Headers that are the request's own, not custom message properties.
TRANSPORT_HEADERS = frozenset(
    {
        "host",
        "authorization",
        "content-type",
        "content-length",
        "brokerproperties",
        "x-ms-retrypolicy",
        "accept",
        "accept-encoding",
        "user-agent",
        "connection",
        "expect",
        "transfer-encoding",
    }
)
PropertyValue = str | bool | int | float


@dataclass(frozen=True)
class SasRule:
    """A shared access authorization rule: its key name, key and rights."""

    name: str
    key: str
    rights: frozenset[str] = frozenset({SEND})


@dataclass
class Entity:
    path: str
    rules: tuple[SasRule, ...] = ()
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES


@dataclass
class Namespace:
    name: str
    rules: tuple[SasRule, ...] = ()
    entities: dict[str, Entity] = field(default_factory=dict)  # by lower-cased path


@dataclass(frozen=True)
class Message:
    """A message the stand-in accepted."""

    namespace: str
    entity: str
    body: bytes
    content_type: str
    broker_properties: dict[str, object]
    custom_properties: dict[str, PropertyValue]
    key_name: str


@dataclass(frozen=True)
class Rejection:
    status: int
    reason: str


class _Refused(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass
class ServiceBusEndpoint:
    """The stand-in; `now` is the clock token expiry is checked against (seconds since epoch)."""

    domain: str = "servicebus.test"
    now: Callable[[], float] = time.time
    namespaces: dict[str, Namespace] = field(default_factory=dict)
    messages: list[Message] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)
    port: int = 0
    ca_pem: bytes = b""
    _changed: asyncio.Condition = field(default_factory=asyncio.Condition)
    _runner: web.AppRunner | None = None
    _directory: Path | None = None

    # --- set-up ----------------------------------------------------------------------------------

    def add_namespace(self, name: str, rules: Iterable[SasRule] = ()) -> Namespace:
        namespace = Namespace(name.lower(), tuple(rules))
        self.namespaces[namespace.name] = namespace
        return namespace

    def add_entity(
        self,
        namespace: str,
        path: str,
        rules: Iterable[SasRule] = (),
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    ) -> Entity:
        entity = Entity(path, tuple(rules), max_message_bytes)
        self.namespaces[namespace.lower()].entities[path.lower()] = entity
        return entity

    @property
    def host_pattern(self) -> str:
        """The value for the endpoint host-pattern setting that points actions here."""
        return f"{{namespace}}.{self.domain}:{self.port}"

    def client_ssl_context(self) -> ssl.SSLContext:
        """Trusts this server's CA only."""
        return ssl.create_default_context(cadata=self.ca_pem.decode("ascii"))

    async def start(self) -> ServiceBusEndpoint:
        self._directory = Path(tempfile.mkdtemp(prefix="sb-endpoint-"))
        self.ca_pem, cert_file, key_file = _issue_certificates(self._directory, self.domain)
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls.load_cert_chain(cert_file, key_file)
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=tls)
        await site.start()
        self.port = self._runner.addresses[0][1]
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._directory is not None:
            shutil.rmtree(self._directory, ignore_errors=True)

    # --- for tests -------------------------------------------------------------------------------

    async def wait_for(
        self, predicate: Callable[[ServiceBusEndpoint], bool], timeout: float = 30
    ) -> None:
        """Wait (on an event, not a sleep) until `predicate(self)` holds."""
        async with self._changed:
            await asyncio.wait_for(self._changed.wait_for(lambda: predicate(self)), timeout)

    async def post(
        self, client: httpx.AsyncClient, url: str, headers: dict[str, str], body: bytes
    ) -> httpx.Response:
        """POST `url` (a host from `host_pattern`) to 127.0.0.1, keeping the host in Host and TLS
        SNI, as the network guard's pinning does; `client` must trust `client_ssl_context()`."""
        request = client.build_request("POST", url, headers=headers, content=body)
        pinned = httpx.Request(
            request.method,
            request.url.copy_with(host="127.0.0.1"),
            headers=request.headers,
            stream=request.stream,
            extensions={**request.extensions, "sni_hostname": request.url.host},
        )
        return await client.send(pinned)

    # --- the service -----------------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        try:
            message = self._accept(request, body)
        except _Refused as refused:
            await self._record(rejection=Rejection(refused.status, refused.reason))
            return _error(refused.status, refused.reason)
        await self._record(message=message)
        return web.Response(status=201)

    async def _record(
        self, message: Message | None = None, rejection: Rejection | None = None
    ) -> None:
        async with self._changed:
            if message is not None:
                self.messages.append(message)
            if rejection is not None:
                self.rejections.append(rejection)
            self._changed.notify_all()

    def _accept(self, request: web.Request, body: bytes) -> Message:
        host = request.host.lower()
        suffix = f".{self.domain}:{self.port}"
        namespace = (
            self.namespaces.get(host.removesuffix(suffix)) if host.endswith(suffix) else None
        )
        if namespace is None and host.endswith(f":{self.port}"):
            # A namespace named like a host that resolves without help (`localhost`), for a
            # process whose DNS a test cannot replace: host pattern `{namespace}:{port}`.
            namespace = self.namespaces.get(host.removesuffix(f":{self.port}"))
        if namespace is None:
            raise _Refused(404, f"No namespace is served at host '{host}'")
        if request.method != "POST" or not request.path.endswith("/messages"):
            raise _Refused(404, f"Not a send: {request.method} {request.path}")
        path = request.path.removeprefix("/").removesuffix("/messages")
        entity = namespace.entities.get(path.lower())
        token = _parse_token(request.headers.get("Authorization", ""))
        rules = namespace.rules + (entity.rules if entity else ())
        rule = next((r for r in rules if r.name == token["skn"]), None)
        if rule is None:
            raise _Refused(401, f"Unknown key name '{token['skn']}'")
        self._check_token(token, rule, f"https://{host}/{path}")
        if not rule.rights & {SEND, MANAGE}:  # Manage comes with Send and Listen
            raise _Refused(403, f"The rule '{rule.name}' does not grant Send")
        if entity is None:
            raise _Refused(410, f"The entity '{path}' does not exist")
        content_type = request.headers.get("Content-Type", "")
        if not content_type:
            raise _Refused(400, "No Content-Type")
        broker = _broker_properties(request.headers.get("BrokerProperties"))
        custom = {
            name: _property_value(name, value)
            for name, value in request.headers.items()
            if name.lower() not in TRANSPORT_HEADERS
        }
        if len(body) > entity.max_message_bytes:
            raise _Refused(403, f"The message is larger than {entity.max_message_bytes} bytes")
        return Message(namespace.name, entity.path, body, content_type, broker, custom, rule.name)

    def _check_token(self, token: dict[str, str], rule: SasRule, target: str) -> None:
        signed = f"{token['sr']}\n{token['se']}".encode()
        expected = hmac.new(rule.key.encode("utf-8"), signed, hashlib.sha256).digest()
        try:
            given = base64.b64decode(unquote_plus(token["sig"]), validate=True)
        except ValueError:
            raise _Refused(401, "The signature is not base64") from None
        if not hmac.compare_digest(expected, given):
            raise _Refused(401, "The token has an invalid signature")
        if not token["se"].isdigit() or int(token["se"]) < self.now():
            raise _Refused(401, "The token is expired")
        resource = unquote_plus(token["sr"]).lower().rstrip("/")
        if target.lower() != resource and not target.lower().startswith(resource + "/"):
            raise _Refused(401, f"The token's resource '{resource}' does not cover '{target}'")


def _parse_token(header: str) -> dict[str, str]:
    scheme, _, rest = header.partition(" ")
    if scheme != "SharedAccessSignature" or not rest:
        raise _Refused(401, "No SharedAccessSignature in Authorization")
    fields: dict[str, str] = {}
    for part in rest.split("&"):
        name, equals, value = part.partition("=")
        if not equals or name in fields:
            raise _Refused(401, f"Malformed token field '{name}'")
        fields[name] = value  # still URL-encoded: sr is signed as sent
    if set(fields) != {"sr", "sig", "se", "skn"}:
        raise _Refused(401, f"The token has fields {sorted(fields)}, not sr, sig, se, skn")
    fields["skn"] = unquote_plus(fields["skn"])
    return fields


def _broker_properties(header: str | None) -> dict[str, object]:
    if header is None:
        return {}
    try:
        properties = json.loads(header)
    except ValueError:
        raise _Refused(400, "BrokerProperties is not JSON") from None
    if not isinstance(properties, dict):
        raise _Refused(400, "BrokerProperties is not a JSON object")
    for key, value in properties.items():
        kind = BROKER_KEYS.get(key)
        if kind is None:
            raise _Refused(400, f"Unknown broker property '{key}'")
        if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
            raise _Refused(400, f"Broker property '{key}' has the wrong type")
    if "TimeToLive" in properties and properties["TimeToLive"] <= 0:
        raise _Refused(400, "TimeToLive must be positive")
    if "ScheduledEnqueueTimeUtc" in properties:
        try:
            parsedate_to_datetime(properties["ScheduledEnqueueTimeUtc"])
        except (TypeError, ValueError):
            raise _Refused(400, "ScheduledEnqueueTimeUtc is not an RFC 1123 date") from None
    session, partition = properties.get("SessionId"), properties.get("PartitionKey")
    if session is not None and partition is not None and session != partition:
        raise _Refused(400, "SessionId and PartitionKey differ")
    return properties


def _property_value(name: str, text: str) -> PropertyValue:
    """The documented inference: quoted is a string; else true/false, an integer, a float, or
    the message is refused."""
    if len(text) >= 2 and text.startswith('"') and text.endswith('"'):
        return text[1:-1]
    if text in ("true", "false"):
        return text == "true"
    for parse in (int, float):
        try:
            return parse(text)
        except ValueError:
            pass
    raise _Refused(400, f"Custom property '{name}' is neither quoted nor a boolean or number")


def _error(status: int, detail: str) -> web.Response:
    """Service Bus answers errors with a small XML document."""
    text = f"<Error><Code>{status}</Code><Detail>{detail}</Detail></Error>"
    return web.Response(status=status, text=text, content_type="application/xml")


def _issue_certificates(directory: Path, domain: str) -> tuple[bytes, Path, Path]:
    """A CA (PEM returned, for clients to trust) and a server certificate it signs for
    `*.{domain}` and `localhost`, written to `directory`."""
    ca = make_ca("Service Bus stand-in CA")
    server = issue(ca, f"*.{domain}", dns=(f"*.{domain}", "localhost"))
    cert_file, key_file = server.pem_files(directory, "server")
    return ca.cert.public_bytes(serialization.Encoding.PEM), cert_file, key_file
