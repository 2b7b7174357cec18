"""An HTTP sink on 127.0.0.1 for the jobs' actions, in a process of its own.

Its own process, so an arrival is stamped when the request reaches the sink: a sink thread in
the app's process would wait for the app's GIL (timer pass, executor, API) before it could
stamp, and its own work would slow the app, neither of which a real target does. Each arrival
is sent back over a pipe; a reader thread here collects them and sets `changed`.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess

from aiohttp import web

EXPECTED_HEADER = "x-ms-scheduler-expected-execution-time"
JOB_HEADER = "x-ms-scheduler-jobid"
_STOP = "stop"


@dataclass(frozen=True)
class Arrival:
    at: datetime
    expected: str
    job: str


@dataclass
class ProcessSink:
    """Records every request; `changed` (an asyncio.Event of the caller's loop) is set on each."""

    changed: asyncio.Event
    arrivals: list[Arrival] = field(default_factory=list)
    port: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _caller: asyncio.AbstractEventLoop | None = None
    _process: BaseProcess | None = None
    _control: Connection | None = None
    _reader: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def snapshot(self) -> list[Arrival]:
        with self._lock:
            return list(self.arrivals)

    async def start(self) -> ProcessSink:
        self._caller = asyncio.get_running_loop()
        context = multiprocessing.get_context("spawn")  # no copy of this process's loop/threads
        events, child_events = context.Pipe(duplex=False)
        child_control, self._control = context.Pipe(duplex=False)
        self._process = context.Process(
            target=serve, args=(child_events, child_control), daemon=True
        )
        self._process.start()
        child_events.close()
        child_control.close()
        if not await asyncio.to_thread(events.poll, 30):
            raise RuntimeError("the HTTP sink did not start")
        self.port = int(events.recv())
        self._reader = threading.Thread(target=self._collect, args=(events,), daemon=True)
        self._reader.start()
        return self

    async def stop(self) -> None:
        if self._control is not None:
            self._control.send(_STOP)
            self._control.close()
            self._control = None
        if self._process is not None:
            await asyncio.to_thread(self._process.join, 10)
            if self._process.is_alive():
                self._process.terminate()  # our own child, by its handle
        if self._reader is not None:
            await asyncio.to_thread(self._reader.join, 10)

    def _collect(self, events: Connection) -> None:
        assert self._caller is not None
        try:
            while True:
                at, expected, job = events.recv()
                with self._lock:
                    self.arrivals.append(Arrival(datetime.fromisoformat(at), expected, job))
                self._caller.call_soon_threadsafe(self.changed.set)
        except (EOFError, OSError):
            pass  # the sink process ended
        finally:
            events.close()


def serve(events: Connection, control: Connection) -> None:
    """The sink process: answer 200 to everything, report each arrival, stop when told."""
    asyncio.run(_serve(events, control))


async def _serve(events: Connection, control: Connection) -> None:
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    loop.add_reader(control.fileno(), stopping.set)  # a message or the parent's end closing

    async def handle(request: web.Request) -> web.Response:
        at = datetime.now(UTC)
        events.send(
            (
                at.isoformat(),
                request.headers.get(EXPECTED_HEADER, ""),
                request.headers.get(JOB_HEADER, ""),
            )
        )
        await request.read()
        return web.Response(status=200, text="ok")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    events.send(runner.addresses[0][1])
    try:
        await stopping.wait()
    finally:
        loop.remove_reader(control.fileno())
        await runner.cleanup()
        events.close()
