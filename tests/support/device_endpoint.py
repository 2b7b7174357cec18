"""A device's HTTP endpoint on 127.0.0.1 (our registry extension): answers direct methods as a
device would and records desired-property pushes, for the registry's tests."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web


class DeviceEndpoint:
    """A device's endpoint: answers methods with `{"status", "payload"}` (echoing the call),
    records desired pushes; `delay` holds each answer that long (for the timeout test)."""

    def __init__(self) -> None:
        self.calls: list[tuple[dict[str, str], dict[str, Any]]] = []
        self.delay: float = 0
        self._arrived = asyncio.Condition()
        self._runner: web.AppRunner | None = None
        self._release = asyncio.Event()
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/device"

    async def start(self) -> DeviceEndpoint:
        app = web.Application()
        app.router.add_post("/device", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]  # the port the OS picked
        return self

    async def stop(self) -> None:
        self._release.set()
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.json()
        async with self._arrived:
            self.calls.append((dict(request.headers), body))
            self._arrived.notify_all()
        if self.delay:
            try:
                await asyncio.wait_for(self._release.wait(), self.delay)
            except TimeoutError:
                pass
        if "methodName" in body:
            return web.json_response({"status": 201, "payload": {"echo": body["payload"]}})
        return web.json_response({})

    async def wait_for(self, count: int, timeout: float = 10) -> None:
        async with self._arrived:
            await asyncio.wait_for(
                self._arrived.wait_for(lambda: len(self.calls) >= count), timeout
            )
