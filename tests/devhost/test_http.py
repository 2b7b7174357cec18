"""HTTP functions served over real HTTP on 127.0.0.1: routing, conversion, prefix, keys."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from devhost.host import DevHost

SAMPLE = "tests.devhost.sample_app:app"
HTTP_ONLY = {
    "AzureWebJobs.tick.Disabled": "true",
    "AzureWebJobs.work.Disabled": "true",
}


def write_host_json(directory: Path, route_prefix: str | None = None) -> Path:
    http = {} if route_prefix is None else {"routePrefix": route_prefix}
    document = {"version": "2.0", "extensions": {"http": http}}
    (directory / "host.json").write_text(json.dumps(document))
    return directory


@pytest.fixture
async def sample_host(tmp_path):
    async with DevHost(
        SAMPLE, project_dir=write_host_json(tmp_path), settings_overrides=HTTP_ONLY, port=0
    ) as host:
        yield host


async def test_get_with_route_params_query_and_headers(sample_host):
    async with httpx.AsyncClient(base_url=sample_host.api_url) as client:
        response = await client.get(
            "/items/42", params=[("x", "1"), ("x", "2"), ("y", "")], headers={"X-Sample": "hi"}
        )

    assert response.status_code == 201
    assert response.headers["content-type"] == "application/json"
    assert response.headers.get_list("set-cookie") == ["a=1", "b=2"]
    echoed = response.json()
    assert echoed["method"] == "GET"
    assert echoed["url"] == f"{sample_host.api_url}/items/42?x=1&x=2&y="
    assert echoed["route_params"] == {"item_id": "42"}
    assert echoed["params"] == {"x": "1,2", "y": ""}
    assert echoed["header"] == "hi"


async def test_post_body_round_trips(sample_host):
    async with httpx.AsyncClient(base_url=sample_host.api_url) as client:
        response = await client.post("/ITEMS/7/", content="héllo".encode())

    assert response.status_code == 201
    assert response.json()["method"] == "POST"
    assert response.json()["body"] == "héllo"
    assert response.json()["route_params"] == {"item_id": "7"}


async def test_sync_function_gets_a_context_and_may_return_str(sample_host):
    async with httpx.AsyncClient(base_url=sample_host.api_url) as client:
        response = await client.get("/hello")

    assert response.status_code == 200
    assert response.text == "hello from hello"
    assert response.headers["content-type"] == "text/plain; charset=utf-8"


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/nope"),
        ("PUT", "/api/items/1"),
        ("GET", "/items/1"),
        ("GET", "/api/items"),
        ("GET", "/api/hello%0A"),
        ("GET", "/api/he%0Allo"),
        ("GET", "/%0A"),
    ],
)
async def test_unknown_route_or_method_is_a_json_404_like_the_api(sample_host, method, path):
    async with httpx.AsyncClient(base_url=sample_host.base_url) as client:
        response = await client.request(method, path)

    assert response.status_code == 404
    assert response.headers["content-type"] == "application/json"
    error = response.json()["error"]
    assert error["code"] == "ResourceNotFound"
    assert error["target"] == "path"
    assert "\n" not in error["message"]  # control characters are not echoed


async def test_a_failing_function_is_500_and_the_host_keeps_serving(sample_host):
    async with httpx.AsyncClient(base_url=sample_host.api_url) as client:
        failed = await client.get("/broken")
        after = await client.get("/hello")

    assert failed.status_code == 500
    assert after.status_code == 200


@pytest.mark.parametrize(("prefix", "path"), [("", "/items/1"), ("v1/", "/v1/items/1")])
async def test_route_prefix_comes_from_host_json(tmp_path, prefix, path):
    write_host_json(tmp_path, route_prefix=prefix)
    async with (
        DevHost(SAMPLE, project_dir=tmp_path, settings_overrides=HTTP_ONLY, port=0) as host,
        httpx.AsyncClient(base_url=host.base_url) as client,
    ):
        assert (await client.get(path)).status_code == 201
        assert (await client.get(f"/api{path}")).status_code == 404


async def test_a_key_is_required_for_function_level_routes_when_set(tmp_path):
    async with (
        DevHost(
            SAMPLE,
            project_dir=write_host_json(tmp_path),
            settings_overrides=HTTP_ONLY,
            port=0,
            key="secret",
        ) as host,
        httpx.AsyncClient(base_url=host.api_url) as client,
    ):
        missing = await client.get("/items/1")
        wrong = await client.get("/items/1", params={"code": "wrong"})
        for refused in (missing, wrong):
            assert refused.status_code == 401
            assert refused.headers["content-type"] == "application/json"
            assert refused.json()["error"]["code"] == "Unauthorized"
            assert "wrong" not in refused.text and "secret" not in refused.text
        assert (await client.get("/items/1", params={"code": "secret"})).status_code == 201
        assert (
            await client.get("/items/1", headers={"x-functions-key": "secret"})
        ).status_code == 201
        assert (await client.get("/hello")).status_code == 200  # anonymous


async def test_asgi_function_app_serves_its_catch_all_route(tmp_path):
    async with (
        DevHost(
            "tests.devhost.sample_app:asgi_app", project_dir=write_host_json(tmp_path), port=0
        ) as host,
        httpx.AsyncClient(base_url=host.api_url) as client,
    ):
        got = await client.get("/ping/x", params={"q": "1"})
        put = await client.put("/ping/y", content=b"payload")

    assert got.status_code == 200
    assert got.json() == {
        "name": "x",
        "path": "/api/ping/x",
        "query": "q=1",
        "body": "",
        "lifespan_started": True,
    }
    assert put.json()["body"] == "payload"


async def test_a_path_with_control_characters_reaches_the_asgi_catch_all(tmp_path):
    """As in ASP.NET Core routing, `{*route}` takes every character of the decoded path, so
    the app (not the host) answers: here its route matches; for the API, its own JSON 404."""
    async with (
        DevHost(
            "tests.devhost.sample_app:asgi_app", project_dir=write_host_json(tmp_path), port=0
        ) as host,
        httpx.AsyncClient(base_url=host.api_url) as client,
    ):
        response = await client.get("/ping/a%0Ab")
        unknown = await client.get("/nothing%0Ahere")

    assert response.status_code == 200
    assert response.json()["name"] == "a\nb"
    assert unknown.status_code == 404
    assert unknown.json() == {"detail": "Not Found"}  # FastAPI's own answer, from the app


@pytest.mark.parametrize("key", ["", " "])
def test_a_blank_key_is_refused_instead_of_leaving_the_api_open(key):
    with pytest.raises(ValueError, match="blank"):
        DevHost(SAMPLE, key=key)


async def test_a_blank_key_setting_stops_the_start_up(tmp_path):
    settings = {**HTTP_ONLY, "DEVHOST_FUNCTION_KEY": "  "}
    host = DevHost(SAMPLE, project_dir=write_host_json(tmp_path), settings_overrides=settings)

    with pytest.raises(ValueError, match="DEVHOST_FUNCTION_KEY is blank"):
        await host.start()


async def test_an_empty_key_setting_means_unset_and_the_api_is_open(tmp_path, caplog):
    """The example settings file ships DEVHOST_FUNCTION_KEY empty: that is "no key"."""
    settings = {**HTTP_ONLY, "DEVHOST_FUNCTION_KEY": ""}
    caplog.set_level("INFO", logger="devhost.host")
    async with (
        DevHost(
            SAMPLE, project_dir=write_host_json(tmp_path), settings_overrides=settings, port=0
        ) as host,
        httpx.AsyncClient(base_url=host.api_url) as client,
    ):
        assert host.key is None
        assert (await client.get("/items/1")).status_code == 201
    assert "function keys are not enforced" in caplog.text
