"""One HTTP/1.1 request written by hand on a socket, so a test decides when each body byte goes.

httpx sends the whole body before it reads the answer; these tests need to read the answer while
the body is still unfinished, to prove the server answered without waiting for it.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import h11

ANSWER_TIMEOUT = 10.0  # fails a test whose server never answers; not a synchronisation


@dataclass
class RawResponse:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class RawRequest:
    """A connection that sends a request head, then body chunks one by one, then reads."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer
        self._connection = h11.Connection(h11.CLIENT)
        self.body_bytes_sent = 0

    @classmethod
    async def open(cls, host: str, port: int) -> RawRequest:
        reader, writer = await asyncio.open_connection(host, port)
        return cls(reader, writer)

    async def send_head(self, method: str, target: str, headers: dict[str, str]) -> None:
        """Sends the request line and headers; chunked unless a content-length is given."""
        fields = {"host": "127.0.0.1", **headers}
        if "content-length" not in fields:
            fields["transfer-encoding"] = "chunked"
        request = h11.Request(method=method, target=target, headers=list(fields.items()))
        await self._write(self._connection.send(request))

    async def send_chunk(self, data: bytes) -> None:
        await self._write(self._connection.send(h11.Data(data=data)))
        self.body_bytes_sent += len(data)

    async def read_response(self) -> RawResponse:
        return await asyncio.wait_for(self._read_response(), ANSWER_TIMEOUT)

    async def close(self) -> None:
        self._writer.close()
        try:
            await self._writer.wait_closed()
        except ConnectionError:
            pass  # the server may have closed first

    async def _write(self, data: bytes | None) -> None:
        self._writer.write(data or b"")
        await self._writer.drain()

    async def _read_response(self) -> RawResponse:
        head: h11.Response | None = None
        body = bytearray()
        while True:
            event = self._connection.next_event()
            if event is h11.NEED_DATA:
                self._connection.receive_data(await self._reader.read(65536))
            elif isinstance(event, h11.Response):
                head = event
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage) and head is not None:
                headers = {k.decode(): v.decode() for k, v in head.headers}
                return RawResponse(head.status_code, headers, bytes(body))
            elif isinstance(event, h11.ConnectionClosed):
                raise ConnectionError("the server closed the connection without an answer")


def chunks(total: int, size: int) -> Iterator[bytes]:
    """`total` bytes in chunks of `size`, made one at a time (a large body is never held)."""
    sent = 0
    while sent < total:
        chunk = b"x" * min(size, total - sent)
        sent += len(chunk)
        yield chunk


async def send_then_wait_for_answer(
    request: RawRequest, body: Iterator[bytes], pause_after: int
) -> RawResponse:
    """Sends `body` chunk by chunk until more than `pause_after` bytes are out, then waits for
    the answer with the rest of the body still unsent.

    The pause makes the proof independent of timing: a server that waits for the whole body
    never answers (the read times out); one that answers early does so while the client still
    holds the rest of the body.
    """
    for chunk in body:
        await request.send_chunk(chunk)
        if request.body_bytes_sent > pause_after:
            break
    return await request.read_response()
