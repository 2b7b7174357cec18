"""The dashboard in real headless Chromium (Debian's /usr/bin/chromium, driven by Playwright;
no browser is ever downloaded), against function_app.py in the local host on Azurite, with a
function key. Screenshots of each page go to .artifacts/screenshots/ (not committed)."""

from __future__ import annotations

import base64
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, async_playwright, expect

from devhost.host import DevHost
from shared.runtime import close_current_runtime
from tests.support.app_settings import app_settings
from tests.support.iot import OWNER

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOTS = ROOT / ".artifacts" / "screenshots"
KEY = "browser-test-key-0123456789"
# The IoT Hub paths (devices, broadcasts) take a shared access signature of this policy; the
# tests sign with tests/support/iot.py. The dashboard never needs one.
IOT_POLICIES = (
    f"{OWNER.name}={base64.b64encode(OWNER.key).decode()}:{','.join(sorted(OWNER.rights))}"
)
# Without the background-networking flags Chromium keeps calling Google's hosts, which this
# machine's closed network refuses (/work/.library/env/machines/python.md).
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail("Debian's chromium is missing: `make test` installs it (apt-get)")
    # `launch` gives Chromium a new empty profile directory of its own each time (and refuses
    # a --user-data-dir flag), which is the fresh --user-data-dir this machine needs.
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS
        )
        try:
            yield launched
        finally:
            await launched.close()


async def start_app(
    project_dir: Path, storage_connection: str, unique_name: str, **settings: str
) -> DevHost:
    shutil.copy(ROOT / "host.json", project_dir / "host.json")
    overrides = app_settings(
        storage_connection,
        unique_name,
        **{
            "DISPATCH_SCHEDULE": "*/5 * * * * *",
            "SCHEDULER_IOT_POLICIES": IOT_POLICIES,
            **settings,
        },
    )
    host = DevHost(project_dir=project_dir, settings_overrides=overrides, port=0, key=KEY)
    await host.start()
    return host


@pytest.fixture
async def app(tmp_path: Path, storage_connection: str, unique_name: str) -> AsyncIterator[DevHost]:
    host = await start_app(tmp_path, storage_connection, unique_name)
    yield host
    await host.stop()
    await close_current_runtime()


async def open_dashboard(browser: Browser, host: DevHost, key: str = KEY) -> Page:
    """A new tab on the dashboard, the key typed into its dialog."""
    page = await browser.new_page(viewport={"width": 1280, "height": 900})
    await page.goto(f"{host.api_url}/dashboard")
    await page.get_by_label("Key", exact=True).fill(key)
    await page.get_by_role("button", name="Use this key").click()
    if key == KEY:  # the app has started: a page opened now gets the key (no race with it)
        await expect(page.locator("main h1")).to_have_text("Overview")
    return page


async def screenshot(page: Page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)
