"""Cross-cutting HTTP rules, as ASGI middleware: a request id on every response, the
api-version check, path segments no name can hold, and a cap on body sizes: declared ones are
refused before the app runs, undeclared (chunked) ones as soon as what arrives exceeds the cap
(in Azure the Functions host has buffered the body already).

The routes IoT Hub's SDKs call (shared/api/iothub.py) take any api-version (the SDK sends
its own, 2021-04-12) and are answered in IoT Hub's error shape."""

from __future__ import annotations

import json
import uuid
from typing import Any
from urllib.parse import parse_qs

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.api.iothub import hub_error_bytes, is_iot_path
from shared.errors import SchedulerError

API_VERSIONS = frozenset({"2016-03-01", "2016-01-01", "2014-08-01-preview"})
MAX_BODY_BYTES = 64 * 1024


class BodyTooLarge(SchedulerError):
    """The request body grew past the cap while the app was reading it (-> 413)."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"the body exceeds {limit} bytes")
        self.limit = limit


class FrontDoor:
    def __init__(self, app: ASGIApp, max_body: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.max_body = max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = str(uuid.uuid4())

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers.append((b"x-ms-request-id", request_id.encode()))
                message = {**message, "headers": headers}
            await send(message)

        hub = is_iot_path(str(scope.get("path", "")))
        version = _query_value(scope, "api-version")
        if not hub and version is not None and version not in API_VERSIONS:
            shown = "".join(c if c.isprintable() else "?" for c in version[:40])
            await _error(
                send_with_id,
                400,
                "MissingOrInvalidRequiredQueryParameter",
                f"api-version '{shown}' is not supported; use {max(API_VERSIONS)}",
                "api-version",
            )
            return
        problem = _path_problem(scope)
        if problem is not None:
            await _error(send_with_id, 400, "BadRequest", problem, "path", hub=hub)
            return
        declared = _header(scope, b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_body):
            await _too_large(send_with_id, self.max_body, hub=hub)
            return

        received = 0
        started = False

        async def capped_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body:
                    raise BodyTooLarge(self.max_body)
            return message

        async def send_tracked(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send_with_id(message)

        try:
            await self.app(scope, capped_receive, send_tracked)
        except BodyTooLarge:
            if started:
                raise
            await _too_large(send_with_id, self.max_body, hub=hub)


def _query_value(scope: Scope, name: str) -> str | None:
    """The parameter's first value; `?api-version=` is the empty string, not absent."""
    query = scope.get("query_string", b"").decode("latin-1")
    values = parse_qs(query, keep_blank_values=True).get(name)
    return values[0] if values else None


def _path_problem(scope: Scope) -> str | None:
    """Why the path cannot name a resource, if it cannot. A `/` in a name (`%2F`) would be
    decoded and routed to another resource; an empty segment (`//`, a trailing `/`) is a name
    left out, which the router would answer with a redirect. (In Azure the Functions host hands
    over the path decoded already, so there a `%2F` simply routes as a `/` would.)"""
    raw = scope.get("raw_path") or b""
    if b"%2f" in raw.lower():
        return "a name cannot contain '/' (%2F in the path)"
    path = str(scope.get("path", ""))
    if "//" in path or (len(path) > 1 and path.endswith("/")):
        return "the path has an empty segment: a name is missing (or there is a trailing '/')"
    return None


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return str(value.decode("latin-1"))
    return None


async def _too_large(send: Send, limit: int, *, hub: bool = False) -> None:
    message = f"the body exceeds {limit} bytes"
    await _error(send, 413, "RequestEntityTooLarge", message, "body", hub=hub)


async def _error(
    send: Send, status: int, code: str, message: str, target: str, *, hub: bool = False
) -> None:
    extra: list[tuple[bytes, bytes]] = []
    if hub:
        payload, extra = hub_error_bytes(status, f"{target}: {message}")
    else:
        body: dict[str, Any] = {"error": {"code": code, "message": message, "target": target}}
        payload = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
                *extra,
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})
