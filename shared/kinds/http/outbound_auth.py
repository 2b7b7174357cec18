"""Credentials for outbound HTTP actions: Basic headers, client-certificate TLS, bearer tokens.

- Basic: `Authorization: Basic base64(username:password)`.
- ClientCertificate: an `ssl.SSLContext` holding the pfx's certificate and key (cached per pfx +
  password digest, never per thumbprint alone: a pfx pairing someone else's certificate with
  another key must not reuse their context). The server's certificate is verified as usual, against
  certifi's roots plus the PEM bundle named by `SCHEDULER_EXTRA_CA_CERTS`.
- ActiveDirectoryOAuth: a client-credentials token from
  `{SCHEDULER_AAD_AUTHORITY}/{tenant}/oauth2/v2.0/token` for scope `{audience}/.default`.
- ManagedServiceIdentity: a token from the App Service identity endpoint (`IDENTITY_ENDPOINT`,
  `IDENTITY_HEADER`, api-version 2019-08-01).

Tokens are cached per (authority or endpoint, tenant, clientId, audience, secret digest) until
5 minutes before they expire (half their lifetime for tokens shorter than 10 minutes), with one
refresh at a time per key. Token endpoints are operator-configured, so the network guard does not
apply to them (see `network_guard`). Failures raise `CredentialError`, whose text is safe for job
history: it never contains a secret, a token or the identity header. Nothing here logs.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import math
import os
import secrets
import ssl
import tempfile
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import certifi
import httpx
from cryptography.hazmat.primitives import serialization

from shared.errors import ActionError
from shared.kinds.common.scrub import margin, scrub
from shared.model.auth import (
    ActiveDirectoryOAuthAuthentication,
    BasicAuthentication,
    ClientCertificateAuthentication,
    HttpAuthentication,
    ManagedServiceIdentityAuthentication,
)

if TYPE_CHECKING:
    from shared.config import Settings

AUTHORITY_SETTING = "SCHEDULER_AAD_AUTHORITY"
DEFAULT_AUTHORITY = "https://login.microsoftonline.com"
EXTRA_CA_SETTING = "SCHEDULER_EXTRA_CA_CERTS"
IDENTITY_ENDPOINT_SETTING = "IDENTITY_ENDPOINT"
IDENTITY_HEADER_SETTING = "IDENTITY_HEADER"
IDENTITY_API_VERSION = "2019-08-01"

REFRESH_MARGIN_SECONDS = 300.0
MAX_CACHE_SECONDS = 24 * 3600.0  # whatever an endpoint claims
_MAX_DETAIL = 200  # characters of an authority's error description kept in a message


class CredentialError(ActionError):
    """Credentials could not be obtained; the text is safe to show in job history."""


@dataclass(frozen=True)
class Credentials:
    """What one call needs: headers to set, the client certificate, values to keep out of text."""

    headers: Mapping[str, str] = field(default_factory=dict)
    certificate: ClientCertificateAuthentication | None = None
    sensitive: tuple[str, ...] = ()

    def scrub(self, text: str, limit: int | None = None) -> str:
        """`text` with every form of every sensitive value (password, `user:password`, token)
        replaced by ***, then cut to `limit` bytes."""
        return scrub(text, self.sensitive, limit)

    @property
    def margin(self) -> int:
        """Bytes to read beyond a kept prefix so that no secret is cut (see `scrub`)."""
        return margin(self.sensitive)


def basic_authorization(auth: BasicAuthentication) -> str:
    """The `Authorization` header value for Basic authentication (RFC 7617, UTF-8)."""
    pair = f"{auth.username}:{auth.password.get_secret_value()}".encode()
    return "Basic " + base64.b64encode(pair).decode("ascii")


# --- TLS -----------------------------------------------------------------------------------------

_TLS_CACHE_SIZE = 64
_tls_cache: OrderedDict[tuple[str | None, str | None], ssl.SSLContext] = OrderedDict()
_tls_lock = threading.Lock()


def tls_context(
    extra_ca: str | None, certificate: ClientCertificateAuthentication | None = None
) -> ssl.SSLContext:
    """A verifying client context: certifi's roots + `extra_ca` (a PEM bundle path), and the
    client certificate if given. Cached; raises `CredentialError` if a file cannot be loaded."""
    key = (extra_ca, certificate.credential_digest if certificate is not None else None)
    with _tls_lock:
        cached = _tls_cache.get(key)
        if cached is not None:
            _tls_cache.move_to_end(key)
            return cached
    context = ssl.create_default_context(cafile=certifi.where())
    if extra_ca:
        try:
            context.load_verify_locations(cafile=extra_ca)
        except (OSError, ssl.SSLError) as error:
            raise CredentialError(
                f"{EXTRA_CA_SETTING}: could not load CA certificates from '{extra_ca}' "
                f"({type(error).__name__})"
            ) from None
    if certificate is not None:
        _load_client_certificate(context, certificate)
    with _tls_lock:
        _tls_cache[key] = context
        while len(_tls_cache) > _TLS_CACHE_SIZE:
            _tls_cache.popitem(last=False)
    return context


def _load_client_certificate(
    context: ssl.SSLContext, certificate: ClientCertificateAuthentication
) -> None:
    """`ssl` loads keys from files only: write the key encrypted with a one-time password to a
    0600 temporary file, load it, delete it. The plain key never touches the disk."""
    try:
        opened = certificate.open()
    except ValueError as error:  # validated at PUT; only a changed library could get here
        raise CredentialError(f"ClientCertificate: {error}") from None
    one_time = secrets.token_urlsafe(32).encode()
    pem = opened.key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(one_time),
    )
    for cert in (opened.certificate, *opened.chain):
        pem += cert.public_bytes(serialization.Encoding.PEM)
    descriptor, path = tempfile.mkstemp(prefix="scheduler-client-", suffix=".pem")  # mode 0600
    try:
        with os.fdopen(descriptor, "wb") as file:
            file.write(pem)
        context.load_cert_chain(path, password=one_time)
    except (OSError, ssl.SSLError) as error:
        raise CredentialError(
            f"ClientCertificate: the certificate could not be loaded ({type(error).__name__})"
        ) from None
    finally:
        os.unlink(path)


# --- tokens --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Token:
    value: str
    refresh_at: float  # on the cache's clock


class TokenCache:
    """Tokens by key until their refresh time; one fetch at a time per key and event loop."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, max_entries: int = 1024):
        self._clock = clock
        self._max_entries = max_entries
        self._tokens: OrderedDict[Hashable, _Token] = OrderedDict()
        self._guard = threading.Lock()
        self._locks: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, dict[Hashable, asyncio.Lock]
        ] = weakref.WeakKeyDictionary()

    async def get(self, key: Hashable, fetch: Callable[[], Awaitable[tuple[str, float]]]) -> str:
        """The cached token, or `fetch()`'s (token, lifetime in seconds), cached as it allows."""
        token = self._fresh(key)
        if token is not None:
            return token
        async with self._lock_for(key):
            token = self._fresh(key)
            if token is not None:
                return token
            value, lifetime = await fetch()
            lifetime = min(lifetime, MAX_CACHE_SECONDS)
            if lifetime > 0:
                margin = min(REFRESH_MARGIN_SECONDS, lifetime / 2)
                with self._guard:
                    self._tokens[key] = _Token(value, self._clock() + lifetime - margin)
                    self._tokens.move_to_end(key)
                    while len(self._tokens) > self._max_entries:
                        self._tokens.popitem(last=False)
            return value

    def _fresh(self, key: Hashable) -> str | None:
        with self._guard:
            token = self._tokens.get(key)
            if token is None:
                return None
            if self._clock() >= token.refresh_at:
                del self._tokens[key]
                return None
            return token.value

    def _lock_for(self, key: Hashable) -> asyncio.Lock:
        loop = asyncio.get_running_loop()
        with self._guard:
            locks = self._locks.setdefault(loop, {})
            if len(locks) > self._max_entries:
                for stale in [k for k, lock in locks.items() if not lock.locked()]:
                    del locks[stale]
            return locks.setdefault(key, asyncio.Lock())


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


class OutboundAuthenticator:
    """Turns a request's `authentication` into `Credentials`, fetching and caching tokens."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.tokens = TokenCache(clock)

    async def credentials(
        self,
        auth: HttpAuthentication | None,
        settings: Settings,
        client: Callable[[], Awaitable[httpx.AsyncClient]],
        timeout: float,
    ) -> Credentials:
        """`client()` gives the client for token endpoints (not through the network guard); it is
        asked for only when a token is fetched."""
        if isinstance(auth, BasicAuthentication):
            header = basic_authorization(auth)
            password = auth.password.get_secret_value()
            pair = f"{auth.username}:{password}"  # its base64 form is the header's value
            return Credentials({"Authorization": header}, sensitive=(pair, password))
        if isinstance(auth, ClientCertificateAuthentication):
            return Credentials(certificate=auth)
        if isinstance(auth, ActiveDirectoryOAuthAuthentication):
            token = await self._aad_token(auth, settings, client, timeout)
            secret = auth.secret.get_secret_value()
            return Credentials({"Authorization": f"Bearer {token}"}, sensitive=(token, secret))
        if isinstance(auth, ManagedServiceIdentityAuthentication):
            refusal = settings.outbound.identity_refusal(auth)
            if refusal is not None:  # the write-time rule again: the job may predate it
                raise CredentialError(refusal[1])
            token = await self._msi_token(auth, settings, client, timeout)
            return Credentials({"Authorization": f"Bearer {token}"}, sensitive=(token,))
        return Credentials()

    async def _aad_token(
        self,
        auth: ActiveDirectoryOAuthAuthentication,
        settings: Settings,
        client: Callable[[], Awaitable[httpx.AsyncClient]],
        timeout: float,
    ) -> str:
        authority = settings.aad_authority
        secret = auth.secret.get_secret_value()
        key = ("aad", authority, auth.tenant, auth.client_id, auth.audience, _digest(secret))
        what = "the authority"

        async def fetch() -> tuple[str, float]:
            try:
                response = await (await client()).post(
                    f"{authority}/{auth.tenant}/oauth2/v2.0/token",
                    data={
                        "grant_type": "client_credentials",
                        "client_id": auth.client_id,
                        "client_secret": secret,
                        "scope": f"{auth.audience}/.default",
                    },
                    headers={"Accept": "application/json"},
                    timeout=timeout,
                )
            except (httpx.HTTPError, httpx.InvalidURL) as error:
                raise _request_failed(what, error) from None
            data = _token_answer(what, response, secret)
            return _access_token(what, data), _number(data.get("expires_in"))

        return await self.tokens.get(key, fetch)

    async def _msi_token(
        self,
        auth: ManagedServiceIdentityAuthentication,
        settings: Settings,
        client: Callable[[], Awaitable[httpx.AsyncClient]],
        timeout: float,
    ) -> str:
        identity = settings.identity
        if identity is None:
            raise CredentialError(
                "ManagedServiceIdentity: no managed identity is configured for this app "
                f"({IDENTITY_ENDPOINT_SETTING} is not set)"
            )
        endpoint, identity_header = identity.endpoint, identity.header
        key = ("msi", endpoint, auth.client_id, auth.audience)
        what = "the managed identity endpoint"
        params = {"resource": auth.audience, "api-version": IDENTITY_API_VERSION}
        if auth.client_id is not None:
            params["client_id"] = auth.client_id

        async def fetch() -> tuple[str, float]:
            try:
                response = await (await client()).get(
                    endpoint,
                    params=params,
                    headers={"X-IDENTITY-HEADER": identity_header, "Accept": "application/json"},
                    timeout=timeout,
                )
            except (httpx.HTTPError, httpx.InvalidURL) as error:
                raise _request_failed(what, error) from None
            data = _token_answer(what, response, identity_header)
            expires_on = _number(data.get("expires_on"))
            lifetime = expires_on - time.time() if expires_on else _number(data.get("expires_in"))
            return _access_token(what, data), lifetime

        return await self.tokens.get(key, fetch)


def _request_failed(what: str, error: httpx.HTTPError | httpx.InvalidURL) -> CredentialError:
    if isinstance(error, httpx.TimeoutException):
        return CredentialError(f"Could not get a token from {what}: timed out")
    detail = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
    return CredentialError(f"Could not get a token from {what}: {detail}")


def _token_answer(what: str, response: httpx.Response, secret: str) -> dict[str, Any]:
    """The JSON object of a 2xx answer; CredentialError with status and error code otherwise."""
    try:
        data = response.json()
    except ValueError:
        data = None
    if not response.is_success:
        detail = f"HTTP {response.status_code}"
        code, description = _error_of(data, secret)
        if code:
            detail += f" {code}"
        if description:
            detail += f": {description}"
        raise CredentialError(f"Could not get a token from {what}: {detail}")
    if not isinstance(data, dict):
        raise CredentialError(f"Could not get a token from {what}: the answer is not JSON")
    return data


def _error_of(data: object, secret: str) -> tuple[str, str]:
    """OAuth `{error, error_description}` or App Service `{error: {code, message}}` /
    `{message}`: the code and the first line of the description, scrubbed, then shortened."""
    if not isinstance(data, dict):
        return "", ""
    error = data.get("error")
    if isinstance(error, dict):
        code, description = error.get("code"), error.get("message")
    else:
        code, description = error, data.get("error_description") or data.get("message")
    text = scrub(str(description), [secret]).strip().splitlines()[0] if description else ""
    if len(text) > _MAX_DETAIL:
        text = text[: _MAX_DETAIL - 3] + "..."
    return (scrub(str(code), [secret]) if code else ""), text


def _access_token(what: str, data: Mapping[str, Any]) -> str:
    token = data.get("access_token")
    if not isinstance(token, str) or not token:
        raise CredentialError(f"Could not get a token from {what}: the answer has no access_token")
    if any(ord(ch) < 0x21 or ord(ch) > 0x7E for ch in token):
        raise CredentialError(f"Could not get a token from {what}: the token is not printable")
    return token


def _number(value: object) -> float:
    """expires_in / expires_on arrive as numbers or numeric strings; 0 when absent or bad."""
    try:
        number = float(value) if isinstance(value, int | float | str) else 0.0
    except ValueError:
        return 0.0
    return number if math.isfinite(number) else 0.0


__all__ = [
    "AUTHORITY_SETTING",
    "DEFAULT_AUTHORITY",
    "EXTRA_CA_SETTING",
    "IDENTITY_ENDPOINT_SETTING",
    "IDENTITY_HEADER_SETTING",
    "CredentialError",
    "Credentials",
    "OutboundAuthenticator",
    "TokenCache",
    "basic_authorization",
    "tls_context",
]
