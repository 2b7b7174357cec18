"""The local host refuses what it must before reading a body, and stops reading at the limit.

Each test writes its request by hand on a socket (tests/support/raw_http.py) and waits for the
answer with the body unfinished: a host that buffers the whole body first never answers.
"""

from __future__ import annotations

import httpx
import pytest

from devhost.host import DevHost
from devhost.settings import DEFAULT_REQUEST_BODY_LIMIT, request_body_limit
from tests.devhost.test_http import HTTP_ONLY, SAMPLE, write_host_json
from tests.support.raw_http import RawRequest, chunks, send_then_wait_for_answer

LIMIT = 65536
KEY = "s3cret"
ONE_GIB = 1 << 30


@pytest.fixture
async def limited_host(tmp_path):
    settings = {**HTTP_ONLY, "FUNCTIONS_REQUEST_BODY_SIZE_LIMIT": str(LIMIT)}
    async with DevHost(
        SAMPLE, project_dir=write_host_json(tmp_path), settings_overrides=settings, port=0, key=KEY
    ) as host:
        yield host


@pytest.fixture
async def raw(limited_host):
    request = await RawRequest.open("127.0.0.1", limited_host.http_port)
    yield request
    await request.close()


@pytest.mark.parametrize(
    ("path", "headers", "status", "code"),
    [
        ("/api/nope", {}, 404, "ResourceNotFound"),
        ("/api/items/1", {}, 401, "Unauthorized"),
        ("/api/items/1", {"x-functions-key": "wrong"}, 401, "Unauthorized"),
        ("/api/items/1", {"x-functions-key": KEY}, 413, "RequestEntityTooLarge"),
    ],
)
async def test_route_then_key_then_declared_length_are_checked_before_any_body_byte(
    raw, path, headers, status, code
):
    """1 GiB is declared and nothing sent: the answer can only come from the head."""
    await raw.send_head("POST", path, {**headers, "content-length": str(ONE_GIB)})

    response = await raw.read_response()

    assert response.status == status
    assert response.headers["content-type"] == "application/json"
    assert response.json()["error"]["code"] == code
    assert KEY not in response.body.decode() and "wrong" not in response.body.decode()


async def test_without_the_key_a_chunked_upload_is_refused_unread(raw):
    await raw.send_head("POST", "/api/items/1", {})

    response = await send_then_wait_for_answer(raw, chunks(ONE_GIB, 16384), pause_after=LIMIT)

    assert response.status == 401
    assert response.json()["error"]["code"] == "Unauthorized"
    assert raw.body_bytes_sent < ONE_GIB


async def test_a_chunked_body_over_the_limit_is_refused_while_the_client_still_sends(
    limited_host, raw
):
    await raw.send_head("POST", "/api/items/1", {"x-functions-key": KEY})

    response = await send_then_wait_for_answer(raw, chunks(ONE_GIB, 16384), pause_after=LIMIT)

    assert response.status == 413
    assert response.json() == {
        "error": {
            "code": "RequestEntityTooLarge",
            "message": f"the request body exceeds {LIMIT} bytes "
            "(the host's limit, FUNCTIONS_REQUEST_BODY_SIZE_LIMIT)",
            "target": "body",
        }
    }
    assert LIMIT < raw.body_bytes_sent < ONE_GIB
    async with httpx.AsyncClient(base_url=limited_host.api_url) as client:
        assert (await client.get("/hello")).status_code == 200  # the host keeps serving


async def test_a_body_of_exactly_the_limit_is_served(limited_host):
    async with httpx.AsyncClient(base_url=limited_host.api_url) as client:
        response = await client.post(
            "/items/1", content=b"y" * LIMIT, headers={"x-functions-key": KEY}
        )

    assert response.status_code == 201
    assert len(response.json()["body"]) == LIMIT


@pytest.mark.parametrize(
    ("settings", "limit"),
    [
        ({}, DEFAULT_REQUEST_BODY_LIMIT),
        ({"FUNCTIONS_REQUEST_BODY_SIZE_LIMIT": ""}, DEFAULT_REQUEST_BODY_LIMIT),
        ({"FUNCTIONS_REQUEST_BODY_SIZE_LIMIT": " 4294967296 "}, 4294967296),
    ],
)
def test_the_limit_is_the_hosts_setting_with_its_documented_default(settings, limit):
    assert DEFAULT_REQUEST_BODY_LIMIT == 100 * 1024 * 1024
    assert request_body_limit(settings) == limit


@pytest.mark.parametrize("value", ["0", "-1", "100MB", "1e6", "²"])
def test_a_limit_that_is_not_a_positive_number_stops_the_start_up(value):
    with pytest.raises(ValueError, match="FUNCTIONS_REQUEST_BODY_SIZE_LIMIT"):
        request_body_limit({"FUNCTIONS_REQUEST_BODY_SIZE_LIMIT": value})
