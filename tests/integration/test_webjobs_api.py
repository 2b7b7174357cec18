"""Kudu's WebJobs routes against Azurite with real child processes: shapes, status names,
202 + Location, 409 while a singleton run is in progress, history with ETag and 304, the run's
output_url readable during and after the run."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from shared.kinds.webjob import WebJobSettings
from shared.kinds.webjob.views import kudu_duration
from shared.runtime import Runtime
from tests.support.engine import api_client, work_queue
from tests.support.webjobs import standard_root

pytestmark = pytest.mark.integration

Build = Callable[..., Awaitable[Runtime]]
BASE = "http://test/api"


async def webjob_runtime(runtimes: Build, root: Path, timeout: int = 30) -> Runtime:
    return await runtimes(
        kind_settings={"WebJob": WebJobSettings(root=root, timeout_seconds=timeout)}
    )


async def until_status(runtime: Runtime, client: Any, url: str, statuses: set[str]) -> Any:
    seen: dict[str, Any] = {}

    async def reached() -> bool:
        answer = await client.get(url)
        seen["run"] = answer.json()
        return answer.status_code == 200 and seen["run"]["status"] in statuses

    await work_queue(runtime, reached, timeout=60)
    return seen["run"]


async def test_listing_shapes(runtimes: Build, tmp_path: Path):
    runtime = await webjob_runtime(runtimes, standard_root(tmp_path))
    async with api_client(runtime) as client:
        every = (await client.get("/api/webjobs")).json()
        assert [(j["type"], j["name"]) for j in every] == [
            ("triggered", "broken"),
            ("triggered", "failer"),
            ("triggered", "printer"),
            ("triggered", "sleeper"),
            ("continuous", "forever"),
        ]
        printer = (await client.get("/api/triggeredwebjobs/printer")).json()
        assert printer == {
            "name": "printer",
            "run_command": "run.py",
            "url": f"{BASE}/triggeredwebjobs/printer",
            "extra_info_url": f"{BASE}/triggeredwebjobs/printer/history",
            "type": "triggered",
            "error": None,
            "using_sdk": False,
            "settings": {"schedule": "0 0 * * * *"},
            "latest_run": None,
            "history_url": f"{BASE}/triggeredwebjobs/printer/history",
            "scheduler_logs_url": None,
        }
        broken = (await client.get("/api/triggeredwebjobs/broken")).json()
        assert broken["error"].startswith("settings.job: not valid JSON")
        forever = (await client.get("/api/continuouswebjobs/forever")).json()
        assert forever["type"] == "continuous" and forever["status"] == "Stopped"
        assert [j["name"] for j in (await client.get("/api/continuouswebjobs")).json()] == [
            "forever"
        ]
        missing = await client.get("/api/triggeredwebjobs/nothere")
        assert missing.status_code == 404 and "nothere" in missing.json()["error"]["message"]
        refused = await client.post("/api/triggeredwebjobs/broken/run")
        assert refused.status_code == 409
        start = await client.post("/api/continuouswebjobs/forever/start")
        assert start.status_code == 200 and start.content == b""
        started = (await client.get("/api/continuouswebjobs/forever")).json()
        assert started["status"] == "Starting"
        stop = await client.post("/api/continuouswebjobs/forever/stop")
        assert stop.status_code == 200 and stop.content == b""
        stopped = (await client.get("/api/continuouswebjobs/forever")).json()
        assert stopped["status"] == "Stopped"
        unknown = await client.post("/api/continuouswebjobs/nothere/start")
        assert unknown.status_code == 404 and "nothere" in unknown.json()["error"]["message"]


async def test_run_with_arguments_then_history_and_output(runtimes: Build, tmp_path: Path):
    runtime = await webjob_runtime(runtimes, standard_root(tmp_path))
    async with api_client(runtime) as client:
        answer = await client.post(
            "/api/triggeredwebjobs/printer/run",
            params={"arguments": "alpha beta"},
            headers={"User-Agent": "my-script/1.0"},
        )
        assert answer.status_code == 202
        location = answer.headers["Location"]
        assert location.startswith(f"{BASE}/triggeredwebjobs/printer/history/")
        run = await until_status(runtime, client, location, {"Success", "Failed"})
        assert run["status"] == "Success"
        assert run["trigger"] == "External - my-script/1.0"
        assert run["id"] == run["name"] == location.rsplit("/", 1)[1]
        assert run["job_name"] == "printer" and run["url"] == location
        assert run["start_time"].endswith("Z") and run["end_time"].endswith("Z")
        assert run["duration"].count(":") == 2
        output = await client.get(run["output_url"].removeprefix("http://test"))
        assert output.status_code == 200 and "args=alpha beta" in output.text

        history = await client.get("/api/triggeredwebjobs/printer/history")
        assert history.status_code == 200 and history.json() == {"runs": [run]}
        etag = history.headers["ETag"]
        again = await client.get(
            "/api/triggeredwebjobs/printer/history", headers={"If-None-Match": etag}
        )
        assert again.status_code == 304 and again.content == b""
        job = (await client.get("/api/triggeredwebjobs/printer")).json()
        assert job["latest_run"] == run
        gone = await client.get("/api/triggeredwebjobs/printer/history/20300101T000000Z")
        assert gone.status_code == 404


async def test_a_failing_run_and_a_singleton_conflict(runtimes: Build, tmp_path: Path):
    runtime = await webjob_runtime(runtimes, standard_root(tmp_path), timeout=2)
    async with api_client(runtime) as client:
        first = await client.post("/api/triggeredwebjobs/sleeper/run")
        assert first.status_code == 202
        second = await client.post("/api/triggeredwebjobs/sleeper/run")
        assert second.status_code == 409
        assert "already running" in second.json()["error"]["message"]
        location = first.headers["Location"]
        # The queue is worked in the background while the run is watched through the API.
        ended: dict[str, Any] = {}

        async def run_over() -> bool:
            ended["run"] = (await client.get(location)).json()
            return bool(ended["run"]["status"] in {"Stopped", "Success", "Failed"})

        worker = asyncio.create_task(work_queue(runtime, run_over, timeout=60))
        running = await poll(client, location, {"Running"})
        assert running["end_time"] is None
        partial = await client.get(running["output_url"].removeprefix("http://test"))
        assert partial.headers["X-Output-Ended"] == "false"
        await worker
        stopped = ended["run"]
        assert stopped["status"] == "Stopped"
        output = await client.get(stopped["output_url"].removeprefix("http://test"))
        assert "shutdown file seen" in output.text

        failed = await client.post("/api/triggeredwebjobs/failer/run")
        run = await until_status(runtime, client, failed.headers["Location"], {"Success", "Failed"})
        assert run["status"] == "Failed"
        assert run["trigger"].startswith("External - ")


async def poll(client: Any, url: str, statuses: set[str], timeout: float = 30) -> Any:
    """Read `url` every 50 ms (as a Kudu client polls) until the run has one of `statuses`."""
    async with asyncio.timeout(timeout):
        while True:
            answer = await client.get(url)
            if answer.status_code == 200 and answer.json()["status"] in statuses:
                return answer.json()
            await asyncio.sleep(0.05)


def test_durations_are_dotnet_timespans():
    from datetime import timedelta

    assert kudu_duration(timedelta(seconds=1, milliseconds=234)) == "00:00:01.2340000"
    assert kudu_duration(timedelta(minutes=1)) == "00:01:00"
    assert kudu_duration(timedelta(days=1, hours=2)) == "1.02:00:00"
