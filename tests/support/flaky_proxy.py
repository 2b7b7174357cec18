"""A TCP proxy in front of Azurite that cuts connections on request: a flaky network, for real.

`cut_next_batch(after_storage=...)` arms it: the next request that is an entity-group transaction
(`POST .../$batch`) has its connection reset, either before the request reaches storage (it never
happened) or once storage has started to answer (it happened; the answer is lost).
`requests` notes when each request reached the proxy (monotonic clock) and its request line, so
a test can see which storage calls happened when.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import time
from dataclasses import dataclass, field


@dataclass
class FlakyProxy:
    target_port: int
    port: int = 0
    cuts: int = 0
    requests: list[tuple[float, str]] = field(default_factory=list)
    _armed: list[bool] = field(default_factory=list)  # one entry per cut to make
    _server: asyncio.Server | None = None
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    async def start(self) -> FlakyProxy:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            for task in list(self._tasks):
                task.cancel()
            await self._server.wait_closed()

    def cut_next_batch(self, *, after_storage: bool) -> None:
        self._armed.append(after_storage)

    async def _accept(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        server_r, server_w = await asyncio.open_connection("127.0.0.1", self.target_port)
        back = asyncio.create_task(_pipe(server_r, client_w))
        try:
            while data := await client_r.read(65536):
                if data[:8].split(b" ", 1)[0] in _METHODS:
                    line = data.split(b"\r\n", 1)[0].decode("latin-1")
                    self.requests.append((time.monotonic(), line))
                if self._armed and data.startswith(b"POST ") and b"$batch" in data[:400]:
                    after_storage = self._armed.pop(0)
                    self.cuts += 1
                    back.cancel()
                    if after_storage:
                        server_w.write(data)
                        await _until_answer(client_r, server_r, server_w)
                    _reset(client_w)
                    return
                server_w.write(data)
                await server_w.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            back.cancel()
            server_w.close()
            with contextlib.suppress(Exception):
                client_w.close()
            self._tasks.discard(task)


_METHODS = {b"GET", b"POST", b"PUT", b"MERGE", b"PATCH", b"DELETE", b"HEAD"}


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Storage's answers to the client until storage closes the connection, then close the
    client's too: storage closes keep-alive connections idle for 5 s, and a client whose
    half stayed open would send its next request into a dead pipe and wait for the answer
    until its read timeout (minutes)."""
    with contextlib.suppress(ConnectionError):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    writer.close()


async def _until_answer(
    client_r: asyncio.StreamReader, server_r: asyncio.StreamReader, server_w: asyncio.StreamWriter
) -> None:
    """Forward the rest of the request until storage starts answering (it has applied it)."""
    answer = asyncio.create_task(server_r.read(1))
    while not answer.done():
        more = asyncio.create_task(client_r.read(65536))
        await asyncio.wait({answer, more}, return_when=asyncio.FIRST_COMPLETED)
        if not more.done():
            more.cancel()
        elif more.result():
            server_w.write(more.result())
            await server_w.drain()
        else:
            await answer  # the client has sent everything it will


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with a TCP reset (SO_LINGER 0), as a dropped keep-alive connection does."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.close()
