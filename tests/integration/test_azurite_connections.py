"""The Azurite the tests, the bench and `make run` start keeps idle connections open as Azure
Storage does, so a client whose loop is busy never sends on a connection Azurite has closed."""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit

import pytest

from devhost.azurite import Azurite

pytestmark = pytest.mark.integration

# Azurite's own default closes a connection after 5 s idle.
AZURITE_DEFAULT_IDLE_SECONDS = 5


async def _closed_when_idle(port: int, idle: float) -> bool:
    """One keep-alive request, then whether the server closes the connection within `idle`."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(
            b"GET /devstoreaccount1?comp=list HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Connection: keep-alive\r\n\r\n"
        )
        await writer.drain()
        head = (await reader.readuntil(b"\r\n\r\n")).lower()
        if b"transfer-encoding: chunked" in head:
            await reader.readuntil(b"\r\n0\r\n\r\n")
        else:
            length = head.split(b"content-length:", 1)[1].split(b"\r\n", 1)[0]
            await reader.readexactly(int(length))
        try:
            return await asyncio.wait_for(reader.read(1), idle) == b""
        except TimeoutError:
            return False
    finally:
        writer.close()


async def test_azurite_keeps_an_idle_connection_open_past_its_default_5_seconds(
    azurite: Azurite,
) -> None:
    ports = [urlsplit(url).port for url in _endpoints(azurite.connection_string)]
    closed = await asyncio.gather(
        *(_closed_when_idle(port, AZURITE_DEFAULT_IDLE_SECONDS + 1.5) for port in ports if port)
    )
    assert closed == [False, False, False]


def _endpoints(connection: str) -> list[str]:
    parts = dict(p.split("=", 1) for p in connection.split(";") if "=" in p)
    return [parts["BlobEndpoint"], parts["QueueEndpoint"], parts["TableEndpoint"]]
