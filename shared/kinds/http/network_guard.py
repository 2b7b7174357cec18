"""Outbound safety: HTTP actions may not reach the app's own networks unless a setting allows it.

Job targets are user input, so an HTTP action (main or error action) could otherwise probe the
Function App's private network, its loopback services or the cloud metadata endpoint (which hands
out the app's managed-identity tokens). Before each call the target's host is resolved and the call
is refused if ANY resolved address is loopback, private, link-local, cloud metadata, unspecified,
multicast, reserved or carrier-grade NAT, including the IPv4-mapped / NAT64 / 6to4 IPv6 forms of
those, unless `SCHEDULER_ALLOWED_NETWORKS` allows it.

`SCHEDULER_ALLOWED_NETWORKS` is a comma-separated list of the names `loopback`, `private`,
`link-local` and/or CIDRs (`loopback,10.1.0.0/16`). Names never allow a metadata address; only a
CIDR that is exactly that address does (`169.254.169.254/32`). Unspecified, multicast, reserved and
carrier-grade NAT addresses can be allowed by a CIDR only.

The connection then goes to a vetted address ("pinning"): `send_pinned` sends the request to each
vetted address in turn (the URL's host is the address), so a DNS answer that changes between the
check and the connection (DNS rebinding) cannot pass, and `AddressOnlyTransport` refuses any URL
that names a host instead of an address. The Host header stays the job's host[:port], and httpx's
public `sni_hostname` request extension makes TLS SNI and certificate verification use the name
the job gave. Connection pools are keyed by address, so the caller keeps one client per host name:
a TLS connection verified for one name never carries a request for another.

Exempt: the Microsoft Entra authority and the managed-identity endpoint that `outbound_auth` calls
for tokens. They are set by the operator (app settings), not by job authors, and the identity
endpoint is on a private/loopback address by design.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import socket
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

import httpx

from shared.errors import ActionError

SETTING = "SCHEDULER_ALLOWED_NETWORKS"

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class AddressClass(StrEnum):
    """Why an address is not public; the value is how messages name it."""

    LOOPBACK = "loopback"
    PRIVATE = "private"
    LINK_LOCAL = "link-local"
    METADATA = "cloud metadata"
    UNSPECIFIED = "unspecified"
    MULTICAST = "multicast"
    RESERVED = "reserved"
    SHARED = "carrier-grade NAT"


# Classes an allow-list may name; the rest need a CIDR.
ALLOWED_NAMES: dict[str, AddressClass] = {
    "loopback": AddressClass.LOOPBACK,
    "private": AddressClass.PRIVATE,
    "link-local": AddressClass.LINK_LOCAL,
}


def _nets(*cidrs: str) -> tuple[IPNetwork, ...]:
    return tuple(ipaddress.ip_network(cidr) for cidr in cidrs)


# Order matters: the first match names the class (metadata before link-local).
_CLASSES: tuple[tuple[AddressClass, tuple[IPNetwork, ...]], ...] = (
    (
        AddressClass.METADATA,
        _nets(
            "169.254.169.254/32",  # AWS, Azure IMDS, GCP, Oracle, ...
            "fd00:ec2::254/128",  # AWS IMDS over IPv6
            "168.63.129.16/32",  # Azure wire server
            "100.100.100.200/32",  # Alibaba Cloud
        ),
    ),
    (AddressClass.UNSPECIFIED, _nets("0.0.0.0/8", "::/128")),
    (AddressClass.LOOPBACK, _nets("127.0.0.0/8", "::1/128")),
    (
        AddressClass.PRIVATE,
        _nets(
            "10.0.0.0/8",
            "172.16.0.0/12",
            "192.168.0.0/16",
            "fc00::/7",  # unique local
            "fec0::/10",  # site-local (deprecated)
            "64:ff9b:1::/48",  # local-use NAT64
        ),
    ),
    (AddressClass.LINK_LOCAL, _nets("169.254.0.0/16", "fe80::/10")),
    (AddressClass.SHARED, _nets("100.64.0.0/10")),
    (AddressClass.MULTICAST, _nets("224.0.0.0/4", "ff00::/8")),
    (
        AddressClass.RESERVED,
        _nets(
            "192.0.0.0/24",  # IETF protocol assignments
            "192.0.2.0/24",  # documentation
            "192.88.99.0/24",  # 6to4 relay anycast (deprecated)
            "198.18.0.0/15",  # benchmarking
            "198.51.100.0/24",  # documentation
            "203.0.113.0/24",  # documentation
            "240.0.0.0/4",  # future use, and 255.255.255.255
            "2001::/32",  # Teredo
            "2001:2::/48",  # benchmarking
            "2001:db8::/32",  # documentation
            "3fff::/20",  # documentation
        ),
    ),
)
_GLOBAL_UNICAST_V6 = ipaddress.ip_network("2000::/3")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


def embedded_ipv4(address: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address stands for (IPv4-mapped, NAT64 or 6to4), if any."""
    if isinstance(address, ipaddress.IPv4Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return address.sixtofour


def classify(address: IPAddress) -> AddressClass | None:
    """The class of a non-public address; None for a public (globally routable) one."""
    inner = embedded_ipv4(address)
    if inner is not None:
        return classify(inner)
    for kind, networks in _CLASSES:
        if any(address in network for network in networks):
            return kind
    if isinstance(address, ipaddress.IPv6Address) and address not in _GLOBAL_UNICAST_V6:
        return AddressClass.RESERVED  # everything outside 2000::/3 not named above
    return None


@dataclass(frozen=True)
class NetworkPolicy:
    """Which non-public addresses may be called: by class name, or by CIDR."""

    names: frozenset[AddressClass] = frozenset()
    cidrs: tuple[IPNetwork, ...] = ()

    @classmethod
    def from_settings(cls, settings: Mapping[str, str]) -> NetworkPolicy:
        return cls.parse(settings.get(SETTING, ""))

    @staticmethod
    @functools.lru_cache(maxsize=32)
    def parse(value: str) -> NetworkPolicy:
        """`loopback,private,link-local,10.1.0.0/16`; ValueError naming a bad entry."""
        names: set[AddressClass] = set()
        cidrs: list[IPNetwork] = []
        for raw in value.split(","):
            entry = raw.strip()
            if not entry:
                continue
            if entry.casefold() in ALLOWED_NAMES:
                names.add(ALLOWED_NAMES[entry.casefold()])
                continue
            try:
                cidrs.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                raise ValueError(
                    f"{SETTING}: {entry!r} is neither a network name "
                    f"({', '.join(ALLOWED_NAMES)}) nor a CIDR"
                ) from None
        return NetworkPolicy(frozenset(names), tuple(cidrs))

    def refusal(self, address: IPAddress) -> str | None:
        """Why `address` may not be called ("a private address; ..."), or None if it may."""
        kind = classify(address)
        if kind is None:
            return None
        forms = [address] + [inner for inner in [embedded_ipv4(address)] if inner is not None]
        for network in self.cidrs:
            matches = any(form.version == network.version and form in network for form in forms)
            if matches and (kind is not AddressClass.METADATA or network.num_addresses == 1):
                return None
        if kind in self.names:
            return None
        article = "an" if kind.value[0] in "aeiou" else "a"
        if kind is AddressClass.METADATA:
            hint = f"allow it only by listing its exact address in {SETTING}"
        elif kind in ALLOWED_NAMES.values():
            hint = f"allow it with {SETTING} (add '{kind.value}')"
        else:
            hint = f"allow it with a CIDR in {SETTING}"
        return f"{article} {kind.value} address; {hint}"


class GuardError(ActionError):
    """A call the guard stopped; the text is safe to show in job history."""


class OutboundRefused(GuardError):
    """The target resolves to an address the policy does not allow."""


class ResolutionFailed(GuardError):
    """The target's host name could not be resolved."""


@dataclass(frozen=True)
class VettedTarget:
    """A host and port, with the addresses it resolved to when it was checked."""

    host: str  # as the connection pool names it: lower-case, IDNA-encoded, no brackets
    port: int
    addresses: tuple[str, ...]


async def resolve(host: str, port: int) -> list[str]:
    """The host's addresses, in the resolver's order, without duplicates (tests replace this)."""
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    addresses: list[str] = []
    for _family, _type, _proto, _canonical, sockaddr in infos:
        address = str(sockaddr[0])
        if address not in addresses:
            addresses.append(address)
    return addresses


async def vet_url(url: str, policy: NetworkPolicy) -> VettedTarget:
    """Resolve the URL's host and check every address against the policy parsed at start-up;
    raises `GuardError` with the reason."""
    parsed = httpx.URL(url)
    host = parsed.raw_host.decode("ascii").lower()
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    origin = f"{parsed.scheme}://{parsed.netloc.decode('ascii')}"
    try:
        literal: IPAddress | None = ipaddress.ip_address(host)
    except ValueError:
        literal = None
    if literal is not None:
        addresses = [str(literal)]
    else:
        try:
            addresses = await resolve(host, port)
        except (OSError, UnicodeError) as error:
            reason = getattr(error, "strerror", None) or type(error).__name__
            raise ResolutionFailed(f"Could not resolve host '{host}': {reason}") from None
        if not addresses:
            raise ResolutionFailed(f"Could not resolve host '{host}': no addresses")
    for text in addresses:
        address = ipaddress.ip_address(text)
        reason = policy.refusal(address)
        if reason is not None:
            inner = embedded_ipv4(address)
            shown = f"{address} (IPv4 {inner})" if inner is not None else str(address)
            if literal is None:
                shown = f"{host} resolves to {shown},"
            else:
                shown += " is"
            raise OutboundRefused(f"Refused to call '{origin}': {shown} {reason}")
    return VettedTarget(host=host, port=port, addresses=tuple(addresses))


# --- pinning -------------------------------------------------------------------------------------


def pinned_request(request: httpx.Request, target: VettedTarget, address: str) -> httpx.Request:
    """`request` (built for the job's URL) sent to the vetted `address` itself.

    The URL's host becomes the address (port kept; httpx brackets an IPv6 address), the `Host`
    header stays the one built from the job's URL (host[:port]), and for https the `sni_hostname`
    request extension is the job's host: httpcore passes it to the TLS handshake as
    `server_hostname`, so SNI and certificate verification are for the name the job gave.
    """
    extensions = dict(request.extensions)
    if request.url.scheme == "https":
        extensions["sni_hostname"] = target.host
    return httpx.Request(
        request.method,
        request.url.copy_with(host=address),
        headers=request.headers,  # holds Host (and Content-Length) as built for the job's URL
        stream=request.stream,
        extensions=extensions,
    )


def pinned_requests(request: httpx.Request, target: VettedTarget) -> list[httpx.Request]:
    """`request` pinned to each of the target's vetted addresses, in order (built ahead of a
    send, so that building them is not part of it)."""
    return [pinned_request(request, target, address) for address in target.addresses]


async def send_first_connecting(
    client: httpx.AsyncClient, pinned: list[httpx.Request]
) -> httpx.Response:
    """Send the pinned copies in order until one connects (no second DNS lookup, so DNS
    rebinding cannot pass); the response is streamed. Re-raises the last connect error when
    none does."""
    failure: httpx.TransportError | None = None
    for request in pinned:
        try:
            return await client.send(request, stream=True)
        except (httpx.ConnectError, httpx.ConnectTimeout) as error:
            failure = error
    assert failure is not None  # vet_url never returns a target without addresses
    raise failure


async def send_pinned(
    client: httpx.AsyncClient, request: httpx.Request, target: VettedTarget
) -> httpx.Response:
    """Send `request` to the target's vetted addresses in order until one connects."""
    return await send_first_connecting(client, pinned_requests(request, target))


class AddressOnlyTransport(httpx.AsyncHTTPTransport):
    """An httpx transport without proxies that sends only requests addressed to an IP address
    (as `pinned_request` makes them): a host name would be resolved here, after the check, so
    one is refused. Nothing reaches the network without being vetted."""

    def __init__(self, ssl_context: ssl.SSLContext, limits: httpx.Limits | None = None) -> None:
        limits = limits or httpx.Limits(max_connections=100, max_keepalive_connections=20)
        super().__init__(verify=ssl_context, trust_env=False, limits=limits)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        refuse_unpinned(request)
        return await super().handle_async_request(request)


def refuse_unpinned(request: httpx.Request) -> None:
    """ConnectError for a request not addressed to an IP address (not made by `pinned_request`):
    a transport would resolve its host name after the guard's check."""
    try:
        ipaddress.ip_address(request.url.host)
    except ValueError:
        raise httpx.ConnectError(
            f"{request.url.host}:{request.url.port} was not checked by the network guard",
            request=request,
        ) from None


__all__ = [
    "SETTING",
    "AddressClass",
    "GuardError",
    "NetworkPolicy",
    "AddressOnlyTransport",
    "OutboundRefused",
    "ResolutionFailed",
    "VettedTarget",
    "classify",
    "embedded_ipv4",
    "pinned_request",
    "pinned_requests",
    "refuse_unpinned",
    "resolve",
    "send_first_connecting",
    "send_pinned",
    "vet_url",
]
