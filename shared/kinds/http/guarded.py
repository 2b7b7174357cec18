"""One HTTPS request through the outbound network guard, for kinds that call HTTP APIs.

The same path HTTP actions take: the host is resolved and every address checked against
`SCHEDULER_ALLOWED_NETWORKS` (`vet_url`), the connection goes to a vetted address with the job's
host in Host and TLS SNI (`send_pinned`), certificates are verified against certifi's roots plus
`SCHEDULER_EXTRA_CA_CERTS`, no proxy, no redirect. Each call has its own short-lived client, so
no connection verified for one host name can carry a request for another; the price is one TLS
handshake per call, which a scheduler's sends can afford.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import httpx

from shared import log_guard
from shared.kinds.http.network_guard import AddressOnlyTransport, send_pinned, vet_url
from shared.kinds.http.outbound_auth import tls_context

if TYPE_CHECKING:
    from shared.config import Settings


@dataclass(frozen=True)
class GuardedResponse:
    """The answer: status, reason, headers as sent, and at most `max_body` bytes of the body."""

    status_code: int
    reason_phrase: str
    headers: tuple[tuple[str, str], ...]
    body: bytes


async def send_guarded(
    method: str,
    url: str,
    *,
    headers: dict[str, str],
    content: bytes | None,
    settings: Settings,
    timeout: float,
    max_body: int,
) -> GuardedResponse:
    """Send one request through the guard. Raises `GuardError` (refused or unresolvable host),
    `CredentialError` (the extra CA bundle cannot be loaded), httpx's errors and `OSError` for
    the transport; the caller bounds the whole exchange (`asyncio.timeout`)."""
    log_guard.install()  # httpcore's debug records would print the request's echoed headers
    target = await vet_url(url, settings.networks)
    transport = AddressOnlyTransport(tls_context(settings.extra_ca_certs))
    async with httpx.AsyncClient(
        transport=transport, follow_redirects=False, trust_env=False
    ) as client:
        request = client.build_request(
            method, url, headers=headers, content=content, timeout=timeout
        )
        response = await send_pinned(client, request, target)
        try:
            body = b""
            async for chunk in response.aiter_bytes():
                body += chunk[: max_body - len(body)]
                if len(body) >= max_body:
                    break
        finally:
            await response.aclose()
    return GuardedResponse(
        status_code=response.status_code,
        reason_phrase=response.reason_phrase,
        headers=tuple(
            (name.decode("latin-1"), value.decode("latin-1"))
            for name, value in response.headers.raw
        ),
        body=body,
    )


__all__ = ["GuardedResponse", "send_guarded"]
