"""An HTTP sink on 127.0.0.1 for the jobs' actions, on its own thread and event loop.

Its own loop, so an arrival is stamped when the request reaches the sink, not when the app's
busy loop (timer pass, executor, API) next gets round to it.
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime

from aiohttp import web

EXPECTED_HEADER = "x-ms-scheduler-expected-execution-time"
JOB_HEADER = "x-ms-scheduler-jobid"


@dataclass(frozen=True)
class Arrival:
    at: datetime
    expected: str
    job: str


@dataclass
class ThreadedSink:
    """Records every request; `changed` (an asyncio.Event of the caller's loop) is set on each."""

    changed: asyncio.Event
    arrivals: list[Arrival] = field(default_factory=list)
    port: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _caller: asyncio.AbstractEventLoop | None = None
    _loop: asyncio.AbstractEventLoop | None = None
    _stop: asyncio.Event | None = None
    _thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def snapshot(self) -> list[Arrival]:
        with self._lock:
            return list(self.arrivals)

    async def start(self) -> ThreadedSink:
        self._caller = asyncio.get_running_loop()
        ready = threading.Event()
        self._thread = threading.Thread(target=asyncio.run, args=(self._serve(ready),), daemon=True)
        self._thread.start()
        if not await asyncio.to_thread(ready.wait, 10):
            raise RuntimeError("the HTTP sink did not start")
        return self

    async def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join, 10)

    async def _serve(self, ready: threading.Event) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        self.port = runner.addresses[0][1]
        ready.set()
        try:
            await self._stop.wait()
        finally:
            await runner.cleanup()

    async def _handle(self, request: web.Request) -> web.Response:
        at = datetime.now(UTC)
        arrival = Arrival(
            at, request.headers.get(EXPECTED_HEADER, ""), request.headers.get(JOB_HEADER, "")
        )
        with self._lock:
            self.arrivals.append(arrival)
        assert self._caller is not None
        self._caller.call_soon_threadsafe(self.changed.set)
        await request.read()
        return web.Response(status=200, text="ok")
