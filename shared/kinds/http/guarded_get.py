"""A GET through the network guard, for code-job handlers that fetch something (the feed
sample): the same vetting and address pinning as HTTP actions, a size cap and one deadline."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import httpx

from shared.config import Settings
from shared.kinds.http.network_guard import AddressOnlyTransport, send_pinned, vet_url
from shared.kinds.http.outbound_auth import tls_context
from shared.kinds.http.runner import USER_AGENT

MAX_BYTES = 5 * 1024 * 1024


@dataclass(frozen=True)
class Fetched:
    status_code: int
    headers: httpx.Headers
    body: bytes


async def guarded_get(
    url: str, settings: Settings, *, headers: dict[str, str], timeout: float
) -> Fetched:
    """GET `url` (raises `GuardError` if the guard refuses it, `httpx.HTTPError` on failure,
    `ValueError` past `MAX_BYTES`)."""
    async with asyncio.timeout(timeout):
        target = await vet_url(url, settings.networks)
        transport = AddressOnlyTransport(tls_context(settings.extra_ca_certs, None))
        async with httpx.AsyncClient(
            transport=transport, follow_redirects=False, trust_env=False
        ) as client:
            request = client.build_request(
                "GET", url, headers={"User-Agent": USER_AGENT, **headers}, timeout=timeout
            )
            response = await send_pinned(client, request, target)
            try:
                body = bytearray()
                async for chunk in response.aiter_bytes():
                    body += chunk
                    if len(body) > MAX_BYTES:
                        raise ValueError(f"the response is larger than {MAX_BYTES} bytes")
            finally:
                await response.aclose()
    return Fetched(response.status_code, response.headers, bytes(body))
