"""Compatibility: the unmodified official service SDK (azure-iot-hub 2.7.0) drives the device
registry of the real function_app.py in the local host, over HTTPS, on Azurite.

As a user would: the connection string's HostName is `localhost:{port}/api`, the SDK trusts the
test CA through `REQUESTS_CA_BUNDLE`, and nothing in the SDK is patched. The SDK is synchronous
(requests), so each call runs in a worker thread while the host serves on the event loop. The
device endpoint (our extension, unknown to the SDK) is registered with a plain signed request.
"""

from __future__ import annotations

import asyncio
import base64
import gc
import shutil
import ssl
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from azure.iot.hub import IoTHubJobManager, IoTHubRegistryManager
from azure.iot.hub.models import (
    CloudToDeviceMethod,
    CloudToDeviceMethodResult,
    Device,
    DeviceJobStatistics,
    JobRequest,
    JobResponse,
    QueryResult,
    QuerySpecification,
    Twin,
    TwinProperties,
)
from msrest.exceptions import ClientRequestError, HttpOperationError

from devhost.host import DevHost
from devhost.tls import HttpsCertificate
from shared.devices.sas import AccessPolicy, IotRight
from shared.runtime import close_current_runtime
from tests.support.app_settings import app_settings
from tests.support.device_endpoint import DeviceEndpoint
from tests.support.iot import SignIotRequests
from tests.support.test_ca import ServerCertificate, make_server_certificate

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
OWNER = AccessPolicy(
    name="iothubowner",
    key=b"o" * 32,
    rights=frozenset({IotRight.REGISTRY_READ, IotRight.REGISTRY_WRITE, IotRight.SERVICE_CONNECT}),
)
READER = AccessPolicy(
    name="registryRead", key=b"r" * 32, rights=frozenset({IotRight.REGISTRY_READ})
)
PRIMARY = base64.b64encode(b"p" * 32).decode()
SECONDARY = base64.b64encode(b"s" * 32).decode()

NEVER = datetime(1, 1, 1, tzinfo=UTC)

T = TypeVar("T")


def policies_setting(*policies: AccessPolicy) -> str:
    return ";".join(
        f"{p.name}={base64.b64encode(p.key).decode()}:{','.join(sorted(p.rights))}"
        for p in policies
    )


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> ServerCertificate:
    return make_server_certificate(tmp_path_factory.mktemp("tls"))


@dataclass
class Hub:
    """The app as an IoT Hub: its host name as a connection string carries it."""

    host: DevHost
    certificate: ServerCertificate

    @property
    def host_name(self) -> str:
        return f"localhost:{self.host.http_port}/api"

    def connection_string(self, policy: AccessPolicy = OWNER) -> str:
        key = base64.b64encode(policy.key).decode()
        return f"HostName={self.host_name};SharedAccessKeyName={policy.name};SharedAccessKey={key}"

    def registry(self, policy: AccessPolicy = OWNER) -> IoTHubRegistryManager:
        return IoTHubRegistryManager.from_connection_string(self.connection_string(policy))

    def signed_client(self) -> httpx.AsyncClient:
        """For what the SDK cannot say (our `endpoint` extension): a plain signed request."""
        trusted = ssl.create_default_context(cafile=str(self.certificate.ca_pem))
        return httpx.AsyncClient(
            base_url=f"https://{self.host_name}", verify=trusted, auth=SignIotRequests(OWNER)
        )


@pytest.fixture
async def hub(
    tmp_path: Path,
    storage_connection: str,
    unique_name: str,
    certificate: ServerCertificate,
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[Hub]:
    """function_app.py in devhost over HTTPS; the SDK trusts the test CA by the environment."""
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(certificate.ca_pem))
    shutil.copy(ROOT / "host.json", tmp_path / "host.json")
    overrides = app_settings(
        storage_connection,
        unique_name,
        DISPATCH_SCHEDULE="0 0 0 1 1 *",  # the timer stays out of the way
        SCHEDULER_IOT_POLICIES=policies_setting(OWNER, READER),
    )
    https = HttpsCertificate(certificate.cert_pem, certificate.key_pem)
    async with DevHost(
        project_dir=tmp_path, settings_overrides=overrides, host="localhost", port=0, https=https
    ) as host:
        yield Hub(host, certificate)
        # The SDK's clients keep a kept-alive TLS connection that only their collection
        # closes (their close() leaves it open): collect them before the host stops, which
        # would otherwise wait its whole graceful 5 s for that connection.
        gc.collect()
    await close_current_runtime()


async def sdk(call: Callable[..., T], *args: Any) -> T:
    """One SDK call, off the event loop (the SDK blocks on requests)."""
    return await asyncio.to_thread(call, *args)


async def sdk_error(call: Callable[..., Any], *args: Any) -> HttpOperationError:
    with pytest.raises(HttpOperationError) as failed:
        await sdk(call, *args)
    return failed.value


def assert_hub_error(error: HttpOperationError, status: int, code: str) -> None:
    assert error.response.status_code == status, error.response.text
    assert error.response.headers["iothub-errorcode"] == code
    assert error.response.json()["Message"].startswith(f"ErrorCode:{code};")


def assert_device(device: Device, device_id: str, status: str) -> None:
    """Every field the SDK deserialises, populated as IoT Hub populates it."""
    assert isinstance(device, Device)
    assert device.device_id == device_id
    assert device.status == status
    assert device.etag and base64.b64decode(device.etag)
    assert device.generation_id
    assert device.connection_state == "Disconnected"
    assert abs(device.status_updated_time - datetime.now(UTC)) < timedelta(minutes=5)
    assert device.last_activity_time == NEVER  # IoT Hub's "not yet"
    assert device.connection_state_updated_time == NEVER
    assert device.cloud_to_device_message_count == 0
    assert device.authentication.type == "sas"
    assert device.authentication.symmetric_key.primary_key == PRIMARY
    assert device.authentication.symmetric_key.secondary_key == SECONDARY
    assert device.capabilities.iot_edge is False


async def test_devices_created_read_updated_listed_and_deleted_with_etags(hub: Hub) -> None:
    registry = hub.registry()

    created = await sdk(registry.create_device_with_sas, "pump-1", PRIMARY, SECONDARY, "enabled")
    assert_device(created, "pump-1", "enabled")
    assert_hub_error(
        await sdk_error(registry.create_device_with_sas, "pump-1", PRIMARY, SECONDARY, "enabled"),
        409,
        "DeviceAlreadyExists",
    )
    read = await sdk(registry.get_device, "pump-1")
    assert_device(read, "pump-1", "enabled")
    assert (read.etag, read.generation_id) == (created.etag, created.generation_id)

    updated = await sdk(
        registry.update_device_with_sas, "pump-1", read.etag, PRIMARY, SECONDARY, "disabled"
    )
    assert_device(updated, "pump-1", "disabled")
    assert updated.etag != read.etag
    stale = await sdk_error(
        registry.update_device_with_sas, "pump-1", read.etag, PRIMARY, SECONDARY, "enabled"
    )
    assert_hub_error(stale, 412, "PreconditionFailed")

    await sdk(registry.create_device_with_sas, "pump-2", PRIMARY, SECONDARY, "enabled")
    listed = await sdk(registry.get_devices, 10)
    assert sorted(d.device_id for d in listed) == ["pump-1", "pump-2"]
    assert all(isinstance(d, Device) and d.etag for d in listed)
    assert len(await sdk(registry.get_devices, 1)) == 1

    assert_hub_error(
        await sdk_error(registry.delete_device, "pump-1", read.etag), 412, "PreconditionFailed"
    )
    await sdk(registry.delete_device, "pump-1", updated.etag)
    await sdk(registry.delete_device, "pump-2")  # no etag: the SDK sends If-Match "*"
    assert_hub_error(await sdk_error(registry.get_device, "pump-1"), 404, "DeviceNotFound")
    assert await sdk(registry.get_devices, 10) == []


async def test_twins_updated_with_etag_or_wildcard_and_replaced(hub: Hub) -> None:
    registry = hub.registry()
    await sdk(registry.create_device_with_sas, "pump-1", PRIMARY, SECONDARY, "enabled")

    twin = await sdk(registry.get_twin, "pump-1")
    assert isinstance(twin, Twin)
    assert (twin.device_id, twin.status, twin.version) == ("pump-1", "enabled", 1)
    assert twin.etag and twin.device_etag
    assert twin.connection_state == "Disconnected"
    assert twin.authentication_type == "sas"
    assert abs(twin.status_update_time - datetime.now(UTC)) < timedelta(minutes=5)
    assert twin.last_activity_time == NEVER
    assert twin.cloud_to_device_message_count == 0
    assert twin.capabilities.iot_edge is False
    assert twin.tags == {}
    assert twin.properties.desired["$version"] == 1
    assert twin.properties.reported["$version"] == 1

    patch = Twin(tags={"site": "berlin"}, properties=TwinProperties(desired={"rate": 5}))
    patched = await sdk(registry.update_twin, "pump-1", patch, twin.etag)
    assert patched.tags == {"site": "berlin"}
    assert patched.properties.desired["rate"] == 5
    assert patched.properties.desired["$version"] == 2
    assert patched.version == 2
    assert patched.etag != twin.etag
    assert patched.device_etag == twin.device_etag  # a twin change is not a device change
    stale = await sdk_error(registry.update_twin, "pump-1", patch, twin.etag)
    assert_hub_error(stale, 412, "PreconditionFailed")

    more = Twin(tags={"floor": 2}, properties=TwinProperties(desired={"rate": None, "mode": "eco"}))
    wildcard = await sdk(registry.update_twin, "pump-1", more, "*")  # sent as If-Match: "*"
    assert wildcard.tags == {"site": "berlin", "floor": 2}
    assert {k: v for k, v in wildcard.properties.desired.items() if not k.startswith("$")} == {
        "mode": "eco"
    }
    assert wildcard.version == 3

    replacement = Twin(tags={"site": "paris"}, properties=TwinProperties(desired={"rate": 1}))
    replaced = await sdk(registry.replace_twin, "pump-1", replacement, wildcard.etag)
    assert replaced.tags == {"site": "paris"}
    assert {k: v for k, v in replaced.properties.desired.items() if not k.startswith("$")} == {
        "rate": 1
    }
    assert replaced.version == 4
    assert (await sdk(registry.get_twin, "pump-1")).etag == replaced.etag


async def test_a_twin_query_pages_through_continuations(hub: Hub) -> None:
    registry = hub.registry()
    for number in range(5):
        device_id = f"pump-{number}"
        await sdk(registry.create_device_with_sas, device_id, PRIMARY, SECONDARY, "enabled")
        site = "berlin" if number % 2 == 0 else "paris"
        await sdk(registry.update_twin, device_id, Twin(tags={"site": site}), "*")

    query = QuerySpecification(query="SELECT * FROM devices WHERE tags.site = 'berlin'")
    found: list[str] = []
    token: str | None = None
    pages = 0
    while True:
        page = await sdk(registry.query_iot_hub, query, token, 2)
        pages += 1
        assert page.type == "twin"
        assert len(page.items) <= 2
        assert all(
            isinstance(item, Twin) and item.tags == {"site": "berlin"} for item in page.items
        )
        found += [item.device_id for item in page.items]
        token = page.continuation_token
        if token is None:
            break
        assert pages < 10
    assert sorted(found) == ["pump-0", "pump-2", "pump-4"]
    assert pages >= 2


@pytest.fixture
async def device_endpoint() -> AsyncIterator[DeviceEndpoint]:
    endpoint = await DeviceEndpoint().start()
    yield endpoint
    await endpoint.stop()


async def test_a_direct_method_reaches_the_registered_endpoint(
    hub: Hub, device_endpoint: DeviceEndpoint
) -> None:
    registry = hub.registry()
    await sdk(registry.create_device_with_sas, "pump-1", PRIMARY, SECONDARY, "enabled")
    await sdk(registry.create_device_with_sas, "pump-2", PRIMARY, SECONDARY, "enabled")
    async with hub.signed_client() as http:
        registered = await http.put(
            "/devices/pump-1",
            headers={"If-Match": "*"},
            json={"endpoint": {"uri": device_endpoint.url, "headers": {"x-device-key": "k1"}}},
        )
    assert registered.status_code == 200, registered.text

    call = CloudToDeviceMethod(
        method_name="reboot", payload={"delay": 5}, response_timeout_in_seconds=30
    )
    result = await sdk(registry.invoke_device_method, "pump-1", call)
    assert isinstance(result, CloudToDeviceMethodResult)
    assert result.status == 201
    assert result.payload == {"echo": {"delay": 5}}
    headers, body = device_endpoint.calls[0]
    assert headers["iothub-method-name"] == "reboot"
    assert headers["x-device-key"] == "k1"
    assert body == {"methodName": "reboot", "payload": {"delay": 5}}

    # The SDK's own update (it does not know `endpoint`) keeps the registered endpoint.
    device = await sdk(registry.get_device, "pump-1")
    await sdk(registry.update_device_with_sas, "pump-1", device.etag, PRIMARY, SECONDARY, "enabled")
    await sdk(registry.invoke_device_method, "pump-1", CloudToDeviceMethod(method_name="ping"))
    assert device_endpoint.calls[1][1] == {"methodName": "ping", "payload": ""}

    offline = await sdk_error(registry.invoke_device_method, "pump-2", call)
    assert_hub_error(offline, 404, "DeviceNotOnline")


async def test_a_read_only_policy_reads_but_its_writes_are_401(hub: Hub) -> None:
    owner = hub.registry()
    await sdk(owner.create_device_with_sas, "pump-1", PRIMARY, SECONDARY, "enabled")
    reader = hub.registry(READER)

    assert (await sdk(reader.get_device, "pump-1")).device_id == "pump-1"
    assert (await sdk(reader.get_twin, "pump-1")).device_id == "pump-1"
    refused = [
        await sdk_error(reader.create_device_with_sas, "pump-2", PRIMARY, SECONDARY, "enabled"),
        await sdk_error(reader.update_twin, "pump-1", Twin(tags={"a": 1}), "*"),
        await sdk_error(reader.delete_device, "pump-1"),
        await sdk_error(
            reader.invoke_device_method, "pump-1", CloudToDeviceMethod(method_name="reboot")
        ),
    ]
    for error in refused:
        assert_hub_error(error, 401, "IotHubUnauthorizedAccess")
    assert (await sdk(owner.get_device, "pump-1")).status == "enabled"


async def test_get_devices_takes_a_count_outside_1_to_1000_as_1000(hub: Hub) -> None:
    """The SDK documents (and passes on unchecked) that any `max_number_of_devices` outside
    1-1000 is taken as 1000 by the service: not a 400."""
    registry = hub.registry()
    for number in range(3):
        await sdk(registry.create_device_with_sas, f"pump-{number}", PRIMARY, SECONDARY, "enabled")

    for out_of_range in (0, -5, 1001, 5000):
        assert len(await sdk(registry.get_devices, out_of_range)) == 3, out_of_range
    assert len(await sdk(registry.get_devices, 2)) == 2


async def test_the_sdk_trusts_the_app_only_through_the_ca_in_its_environment(
    hub: Hub, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Proof that the calls above went over verified HTTPS: without REQUESTS_CA_BUNDLE the
    same SDK refuses the app's certificate."""
    registry = hub.registry()
    assert await sdk(registry.get_devices, 1) == []
    monkeypatch.delenv("REQUESTS_CA_BUNDLE")
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    with pytest.raises(ClientRequestError, match="CERTIFICATE_VERIFY_FAILED"):
        await sdk(hub.registry().get_devices, 1)


# --- the jobs API (IoTHubJobManager) ---------------------------------------------------------


def job_manager(hub: Hub) -> IoTHubJobManager:
    return IoTHubJobManager.from_connection_string(hub.connection_string())


async def wait_until_ended(jobs: IoTHubJobManager, job_id: str) -> JobResponse:
    """get_scheduled_job until the job ends (the in-process host works the queue meanwhile)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 30
    while True:
        job = await sdk(jobs.get_scheduled_job, job_id)
        if job.status in ("completed", "failed", "cancelled"):
            return job
        assert loop.time() < deadline, f"{job_id} still {job.status}"
        await asyncio.sleep(0.05)  # the host's own polling interval is coarser


async def test_the_job_manager_schedules_queries_and_cancels_broadcast_jobs(
    hub: Hub, device_endpoint: DeviceEndpoint
) -> None:
    registry = hub.registry()
    jobs = job_manager(hub)
    async with hub.signed_client() as client:
        for device_id in ("pump-1", "pump-2", "pump-3"):
            await sdk(registry.create_device_with_sas, device_id, PRIMARY, SECONDARY, "enabled")
            registered = await client.put(
                f"/devices/{device_id}",
                params={"api-version": "2021-04-12"},
                headers={"If-Match": "*"},
                json={
                    "deviceId": device_id,
                    "endpoint": {"uri": f"{device_endpoint.url}?d={device_id}"},
                },
            )
            assert registered.status_code == 200, registered.text
            await sdk(registry.update_twin, device_id, Twin(tags={"site": "berlin"}), "*")

    method = JobRequest(
        job_id="reboot-all",
        type="scheduleDeviceMethod",
        cloud_to_device_method=CloudToDeviceMethod(
            method_name="reboot", payload={"delay": 1}, response_timeout_in_seconds=10
        ),
        query_condition="tags.site = 'berlin'",
        max_execution_time_in_seconds=300,
    )
    created = await sdk(jobs.create_scheduled_job, "reboot-all", method)
    assert isinstance(created, JobResponse)
    assert created.job_id == "reboot-all" and created.type == "scheduleDeviceMethod"
    assert created.status in ("queued", "running", "completed")
    assert created.max_execution_time_in_seconds == 300
    assert created.cloud_to_device_method.method_name == "reboot"
    done = await wait_until_ended(jobs, "reboot-all")
    assert done.status == "completed", done.failure_reason
    statistics = done.device_job_statistics
    assert isinstance(statistics, DeviceJobStatistics)
    assert (statistics.device_count, statistics.succeeded_count, statistics.failed_count) == (
        3,
        3,
        0,
    )
    assert (statistics.running_count, statistics.pending_count) == (0, 0)
    assert done.end_time >= done.start_time >= done.created_time - timedelta(seconds=1)
    assert sorted(h["Idempotency-Key"] for h, _ in device_endpoint.calls) == [
        "reboot-all:pump-1",
        "reboot-all:pump-2",
        "reboot-all:pump-3",
    ]

    twin_job = JobRequest(
        job_id="fw-2",
        type="scheduleUpdateTwin",
        update_twin=Twin(etag="*", properties=TwinProperties(desired={"fw": "2.0"})),
        query_condition="deviceId IN ['pump-1', 'pump-3']",
    )
    assert (await sdk(jobs.create_scheduled_job, "fw-2", twin_job)).job_id == "fw-2"
    again = await sdk(jobs.create_scheduled_job, "fw-2", twin_job)  # the SDK may retry a PUT
    assert again.job_id == "fw-2"
    assert (await wait_until_ended(jobs, "fw-2")).device_job_statistics.succeeded_count == 2
    assert (await sdk(registry.get_twin, "pump-3")).properties.desired["fw"] == "2.0"
    assert "fw" not in (await sdk(registry.get_twin, "pump-2")).properties.desired

    later = JobRequest(
        job_id="later",
        type="scheduleDeviceMethod",
        cloud_to_device_method=CloudToDeviceMethod(method_name="reboot"),
        query_condition="*",
        start_time=datetime.now(UTC) + timedelta(days=1),
        max_execution_time_in_seconds=60,
    )
    scheduled = await sdk(jobs.create_scheduled_job, "later", later)
    assert scheduled.status == "scheduled"
    assert scheduled.end_time.year == 9999  # IoT Hub's "not ended", 7 decimals and all
    assert abs(scheduled.start_time - later.start_time) < timedelta(milliseconds=1)
    cancelled = await sdk(jobs.cancel_scheduled_job, "later")
    assert cancelled.status == "cancelled"
    assert (await sdk(jobs.cancel_scheduled_job, "later")).status == "cancelled"  # idempotent
    read = await sdk(jobs.get_scheduled_job, "later")
    assert read.status == "cancelled" and read.end_time.year == datetime.now(UTC).year

    # The SDK reads the query as the swagger QueryResult: its items stay JSON objects.
    every = await sdk(jobs.query_scheduled_jobs, None, None)
    assert isinstance(every, QueryResult) and every.type == "jobResponse"
    assert sorted(j["jobId"] for j in every.items) == ["fw-2", "later", "reboot-all"]
    methods = await sdk(jobs.query_scheduled_jobs, "scheduleDeviceMethod", None)
    assert sorted(j["jobId"] for j in methods.items) == ["later", "reboot-all"]
    both = await sdk(jobs.query_scheduled_jobs, "scheduleDeviceMethod", "completed")
    assert [j["jobId"] for j in both.items] == ["reboot-all"]
    assert both.items[0]["deviceJobStatistics"]["succeededCount"] == 3
    cancelled_jobs = await sdk(jobs.query_scheduled_jobs, None, "cancelled")
    assert [j["jobId"] for j in cancelled_jobs.items] == ["later"]
    assert both.continuation_token is None
    assert_hub_error(await sdk_error(jobs.get_scheduled_job, "nope"), 404, "DeviceNotFound")

    query = QuerySpecification(
        query="SELECT * FROM devices.jobs WHERE devices.jobs.jobId = 'reboot-all'"
    )
    records = await sdk(registry.query_iot_hub, query, None, 10)
    assert records.type == "deviceJob" and records.continuation_token is None
    # The SDK reads every query's items as twins: of a devices.jobs record it keeps deviceId
    # and status (the full record is in tests/integration/test_broadcasts.py).
    assert sorted(r.device_id for r in records.items) == ["pump-1", "pump-2", "pump-3"]
    assert {r.status for r in records.items} == {"completed"}
