"""The IoT Hub paths over real HTTP and HTTPS in the local host: no function key, a shared
access signature instead, checked by the guard; the rest of the API keeps its key."""

from __future__ import annotations

import asyncio
import base64
import gc
import shutil
import ssl
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from devhost.host import DevHost
from devhost.tls import HttpsCertificate
from shared.devices.sas import build_token
from shared.runtime import close_current_runtime
from tests.devhost.test_http import write_host_json
from tests.support.app_settings import app_settings
from tests.support.test_ca import ServerCertificate, make_server_certificate

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = "tests.devhost.iot_sample_app:app"
FUNCTION_KEY = "the-function-key"
OWNER_KEY = b"o" * 32
READER_KEY = b"r" * 32
POLICIES = (
    f"owner={base64.b64encode(OWNER_KEY).decode()}:RegistryRead,RegistryWrite,ServiceConnect;"
    f"reader={base64.b64encode(READER_KEY).decode()}:RegistryRead"
)


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> ServerCertificate:
    return make_server_certificate(tmp_path_factory.mktemp("tls"))


def token(host_name: str, policy: str = "owner", key: bytes = OWNER_KEY) -> dict[str, str]:
    """The header azure-iot-hub sends for a connection string with HostName=host_name."""
    return {"Authorization": build_token(host_name, policy, key, int(time.time()) + 3600)}


@pytest.fixture(params=["http", "https"])
async def iot_host(request, tmp_path, certificate) -> AsyncIterator[DevHost]:
    https = HttpsCertificate(certificate.pfx, password=certificate.password)
    async with DevHost(
        SAMPLE,
        project_dir=write_host_json(tmp_path),
        settings_overrides={"SCHEDULER_IOT_POLICIES": POLICIES},
        host="localhost",
        port=0,
        key=FUNCTION_KEY,
        https=https if request.param == "https" else None,
    ) as host:
        yield host


def client(host: DevHost, certificate: ServerCertificate) -> httpx.AsyncClient:
    # "localhost", as a client writes it: the Host header and the token's sr must agree.
    base = host.api_url.replace("127.0.0.1", "localhost")
    trusted = ssl.create_default_context(cafile=str(certificate.ca_pem))
    return httpx.AsyncClient(base_url=base, verify=trusted)


def hub_name(host: DevHost) -> str:
    return f"localhost:{host.http_port}/api"


def assert_iothub_401(response: httpx.Response, reason: str) -> None:
    assert response.status_code == 401
    assert response.headers["iothub-errorcode"] == "IotHubUnauthorizedAccess"
    body = response.json()
    assert body["Message"].startswith("ErrorCode:IotHubUnauthorizedAccess;")
    assert reason in body["Message"]
    assert body["ExceptionMessage"].startswith("Tracking ID:")


async def test_iot_hub_paths_need_no_function_key_but_a_signature(iot_host, certificate):
    async with client(iot_host, certificate) as http:
        signed = await http.get("/devices/d1", headers=token(hub_name(iot_host)))
        unsigned = await http.get("/devices/d1")
        keyed_only = await http.get("/devices/d1", headers={"x-functions-key": FUNCTION_KEY})

    assert signed.status_code == 200
    assert signed.json() == {"deviceId": "d1"}
    assert_iothub_401(unsigned, "no Authorization header")
    assert_iothub_401(keyed_only, "no Authorization header")


async def test_the_rest_of_the_api_still_needs_the_function_key(iot_host, certificate):
    async with client(iot_host, certificate) as http:
        without = await http.get("/ping", headers=token(hub_name(iot_host)))
        with_key = await http.get("/ping", headers={"x-functions-key": FUNCTION_KEY})

    assert without.status_code == 401
    assert without.json()["error"]["code"] == "Unauthorized"
    assert with_key.json() == {"pong": "keyed"}


async def test_a_read_only_policy_may_read_but_not_write_or_invoke(iot_host, certificate):
    reader = token(hub_name(iot_host), "reader", READER_KEY)
    async with client(iot_host, certificate) as http:
        read = await http.get("/devices/d1", headers=reader)
        write = await http.put("/devices/d1", headers=reader, json={})
        invoke = await http.post("/twins/d1/methods", headers=reader, json={})
        owner_write = await http.put("/devices/d1", headers=token(hub_name(iot_host)), json={})

    assert read.status_code == 200
    assert_iothub_401(write, "policy 'reader' does not grant RegistryWrite")
    assert_iothub_401(invoke, "policy 'reader' does not grant ServiceConnect")
    assert owner_write.json() == {"deviceId": "d1", "written": True}


async def test_a_token_for_another_host_a_wrong_key_or_expired_is_refused(iot_host, certificate):
    name = hub_name(iot_host)
    expired = {"Authorization": build_token(name, "owner", OWNER_KEY, int(time.time()) - 120)}
    async with client(iot_host, certificate) as http:
        other_port = await http.get("/devices/d1", headers=token("localhost:1/api"))
        wrong_key = await http.get("/devices/d1", headers=token(name, "owner", READER_KEY))
        too_old = await http.get("/devices/d1", headers=expired)

    assert_iothub_401(other_port, "does not cover 'localhost:")
    assert_iothub_401(wrong_key, "signature does not match")
    assert_iothub_401(too_old, "expired")


async def test_an_iot_hub_path_no_route_serves_is_guarded_then_404(iot_host, certificate):
    async with client(iot_host, certificate) as http:
        unsigned = await http.delete("/jobs/v2/j1")
        signed = await http.delete("/jobs/v2/j1", headers=token(hub_name(iot_host)))

    assert_iothub_401(unsigned, "no Authorization header")
    assert signed.status_code == 404
    assert signed.headers["iothub-errorcode"] == "NotFound"


@pytest.fixture
async def app_over_https(
    tmp_path: Path, storage_connection: str, unique_name: str, certificate: ServerCertificate
) -> AsyncIterator[DevHost]:
    """The real function_app.py in devhost, over HTTPS, with a function key and policies."""
    shutil.copy(ROOT / "host.json", tmp_path / "host.json")
    overrides = app_settings(
        storage_connection,
        unique_name,
        DISPATCH_SCHEDULE="0 0 0 1 1 *",  # the timer stays out of the way
        SCHEDULER_IOT_POLICIES=POLICIES,
    )
    https = HttpsCertificate(certificate.cert_pem, certificate.key_pem)
    async with DevHost(
        project_dir=tmp_path,
        settings_overrides=overrides,
        host="localhost",
        port=0,
        key=FUNCTION_KEY,
        https=https,
    ) as host:
        yield host
        # The SDK's clients keep a kept-alive TLS connection that only their collection closes:
        # collect them before the host stops, which would otherwise wait its graceful 5 s.
        gc.collect()
    await close_current_runtime()


@pytest.mark.e2e
async def test_the_app_serves_iot_hub_paths_by_signature_and_the_rest_by_key(
    app_over_https, certificate
):
    name = hub_name(app_over_https)
    async with client(app_over_https, certificate) as http:
        signed = await http.get("/devices/x", headers=token(name))
        unsigned = await http.get("/devices/x")
        collections_without_key = await http.get("/jobCollections", headers=token(name))
        collections_with_key = await http.get(
            "/jobCollections", headers={"x-functions-key": FUNCTION_KEY}
        )

    assert signed.status_code == 404  # authenticated, then looked up: no such device
    assert signed.headers["iothub-errorcode"] == "DeviceNotFound"
    assert_iothub_401(unsigned, "no Authorization header")
    assert collections_without_key.status_code == 401
    assert collections_without_key.json()["error"]["code"] == "Unauthorized"
    assert collections_with_key.status_code == 200


@pytest.mark.e2e
async def test_the_official_sdk_reaches_the_guard_over_https(
    app_over_https, certificate, monkeypatch
):
    """azure-iot-hub 2.7.0, unchanged, trusting the test CA through the environment as a user
    would: a good key passes the guard (404: the registry is not served yet), a bad one gets
    IoT Hub's 401."""
    from azure.iot.hub import IoTHubRegistryManager
    from msrest.exceptions import HttpOperationError

    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(certificate.ca_pem))
    name = hub_name(app_over_https)
    owner = base64.b64encode(OWNER_KEY).decode()
    wrong = base64.b64encode(READER_KEY).decode()

    def get_device(key: str) -> HttpOperationError:
        conn = f"HostName={name};SharedAccessKeyName=owner;SharedAccessKey={key}"
        with pytest.raises(HttpOperationError) as failed:
            IoTHubRegistryManager(conn).get_device("x")
        return failed.value

    accepted = await asyncio.to_thread(get_device, owner)
    refused = await asyncio.to_thread(get_device, wrong)

    assert accepted.response.status_code == 404
    assert refused.response.status_code == 401
    assert refused.response.headers["iothub-errorcode"] == "IotHubUnauthorizedAccess"
