"""HTTP and HTTPS actions: one request, success = 2xx, outcome worded like Azure Scheduler history.

Redirects are not followed (a 3xx is reported, as Azure Scheduler did). The whole exchange, body
included, is bounded by one deadline, so a server trickling bytes cannot hold a worker.

Before the request, the network guard resolves the target and refuses non-public addresses that
`SCHEDULER_ALLOWED_NETWORKS` does not allow; the connection then goes to a vetted address. Then the
request's `authentication` becomes credentials (an `Authorization` header that replaces the job's
own, or a client certificate for the TLS handshake). Refusals and credential failures are failed
attempts with a message; credentials never appear in a message (they are scrubbed from echoes).
"""

from __future__ import annotations

import asyncio
import functools
from collections import Counter, OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC
from http import HTTPStatus
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import httpx

from shared import log_guard
from shared.kinds.base import ActionContext, ActionOutcome, Send, SentSignal
from shared.kinds.http.model import HttpRequest
from shared.kinds.http.network_guard import (
    GuardError,
    pinned_requests,
    send_first_connecting,
    vet_url,
)
from shared.kinds.http.outbound_auth import (
    CredentialError,
    Credentials,
    OutboundAuthenticator,
    tls_context,
)
from shared.kinds.http.pinned_transport import PinnedTransport
from shared.model.auth import ClientCertificateAuthentication

if TYPE_CHECKING:
    from shared.model.actions import JobErrorAction

MAX_BODY_BYTES = 2048  # what Azure Scheduler kept of a response body in job history
USER_AGENT = "azure-functions-job-scheduler"
MAX_CLIENTS = 64  # one per (extra CA bundle, client certificate, host); the idle oldest is closed

# (goes through the network guard, extra CA bundle path, client certificate digest, host name).
# Guarded clients pool connections by IP address, so each host name has its own client: a TLS
# connection verified for one name must not carry a request for another name on that address.
_ClientKey = tuple[bool, str | None, str | None, str | None]


class HttpActionRunner:
    """Runs Http/Https actions. Keeps one `httpx.AsyncClient` per TLS identity (none, or each
    client certificate), all recreated if the event loop changes, plus one for token endpoints."""

    def __init__(self) -> None:
        self._clients: OrderedDict[_ClientKey, httpx.AsyncClient] = OrderedDict()
        self._busy: Counter[_ClientKey] = Counter()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._auth = OutboundAuthenticator()
        log_guard.install()  # httpcore's debug records would print echoed headers

    async def run(self, action: JobErrorAction, context: ActionContext) -> ActionOutcome:
        send = await self.prepare(action, context)
        return await send(_ignore)

    async def prepare(self, action: JobErrorAction, context: ActionContext) -> Send:
        """Vet the target (DNS and the network guard), get the credentials (a token fetch) and
        build the request now: at the attempt's second only the send is left. The whole
        exchange keeps one deadline: the time spent here counts against the request's timeout,
        the time waiting for the second does not. A refusal or a failure here is the send's
        outcome (nothing is sent)."""
        request = action.payload_as(HttpRequest)
        if request is None:
            raise ValueError(f"{action.type} action without a request")
        seconds = (
            request.timeout_seconds
            if request.timeout_seconds is not None
            else context.default_timeout.total_seconds()
        )
        host = urlsplit(request.uri).hostname or request.uri
        extra_ca = context.settings.extra_ca_certs
        credentials = Credentials()
        loop = asyncio.get_running_loop()
        begun = loop.time()
        try:
            async with asyncio.timeout(seconds):
                target = await vet_url(request.uri, context.settings.networks)

                async def token_client() -> httpx.AsyncClient:
                    return await self._client((False, extra_ca, None, None), None)

                credentials = await self._auth.credentials(
                    request.authentication, context.settings, token_client, seconds
                )
                certificate = credentials.certificate
                digest = certificate.credential_digest if certificate else None
                key = (True, extra_ca, digest, target.host)
                client = await self._client(key, certificate)
                headers = scheduler_headers(request.headers, context)
                headers.update(credentials.headers)  # configured authentication wins
                outgoing = client.build_request(
                    request.method,
                    request.uri,
                    headers=headers,
                    content=request.body.encode() if request.body is not None else None,
                    timeout=seconds,
                )
        except _FAILURES as exc:
            return _sent_nothing(_failure(exc, host, seconds, credentials))
        prepared = _Prepared(
            key=key,
            certificate=certificate,
            requests=pinned_requests(outgoing, target),
            credentials=credentials,
            host=host,
            seconds=seconds,
            budget=seconds - (loop.time() - begun),
        )
        return functools.partial(self._send, prepared)

    async def _send(self, prepared: _Prepared, sent: SentSignal) -> ActionOutcome:
        """Send a prepared request; `sent` is told once its body is written (or it failed)."""
        key, credentials = prepared.key, prepared.credentials
        for request in prepared.requests:
            request.extensions["trace"] = _signal_when_written(sent)
        try:
            async with asyncio.timeout(prepared.budget):
                # The same client as at prepare time (re-made if it was closed since).
                client = await self._client(key, prepared.certificate)
                self._busy[key] += 1
                try:
                    response = await send_first_connecting(client, prepared.requests)
                    try:
                        # Read past the kept prefix so a secret across the cut is whole.
                        body = await _read_prefix(response, MAX_BODY_BYTES + credentials.margin)
                    finally:
                        await response.aclose()
                finally:
                    self._busy[key] = max(0, self._busy[key] - 1)
        except _FAILURES as exc:
            return _failure(exc, prepared.host, prepared.seconds, credentials)
        finally:
            sent()
        text = credentials.scrub(body.decode("utf-8", errors="replace"), MAX_BODY_BYTES)
        return ActionOutcome(
            succeeded=response.is_success,
            message=credentials.scrub(_response_message(prepared.host, response, text)),
            status_code=response.status_code,
        )

    async def aclose(self) -> None:
        clients = list(self._clients.values())
        self._clients.clear()
        self._busy.clear()
        self._loop = None
        for client in clients:
            await client.aclose()

    async def _client(
        self, key: _ClientKey, certificate: ClientCertificateAuthentication | None
    ) -> httpx.AsyncClient:
        # An AsyncClient's pool belongs to the loop that opened its connections.
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            self._clients.clear()
            self._busy.clear()
            self._loop = loop
        client = self._clients.get(key)
        if client is not None:
            self._clients.move_to_end(key)
            return client
        guarded, extra_ca, _, _ = key
        context = tls_context(extra_ca, certificate)
        if guarded:
            client = httpx.AsyncClient(
                transport=PinnedTransport(context), follow_redirects=False, trust_env=False
            )
        else:
            client = httpx.AsyncClient(verify=context, follow_redirects=False, trust_env=False)
        self._clients[key] = client
        await self._close_idle_beyond(MAX_CLIENTS, keep=key)
        return client

    async def _close_idle_beyond(self, limit: int, keep: _ClientKey) -> None:
        # Token-endpoint clients (one per CA bundle) are kept: a fetch may be using one.
        idle = [k for k in self._clients if k[0] and not self._busy[k] and k != keep]
        while len(self._clients) > limit and idle:
            oldest = idle.pop(0)
            await self._clients.pop(oldest).aclose()
            del self._busy[oldest]


@dataclass(frozen=True)
class _Prepared:
    """A request built and vetted ahead: one copy per vetted address, tried in order."""

    key: _ClientKey
    certificate: ClientCertificateAuthentication | None
    requests: list[httpx.Request]
    credentials: Credentials
    host: str
    seconds: float  # the request's timeout, as messages name it
    budget: float  # what is left of it for the send


# What a call can fail with, reported as a failed attempt (`_failure`); OSError: httpcore lets
# some TLS errors through raw (ssl.SSLError from a read when the server rejects the client
# certificate after a TLS 1.3 handshake).
_FAILURES = (
    GuardError,
    CredentialError,
    TimeoutError,
    httpx.HTTPError,
    httpx.InvalidURL,
    OSError,
)


def _failure(
    exc: BaseException, host: str, seconds: float, credentials: Credentials
) -> ActionOutcome:
    if isinstance(exc, GuardError | CredentialError):
        return _failed(str(exc))
    if isinstance(exc, TimeoutError | httpx.TimeoutException):
        return _failed(f"Request timed out after {seconds:g} s (host '{host}')")
    assert isinstance(exc, Exception)
    if isinstance(exc, httpx.ConnectError):
        return _failed(credentials.scrub(f"Could not connect to host '{host}': {_describe(exc)}"))
    return _failed(credentials.scrub(f"Request to host '{host}' failed: {_describe(exc)}"))


def _sent_nothing(outcome: ActionOutcome) -> Send:
    async def send(sent: SentSignal) -> ActionOutcome:
        sent()
        return outcome

    return send


def _signal_when_written(sent: SentSignal) -> Callable[[str, dict[str, Any]], Awaitable[None]]:
    """An httpcore `trace` extension that tells `sent` once the request body is written: from
    then on the target can see the request (httpx's public request extension)."""

    async def trace(event: str, info: dict[str, Any]) -> None:
        if event.endswith(".send_request_body.complete"):
            sent()

    return trace


def _ignore() -> None:
    """No one waits for the send when the action is simply run."""


def scheduler_headers(headers: dict[str, str] | None, context: ActionContext) -> httpx.Headers:
    """The job's headers plus Azure Scheduler's `x-ms-*` ones and `Idempotency-Key` (ours win)."""
    result = httpx.Headers({"User-Agent": USER_AGENT})
    result.update(headers or {})
    expected = context.nominal.astimezone(UTC).isoformat().replace("+00:00", "Z")
    result["x-ms-scheduler-jobid"] = context.job
    result["x-ms-scheduler-jobcollectionid"] = context.collection
    result["x-ms-scheduler-expected-execution-time"] = expected
    result["x-ms-execution-tag"] = context.attempt_tag
    result["x-ms-client-request-id"] = context.request_id
    result["Idempotency-Key"] = context.idempotency_key
    return result


async def _read_prefix(response: httpx.Response, limit: int) -> bytes:
    """At most `limit` bytes of the body; the rest is never read into memory."""
    data = b""
    async for chunk in response.aiter_bytes():
        data += chunk[: limit - len(data)]
        if len(data) >= limit:
            break  # the caller closes the response, dropping the unread rest
    return data


def _response_message(host: str, response: httpx.Response, text: str) -> str:
    reason = response.reason_phrase or _standard_reason(response.status_code)
    headers = "; ".join(
        f"{name.decode('latin-1')}: {value.decode('latin-1')}"
        for name, value in response.headers.raw  # as sent, not lower-cased
    )
    return (
        f"Http Action - Response from host '{host}': {response.status_code} '{reason}' "
        f"Response Headers: {headers} Body: {text}"
    )


def _standard_reason(status_code: int) -> str:
    try:
        return HTTPStatus(status_code).phrase
    except ValueError:
        return ""


def _describe(exc: Exception) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def _failed(message: str) -> ActionOutcome:
    return ActionOutcome(succeeded=False, message=f"Http Action - {message}")
