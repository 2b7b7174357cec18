"""A real HTTP server on 127.0.0.1 for actions to call: records requests, answers as scripted."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

from aiohttp import web


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: str
    at: datetime
    monotonic: float


@dataclass
class HttpTarget:
    """Answers with `statuses` in turn (the last one repeats); `hang` never answers; `hold`
    answers only once the test calls `release()`. A caller that closes its connection before
    the answer is counted in `disconnected` (the handler is cancelled, as aiohttp does with
    `handler_cancellation`)."""

    statuses: list[int] = field(default_factory=lambda: [200])
    hang: bool = False
    hold: bool = False
    requests: list[Received] = field(default_factory=list)
    disconnected: list[int] = field(default_factory=list)
    _changed: asyncio.Condition = field(default_factory=asyncio.Condition)
    _stopping: asyncio.Event = field(default_factory=asyncio.Event)
    _released: asyncio.Event = field(default_factory=asyncio.Event)
    _runner: web.AppRunner | None = None
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> HttpTarget:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, handler_cancellation=True)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]  # the port the OS picked
        return self

    async def stop(self) -> None:
        self._stopping.set()
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.text()
        async with self._changed:
            index = len(self.requests)
            self.requests.append(
                Received(
                    request.method,
                    request.path,
                    dict(request.headers),
                    body,
                    datetime.now(UTC),
                    time.monotonic(),
                )
            )
            self._changed.notify_all()
        try:
            if self.hang:
                await self._stopping.wait()  # never answers; let go when the server stops
            elif self.hold:
                await self._released.wait()
        except asyncio.CancelledError:
            async with self._changed:
                self.disconnected.append(index)
                self._changed.notify_all()
            raise
        status = self.statuses[min(index, len(self.statuses) - 1)]
        return web.Response(status=status, text=f"answer {index} with {status}")

    def release(self) -> None:
        """Let every held call (and every later one) answer."""
        self._released.set()

    async def wait_disconnected(self, count: int, timeout: float = 30) -> list[int]:
        """Wait until `count` callers closed their connection before their answer; the
        indexes of their requests."""
        async with self._changed:
            await asyncio.wait_for(
                self._changed.wait_for(lambda: len(self.disconnected) >= count), timeout
            )
        return list(self.disconnected)

    async def wait_for(self, count: int, timeout: float = 30) -> list[Received]:
        """Wait (on an event, not a sleep) until `count` requests arrived."""
        async with self._changed:
            await asyncio.wait_for(
                self._changed.wait_for(lambda: len(self.requests) >= count), timeout
            )
        return list(self.requests)
