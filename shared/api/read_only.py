"""SCHEDULER_READ_ONLY: every request that could change something is refused with 403 before the
app runs it (the dashboard also hides its buttons, but the server is what enforces it). The
timer and the executors are not HTTP and keep running.

While the app is writable, a change that went through also makes the dashboard read its job
list again at the next request, so what a person just did shows at once."""

from __future__ import annotations

import json

from starlette.types import ASGIApp, Receive, Scope, Send

from shared.api.iothub import hub_error_bytes, is_iot_path
from shared.api.refs import RuntimeProvider

READING_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
REASON = "the app is read-only (SCHEDULER_READ_ONLY=true): no change is accepted"


class ChangeGate:
    def __init__(self, app: ASGIApp, get_runtime: RuntimeProvider) -> None:
        self.app = app
        self.get_runtime = get_runtime

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("method", "GET") in READING_METHODS:
            await self.app(scope, receive, send)
            return
        runtime = await self.get_runtime()
        if runtime.settings.read_only:
            await _refuse(send, is_iot_path(str(scope.get("path", ""))))
            return
        try:
            await self.app(scope, receive, send)
        finally:
            runtime.dashboard.forget()


async def _refuse(send: Send, hub: bool) -> None:
    headers = [(b"content-type", b"application/json")]
    if hub:
        payload, extra = hub_error_bytes(403, REASON)
        headers += extra
    else:
        body = {"error": {"code": "ReadOnly", "message": REASON, "target": "SCHEDULER_READ_ONLY"}}
        payload = json.dumps(body).encode()
    headers.append((b"content-length", str(len(payload)).encode()))
    await send({"type": "http.response.start", "status": 403, "headers": headers})
    await send({"type": "http.response.body", "body": payload})
