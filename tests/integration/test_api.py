"""The management API over HTTP (ASGI, in-process) against Azurite: shapes, codes, validation."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import httpx
import pytest

from shared.runtime import Runtime
from shared.timefmt import to_iso
from tests.support.engine import API_NOW, api_client

pytestmark = pytest.mark.integration

NOW = API_NOW
BASE = "/api/jobCollections/ops"


@pytest.fixture
async def api(runtime: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client(runtime) as client:
        assert (await client.put(BASE, json={"properties": {"state": "Enabled"}})).status_code in (
            200,
            201,
        )
        yield client


def job_body(**properties: Any) -> dict[str, Any]:
    action = {"type": "http", "request": {"uri": "http://127.0.0.1:9/hook", "method": "post"}}
    return {"properties": {"action": action, **properties}}


async def test_put_creates_then_replaces_and_get_returns_the_spec_shape(api):
    body = job_body(
        startTime="2030-05-07T09:00:00Z",
        recurrence={"frequency": "week", "schedule": {"weekDays": ["monday", "Friday"]}},
    )
    created = await api.put(f"{BASE}/jobs/report", json=body)
    assert created.status_code == 201
    replaced = await api.put(f"{BASE}/jobs/report", json=body)
    assert replaced.status_code == 200
    job = (await api.get(f"{BASE}/jobs/report")).json()
    assert job["name"] == "ops/report"
    assert job["type"] == "Microsoft.Scheduler/jobCollections/jobs"
    assert job["id"].endswith("/providers/Microsoft.Scheduler/jobCollections/ops/jobs/report")
    props = job["properties"]
    assert props["action"]["type"] == "Http" and props["action"]["request"]["method"] == "POST"
    assert props["recurrence"]["frequency"] == "Week"
    assert props["recurrence"]["schedule"]["weekDays"] == ["Monday", "Friday"]
    assert props["state"] == "Enabled"
    assert props["status"]["executionCount"] == 0
    # startTime is a Tuesday: the first occurrence is the following Friday at 09:00.
    assert props["status"]["nextExecutionTime"] == "2030-05-10T09:00:00Z"


async def test_bare_properties_object_like_the_classic_example_is_accepted(api):
    classic = {
        "startTime": "2030-08-04T00:00Z",
        "action": {
            "type": "http",
            "retryPolicy": {"retryType": "none"},
            "request": {"uri": "http://contoso.com/foo", "method": "PUT", "body": "Posting"},
            "errorAction": {
                "type": "http",
                "request": {"uri": "http://contoso.com/notifyError", "method": "POST"},
            },
        },
        "recurrence": {
            "frequency": "week",
            "interval": 1,
            "schedule": {"weekDays": ["monday", "wednesday", "friday"], "hours": [10, 22]},
            "count": 10,
            "endTime": "2030-11-04",
        },
        "state": "disabled",
        "status": {"executionCount": 3},
    }
    response = await api.put(f"{BASE}/jobs/classic", json=classic)
    assert response.status_code == 201, response.text
    props = response.json()["properties"]
    assert props["state"] == "Disabled"
    assert props["status"]["executionCount"] == 0  # status is read-only


@pytest.mark.parametrize(
    ("properties", "field", "reason"),
    [
        ({"recurrence": {"frequency": "fortnight"}}, "properties.recurrence.frequency", "Minute"),
        (
            {"recurrence": {"frequency": "minute", "interval": 1001}},
            "properties.recurrence.interval",
            "1000",
        ),
        (
            {"recurrence": {"frequency": "month", "schedule": {"monthDays": [32]}}},
            "properties.recurrence.schedule.monthDays",
            "31",
        ),
        (
            {"recurrence": {"frequency": "day", "schedule": {"weekDays": ["monday"]}}},
            "properties.recurrence.schedule",
            "Week",
        ),
        (
            {"recurrence": {"frequency": "day", "endTime": "2001-01-01T00:00:00Z"}},
            "properties.recurrence.endTime",
            "future",
        ),
        (
            {"recurrence": {"frequency": "day", "timeZone": "Mars/Olympus"}},
            "properties.recurrence.timeZone",
            "time zone",
        ),
        ({"recurrence": {"cron": "61 * * * *"}}, "properties.recurrence.cron", "cron"),
        ({"state": "Completed"}, "properties.state", "Enabled or Disabled"),
    ],
)
async def test_bad_definitions_are_refused_with_the_field_and_nothing_is_stored(
    api, properties, field, reason
):
    response = await api.put(f"{BASE}/jobs/bad", json=job_body(**properties))
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == "BadRequest"
    assert error["target"] == field, error
    assert reason.lower() in error["message"].lower(), error
    assert (await api.get(f"{BASE}/jobs/bad")).status_code == 404


@pytest.mark.parametrize(
    ("action", "field"),
    [
        ({"type": "http", "request": {"uri": "not a url"}}, "properties.action.request.uri"),
        ({"type": "carrier-pigeon", "request": {"uri": "http://x/"}}, "properties.action.type"),
        (
            {"type": "storageQueue", "queueMessage": {"message": "m", "connectionSetting": "S"}},
            "properties.action.queueMessage.queueName",
        ),
    ],
)
async def test_bad_actions_are_refused_with_the_field(api, action, field):
    response = await api.put(f"{BASE}/jobs/bad", json={"properties": {"action": action}})
    assert response.status_code == 400
    assert response.json()["error"]["target"] == field, response.json()


async def test_malformed_bodies_and_names_are_clear_400s(api):
    not_json = await api.put(
        f"{BASE}/jobs/x", content=b"{nope", headers={"content-type": "application/json"}
    )
    assert not_json.status_code == 400 and not_json.json()["error"]["target"] == "body"
    unknown = await api.put(f"{BASE}/jobs/x", json=job_body(colour="blue"))
    assert unknown.status_code == 400
    assert unknown.json()["error"]["target"] == "properties.colour"
    bad_name = await api.put(f"{BASE}/jobs/bad%20name", json=job_body())
    assert bad_name.status_code == 400 and bad_name.json()["error"]["target"] == "jobName"
    missing_collection = await api.put("/api/jobCollections/nope/jobs/x", json=job_body())
    assert missing_collection.status_code == 404
    assert missing_collection.json()["error"]["code"] == "ResourceNotFound"


async def test_list_pages_with_next_link_until_every_job_is_seen(api):
    for index in range(7):
        response = await api.put(f"{BASE}/jobs/job{index}", json=job_body(state="Disabled"))
        assert response.status_code == 201
    seen: list[str] = []
    url: str | None = f"{BASE}/jobs?$top=3"
    pages = 0
    while url:
        page = (await api.get(url)).json()
        seen += [job["name"] for job in page["value"]]
        url = page.get("nextLink")
        pages += 1
    assert seen == [f"ops/job{i}" for i in range(7)]
    assert pages == 3


async def test_occurrences_preview_honours_time_zone_count_and_after(api):
    body = job_body(
        startTime="2030-03-01T09:00:00",
        recurrence={
            "frequency": "week",
            "schedule": {
                "weekDays": ["monday", "tuesday", "wednesday", "thursday", "friday"],
                "hours": [9],
                "minutes": [0],
            },
            "timeZone": "Europe/Berlin",
            "count": 4,
        },
    )
    assert (await api.put(f"{BASE}/jobs/weekday", json=body)).status_code == 201
    preview = await api.get(
        f"{BASE}/jobs/weekday/occurrences", params={"count": 10, "after": "2030-03-28T12:00:00Z"}
    )
    assert preview.status_code == 200
    # Berlin switches to summer time on Sunday 2030-03-31: 09:00 local is 08:00Z, then 07:00Z.
    assert preview.json()["value"] == [
        "2030-03-29T08:00:00Z",
        "2030-04-01T07:00:00Z",
        "2030-04-02T07:00:00Z",
        "2030-04-03T07:00:00Z",
    ]
    bad = await api.get(f"{BASE}/jobs/weekday/occurrences", params={"count": 0})
    assert bad.status_code == 400 and bad.json()["error"]["target"] == "query.count"


@pytest.mark.parametrize(
    ("recurrence", "after", "expected"),
    [
        pytest.param(
            {"frequency": "Day", "timeZone": "America/New_York"},
            "2033-03-12T07:30:00Z",  # 02:30 EST; 13 March has no 02:30 (03:30 EDT instead)
            ["2033-03-12T07:30:00Z", "2033-03-13T07:30:00Z", "2033-03-14T06:30:00Z"],
            id="day-new-york",
        ),
        pytest.param(
            {"frequency": "Week", "timeZone": "America/New_York"},
            "2033-03-06T07:30:00Z",
            ["2033-03-06T07:30:00Z", "2033-03-13T07:30:00Z", "2033-03-20T06:30:00Z"],
            id="week-new-york",
        ),
        pytest.param(
            {"frequency": "Month", "timeZone": "Europe/Berlin"},
            "2033-02-27T01:30:00Z",  # 02:30 CET on the 27th; 27 March has no 02:30
            ["2033-02-27T01:30:00Z", "2033-03-27T01:30:00Z", "2033-04-27T00:30:00Z"],
            id="month-berlin",
        ),
        pytest.param(
            {"frequency": "Day", "timeZone": "Australia/Lord_Howe"},
            "2033-09-30T15:45:00Z",  # 02:15 at +10:30; 2 October skips 02:00-02:30
            ["2033-09-30T15:45:00Z", "2033-10-01T15:45:00Z", "2033-10-02T15:15:00Z"],
            id="day-lord-howe",
        ),
    ],
)
async def test_occurrences_without_start_time_keep_the_anchor_across_a_dst_gap(
    api, recurrence, after, expected
):
    """A job without startTime is anchored on the instant it is saved (the preview's `after`),
    as the dispatcher anchors it: a wall time shifted by a gap is shifted on that day only."""
    assert (await api.put(f"{BASE}/jobs/anchored", json=job_body(recurrence=recurrence))).is_success
    preview = await api.get(
        f"{BASE}/jobs/anchored/occurrences", params={"count": 3, "after": after}
    )
    assert preview.status_code == 200, preview.text
    assert preview.json()["value"] == expected


async def test_start_time_without_offset_is_a_wall_time_in_the_time_zone(api):
    """As Azure Logic Apps reads it; shown as the instant it is. With an offset: an instant."""
    wall = job_body(
        startTime="2030-06-03T09:00:00", recurrence={"frequency": "Day", "timeZone": "Asia/Tokyo"}
    )
    created = await api.put(f"{BASE}/jobs/tokyo", json=wall)
    assert created.status_code == 201, created.text
    assert created.json()["properties"]["startTime"] == "2030-06-03T00:00:00Z"
    assert created.json()["properties"]["status"]["nextExecutionTime"] == "2030-06-03T00:00:00Z"
    instant = job_body(
        startTime="2030-06-03T09:00:00Z", recurrence={"frequency": "Day", "timeZone": "Asia/Tokyo"}
    )
    replaced = await api.put(f"{BASE}/jobs/tokyo", json=instant)
    assert replaced.json()["properties"]["startTime"] == "2030-06-03T09:00:00Z"


async def test_run_now_history_and_delete(api, runtime, target):
    from tests.support.engine import work_queue

    body = {
        "properties": {
            "startTime": to_iso(NOW + timedelta(days=1)),
            "action": {"type": "http", "request": {"uri": f"{target.url}/run", "method": "GET"}},
        }
    }
    assert (await api.put(f"{BASE}/jobs/adhoc", json=body)).status_code == 201
    assert (await api.post(f"{BASE}/jobs/adhoc/run")).status_code == 200

    async def has_history() -> bool:
        return len((await api.get(f"{BASE}/jobs/adhoc/history")).json()["value"]) == 1

    await work_queue(runtime, has_history)
    [row] = (await api.get(f"{BASE}/jobs/adhoc/history")).json()["value"]
    assert row["type"] == "Microsoft.Scheduler/jobCollections/jobs/history"
    props = row["properties"]
    assert props["status"] == "Completed" and props["actionName"] == "MainAction"
    assert props["retryCount"] == 0 and "200" in props["message"]
    assert props["onDemand"] is True
    failed = await api.get(f"{BASE}/jobs/adhoc/history", params={"$filter": "status eq 'Failed'"})
    assert failed.json()["value"] == []
    completed = await api.get(
        f"{BASE}/jobs/adhoc/history", params={"$filter": "status eq completed"}
    )
    assert len(completed.json()["value"]) == 1
    job = (await api.get(f"{BASE}/jobs/adhoc")).json()
    assert job["properties"]["status"]["executionCount"] == 1
    assert (await api.delete(f"{BASE}/jobs/adhoc")).status_code == 200
    assert (await api.get(f"{BASE}/jobs/adhoc")).status_code == 404
    assert (await api.get(f"{BASE}/jobs/adhoc/history")).status_code == 404


async def test_collections_put_get_delete(api):
    response = await api.put("/api/jobCollections/other", json={"properties": {}})
    assert response.status_code == 201
    assert response.json()["type"] == "Microsoft.Scheduler/jobCollections"
    assert (await api.put("/api/jobCollections/other", json={})).status_code == 200
    assert (await api.put("/api/jobCollections/other/jobs/j", json=job_body())).status_code == 201
    assert (await api.delete("/api/jobCollections/other")).status_code == 200
    assert (await api.get("/api/jobCollections/other")).status_code == 404
    bad_state = await api.put("/api/jobCollections/x", json={"properties": {"state": "asleep"}})
    assert bad_state.status_code == 400
    assert bad_state.json()["error"]["target"] == "properties.state"
