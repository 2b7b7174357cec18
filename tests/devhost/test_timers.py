"""Timer functions: NCRONTAB schedules from settings, singleton runs, startup and manual runs."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx
import pytest

from devhost.functions import FunctionSpec
from devhost.host import DevHost
from devhost.timers import TimerRunner
from tests.devhost.sample_app import RECORDER, wait_until

SAMPLE = "tests.devhost.sample_app:app"
NEVER = "0 0 0 1 1 *"


@pytest.fixture(autouse=True)
def fresh_recorder():
    RECORDER.reset()


def timer_only(schedule: str, **settings: str) -> dict[str, str]:
    return {"SAMPLE_SCHEDULE": schedule, "AzureWebJobs.work.Disabled": "true", **settings}


def project(directory: Path) -> Path:
    (directory / "host.json").write_text(json.dumps({"version": "2.0"}))
    return directory


async def test_fires_every_second_on_a_schedule_read_from_a_setting(tmp_path):
    async with DevHost(
        SAMPLE,
        project_dir=project(tmp_path),
        settings_overrides=timer_only("*/1 * * * * *"),
        port=0,
    ):
        await wait_until(lambda: len(RECORDER.of("tick")) >= 3, timeout=6)

    starts = [call.started for call in RECORDER.of("tick")]
    gaps = [later - earlier for earlier, later in zip(starts, starts[1:], strict=False)]
    assert all(0.5 < gap < 1.5 for gap in gaps), gaps
    assert not any(call.data["past_due"] for call in RECORDER.of("tick"))


async def test_a_slow_invocation_never_overlaps_the_next(tmp_path):
    settings = timer_only("*/1 * * * * *", SAMPLE_TIMER_SECONDS="1.3")
    async with DevHost(SAMPLE, project_dir=project(tmp_path), settings_overrides=settings, port=0):
        await wait_until(
            lambda: sum(c.finished is not None for c in RECORDER.of("tick")) >= 2, timeout=8
        )

    first, second = RECORDER.of("tick")[:2]
    assert RECORDER.max_running["tick"] == 1
    assert first.finished is not None
    assert second.started >= first.finished


async def test_the_admin_api_runs_a_timer_function_now(tmp_path):
    async with (
        DevHost(
            SAMPLE, project_dir=project(tmp_path), settings_overrides=timer_only(NEVER), port=0
        ) as host,
        httpx.AsyncClient(base_url=host.base_url) as client,
    ):
        response = await client.post("/admin/functions/tick", json={"input": ""})
        await wait_until(lambda: len(RECORDER.of("tick")) == 1, timeout=5)
        missing = await client.post("/admin/functions/nope", json={"input": ""})
        not_json = await client.post("/admin/functions/tick", content=b"{not json")

    assert response.status_code == 202
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "ResourceNotFound"
    assert not_json.status_code == 400
    assert not_json.json()["error"]["target"] == "body"


async def test_run_on_startup_fires_once_before_the_schedule(tmp_path):
    fired = asyncio.Event()

    async def on_timer(timer):
        fired.set()

    trigger = {"type": "timerTrigger", "name": "timer", "schedule": NEVER, "runOnStartup": True}
    runner = TimerRunner(FunctionSpec("startup", trigger, on_timer, tmp_path))
    stopping = asyncio.Event()
    task = asyncio.create_task(runner.run(stopping))
    await asyncio.wait_for(fired.wait(), timeout=5)
    stopping.set()
    await asyncio.wait_for(task, timeout=5)


async def test_an_exception_is_logged_and_the_timer_keeps_firing(tmp_path, caplog):
    calls = []

    def failing(timer):  # sync on purpose: it runs in a worker thread
        calls.append(timer.past_due)
        raise RuntimeError("boom")

    trigger = {"type": "timerTrigger", "name": "timer", "schedule": "*/1 * * * * *"}
    runner = TimerRunner(FunctionSpec("failing", trigger, failing, tmp_path))
    stopping = asyncio.Event()
    task = asyncio.create_task(runner.run(stopping))
    await wait_until(lambda: len(calls) >= 2, timeout=5)
    stopping.set()
    await asyncio.wait_for(task, timeout=5)

    assert "Executed 'failing' (Failed" in caplog.text
