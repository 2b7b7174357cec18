"""The dashboard's own reads (/api/dashboard-data/...), the activity counters behind its charts,
and read-only mode, over HTTP (ASGI, in-process) against Azurite."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest
from azure.core.pipeline.transport import AioHttpTransport

from shared.clock import FixedClock
from shared.engine.records import HistoryRecord
from shared.model.job import HistoryStatus
from shared.runtime import Runtime
from tests.support.engine import API_NOW, api_client
from tests.support.history import main_attempt

pytestmark = pytest.mark.integration

ARM = "/api/subscriptions/sub1/resourceGroups/rg1/providers/Microsoft.Scheduler/jobCollections"
JOBS = "/api/dashboard-data/jobs"


def body(uri: str = "http://127.0.0.1:9/", **properties: Any) -> dict[str, Any]:
    action = {"type": "Http", "request": {"uri": uri, "method": "GET"}}
    return {"properties": {"action": action, **properties}}


@pytest.fixture
async def api(runtime: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client(runtime) as client:
        yield client


async def names(api: httpx.AsyncClient, **params: Any) -> list[str]:
    answer = await api.get(JOBS, params=params)
    assert answer.status_code == 200, answer.text
    return [row["name"] for row in answer.json()["value"]]


async def test_jobs_of_all_collections_are_searched_filtered_sorted_and_paged(api):
    await api.put("/api/jobCollections/ops", json={})
    await api.put(f"{ARM}/billing", json={})
    later: dict[str, Any] = {"startTime": "2031-01-01T00:00:00Z"}
    sooner: dict[str, Any] = {
        "startTime": "2030-06-01T00:00:00Z",
        "recurrence": {"cron": "0 */15 * * * *"},
    }
    await api.put("/api/jobCollections/ops/jobs/backup-db", json=body(**later))
    await api.put("/api/jobCollections/ops/jobs/report", json=body(**sooner))
    await api.put(f"{ARM}/billing/jobs/backup-files", json=body(**sooner))
    await api.patch(
        "/api/jobCollections/ops/jobs/report", json={"properties": {"state": "Disabled"}}
    )

    everything = (await api.get(JOBS)).json()
    assert everything["total"] == 3
    assert [c["name"] for c in everything["collections"]] == ["billing", "ops"]
    assert everything["kinds"] == ["Http"]
    row = {r["name"]: r for r in everything["value"]}["report"]
    assert row["schedule"] == "cron 0 */15 * * * * UTC"
    assert row["state"] == "Disabled"
    assert row["id"].endswith("/jobCollections/ops/jobs/report")
    assert row["counters"] == {"executions": 0, "failures": 0, "faulted": 0, "missed": 0}
    assert row["lastRun"] is None

    assert await names(api, search="BACKUP") == ["backup-db", "backup-files"]
    assert await names(api, state="disabled") == ["report"]
    billing = next(c["id"] for c in everything["collections"] if c["name"] == "billing")
    assert await names(api, collection=billing) == ["backup-files"]
    assert await names(api, sort="name", order="desc") == ["report", "backup-files", "backup-db"]
    assert await names(api, sort="nextRun") == ["backup-files", "backup-db", "report"]
    paged = (await api.get(JOBS, params={"top": 2, "skip": 2})).json()
    assert paged["total"] == 3 and [r["name"] for r in paged["value"]] == ["report"]


@pytest.mark.parametrize(
    ("params", "target"),
    [
        ({"sort": "bogus"}, "sort"),
        ({"order": "up"}, "order"),
        ({"state": "Sleeping"}, "state"),
        ({"top": 0}, "top"),
        ({"top": 101}, "top"),
        ({"skip": -1}, "skip"),
    ],
)
async def test_a_bad_list_parameter_is_a_400_naming_it(api, params, target):
    answer = await api.get(JOBS, params=params)
    assert answer.status_code == 400
    assert answer.json()["error"]["target"].endswith(target)


async def test_a_job_in_words_and_a_bad_id(api):
    await api.put("/api/jobCollections/ops", json={})
    recurrence = {"frequency": "Minute", "interval": 15}
    created = await api.put("/api/jobCollections/ops/jobs/poll", json=body(recurrence=recurrence))
    info = await api.get("/api/dashboard-data/job", params={"id": created.json()["id"]})
    assert info.json() == {"schedule": "every 15 minutes UTC", "kind": "Http", "running": []}
    bad = await api.get("/api/dashboard-data/job", params={"id": "/jobs/x"})
    assert bad.status_code == 400 and bad.json()["error"]["target"] == "id"
    missing = created.json()["id"].replace("/poll", "/gone")
    assert (await api.get("/api/dashboard-data/job", params={"id": missing})).status_code == 404


def attempt(minutes_ago: float, late: float, status: HistoryStatus) -> HistoryRecord:
    started = API_NOW - timedelta(minutes=minutes_ago)
    return main_attempt(started, started - timedelta(seconds=late), status)


async def test_the_overview_counts_attempts_per_hour_without_losing_concurrent_ones(
    runtime: Runtime, api
):
    # 30 attempts in the last hour, recorded at once (they share 4 counter rows), 2 failed.
    await asyncio.gather(
        *(
            runtime.store.activity.record(
                attempt(5, 0.2, HistoryStatus.FAILED if i < 2 else HistoryStatus.COMPLETED)
            )
            for i in range(30)
        )
    )
    await runtime.store.activity.record(attempt(70, 45, HistoryStatus.COMPLETED))
    overview = (await api.get("/api/dashboard-data/overview")).json()
    hours = {h["start"]: h for h in overview["hourly"]}
    assert hours["2030-05-06T07:00:00Z"] == {
        "start": "2030-05-06T07:00:00Z",
        "attempts": 30,
        "failures": 2,
    }
    assert hours["2030-05-06T06:00:00Z"]["attempts"] == 1
    assert len(overview["hourly"]) == 48
    assert overview["daily"][-1] == {"start": "2030-05-06T00:00:00Z", "attempts": 31, "failures": 2}
    assert overview["lateness"] == {"p50": "< 250 ms", "p90": "< 250 ms", "p99": "< 60 s"}
    assert overview["queues"] == {"executions": 0, "poison": 0}
    assert overview["running"] == []


async def test_read_only_mode_refuses_every_change_and_keeps_every_read(
    runtimes: Callable[..., Awaitable[Runtime]],
):
    writable = await runtimes(clock=FixedClock(API_NOW))
    async with api_client(writable) as api:
        await api.put("/api/jobCollections/ops", json={})
        await api.put("/api/jobCollections/ops/jobs/kept", json=body())
    read_only = await runtimes(clock=FixedClock(API_NOW), read_only=True)
    async with api_client(read_only) as api:
        changes = [
            api.put("/api/jobCollections/ops/jobs/new", json=body()),
            api.patch("/api/jobCollections/ops/jobs/kept", json={"properties": {}}),
            api.post("/api/jobCollections/ops/jobs/kept/run"),
            api.delete("/api/jobCollections/ops/jobs/kept"),
            api.post("/api/jobCollections/ops/disable"),
            api.delete("/api/jobCollections/ops"),
            api.post("/api/triggeredwebjobs/nightly/run"),
        ]
        for answer in await asyncio.gather(*changes):
            assert answer.status_code == 403, answer.request.url
            assert answer.json()["error"] == {
                "code": "ReadOnly",
                "message": "the app is read-only (SCHEDULER_READ_ONLY=true): no change is accepted",
                "target": "SCHEDULER_READ_ONLY",
            }
        hub = await api.put("/api/devices/d1", json={"deviceId": "d1"})
        assert hub.status_code == 403
        assert "read-only" in hub.json()["Message"]
        assert (await api.get("/api/jobCollections/ops/jobs/kept")).status_code == 200
        assert (await api.get("/api/dashboard-data/settings")).json() == {"readOnly": True}
        assert [r["name"] for r in (await api.get(JOBS)).json()["value"]] == ["kept"]


async def test_a_change_shows_in_the_list_at_once(api):
    await api.put("/api/jobCollections/ops", json={})
    assert await names(api) == []
    await api.put("/api/jobCollections/ops/jobs/fresh", json=body())
    assert await names(api) == ["fresh"]


async def test_activity_counters_go_with_the_history_retention(
    runtimes: Callable[..., Awaitable[Runtime]],
):
    """Counter rows of hours older than SCHEDULER_HISTORY_MAX_DAYS are deleted by the dispatch
    timer's retention pass; younger ones stay and still count."""
    clock = FixedClock(API_NOW)
    runtime = await runtimes(clock=clock, history_max_age=timedelta(days=2))
    old_minutes = 60 * 24 * 2 + 90  # two days and 90 minutes ago: past the retention
    await runtime.store.activity.record(attempt(old_minutes, 0, HistoryStatus.COMPLETED))
    await runtime.store.activity.record(attempt(old_minutes - 60, 0, HistoryStatus.FAILED))
    await runtime.store.activity.record(attempt(60 * 24 * 2 - 90, 0, HistoryStatus.FAILED))
    await runtime.store.activity.record(attempt(5, 0, HistoryStatus.COMPLETED))
    since = API_NOW - timedelta(days=3)

    def counted(hours: list[Any]) -> int:
        return sum(hour.attempts for hour in hours)

    assert counted(await runtime.store.activity.hours(since, API_NOW)) == 4
    assert await runtime.activity_retention.run_if_due() == 2
    left = await runtime.store.activity.hours(since, API_NOW)
    assert counted(left) == 2
    assert all(hour.attempts == 0 for hour in left if hour.hour < API_NOW - timedelta(days=2))
    # Not due again within the hour: no second query.
    await runtime.store.activity.record(attempt(old_minutes, 0, HistoryStatus.COMPLETED))
    assert await runtime.activity_retention.run_if_due() == 0
    clock.advance(timedelta(hours=1))
    assert await runtime.activity_retention.run_if_due() == 1


async def test_the_list_of_all_jobs_reads_only_the_columns_it_searches_and_sorts_on(
    api, monkeypatch
):
    """A cold list reads every job row of every collection; the SDK's per-property decoding
    of the rows is most of its cost, so it asks for the few columns the list needs ($select)
    and reads the 25 jobs it shows in full."""
    await api.put("/api/jobCollections/ops", json={})
    await api.put("/api/jobCollections/ops/jobs/a", json=body(startTime="2031-01-01T00:00:00Z"))
    queries: list[dict[str, str]] = []
    send = AioHttpTransport.send

    async def recording(self: AioHttpTransport, request: Any, **kwargs: Any) -> Any:
        query = dict(parse_qsl(urlsplit(request.url).query))
        if "job|" in query.get("$filter", ""):
            queries.append(query)
        return await send(self, request, **kwargs)

    monkeypatch.setattr(AioHttpTransport, "send", recording)
    listed = (await api.get(JOBS)).json()

    assert queries, "the job rows were not read"
    assert all("$select" in query for query in queries), queries
    assert len(queries[0]["$select"].split(",")) <= 6
    [row] = listed["value"]
    assert row["kind"] == "Http" and row["schedule"] and row["nextRun"] == "2031-01-01T00:00:00Z"
    assert row["counters"] == {"executions": 0, "failures": 0, "faulted": 0, "missed": 0}
