"""HTTP and HTTPS actions: one request, success = 2xx, outcome worded like Azure Scheduler history.

Redirects are not followed (a 3xx is reported, as Azure Scheduler did). The whole exchange, body
included, is bounded by one deadline, so a server trickling bytes cannot hold a worker.
"""

from __future__ import annotations

import asyncio
from datetime import UTC
from http import HTTPStatus
from urllib.parse import urlsplit

import httpx

from shared.actions.base import ActionContext, ActionOutcome
from shared.model.actions import JobErrorAction

MAX_BODY_BYTES = 2048  # what Azure Scheduler kept of a response body in job history
USER_AGENT = "azure-functions-job-scheduler"


class HttpActionRunner:
    """Runs Http/Https actions over one `httpx.AsyncClient`, recreated if the event loop changes."""

    def __init__(self) -> None:
        self._client: httpx.AsyncClient | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def run(self, action: JobErrorAction, context: ActionContext) -> ActionOutcome:
        request = action.request
        if request is None:
            raise ValueError(f"{action.type.value} action without a request")
        seconds = (
            request.timeout_seconds
            if request.timeout_seconds is not None
            else context.default_timeout.total_seconds()
        )
        host = urlsplit(request.uri).hostname or request.uri
        client = self._client_for_this_loop()
        try:
            outgoing = client.build_request(
                request.method,
                request.uri,
                headers=scheduler_headers(request.headers, context),
                content=request.body.encode() if request.body is not None else None,
                timeout=seconds,
            )
            async with asyncio.timeout(seconds):
                response = await client.send(outgoing, stream=True)
                try:
                    body = await _read_prefix(response, MAX_BODY_BYTES)
                finally:
                    await response.aclose()
        except (TimeoutError, httpx.TimeoutException):
            return _failed(f"Request timed out after {seconds:g} s (host '{host}')")
        except httpx.ConnectError as exc:
            return _failed(f"Could not connect to host '{host}': {_describe(exc)}")
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            return _failed(f"Request to host '{host}' failed: {_describe(exc)}")
        return ActionOutcome(
            succeeded=response.is_success,
            message=_response_message(host, response, body),
            status_code=response.status_code,
        )

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None
            self._loop = None

    def _client_for_this_loop(self) -> httpx.AsyncClient:
        # An AsyncClient's pool belongs to the loop that opened its connections.
        loop = asyncio.get_running_loop()
        if self._client is None or self._loop is not loop:
            self._client = httpx.AsyncClient(follow_redirects=False)
            self._loop = loop
        return self._client


def scheduler_headers(headers: dict[str, str] | None, context: ActionContext) -> httpx.Headers:
    """The job's headers plus Azure Scheduler's `x-ms-*` ones and `Idempotency-Key` (ours win)."""
    result = httpx.Headers({"User-Agent": USER_AGENT})
    result.update(headers or {})
    expected = context.expected_time.astimezone(UTC).isoformat().replace("+00:00", "Z")
    result["x-ms-scheduler-jobid"] = context.job
    result["x-ms-scheduler-jobcollectionid"] = context.collection
    result["x-ms-scheduler-expected-execution-time"] = expected
    result["x-ms-execution-tag"] = context.execution_tag
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


def _response_message(host: str, response: httpx.Response, body: bytes) -> str:
    reason = response.reason_phrase or _standard_reason(response.status_code)
    headers = "; ".join(
        f"{name.decode('latin-1')}: {value.decode('latin-1')}"
        for name, value in response.headers.raw  # as sent, not lower-cased
    )
    text = body.decode("utf-8", errors="replace")
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
