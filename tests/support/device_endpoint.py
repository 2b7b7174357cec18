"""A device's HTTP endpoint on 127.0.0.1 (our registry extension): answers direct methods as a
device would and records desired-property pushes, for the registry's tests."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web


class DeviceEndpoint:
    """A device's endpoint: answers methods with `{"status", "payload"}` (echoing the call),
    records desired pushes; `delay` holds each answer that long (for the timeout test), and the
    devices in `held` (by the `?d=` of their endpoint URI) hold theirs until `release()`."""

    def __init__(self) -> None:
        self.calls: list[tuple[dict[str, str], dict[str, Any]]] = []
        self.callers: list[str | None] = []  # each call's `?d=`, in the order of `calls`
        self.arrived: list[float] = []  # each call's arrival on the event loop's clock
        self.delay: float = 0
        self.held: frozenset[str] = frozenset()
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
            self.callers.append(request.query.get("d"))
            self.arrived.append(asyncio.get_running_loop().time())
            self._arrived.notify_all()
        if request.query.get("d") in self.held:
            await self._release.wait()
        elif self.delay:
            try:
                await asyncio.wait_for(self._release.wait(), self.delay)
            except TimeoutError:
                pass
        if "methodName" in body:
            return web.json_response({"status": 201, "payload": {"echo": body["payload"]}})
        return web.json_response({})

    def release(self) -> None:
        """Let every held answer go, and the calls still to come answer at once."""
        self._release.set()

    def calls_of(self, device_id: str) -> list[dict[str, str]]:
        """The headers of each call that reached this device."""
        return [
            headers
            for (headers, _), caller in zip(self.calls, self.callers, strict=True)
            if caller == device_id
        ]

    async def wait_for(self, count: int, timeout: float = 10) -> None:
        async with self._arrived:
            await asyncio.wait_for(
                self._arrived.wait_for(lambda: len(self.calls) >= count), timeout
            )
