"""The HTTP action's wire (PinnedTransport: httpx's API over aiohttp): requests go out exactly as
httpx built them, only to addresses, the send-priority trace hears them written, and failures
come as the httpx errors the runner reports."""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import AsyncIterator

import httpx
import pytest

from shared.kinds.http.pinned_transport import PinnedTransport
from tests.support.http_target import HttpTarget

pytestmark = pytest.mark.integration


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    transport = PinnedTransport(ssl.create_default_context())
    async with httpx.AsyncClient(transport=transport, follow_redirects=False) as made:
        yield made


async def test_a_request_goes_out_with_exactly_the_headers_httpx_built(
    client: httpx.AsyncClient, target: HttpTarget
) -> None:
    request = client.build_request(
        "POST", f"{target.url}/hook", content=b'{"a": 1}', headers={"X-Job": "j1"}
    )
    response = await client.send(request)

    assert (response.status_code, response.reason_phrase, response.text) == (
        200,
        "OK",
        "answer 0 with 200",
    )
    received = target.requests[0]
    assert (received.method, received.path, received.body) == ("POST", "/hook", '{"a": 1}')
    sent = {name.lower(): value for name, value in received.headers.items()}
    assert sent == {name.lower(): value for name, value in request.headers.items()}
    assert "content-type" not in sent  # aiohttp would add application/octet-stream


async def test_a_host_name_is_refused_without_being_resolved(
    client: httpx.AsyncClient, target: HttpTarget
) -> None:
    with pytest.raises(httpx.ConnectError, match="not checked by the network guard"):
        await client.get(f"http://localhost:{target.port}/")
    assert target.requests == []


async def test_the_trace_hears_the_request_written_before_its_answer(
    client: httpx.AsyncClient,
) -> None:
    held = await HttpTarget(hold=True).start()
    try:
        written = asyncio.Event()

        async def trace(event: str, info: dict[str, object]) -> None:
            if event.endswith(".send_request_body.complete"):
                written.set()

        request = client.build_request("POST", f"{held.url}/x", content=b"body")
        request.extensions["trace"] = trace
        answer = asyncio.create_task(client.send(request))
        await asyncio.wait_for(written.wait(), 10)
        assert not answer.done()
        held.release()
        assert (await answer).status_code == 200
    finally:
        await held.stop()


async def test_failures_come_as_the_httpx_errors_the_runner_reports(
    client: httpx.AsyncClient,
) -> None:
    with socket.socket() as unused:  # a port nobody listens on
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    with pytest.raises(httpx.ConnectError):
        await client.get(f"http://127.0.0.1:{port}/")

    silent = await HttpTarget(hang=True).start()
    try:
        with pytest.raises(httpx.ReadTimeout):
            await client.get(f"{silent.url}/", timeout=httpx.Timeout(5, read=0.5))
    finally:
        await silent.stop()
