"""The dashboard used as a person would, in headless Chromium against the real app."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.async_api import Browser, Page, expect

from devhost.host import DevHost
from shared.kinds.code import CodeContext, register_handler, unregister_handler
from shared.names import CollectionRef
from shared.runtime import close_current_runtime, current_runtime
from tests.browser.conftest import KEY, open_dashboard, screenshot, start_app
from tests.browser.test_broadcasts import hub, reboot
from tests.support.actions import request_of

pytestmark = [pytest.mark.browser, pytest.mark.e2e]

SECRET = "s3cret-never-shown-4711"


async def until(check: Callable[[], Awaitable[Any]], timeout: float = 20) -> Any:
    deadline = asyncio.get_running_loop().time() + timeout
    while not (result := await check()):
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError("condition not reached")
        await asyncio.sleep(0.2)
    return result


@pytest.fixture
async def released() -> AsyncIterator[asyncio.Event]:
    """A Code handler `dash-demo` that prints, waits for the test, and prints again."""
    release = asyncio.Event()

    async def demo(ctx: CodeContext) -> dict[str, bool]:
        print("first line, while running")
        await asyncio.wait_for(release.wait(), 20)
        print("last line, after release")
        return {"ok": True}

    register_handler("dash-demo", demo)
    yield release
    release.set()
    unregister_handler("dash-demo")


async def test_create_list_run_output_disable_and_validate(
    browser: Browser, app: DevHost, released: asyncio.Event
):
    page = await open_dashboard(browser, app)
    await expect(page.get_by_role("heading", name="Overview")).to_be_visible()
    await screenshot(page, "overview")

    # Create a Code job through the page; a new collection is made on the way.
    await page.get_by_role("link", name="Jobs", exact=True).click()
    await page.get_by_text("New job…").click()
    await page.get_by_label("Collection name").fill("ops")
    await page.get_by_label("Job name").fill("nightly")
    definition: dict[str, Any] = {
        "properties": {
            "startTime": "2030-01-01T09:00:00",
            "action": {"type": "Code", "code": {"handler": "dash-demo", "timeoutSeconds": 30}},
            "recurrence": {
                "frequency": "Week",
                "timeZone": "Europe/Berlin",
                "schedule": {
                    "weekDays": ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday"],
                    "hours": [9],
                    "minutes": [0],
                },
            },
        }
    }
    await page.locator("#new-definition").fill(_json(definition))
    await page.get_by_role("button", name="Create job").click()
    await expect(page.get_by_role("heading", name="Job nightly")).to_be_visible()
    await expect(page.locator("#job-schedule")).to_have_text("every weekday at 09:00 Europe/Berlin")
    await expect(page.locator("#occurrences li")).to_have_count(10)
    await expect(page.locator("#occurrences li").first).to_have_text("2030-01-01 08:00Z")

    # Listed, with its next run.
    await page.get_by_role("link", name="← Jobs").click()
    row = page.locator("#jobs tr[data-job=nightly]")
    await expect(row.locator(".next-run")).to_have_text("2030-01-01 08:00Z")
    await expect(row).to_contain_text("every weekday at 09:00 Europe/Berlin")
    await screenshot(page, "jobs")

    # Run now: the attempt runs; its output is followed live, then the history row appears.
    await row.get_by_role("link", name="nightly").click()
    await page.get_by_role("button", name="Run now").click()
    job_id = await _job_id(page)
    running = await until(lambda: _running(app, job_id))
    await page.goto(f"{app.api_url}/dashboard#/run?job={job_id}&occurrence={running['occurrence']}")
    output = page.locator("pre.output")
    await expect(output).to_contain_text("first line, while running")
    await screenshot(page, "run")
    released.set()
    await expect(output).to_contain_text("last line, after release")
    # When the attempt ends the page shows its history row by itself, the output still open.
    await expect(page.locator("#timeline li.status-Completed")).to_have_count(1)
    await expect(page.locator("#timeline li.status-Running")).to_have_count(0)
    await expect(page.locator("pre.output")).to_contain_text("last line, after release")
    await page.get_by_role("link", name="← Job nightly").click()
    await expect(page.locator("#history tbody tr")).to_have_count(1)
    await expect(page.locator("#history .status-Completed")).to_have_text("Completed")
    await expect(page.locator("main")).not_to_contain_text("null")
    await screenshot(page, "job")

    # The history row links to its run, whose output can be shown and downloaded.
    await page.locator("#history tbody tr a").first.click()
    await expect(page.locator("#timeline li")).to_have_count(1)
    await expect(page.locator("pre.output")).to_contain_text("last line")  # followed in this tab
    await page.reload()  # a fresh tab state: the output waits for its button
    await expect(page.locator("#timeline li")).to_have_count(1)
    await expect(page.locator("pre.output")).to_have_count(0)
    await page.get_by_role("button", name="Show output").click()
    await expect(page.locator("pre.output")).to_contain_text("last line, after release")
    async with page.expect_download() as download_info:
        await page.get_by_role("button", name="Download output").click()
    download = await download_info.value
    saved = Path(await download.path())
    assert "first line, while running" in saved.read_text()

    # Disable: the state changes on the page and in the list.
    await page.get_by_role("link", name="← Job nightly").click()
    await page.get_by_role("button", name="Disable").click()
    await expect(page.locator("#job-state")).to_have_text("Disabled")
    await page.get_by_role("link", name="← Jobs").click()
    await expect(page.locator("#jobs tr[data-job=nightly] .state-Disabled")).to_have_text(
        "Disabled"
    )

    # A definition the API refuses: its message is shown next to the JSON, on the field's line.
    await page.locator("#jobs tr[data-job=nightly]").get_by_role("link", name="nightly").click()
    definition["properties"]["recurrence"]["interval"] = 0
    await page.locator("#definition").fill(_json(definition))
    await page.get_by_role("button", name="Save definition").click()
    error = page.locator("#definition-error")
    await expect(error).to_contain_text("properties.recurrence.interval")
    await expect(error).to_contain_text(re.compile(r"^Line \d+: "))
    await expect(page.locator("#definition")).to_have_attribute("aria-invalid", "true")
    line = int(re.match(r"Line (\d+)", await error.inner_text()).group(1))  # type: ignore[union-attr]
    assert '"interval"' in _json(definition).split("\n")[line - 1]

    # Delete asks first.
    await page.get_by_role("button", name="Delete…").click()
    await page.get_by_role("button", name="Cancel").click()
    await expect(page.locator("#job-state")).to_be_visible()
    await page.get_by_role("button", name="Delete…").click()
    await page.locator("#confirm-ok").click()
    await expect(page.get_by_role("heading", name="Jobs")).to_be_visible()
    await expect(page.locator("#jobs tr[data-job=nightly]")).to_have_count(0)


async def test_no_secret_reaches_the_page(browser: Browser, app: DevHost):
    async with httpx.AsyncClient(base_url=app.api_url, headers={"x-functions-key": KEY}) as client:
        assert (await client.put("/jobCollections/sec", json={})).status_code == 201
        body = {
            "properties": {
                "startTime": "2030-01-01T00:00:00Z",
                "action": {
                    "type": "Https",
                    "request": {
                        "uri": "https://example.com/",
                        "method": "GET",
                        "authentication": {
                            "type": "Basic",
                            "username": "someone",
                            "password": SECRET,
                        },
                    },
                },
            }
        }
        created = await client.put("/jobCollections/sec/jobs/guarded", json=body)
        assert created.status_code == 201, created.text
        job_id = created.json()["id"]
    page = await open_dashboard(browser, app)
    await page.goto(f"{app.api_url}/dashboard#/job?id={job_id}")
    await expect(page.get_by_role("heading", name="Job guarded")).to_be_visible()
    definition = page.locator("#definition")
    await expect(definition).to_have_value(re.compile('"username": "someone"'))
    assert SECRET not in await definition.input_value()
    assert SECRET not in await page.content()
    assert KEY not in await page.content()  # the key lives in session storage only
    await page.goto(f"{app.api_url}/dashboard#/jobs")
    await expect(page.locator("#jobs tr[data-job=guarded]")).to_have_count(1)
    assert SECRET not in await page.content()

    # Saving the definition the page shows (without the password it never saw) keeps the
    # stored password: the API carries it over while the target stays the same.
    await page.goto(f"{app.api_url}/dashboard#/job?id={job_id}")
    edited = json.loads(await page.locator("#definition").input_value())
    edited["properties"]["action"]["retryPolicy"] = {"retryType": "None"}
    await page.locator("#definition").fill(_json(edited))
    await page.get_by_role("button", name="Save definition").click()
    await expect(page.locator("#definition")).to_have_value(re.compile('"retryType": "None"'))
    await expect(page.locator("#definition-error")).to_have_text("")
    runtime = await current_runtime()
    stored = await runtime.jobs.get_job(CollectionRef.parse("sec"), "guarded")
    authentication: Any = request_of(stored.properties.action).authentication
    assert authentication.password.get_secret_value() == SECRET


async def test_the_page_needs_no_key_but_the_data_does(browser: Browser, app: DevHost):
    async with httpx.AsyncClient(base_url=app.api_url) as client:
        assert (await client.get("/dashboard")).status_code == 200
        assert (await client.get("/dashboard/app.js")).status_code == 200
        assert (await client.get("/dashboard-data/jobs")).status_code == 401
    page = await open_dashboard(browser, app, key="wrong-key")
    await expect(page.get_by_text("That key was refused.")).to_be_visible()
    await page.get_by_label("Key", exact=True).fill(KEY)
    await page.get_by_role("button", name="Use this key").click()
    await expect(page.get_by_role("heading", name="Overview")).to_be_visible()


async def test_read_only_mode_hides_and_refuses_changes(
    browser: Browser, tmp_path: Path, storage_connection: str, unique_name: str
):
    host = await start_app(tmp_path, storage_connection, unique_name)
    async with httpx.AsyncClient(base_url=host.api_url, headers={"x-functions-key": KEY}) as client:
        await client.put("/jobCollections/ro", json={})
        body = {"properties": {"startTime": "2030-01-01T00:00:00Z", "action": _http()}}
        job_id = (await client.put("/jobCollections/ro/jobs/kept", json=body)).json()["id"]
    async with hub(host) as client:
        later = reboot(startTime="2099-01-01T00:00:00Z")
        assert (await client.put("/jobs/v2/ro-later", json=later)).status_code == 200
    await host.stop()
    await close_current_runtime()
    host = await start_app(tmp_path, storage_connection, unique_name, SCHEDULER_READ_ONLY="true")
    try:
        page = await open_dashboard(browser, host)
        await expect(page.locator("#mode")).to_be_visible()
        await page.goto(f"{host.api_url}/dashboard#/job?id={job_id}")
        await expect(page.get_by_role("heading", name="Job kept")).to_be_visible()
        for name in ("Run now", "Disable", "Enable", "Delete…", "Save definition"):
            await expect(page.get_by_role("button", name=name)).to_have_count(0)
        await expect(page.locator("main")).not_to_contain_text("null")
        await page.goto(f"{host.api_url}/dashboard#/jobs")
        await expect(page.locator("#jobs tr[data-job=kept]")).to_have_count(1)
        await expect(page.get_by_text("New job…")).to_have_count(0)
        await page.goto(f"{host.api_url}/dashboard#/broadcast?id=ro-later")
        await expect(page.locator("#broadcast-status")).to_have_text("scheduled")
        await expect(page.get_by_role("button", name="Cancel broadcast…")).to_have_count(0)
        # The server refuses what a hidden button would have done.
        status = await page.evaluate(
            """async ([id, key]) => (await fetch('/api' + id + '/run',
                {method: 'POST', headers: {'x-functions-key': key}})).status""",
            [job_id, KEY],
        )
        assert status == 403
        async with httpx.AsyncClient(
            base_url=host.api_url, headers={"x-functions-key": KEY}
        ) as client:
            refused = await client.delete("/jobCollections/ro/jobs/kept")
            assert refused.status_code == 403
            assert refused.json()["error"]["target"] == "SCHEDULER_READ_ONLY"
            assert (await client.get("/jobCollections/ro/jobs/kept")).status_code == 200
            cancel = await client.post(
                "/dashboard-data/broadcast-cancel", params={"id": "ro-later"}
            )
            assert cancel.status_code == 403
            assert cancel.json()["error"]["target"] == "SCHEDULER_READ_ONLY"
            kept = await client.get("/dashboard-data/broadcast", params={"id": "ro-later"})
            assert kept.json()["status"] == "scheduled"
    finally:
        await host.stop()
        await close_current_runtime()


async def test_a_phone_width_screen_shows_the_jobs(browser: Browser, app: DevHost):
    page = await open_dashboard(browser, app)
    await page.set_viewport_size({"width": 390, "height": 800})
    await page.goto(f"{app.api_url}/dashboard#/jobs")
    await expect(page.get_by_role("heading", name="Jobs")).to_be_visible()
    width = await page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390
    await screenshot(page, "jobs-phone")


def _http() -> dict[str, Any]:
    return {"type": "Http", "request": {"uri": "http://127.0.0.1:9/", "method": "GET"}}


def _json(value: Any) -> str:
    import json

    return json.dumps(value, indent=2)


async def _job_id(page: Page) -> str:
    from urllib.parse import parse_qs, urlsplit

    return parse_qs(urlsplit(page.url).fragment.split("?", 1)[1])["id"][0]


async def _running(app: DevHost, job_id: str) -> dict[str, Any] | None:
    async with httpx.AsyncClient(base_url=app.api_url, headers={"x-functions-key": KEY}) as client:
        info = (await client.get("/dashboard-data/job", params={"id": job_id})).json()
    return info["running"][0] if info.get("running") else None
