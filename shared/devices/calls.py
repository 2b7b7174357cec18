"""Calls to a device's registered endpoint (our extension): direct methods and desired pushes.

Every call goes through the same outbound network guard as HTTP actions
(shared/kinds/http/network_guard.py): the endpoint's host is resolved and vetted against
`SCHEDULER_ALLOWED_NETWORKS`, and the connection goes to a vetted address through the HTTP
actions' `PinnedTransport` (httpx's API over aiohttp: httpcore's pool cost a broadcast a fifth
of its CPU looking at every connection on each call), so a device cannot point the app at its
own private networks. Clients are kept per host name, as the HTTP runner does (a pool keyed by
address must not carry a TLS connection verified for one name to another).

Wire contract, documented in docs/devices.md:
- a direct method is `POST {uri}` with headers `iothub-method-name: <name>` and the endpoint's
  own headers, JSON body `{"methodName": ..., "payload": ...}`; the device answers 2xx with
  `{"status": int, "payload": any}`;
- a desired-property change is `POST {uri}` with header `iothub-desired-version: <$version>`,
  JSON body `{"desired": {... the whole desired section, with $version}}`.
Errors never quote the endpoint's headers (they may hold the device's credentials).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from shared import log_guard
from shared.config import Settings
from shared.devices.call_budget import CallBudget
from shared.devices.model import Endpoint, MethodCall
from shared.errors import BadDeviceAnswer, DeviceNotOnline, DeviceTimeout
from shared.kinds.http.network_guard import (
    GuardError,
    send_pinned,
    vet_url,
)
from shared.kinds.http.outbound_auth import tls_context
from shared.kinds.http.pinned_transport import PinnedTransport

log = logging.getLogger(__name__)

MAX_ANSWER_BYTES = 128 * 1024  # IoT Hub's limit on a method's payload
PUSH_TIMEOUT_SECONDS = 10.0
MAX_CLIENTS = 64
METHOD_HEADER = "iothub-method-name"
DESIRED_VERSION_HEADER = "iothub-desired-version"
USER_AGENT = "azure-functions-job-scheduler/devices"
# Connections a host's pool keeps beyond the broadcasts' budget: for the API's direct methods
# and desired pushes, which take no slot of it.
_SPARE_CONNECTIONS = 8


@dataclass(frozen=True)
class MethodResult:
    """IoT Hub's CloudToDeviceMethodResult."""

    status: int
    payload: Any

    def json(self) -> dict[str, Any]:
        return {"status": self.status, "payload": self.payload}


class DeviceCaller:
    """Sends direct methods and desired pushes to device endpoints, through the network guard."""

    def __init__(self, settings: Settings, budget: CallBudget | None = None) -> None:
        self._settings = settings
        # Broadcasts take a slot of it per call (shared/broadcasts/engine.py); each host's
        # pool holds as many connections, so no call waits in the pool for one.
        self.budget = budget or CallBudget()
        self._clients: OrderedDict[str, httpx.AsyncClient] = OrderedDict()
        self._loop: asyncio.AbstractEventLoop | None = None
        log_guard.install()  # httpcore's debug records would print the endpoint's headers

    async def invoke(
        self,
        device_id: str,
        endpoint: Endpoint | None,
        call: MethodCall,
        extra_headers: Mapping[str, str] | None = None,
    ) -> MethodResult:
        """The device's answer; DeviceNotOnline when it cannot be reached (no endpoint, refused
        by the guard, connection failed), DeviceTimeout after the response timeout,
        BadDeviceAnswer for an answer that is not IoT Hub's method response."""
        if endpoint is None:
            raise DeviceNotOnline(f"device {device_id} has no endpoint registered")
        body = {"methodName": call.method_name, "payload": call.payload}
        headers = {**(extra_headers or {}), METHOD_HEADER: call.method_name}
        # Connecting may take the connect timeout (at least a few seconds: 0 means "online
        # now"); answering, the response timeout.
        connect = max(call.connect_timeout, 5)
        timeout = httpx.Timeout(call.response_timeout, connect=connect)
        try:
            async with asyncio.timeout(connect + call.response_timeout):
                status, raw = await self._post(endpoint, body, headers, timeout)
        except GuardError as error:
            raise DeviceNotOnline(f"device {device_id} cannot be reached: {error}") from None
        except (httpx.ConnectError, httpx.ConnectTimeout) as error:
            raise DeviceNotOnline(
                f"device {device_id} is not online: its endpoint refused the connection "
                f"({type(error).__name__})"
            ) from None
        except (TimeoutError, httpx.TimeoutException):
            raise DeviceTimeout(
                f"Timed out waiting for the response from device {device_id} "
                f"({call.response_timeout} s)"
            ) from None
        except (httpx.HTTPError, OSError) as error:
            raise DeviceNotOnline(
                f"device {device_id} is not online: the call failed ({type(error).__name__})"
            ) from None
        return _method_result(device_id, status, raw)

    async def push_desired(
        self, device_id: str, endpoint: Endpoint, desired: Mapping[str, Any], version: int
    ) -> bool:
        """Best effort: True when the device took the change (2xx); a failure is logged (without
        the endpoint's headers) and reported as False, never raised."""
        headers = {DESIRED_VERSION_HEADER: str(version)}
        try:
            async with asyncio.timeout(PUSH_TIMEOUT_SECONDS):
                status, _ = await self._post(
                    endpoint,
                    {"desired": dict(desired)},
                    headers,
                    httpx.Timeout(PUSH_TIMEOUT_SECONDS),
                )
        except (GuardError, httpx.HTTPError, OSError, TimeoutError) as error:
            reason = str(error) if isinstance(error, GuardError) else type(error).__name__
            log.warning(
                "Desired push failed: device=%s version=%d reason=%s", device_id, version, reason
            )
            return False
        if not 200 <= status < 300:
            log.warning(
                "Desired push refused: device=%s version=%d status=%d", device_id, version, status
            )
            return False
        return True

    async def aclose(self) -> None:
        clients = list(self._clients.values())
        self._clients.clear()
        for client in clients:
            await client.aclose()

    async def _post(
        self,
        endpoint: Endpoint,
        body: Mapping[str, Any],
        headers: Mapping[str, str],
        timeout: httpx.Timeout,
    ) -> tuple[int, bytes]:
        target = await vet_url(endpoint.uri, self._settings.networks)
        client = await self._client(target.host)
        outgoing_headers = httpx.Headers({"User-Agent": USER_AGENT})
        outgoing_headers.update(dict(endpoint.headers))
        outgoing_headers.update(dict(headers))  # ours win
        request = client.build_request(
            "POST",
            endpoint.uri,
            headers=outgoing_headers,
            content=json.dumps(body, separators=(",", ":")).encode(),
            timeout=timeout,
        )
        request.headers["Content-Type"] = "application/json"
        response = await send_pinned(client, request, target)
        try:
            raw = await _read_capped(response, MAX_ANSWER_BYTES + 1)
        finally:
            await response.aclose()
        return response.status_code, raw

    async def _client(self, host: str) -> httpx.AsyncClient:
        loop = asyncio.get_running_loop()
        if self._loop is not loop:  # a client's pool belongs to one event loop
            self._clients.clear()
            self._loop = loop
        client = self._clients.get(host)
        if client is not None:
            self._clients.move_to_end(host)
            return client
        context = tls_context(self._settings.extra_ca_certs, None)
        client = httpx.AsyncClient(
            transport=PinnedTransport(context, self.budget.size + _SPARE_CONNECTIONS),
            follow_redirects=False,
            trust_env=False,
        )
        self._clients[host] = client
        while len(self._clients) > MAX_CLIENTS:
            _, oldest = self._clients.popitem(last=False)
            await oldest.aclose()
        return client


async def _read_capped(response: httpx.Response, limit: int) -> bytes:
    data = b""
    async for chunk in response.aiter_bytes():
        data += chunk[: limit - len(data)]
        if len(data) >= limit:
            break
    return data


def _method_result(device_id: str, status: int, raw: bytes) -> MethodResult:
    if not 200 <= status < 300:
        raise BadDeviceAnswer(f"device {device_id} answered the method with HTTP {status}")
    if len(raw) > MAX_ANSWER_BYTES:
        raise BadDeviceAnswer(
            f"device {device_id} answered with more than {MAX_ANSWER_BYTES} bytes"
        )
    try:
        answer = json.loads(raw)
    except ValueError:
        raise BadDeviceAnswer(
            f"device {device_id} answered with something else than JSON"
        ) from None
    if not isinstance(answer, dict) or type(answer.get("status")) is not int:
        raise BadDeviceAnswer(
            f'device {device_id} did not answer {{"status": int, "payload": ...}}'
        )
    return MethodResult(answer["status"], answer.get("payload"))


__all__ = ["DESIRED_VERSION_HEADER", "METHOD_HEADER", "DeviceCaller", "MethodResult"]
