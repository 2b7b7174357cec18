"""The test proxy in front of Azurite behaves as a network does: a connection that storage
closes is closed for the client too (tests/support/flaky_proxy.py).

Real parts: a TCP server and the proxy on 127.0.0.1."""

from __future__ import annotations

import asyncio

import pytest

from tests.support.flaky_proxy import FlakyProxy

pytestmark = pytest.mark.integration


async def test_a_connection_the_server_closes_is_closed_for_the_client_too() -> None:
    """Azurite closes a keep-alive connection idle for 5 s; a client must see that, or its next
    request goes into a dead pipe and waits for its read timeout (the hang of
    test_a_recording_due_just_before_a_burst_waits_until_the_bursts_sends_are_out, run alone)."""

    async def answer_once_then_close(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
        await writer.drain()
        writer.close()  # as storage does once the connection has been idle too long

    server = await asyncio.start_server(answer_once_then_close, "127.0.0.1", 0)
    proxy = await FlakyProxy(server.sockets[0].getsockname()[1]).start()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
        writer.write(b"GET / HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n")
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(), 2)  # everything, up to the close
        assert answer.startswith(b"HTTP/1.1 200 OK")
        writer.close()
    finally:
        await proxy.stop()
        server.close()
        await server.wait_closed()
