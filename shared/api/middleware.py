"""Cross-cutting HTTP rules, as ASGI middleware: a request id on every response, the
api-version check, and a cap on declared body sizes (the route re-checks what it reads; in
Azure the Functions host has buffered the body already)."""

from __future__ import annotations

import json
import uuid
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

API_VERSIONS = frozenset({"2016-03-01", "2016-01-01", "2014-08-01-preview"})
MAX_BODY_BYTES = 64 * 1024


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

        version = _query_value(scope, "api-version")
        if version is not None and version not in API_VERSIONS:
            await _error(
                send_with_id,
                400,
                "MissingOrInvalidRequiredQueryParameter",
                f"api-version '{version[:40]}' is not supported; use 2016-03-01",
                "api-version",
            )
            return
        declared = _header(scope, b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_body):
            await _too_large(send_with_id, self.max_body)
            return
        await self.app(scope, receive, send_with_id)


def _query_value(scope: Scope, name: str) -> str | None:
    from urllib.parse import parse_qs

    values = parse_qs(scope.get("query_string", b"").decode("latin-1")).get(name)
    return values[0] if values else None


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return str(value.decode("latin-1"))
    return None


async def _too_large(send: Send, limit: int) -> None:
    await _error(send, 413, "RequestEntityTooLarge", f"the body exceeds {limit} bytes", "body")


async def _error(send: Send, status: int, code: str, message: str, target: str) -> None:
    body: dict[str, Any] = {"error": {"code": code, "message": message, "target": target}}
    payload = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})
