"""An httpx transport that sends, over aiohttp, the requests the network guard pinned to an address.

Why not httpx's own transport: httpcore's pool looks at every connection (a system call each)
on every request and every response, and a scheduler's second sends dozens of requests at once
to one host. There that cost about 3 ms of CPU per request, more than the rest of an attempt
(2,000 requests to a local server, 64 in flight: httpx 6.4 s of CPU, aiohttp 0.2 s), and it
delayed the sends of the same second behind each other. httpx stays the API requests are built
and responses read with; only the wire changes.

Like `AddressOnlyTransport`, it sends only requests addressed to an IP address (as
`pinned_request` makes them), so nothing is resolved after the guard's check; TLS is verified
for the request's `sni_hostname` (the job's host name), not for the address. aiohttp pools
connections by address, not by the name they were verified for, so one transport must serve
one host name (the runner keeps one client per host name).
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any

import aiohttp
import httpx

from shared.kinds.http.network_guard import refuse_unpinned

# Seconds an idle connection is kept for the next request (httpx's default keep-alive expiry).
IDLE_SECONDS = 5.0


class PinnedTransport(httpx.AsyncBaseTransport):
    """One aiohttp session, opened on first use (in the loop that uses it), closed by `aclose`."""

    def __init__(self, ssl_context: ssl.SSLContext, connections: int = 100) -> None:
        self._ssl_context = ssl_context
        self._connections = connections
        self._session: aiohttp.ClientSession | None = None

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        refuse_unpinned(request)
        body = await request.aread()
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in request.headers.raw]
        timeout = request.extensions.get("timeout", {})
        sni = request.extensions.get("sni_hostname") if request.url.scheme == "https" else None
        try:
            response = await self._open_session().request(
                request.method,
                str(request.url),
                headers=headers,
                data=body or None,
                allow_redirects=False,
                server_hostname=sni,
                timeout=aiohttp.ClientTimeout(
                    total=None, sock_connect=timeout.get("connect"), sock_read=timeout.get("read")
                ),
                trace_request_ctx=SimpleNamespace(trace=request.extensions.get("trace")),
            )
        except (aiohttp.ClientError, TimeoutError) as error:
            raise _as_httpx(error, request) from error
        return httpx.Response(
            status_code=response.status,
            headers=list(response.raw_headers),
            stream=_Body(response, request),
            extensions={
                "http_version": b"HTTP/1.1",
                "reason_phrase": (response.reason or "").encode("latin-1"),
            },
        )

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _open_session(self) -> aiohttp.ClientSession:
        if self._session is None:
            tracing = aiohttp.TraceConfig()
            tracing.on_request_headers_sent.append(_request_written)
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(
                    limit=self._connections,
                    ssl=self._ssl_context,
                    keepalive_timeout=IDLE_SECONDS,
                    use_dns_cache=False,
                ),
                auto_decompress=False,  # httpx decodes the body itself
                cookie_jar=aiohttp.DummyCookieJar(),
                # Only the headers httpx built go out: no Content-Type or User-Agent of aiohttp's.
                skip_auto_headers=("Content-Type", "User-Agent", "Accept", "Accept-Encoding"),
                trace_configs=[tracing],
            )
        return self._session


class _Body(httpx.AsyncByteStream):
    """The response body as aiohttp reads it; closing it gives the connection back (or drops it
    when the body was not read to its end)."""

    def __init__(self, response: aiohttp.ClientResponse, request: httpx.Request) -> None:
        self._response = response
        self._request = request

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._response.content.iter_any():
                yield chunk
        except (aiohttp.ClientError, TimeoutError) as error:
            raise _as_httpx(error, self._request) from error

    async def aclose(self) -> None:
        self._response.release()


async def _request_written(
    session: aiohttp.ClientSession, context: SimpleNamespace, params: Any
) -> None:
    """Tell the request's httpcore-style `trace` extension that the request is out (the runner's
    send-priority signal waits for this event)."""
    trace = getattr(context.trace_request_ctx, "trace", None)
    if trace is not None:
        await trace("http11.send_request_body.complete", {})


def _as_httpx(error: BaseException, request: httpx.Request) -> httpx.TransportError:
    """aiohttp's error as the httpx error a caller of httpx handles (the message kept)."""
    message = str(error) or type(error).__name__
    if isinstance(error, aiohttp.ConnectionTimeoutError):
        return httpx.ConnectTimeout(message, request=request)
    if isinstance(error, aiohttp.SocketTimeoutError | TimeoutError):
        return httpx.ReadTimeout(message, request=request)
    if isinstance(error, aiohttp.ClientConnectorError):
        return httpx.ConnectError(message, request=request)
    if isinstance(error, aiohttp.ServerDisconnectedError | aiohttp.ClientResponseError):
        return httpx.RemoteProtocolError(message, request=request)
    return httpx.ReadError(message, request=request)


__all__ = ["PinnedTransport"]
