"""A job's runs through the API on Azurite: run now answers the run it started (body and
Location), the runs in flight list the attempt under way with its output link, and a run's URL
follows it to its end (README "API", runs)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from shared.engine.records import HistoryRecord
from shared.kinds.code import CodeContext, register_handler, unregister_handler
from shared.names import CollectionRef
from shared.runtime import Runtime
from tests.support.engine import api_client, work_queue

pytestmark = pytest.mark.integration

REF = CollectionRef.parse("code")
SHORT = "/api/jobCollections/code/jobs"
ARM = (
    "/api/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/default"
    "/providers/Microsoft.Scheduler/jobCollections/code/jobs"
)
LATER = "2040-01-01T00:00:00Z"  # the jobs' schedules never come: only run-now runs happen


@pytest.fixture
def handlers() -> Iterator[Callable[[str, Any], None]]:
    names: list[str] = []

    def register(name: str, function: Any) -> None:
        register_handler(name, function)
        names.append(name)

    yield register
    for name in names:
        unregister_handler(name)


def code_job(handler: str, **action: Any) -> dict[str, Any]:
    return {
        "properties": {
            "startTime": LATER,
            "action": {"type": "Code", "code": {"handler": handler}, **action},
        }
    }


async def run_until_rows(runtime: Runtime, job: str, rows: int) -> list[HistoryRecord]:
    """Works the queue until the job has `rows` history rows; returns them, newest first."""

    async def history() -> list[HistoryRecord]:
        return (await runtime.store.history(REF.key, job, top=100))[0]

    async def enough() -> bool:
        return len(await history()) >= rows

    await work_queue(runtime, enough, timeout=30)
    return await history()


async def read_until(client: Any, url: str, text: bytes) -> bytes:
    """Long-polls the output at `url` until `text` has come (each call waits for new bytes)."""
    seen = b""
    while text not in seen:
        answer = await client.get(url, params={"follow": "true", "offset": len(seen)})
        assert answer.status_code in (200, 404), answer.text
        if answer.status_code == 404:  # the attempt has written nothing yet
            await asyncio.sleep(0.1)
            continue
        seen += answer.content
    return seen


async def test_run_now_answers_the_run_and_its_url_follows_it_to_its_end(runtimes, handlers):
    started = asyncio.Event()
    go_on = asyncio.Event()

    async def gated(ctx: CodeContext) -> str:
        ctx.log.info("waiting for the test")
        started.set()
        await go_on.wait()
        ctx.log.info("let go")
        return "ok"

    handlers("gated", gated)
    runtime = await runtimes()
    await runtime.jobs.put_collection(REF, {"properties": {"state": "Enabled"}})
    await runtime.jobs.put_job(REF, "gated", code_job("gated"))
    async with api_client(runtime) as client:
        answer = await client.post(f"{SHORT}/gated/run")
        assert answer.status_code == 200  # as Azure Scheduler answered
        run = answer.json()
        run_id = run["name"].rsplit("/", 1)[-1]
        assert run_id.startswith(run["properties"]["expectedExecutionTime"][:4])
        assert answer.headers["location"] == f"http://test{SHORT}/gated/runs/{run_id}"
        assert run["id"].endswith(f"/jobCollections/code/jobs/gated/runs/{run_id}")
        assert run["properties"] | {"expectedExecutionTime": None} == {
            "expectedExecutionTime": None,
            "onDemand": True,
            "state": "Scheduled",
            "actionName": "MainAction",
            "retryCount": 0,
            "attempts": [],
        }

        worker = asyncio.create_task(run_until_rows(runtime, "gated", 1))
        await asyncio.wait_for(started.wait(), 30)
        running = (await client.get(answer.headers["location"])).json()["properties"]
        assert running["state"] == "Running" and "startTime" in running
        output = running["output"]
        assert output == (f"http://test{SHORT}/gated/history/current-{run_id}-m000/output")
        listed = await client.get(f"{SHORT}/gated/runs", params={"$filter": "state eq 'running'"})
        assert [r["name"] for r in listed.json()["value"]] == [run["name"]]
        assert listed.json()["value"][0]["properties"]["output"] == output
        assert b"waiting for the test" in await read_until(client, output, b"waiting")

        go_on.set()
        [record] = await worker
        ended = (await client.get(f"{ARM}/gated/runs/{run_id}")).json()  # either prefix
        assert ended["name"] == run["name"]
        props = ended["properties"]
        assert (props["state"], props["status"]) == ("Ended", "Completed")
        assert "output" not in props
        [attempt] = props["attempts"]
        assert attempt["id"] == record.public_id and attempt["status"] == "Completed"
        assert attempt["output"] == f"http://test{ARM}/gated/history/{record.public_id}/output"
        assert "INFO let go" in (await client.get(attempt["output"])).text
        assert (await client.get(f"{SHORT}/gated/runs")).json()["value"] == []


async def test_a_run_whose_attempts_failed_ends_failed_with_each_attempt(runtimes, handlers):
    async def broken(ctx: CodeContext) -> None:
        raise ValueError(f"broken on attempt {ctx.attempt}")

    handlers("broken-run", broken)
    runtime = await runtimes()
    await runtime.jobs.put_collection(REF, {"properties": {"state": "Enabled"}})
    retry = {"retryType": "Fixed", "retryInterval": "PT1S", "retryCount": 1}
    await runtime.jobs.put_job(REF, "broken", code_job("broken-run", retryPolicy=retry))
    async with api_client(runtime) as client:
        location = (await client.post(f"{SHORT}/broken/run")).headers["location"]
        await run_until_rows(runtime, "broken", 2)
        props = (await client.get(location)).json()["properties"]
    assert (props["state"], props["status"]) == ("Ended", "Failed")
    assert [(a["retryCount"], a["status"]) for a in props["attempts"]] == [
        (0, "Failed"),
        (1, "Failed"),
    ]
    assert all(a["output"].endswith("/output") for a in props["attempts"])


async def test_bad_and_unknown_run_ids_and_filters(runtimes, handlers):
    handlers("idle", lambda ctx: None)
    runtime = await runtimes()
    await runtime.jobs.put_collection(REF, {"properties": {"state": "Enabled"}})
    await runtime.jobs.put_job(REF, "idle", code_job("idle"))
    async with api_client(runtime) as client:
        bad = await client.get(f"{SHORT}/idle/runs/not-a-run")
        assert bad.status_code == 400 and bad.json()["error"]["target"] == "runId"
        unknown = await client.get(f"{SHORT}/idle/runs/20300101T000000Zmanual-00000000")
        assert unknown.status_code == 404
        assert "no run '20300101T000000Zmanual-00000000'" in unknown.json()["error"]["message"]
        bad_filter = await client.get(f"{SHORT}/idle/runs", params={"$filter": "state eq 'Gone'"})
        assert bad_filter.status_code == 400
        assert bad_filter.json()["error"]["target"] == "$filter"
        assert "Scheduled, Running" in bad_filter.json()["error"]["message"]
        no_job = await client.get(f"{SHORT}/nobody/runs")
        assert no_job.status_code == 404
        no_job_run = await client.post(f"{SHORT}/nobody/run")
        assert no_job_run.status_code == 404
