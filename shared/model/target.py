"""What an HTTP action's `uri` means to the sender: parsed by httpx, the library that sends it.

A URI checked by one parser and sent by another can mean two hosts (`http://0177.0.0.1/` is a
host name to `urlsplit`, octal 127.0.0.1 to the system resolver, an error to httpx). So the
check uses `httpx.URL` and refuses every host that httpx could not call as written: bad IDNA,
percent signs, empty or over-long labels, shorthand/octal/hex IPv4, ports outside 1-65535, and
user information (credentials belong in `authentication`, where they are write-only).
"""

from __future__ import annotations

import ipaddress
import re
from typing import NamedTuple

import httpx

_LABEL = re.compile(r"(?!-)[a-z0-9_-]{1,63}(?<!-)")
_NUMERIC_LABEL = re.compile(r"[0-9]+|0x[0-9a-f]*")
_MAX_HOST_LENGTH = 253


class Origin(NamedTuple):
    """Scheme, host (as sent: lower-case, IDNA-encoded, no brackets) and port of a URL."""

    scheme: str
    host: str
    port: int


def callable_http_url(uri: str) -> httpx.URL:
    """The parsed URL, or `ValueError` saying why httpx could not call it."""
    if any(ch.isspace() for ch in uri):
        raise ValueError("uri must not contain whitespace")
    try:
        url = httpx.URL(uri)
    except (httpx.InvalidURL, ValueError) as error:
        raise ValueError(f"uri is not a valid URL: {error}") from None
    if url.scheme not in ("http", "https") or not url.raw_host:
        raise ValueError("uri must be an absolute http:// or https:// URL")
    if url.userinfo:
        raise ValueError("uri must not contain a user name or password; use authentication")
    if url.port is not None and not 1 <= url.port <= 65535:
        raise ValueError("uri has a port outside 1-65535")
    _check_host(url.raw_host.decode("ascii"))
    return url


def origin_of(uri: str) -> Origin:
    """The origin a request to `uri` goes to (default ports filled in); `ValueError` if httpx
    cannot parse it."""
    try:
        url = httpx.URL(uri)
    except httpx.InvalidURL as error:
        raise ValueError(str(error)) from None
    port = url.port or (443 if url.scheme == "https" else 80)
    return Origin(url.scheme, url.raw_host.decode("ascii").lower(), port)


def scheme_of(uri: str) -> str:
    """The scheme, lower-cased, as every URL parser reads it."""
    return uri.partition(":")[0].lower()


def _check_host(host: str) -> None:
    if ":" in host:  # an IPv6 literal: httpx has checked it already
        return
    name = host.lower().removesuffix(".")
    if not name or len(name) > _MAX_HOST_LENGTH:
        raise ValueError("uri has an empty or over-long host name")
    labels = name.split(".")
    if not all(_LABEL.fullmatch(label) for label in labels):
        raise ValueError(
            "uri host must be dot-separated labels of 1-63 letters, digits, '-' or '_' "
            "(not starting or ending with '-'), or an IP address"
        )
    if _NUMERIC_LABEL.fullmatch(labels[-1]):
        # Resolvers read such a name as an IPv4 address in some notation (127.1, 0x7f.1, 0177...).
        try:
            ipaddress.IPv4Address(name)
        except ValueError:
            raise ValueError(
                "uri host looks like an IPv4 address but is not in dotted-decimal form"
            ) from None


__all__ = ["Origin", "callable_http_url", "origin_of", "scheme_of"]
