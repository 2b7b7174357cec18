"""The README's screenshots: each main page (Overview, Jobs, Job, Run, Broadcast, Devices) at
1280 px with sample data, written to docs/images/dashboard-*.png. Skipped unless
SCHEDULER_SCREENSHOTS=1 (they are committed, so a normal run must not rewrite them):

    SCHEDULER_SCREENSHOTS=1 .venv/bin/python -m pytest tests/browser/test_screenshots.py
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from playwright.async_api import Browser, Page, expect

from devhost.host import DevHost
from shared.kinds.code import CodeContext, register_handler, unregister_handler
from tests.browser.conftest import KEY, ROOT, open_dashboard
from tests.browser.test_broadcasts import add_device, hub, reboot
from tests.browser.test_dashboard import until
from tests.support.device_endpoint import DeviceEndpoint

pytestmark = [
    pytest.mark.browser,
    pytest.mark.e2e,
    pytest.mark.skipif(
        os.environ.get("SCHEDULER_SCREENSHOTS") != "1",
        reason="writes docs/images: set SCHEDULER_SCREENSHOTS=1",
    ),
]

IMAGES = ROOT / "docs" / "images"
MAX_BYTES = 200_000


@pytest.fixture
async def report() -> AsyncIterator[None]:
    """A Code handler `nightly-report` that prints a few lines, as a sample job would."""

    async def nightly_report(ctx: CodeContext) -> dict[str, int]:
        for step in ("reading orders", "summing 1,204 orders", "writing report.csv"):
            print(f"{step}…")
        return {"orders": 1204}

    register_handler("nightly-report", nightly_report)
    yield
    unregister_handler("nightly-report")


async def shoot(page: Page, name: str) -> None:
    path = IMAGES / f"dashboard-{name}.png"
    await page.screenshot(path=str(path))
    assert path.stat().st_size < MAX_BYTES, f"{path} is {path.stat().st_size} bytes"


def job(action: dict[str, Any], recurrence: dict[str, Any] | None = None) -> dict[str, Any]:
    properties: dict[str, Any] = {"startTime": "2030-01-01T00:00:00Z", "action": action}
    if recurrence:
        properties["recurrence"] = recurrence
    return {"properties": properties}


def http(uri: str) -> dict[str, Any]:
    return {"type": "Http", "request": {"uri": uri, "method": "GET"}}


SAMPLES: dict[str, dict[str, dict[str, Any]]] = {
    "billing": {
        "nightly-report": job(
            {"type": "Code", "code": {"handler": "nightly-report", "timeoutSeconds": 60}},
            {"frequency": "Day", "interval": 1, "schedule": {"hours": [2], "minutes": [30]}},
        ),
        "invoice-sync": job(http("http://127.0.0.1:9/sync"), {"cron": "0 */15 * * * *"}),
    },
    "ops": {
        "weekday-digest": job(
            http("http://127.0.0.1:9/digest"),
            {
                "frequency": "Week",
                "timeZone": "Europe/Berlin",
                "schedule": {
                    "weekDays": ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday"],
                    "hours": [9],
                    "minutes": [0],
                },
            },
        ),
        "month-end-close": job(
            http("http://127.0.0.1:9/close"),
            {
                "frequency": "Month",
                "schedule": {
                    "monthlyOccurrences": [{"day": "Friday", "occurrence": -1}],
                    "hours": [17],
                    "minutes": [30],
                },
            },
        ),
        "cache-warmup": job(http("http://127.0.0.1:9/warm"), {"frequency": "Hour", "interval": 1}),
    },
}


async def test_write_the_readme_screenshots(browser: Browser, app: DevHost, report: None):
    IMAGES.mkdir(parents=True, exist_ok=True)
    endpoint = await DeviceEndpoint().start()
    endpoint.held = frozenset({"pump-06", "pump-07", "pump-08"})
    try:
        await _screens(browser, app, endpoint)
    finally:
        await endpoint.stop()


async def _screens(browser: Browser, app: DevHost, endpoint: DeviceEndpoint) -> None:
    async with httpx.AsyncClient(base_url=app.api_url, headers={"x-functions-key": KEY}) as client:
        ids: dict[str, str] = {}
        for collection, jobs in SAMPLES.items():
            assert (await client.put(f"/jobCollections/{collection}", json={})).status_code == 201
            for name, body in jobs.items():
                created = await client.put(f"/jobCollections/{collection}/jobs/{name}", json=body)
                assert created.status_code == 201, created.text
                ids[name] = created.json()["id"]
        for name in ("nightly-report", "invoice-sync", "cache-warmup", "nightly-report"):
            assert (await client.post(f"{ids[name]}/run")).status_code in (200, 202)

        async def recorded() -> bool:
            rows = (await client.get(f"{ids['nightly-report']}/history")).json()["value"]
            other = (await client.get(f"{ids['cache-warmup']}/history")).json()["value"]
            return len(rows) >= 2 and len(other) >= 1

        await until(recorded, timeout=40)
    async with hub(app) as client:
        for i in range(1, 11):
            site = "berlin" if i <= 8 else "paris"
            uri = f"{endpoint.url}?d=pump-{i:02d}" if i != 5 else None
            await add_device(client, f"pump-{i:02d}", {"uri": uri} if uri else None)
            await client.patch(f"/twins/pump-{i:02d}", json={"tags": {"site": site}})
        assert (await client.put("/jobs/v2/firmware-2-4", json=reboot())).status_code == 200
        later = reboot(startTime="2030-06-01T02:00:00Z", queryCondition="tags.site = 'paris'")
        assert (await client.put("/jobs/v2/paris-reboot", json=later)).status_code == 200

    page = await open_dashboard(browser, app)
    await page.goto(f"{app.api_url}/dashboard#/jobs")
    await expect(page.locator("#jobs tbody tr")).to_have_count(7)  # and 2 broadcast starts
    await page.get_by_text("New job…").evaluate("el => el.parentElement.removeAttribute('open')")
    await shoot(page, "jobs")

    await page.goto(f"{app.api_url}/dashboard#/job?id={ids['nightly-report']}")
    await expect(page.locator("#history tbody tr")).to_have_count(2)
    await shoot(page, "job")

    await page.locator("#history tbody tr a").first.click()
    await page.get_by_role("button", name="Show output").click()
    await expect(page.locator("pre.output")).to_contain_text("writing report.csv")
    await shoot(page, "run")

    await page.goto(f"{app.api_url}/dashboard#/broadcast?id=firmware-2-4")
    await expect(page.get_by_role("progressbar")).to_have_attribute(
        "aria-valuenow", "5", timeout=20_000
    )
    await shoot(page, "broadcast")
    endpoint.release()

    await page.goto(f"{app.api_url}/dashboard#/devices")
    await expect(page.locator("#devices tbody tr")).to_have_count(10)
    await shoot(page, "devices")

    await page.goto(f"{app.api_url}/dashboard#/")
    await expect(page.locator("#states")).to_be_visible()
    await shoot(page, "overview")
