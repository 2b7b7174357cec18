"""The broadcasts and devices pages in headless Chromium against the real app: a broadcast's
progress bar moves while devices (tests/support/device_endpoint.py) hold their answers and then
release them, the per-device table filters by status, Cancel asks first, and no device key or
endpoint header value reaches the page. Read-only mode is in test_dashboard.py."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from playwright.async_api import Browser, expect

from devhost.host import DevHost
from tests.browser.conftest import KEY, open_dashboard, screenshot
from tests.support.device_endpoint import DeviceEndpoint
from tests.support.iot import SignIotRequests

pytestmark = [pytest.mark.browser, pytest.mark.e2e]

HEADER_SECRET = "endpoint-header-secret-1234"


@pytest.fixture
async def endpoint() -> AsyncIterator[DeviceEndpoint]:
    device = await DeviceEndpoint().start()
    yield device
    await device.stop()


def hub(app: DevHost) -> httpx.AsyncClient:
    """The IoT Hub paths, signed as the SDK signs them; the rest with the function key."""
    return httpx.AsyncClient(
        base_url=app.api_url,
        headers={"x-functions-key": KEY},
        params={"api-version": "2021-04-12"},
        auth=SignIotRequests(),
    )


async def add_device(
    client: httpx.AsyncClient, device_id: str, endpoint: dict[str, Any] | None
) -> str:
    body: dict[str, Any] = {"deviceId": device_id}
    if endpoint is not None:
        body["endpoint"] = endpoint
    created = await client.put(f"/devices/{device_id}", json=body)
    assert created.status_code == 200, created.text
    tagged = await client.patch(f"/twins/{device_id}", json={"tags": {"site": "berlin"}})
    assert tagged.status_code == 200, tagged.text
    return str(created.json()["authentication"]["symmetricKey"]["primaryKey"])


def reboot(**extra: Any) -> dict[str, Any]:
    return {
        "type": "scheduleDeviceMethod",
        "cloudToDeviceMethod": {"methodName": "reboot", "payload": {"delay": 1}},
        "queryCondition": "tags.site = 'berlin'",
        "maxExecutionTimeInSeconds": 600,
        **extra,
    }


async def test_progress_moves_devices_filter_and_cancel(
    browser: Browser, app: DevHost, endpoint: DeviceEndpoint
):
    endpoint.held = frozenset({"d3", "d4"})
    async with hub(app) as client:
        keys = [
            await add_device(
                client,
                f"d{i}",
                {"uri": f"{endpoint.url}?d=d{i}", "headers": {"x-device-token": HEADER_SECRET}},
            )
            for i in range(5)
        ]
        keys.append(await add_device(client, "x0", None))  # offline: fails
        for job_id, body in (
            ("reboot-now", reboot()),
            ("reboot-later", reboot(startTime="2099-01-01T00:00:00Z")),
        ):
            created = await client.put(f"/jobs/v2/{job_id}", json=body)
            assert created.status_code == 200, created.text

    page = await open_dashboard(browser, app)
    await expect(page.get_by_role("heading", name="Overview")).to_be_visible()
    await page.get_by_role("link", name="Broadcasts", exact=True).click()
    await expect(page.locator("#broadcasts tr[data-broadcast=reboot-later]")).to_contain_text(
        "scheduled"
    )
    await page.get_by_role("link", name="reboot-now").click()

    # Mid-run: three devices answered, one failed, two are held by their endpoint.
    progress = page.get_by_role("progressbar")
    await expect(progress).to_have_attribute("aria-valuenow", "4", timeout=20_000)
    await expect(progress).to_have_attribute(
        "aria-valuetext", "4 of 6 devices done: 3 succeeded, 1 failed, 2 running, 0 pending"
    )
    await expect(page.locator("#broadcast-status")).to_have_text("running")
    await expect(page.locator(".progress-text")).to_contain_text("2 running")
    await screenshot(page, "broadcast")
    endpoint.release()
    await expect(progress).to_have_attribute("aria-valuenow", "6")
    await expect(page.locator("#broadcast-status")).to_have_text("completed")
    await expect(page.locator("#broadcast-devices tbody tr")).to_have_count(6)
    await expect(page.locator("#broadcast-devices tr[data-device=d3]")).to_contain_text("201")

    await page.get_by_label("Device status").select_option("failed")
    rows = page.locator("#broadcast-devices tbody tr")
    await expect(rows).to_have_count(1)
    await expect(rows.first).to_contain_text("DeviceNotOnline")
    await expect(page.get_by_role("button", name="Cancel broadcast…")).to_be_hidden()

    # Cancel asks first; declining keeps it, confirming cancels it.
    await page.goto(f"{app.api_url}/dashboard#/broadcast?id=reboot-later")
    await page.get_by_role("button", name="Cancel broadcast…").click()
    await page.get_by_role("button", name="Cancel", exact=True).click()
    await expect(page.locator("#broadcast-status")).to_have_text("scheduled")
    await page.get_by_role("button", name="Cancel broadcast…").click()
    await page.locator("#confirm-ok").click()
    await expect(page.locator("#broadcast-status")).to_have_text("cancelled")
    await expect(page.get_by_role("button", name="Cancel broadcast…")).to_be_hidden()

    # Devices: listed with their endpoint's host, searched; a bad condition shows where.
    await page.get_by_role("link", name="Devices", exact=True).click()
    await expect(page.locator("#devices tbody tr")).to_have_count(6)
    await expect(page.locator("#devices tr[data-device=d0]")).to_contain_text(
        f"127.0.0.1:{endpoint.port}"
    )
    await screenshot(page, "devices")
    await page.get_by_label("Id starts with").fill("d")
    await page.get_by_label("Condition (query language)").fill("tags.site = 'berlin'")
    await page.get_by_role("button", name="Search").click()
    await expect(page.locator("#devices tbody tr")).to_have_count(5)
    await page.get_by_label("Condition (query language)").fill("tags.site = = 'x'")
    await page.get_by_role("button", name="Search").click()
    await expect(page.locator("#device-condition-error")).to_have_text(
        re.compile(r"^condition: unexpected .* at position 13$")
    )
    await expect(page.get_by_label("Condition (query language)")).to_have_attribute(
        "aria-invalid", "true"
    )

    for shown in ("#/devices", "#/broadcast?id=reboot-now"):
        await page.goto(f"{app.api_url}/dashboard{shown}")
        await expect(page.locator("main h1")).not_to_have_text("Loading…")
        await expect(page.locator("table tbody tr").first).to_be_visible()
        source = await page.content()
        for secret in (HEADER_SECRET, *keys):
            assert secret not in source
