"""Serve the HTTP-trigger functions under the route prefix, over uvicorn.

A request becomes a `func.HttpRequest` (full URL, headers, query, route values, body bytes)
and the function's `func.HttpResponse` (or str) becomes the HTTP response. Repeated request
headers and query keys are joined with "," as the host does. `POST /admin/functions/<name>`
with `{"input": "..."}` runs a timer or queue function by hand (202), like the host's admin API.

Order, so that a request nobody may make costs nothing: the route is matched, then the key
checked, both before any body byte is read; then the body is read up to the host's limit
(`FUNCTIONS_REQUEST_BODY_SIZE_LIMIT`) and refused with 413 as soon as it passes it. The host's
own refusals (404 unknown route or method, 401, 413, 400 on the admin API) carry the API's
ARM-style JSON error body.

Function keys: with `key=None` (the default, like `func start`) nothing is checked. With a key,
functions whose authLevel is not anonymous, and the admin API, need it as the `x-functions-key`
header or the `code` query parameter; 401 otherwise.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import socket
from collections.abc import (
    Awaitable,
    Callable,
    Coroutine,
    Iterable,
    Iterator,
    Mapping,
    MutableMapping,
)
from typing import Any
from urllib.parse import parse_qsl

import azure.functions as func
import uvicorn

from devhost.functions import FunctionSpec
from devhost.http_errors import Response, error_response, not_found, shown, too_large, unauthorised
from devhost.invoker import Outcome, invoke
from devhost.request_body import BodyTooLarge, read_body
from devhost.routes import RouteTable
from devhost.settings import DEFAULT_REQUEST_BODY_LIMIT, REQUEST_BODY_LIMIT_SETTING
from devhost.tls import PemFiles

logger = logging.getLogger(__name__)

Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ManualInvoke = Callable[[str, str], Coroutine[Any, Any, Outcome]]

ADMIN_PREFIX = "/admin/functions/"


class HttpFrontend:
    """The ASGI application uvicorn serves: routing, keys, request/response conversion."""

    def __init__(
        self,
        specs: list[FunctionSpec],
        *,
        route_prefix: str,
        key: str | None,
        manual_invoke: ManualInvoke,
        manual_names: set[str],
        max_body: int = DEFAULT_REQUEST_BODY_LIMIT,
    ) -> None:
        self._routes: RouteTable[FunctionSpec] = RouteTable()
        for spec in specs:
            route = str(spec.trigger.get("route") or spec.name)
            self._routes.add(spec.name, route_prefix, route, spec.trigger.get("methods"), spec)
        self._key = key
        self._manual_invoke = manual_invoke
        self._manual_names = manual_names
        self._max_body = max_body
        self._background: set[asyncio.Task[Outcome]] = set()

    async def __call__(self, scope: Message, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        status, headers, content = await self._handle(scope, receive)
        headers.append(("content-length", str(len(content))))
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(name.lower().encode(), value.encode()) for name, value in headers],
            }
        )
        await send({"type": "http.response.body", "body": content})

    async def _handle(self, scope: Message, receive: Receive) -> Response:
        method, path = scope["method"], scope["path"]
        headers = _joined((k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"])
        query = scope["query_string"].decode("latin-1")
        params = _joined(parse_qsl(query, keep_blank_values=True))
        if method == "POST" and path.startswith(ADMIN_PREFIX):
            return await self._admin(path, headers, params, receive)
        found = self._routes.match(method, path)
        if found is None:
            return not_found(method, path)
        spec, route_params = found
        if not self._authorised(str(spec.trigger.get("authLevel")), headers, params):
            return unauthorised()
        try:
            body = await read_body(receive, headers, self._max_body)
        except BodyTooLarge:
            return too_large(self._max_body, REQUEST_BODY_LIMIT_SETTING)
        request = func.HttpRequest(
            method,
            _url(scope, headers, query),
            headers=headers,
            params=params,
            route_params=route_params,
            body=body,
        )
        return to_response(await invoke(spec, request, reason="HTTP request"))

    def _authorised(
        self, auth_level: str, headers: Mapping[str, str], params: Mapping[str, str]
    ) -> bool:
        if self._key is None or auth_level.lower() == "anonymous":
            return True
        given = headers.get("x-functions-key") or params.get("code") or ""
        return hmac.compare_digest(given.encode(), self._key.encode())

    async def _admin(
        self, path: str, headers: Mapping[str, str], params: Mapping[str, str], receive: Receive
    ) -> Response:
        if not self._authorised("admin", headers, params):
            return unauthorised()
        name = path.removeprefix(ADMIN_PREFIX).strip("/")
        if name not in self._manual_names:
            return error_response(
                404, "ResourceNotFound", f"no timer or queue function named {shown(name)!r}", "name"
            )
        try:
            body = await read_body(receive, headers, self._max_body)
        except BodyTooLarge:
            return too_large(self._max_body, REQUEST_BODY_LIMIT_SETTING)
        try:
            text = str((json.loads(body or b"{}") or {}).get("input") or "")
        except (ValueError, AttributeError):
            return error_response(
                400, "BadRequest", 'body: expected a JSON object like {"input": ""}', "body"
            )
        task = asyncio.create_task(self._manual_invoke(name, text))
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return 202, [], b""

    async def drain(self) -> None:
        """Wait for admin-started invocations (they run after their 202 was sent)."""
        if self._background:
            await asyncio.wait(self._background)


def to_response(outcome: Outcome) -> Response:
    """The function's return value as status, headers (repeats kept) and body."""
    value = outcome.value
    if not outcome.succeeded:
        return 500, [], b""
    if value is None:
        return 204, [], b""
    if isinstance(value, str):
        return 200, [("content-type", "text/plain; charset=utf-8")], value.encode()
    if isinstance(value, func.HttpResponse):
        headers = [(str(k), str(v)) for k, v in value.headers.items()]
        if not any(k.lower() == "content-type" for k, _ in headers):
            # The worker derives it from mimetype/charset (HttpResponseConverter.encode).
            content_type = value.mimetype
            if content_type.startswith("text/"):
                content_type = f"{content_type}; charset={value.charset}"
            headers.append(("content-type", content_type))
        framing = ("content-length", "transfer-encoding")
        headers = [(k, v) for k, v in headers if k.lower() not in framing]
        return value.status_code, headers, value.get_body() or b""
    logger.error("An HTTP function returned %s; expected HttpResponse or str", type(value))
    return 500, [], b""


def _joined(pairs: Iterable[tuple[str, str]]) -> dict[str, str]:
    joined: dict[str, str] = {}
    for name, value in pairs:
        joined[name] = f"{joined[name]},{value}" if name in joined else value
    return joined


def _url(scope: Message, headers: Mapping[str, str], query: str) -> str:
    server = scope.get("server") or ("localhost", 80)
    host = headers.get("host") or f"{server[0]}:{server[1]}"
    raw_path = scope.get("raw_path") or scope["path"].encode()
    return f"{scope['scheme']}://{host}{raw_path.decode('latin-1')}" + (
        f"?{query}" if query else ""
    )


class _Server(uvicorn.Server):
    """uvicorn without its signal handlers: the CLI (or the test) decides when to stop."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class HttpServer:
    """uvicorn on one socket; HTTPS when given PEM files (devhost/tls.py prepares them)."""

    def __init__(
        self, app: HttpFrontend, *, host: str, port: int, tls: PemFiles | None = None
    ) -> None:
        self._app = app
        self._host = host
        self._port = port
        self._tls = tls
        self._server: _Server | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> int:
        """Listen and return the bound port (useful with port 0)."""
        # Binding here (not in uvicorn) turns "port in use" into an OSError instead of sys.exit.
        sock = socket.create_server((self._host, self._port))
        port: int = sock.getsockname()[1]
        config = uvicorn.Config(
            self._app,
            host=self._host,
            port=port,
            lifespan="off",
            log_config=None,
            access_log=False,
            proxy_headers=False,
            timeout_graceful_shutdown=5,
            ssl_certfile=self._tls.certfile if self._tls else None,
            ssl_keyfile=self._tls.keyfile if self._tls else None,
            ssl_keyfile_password=self._tls.password if self._tls else None,
        )
        self._server = _Server(config)
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]))
        while not self._server.started:
            if self._task.done():
                self._task.result()
                raise RuntimeError("the HTTP server stopped during start-up")
            await asyncio.sleep(0.01)
        return port

    async def stop(self) -> None:
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            await self._task
        await self._app.drain()
