"""The Azure Scheduler 2016-03-01 surface on ARM paths: namespaces, PATCH, lists, quotas, limits."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from shared.clock import FixedClock
from shared.names import CollectionRef
from shared.runtime import Runtime
from tests.support.engine import API_NOW, api_client

pytestmark = pytest.mark.integration

NOW = API_NOW
SUB = "11111111-2222-3333-4444-555555555555"
RG = f"/api/subscriptions/{SUB}/resourceGroups/ops-rg/providers/Microsoft.Scheduler"
COLL = f"{RG}/jobCollections/prod"
V = {"api-version": "2016-03-01"}


@pytest.fixture
async def api(runtime: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client(runtime) as client:
        yield client


def job(uri: str = "http://example.com/hook", **properties: Any) -> dict[str, Any]:
    action = {"type": "Http", "request": {"uri": uri, "method": "POST"}}
    return {"properties": {"action": action, **properties}}


HOURLY = {"frequency": "Hour", "interval": 1}


async def test_collections_carry_arm_identity_and_are_namespaced(api):
    body = {"location": "westeurope", "tags": {"team": "ops"}, "properties": {"state": "Enabled"}}
    created = await api.put(f"{COLL}", json=body)
    assert created.status_code == 201, created.text
    collection = created.json()
    assert collection["id"] == (
        f"/subscriptions/{SUB}/resourceGroups/ops-rg/providers/Microsoft.Scheduler/"
        "jobCollections/prod"
    )
    assert collection["type"] == "Microsoft.Scheduler/jobCollections"
    assert (collection["name"], collection["location"], collection["tags"]) == (
        "prod",
        "westeurope",
        {"team": "ops"},
    )
    assert created.headers["x-ms-request-id"]
    # Same name in another resource group, and on the short paths: three collections.
    other = f"/api/subscriptions/{SUB}/resourceGroups/other-rg/providers/Microsoft.Scheduler"
    assert (await api.put(f"{other}/jobCollections/prod", json={})).status_code == 201
    assert (await api.put("/api/jobCollections/prod", json={})).status_code == 201
    assert (await api.put(f"{COLL}/jobs/a", json=job())).status_code == 201
    assert (await api.get(f"{other}/jobCollections/prod/jobs/a")).status_code == 404
    assert (await api.get("/api/jobCollections/prod/jobs/a")).status_code == 404
    by_rg = (await api.get(f"{RG}/jobCollections")).json()["value"]
    assert [c["name"] for c in by_rg] == ["prod"]
    by_sub = (
        await api.get(f"/api/subscriptions/{SUB}/providers/Microsoft.Scheduler/jobCollections")
    ).json()["value"]
    assert sorted(c["id"].split("/")[4] for c in by_sub) == ["ops-rg", "other-rg"]
    job_body = (await api.get(f"{COLL}/jobs/a")).json()
    assert job_body["name"] == "prod/a"
    assert job_body["id"] == f"{collection['id']}/jobs/a"


async def test_api_version_is_checked_and_every_response_has_a_request_id(api):
    await api.put(COLL, json={})
    for version in ("2016-03-01", "2016-01-01", "2014-08-01-preview"):
        response = await api.get(COLL, params={"api-version": version})
        assert response.status_code == 200
    wrong = await api.get(COLL, params={"api-version": "2099-01-01"})
    assert wrong.status_code == 400
    assert wrong.json()["error"]["code"] == "MissingOrInvalidRequiredQueryParameter"
    assert "2099-01-01" in wrong.json()["error"]["message"]
    missing = await api.get(f"{RG}/jobCollections/absent")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "ResourceNotFound"
    ids = {r.headers["x-ms-request-id"] for r in (wrong, missing)}
    assert len(ids) == 2


async def test_patch_merges_properties_and_state_rules(api):
    await api.put(COLL, json={})
    body = job(
        startTime="2030-05-07T09:00:00Z",
        recurrence={"frequency": "Day", "interval": 1, "count": 5},
    )
    body["properties"]["action"]["request"]["headers"] = {"X-A": "1"}
    assert (await api.put(f"{COLL}/jobs/p", json=body)).status_code == 201
    patched = await api.patch(
        f"{COLL}/jobs/p",
        json={"properties": {"recurrence": {"interval": 2}, "state": "Disabled"}},
    )
    assert patched.status_code == 200, patched.text
    props = patched.json()["properties"]
    assert props["recurrence"] == {"frequency": "Day", "interval": 2, "count": 5}
    assert props["state"] == "Disabled"
    assert props["action"]["request"]["headers"] == {"X-A": "1"}
    removed = await api.patch(
        f"{COLL}/jobs/p", json={"properties": {"action": {"request": {"headers": None}}}}
    )
    assert "headers" not in removed.json()["properties"]["action"]["request"]
    refused = await api.patch(f"{COLL}/jobs/p", json={"properties": {"state": "Completed"}})
    assert refused.status_code == 400
    assert refused.json()["error"]["target"] == "properties.state"


async def test_final_jobs_refuse_every_change_but_delete(api, runtime):
    await api.put(COLL, json={})
    assert (await api.put(f"{COLL}/jobs/done", json=job(state="Disabled"))).status_code == 201
    ref = CollectionRef.parse("prod", SUB, "ops-rg")
    stored = await runtime.store.get_job(ref.key, "done")
    from dataclasses import replace

    from shared.model.job import JobState

    await runtime.store.update_job(replace(stored, state=JobState.COMPLETED))
    for response in (
        await api.put(f"{COLL}/jobs/done", json=job()),
        await api.patch(f"{COLL}/jobs/done", json={"properties": {"state": "Enabled"}}),
    ):
        assert response.status_code == 409
        assert response.json()["error"]["code"] == "ConflictError"
        assert "Completed" in response.json()["error"]["message"]
    assert (await api.delete(f"{COLL}/jobs/done")).status_code == 200


async def test_lists_top_skip_filter_and_a_next_link_that_survives_inserts(api):
    await api.put(COLL, json={})
    for index in range(6):
        state = "Enabled" if index % 2 == 0 else "Disabled"
        body = job(state=state, startTime="2031-01-01T00:00:00Z")
        assert (await api.put(f"{COLL}/jobs/j{index}", json=body)).status_code == 201
    page = (await api.get(f"{COLL}/jobs", params={"$top": 2, "$skip": 1})).json()
    assert [j["name"] for j in page["value"]] == ["prod/j1", "prod/j2"]
    enabled = (await api.get(f"{COLL}/jobs", params={"$filter": "state eq 'Enabled'"})).json()
    assert [j["name"] for j in enabled["value"]] == ["prod/j0", "prod/j2", "prod/j4"]
    bad = await api.get(f"{COLL}/jobs", params={"$filter": "colour eq 'red'"})
    assert bad.status_code == 400 and bad.json()["error"]["target"] == "$filter"
    # Follow nextLink while jobs are added before and after the cursor.
    seen: list[str] = []
    url: str | None = f"{COLL}/jobs?$top=2&api-version=2016-03-01"
    added = 0
    while url:
        page = (await api.get(url)).json()
        seen += [j["name"].split("/")[1] for j in page["value"]]
        url = page.get("nextLink")
        if added < 2:
            await api.put(f"{COLL}/jobs/a{added}", json=job(state="Disabled"))  # before cursor
            await api.put(f"{COLL}/jobs/z{added}", json=job(state="Disabled"))  # after cursor
            added += 1
    assert len(seen) == len(set(seen))
    assert {f"j{i}" for i in range(6)} <= set(seen)
    assert {"z0", "z1"} <= set(seen)


async def test_enable_disable_and_delete_a_collection_with_its_jobs(api, runtime):
    await api.put(COLL, json={})
    await api.put(f"{COLL}/jobs/one", json=job(startTime="2031-01-01T00:00:00Z"))
    await api.put(f"{COLL}/jobs/two", json=job(startTime="2031-01-01T00:00:00Z"))
    assert (await api.post(f"{COLL}/disable")).status_code == 200
    jobs = (await api.get(f"{COLL}/jobs")).json()["value"]
    assert {j["properties"]["state"] for j in jobs} == {"Disabled"}
    assert all("nextExecutionTime" not in j["properties"]["status"] for j in jobs)
    assert (await api.post(f"{COLL}/enable")).status_code == 200
    jobs = (await api.get(f"{COLL}/jobs")).json()["value"]
    assert {j["properties"]["state"] for j in jobs} == {"Enabled"}
    assert (await api.delete(COLL)).status_code == 200
    assert (await api.get(COLL)).status_code == 404
    ref = CollectionRef.parse("prod", SUB, "ops-rg")
    assert await runtime.store.collection_job_names(ref.key) == []


async def test_free_sku_limits_job_count_and_recurrence_and_stores_nothing_past_them(api):
    free = {"properties": {"sku": {"name": "Free"}}}
    assert (await api.put(COLL, json=free)).status_code == 201
    too_often = await api.put(
        f"{COLL}/jobs/fast", json=job(recurrence={"frequency": "Minute", "interval": 30})
    )
    assert too_often.status_code == 409
    assert "maxRecurrence" in too_often.json()["error"]["message"]
    # A daily schedule that fires every 15 minutes is as frequent as its schedule says.
    sneaky = await api.put(
        f"{COLL}/jobs/sneaky",
        json=job(recurrence={"frequency": "Day", "schedule": {"minutes": [0, 15, 30, 45]}}),
    )
    assert sneaky.status_code == 409
    for index in range(5):
        ok = await api.put(f"{COLL}/jobs/h{index}", json=job(recurrence=HOURLY))
        assert ok.status_code == 201, ok.text
    sixth = await api.put(f"{COLL}/jobs/h5", json=job(recurrence=HOURLY))
    assert sixth.status_code == 409
    assert "maxJobCount" in sixth.json()["error"]["message"]
    names = [j["name"] for j in (await api.get(f"{COLL}/jobs")).json()["value"]]
    assert names == [f"prod/h{i}" for i in range(5)]
    # Replacing an existing job is not a new job.
    assert (await api.put(f"{COLL}/jobs/h0", json=job(recurrence=HOURLY))).status_code == 200


async def test_quota_overrides_the_sku_and_no_sku_means_app_defaults(api):
    quota = {
        "properties": {
            "sku": {"name": "Standard"},
            "quota": {"maxJobCount": 1, "maxRecurrence": {"frequency": "Minute", "interval": 10}},
        }
    }
    assert (await api.put(COLL, json=quota)).status_code == 201
    every5 = job(recurrence={"frequency": "Minute", "interval": 5})
    assert (await api.put(f"{COLL}/jobs/a", json=every5)).status_code == 409
    every10 = job(recurrence={"frequency": "Minute", "interval": 10})
    assert (await api.put(f"{COLL}/jobs/a", json=every10)).status_code == 201
    assert (await api.put(f"{COLL}/jobs/b", json=every10)).status_code == 409
    plain = f"{RG}/jobCollections/plain"
    assert (await api.put(plain, json={})).status_code == 201
    every_minute = job(recurrence={"frequency": "Minute", "interval": 1})
    for index in range(60):
        response = await api.put(f"{plain}/jobs/m{index}", json=every_minute)
        assert response.status_code == 201
    collection = (await api.get(plain)).json()
    assert "sku" not in collection["properties"]


async def test_max_job_occurrence_limits_how_often_a_job_may_run_in_all(api):
    quota = {"properties": {"quota": {"maxJobOccurrence": 3}}}
    assert (await api.put(COLL, json=quota)).status_code == 201
    start = "2031-01-01T00:00:00Z"
    refused = {
        "count over": {"frequency": "Hour", "count": 4},
        "never ends": {"frequency": "Hour"},
        "endTime after the third": {"frequency": "Hour", "endTime": "2031-01-01T03:00:00Z"},
    }
    for why, recurrence in refused.items():
        answer = await api.put(f"{COLL}/jobs/r", json=job(startTime=start, recurrence=recurrence))
        assert answer.status_code == 409, why
        assert "maxJobOccurrence" in answer.json()["error"]["message"]
    accepted = {
        "once": None,
        "count at the limit": {"frequency": "Hour", "count": 3},
        "endTime at the third": {"frequency": "Hour", "endTime": "2031-01-01T02:00:00Z"},
    }
    for index, recurrence in enumerate(accepted.values()):
        body = job(startTime=start, recurrence=recurrence) if recurrence else job(startTime=start)
        answer = await api.put(f"{COLL}/jobs/a{index}", json=body)
        assert answer.status_code == 201, answer.text
    assert (await api.get(f"{COLL}/jobs/r")).status_code == 404


async def test_job_size_limit_is_a_clear_400(api):
    await api.put(COLL, json={})
    body = job()
    body["properties"]["action"]["request"]["body"] = "x" * 8190
    body["properties"]["action"]["errorAction"] = {
        "type": "Http",
        "request": {"uri": "http://example.com/e", "method": "POST", "body": "y" * 8190},
    }
    response = await api.put(f"{COLL}/jobs/big", json=body)
    assert response.status_code == 400
    assert response.json()["error"]["target"] == "body"
    assert "16384" in response.json()["error"]["message"]
    assert (await api.get(f"{COLL}/jobs/big")).status_code == 404


async def test_request_limits_come_from_settings(runtimes):
    from shared.kinds.http.model import RequestLimits

    runtime = await runtimes(
        clock=FixedClock(NOW), request_limits=RequestLimits(uri_length=40, body_length=10)
    )

    async with api_client(runtime) as api:
        await api.put(COLL, json={})
        body = job()
        body["properties"]["action"]["request"]["body"] = "12345678901"
        long_body = await api.put(f"{COLL}/jobs/x", json=body)
        assert long_body.status_code == 400
        assert long_body.json()["error"]["target"] == "properties.action.request.body"
        assert "10 characters" in long_body.json()["error"]["message"]
        long_uri = await api.put(f"{COLL}/jobs/x", json=job(uri="http://example.com/" + "a" * 30))
        assert long_uri.status_code == 400
        assert long_uri.json()["error"]["target"] == "properties.action.request.uri"
        assert (await api.put(f"{COLL}/jobs/x", json=job())).status_code == 201


async def test_patch_collection_merges_state_sku_and_quota(api):
    assert (await api.put(COLL, json={"tags": {"a": "1"}})).status_code == 201
    patched = await api.patch(
        COLL, json={"properties": {"state": "Suspended", "quota": {"maxJobCount": 3}}}
    )
    assert patched.status_code == 200, patched.text
    body = patched.json()
    assert body["properties"]["state"] == "Suspended"
    assert body["properties"]["quota"] == {"maxJobCount": 3}
    assert body["tags"] == {"a": "1"}
    again = await api.patch(COLL, json={"properties": {"quota": None}, "tags": {"b": "2"}})
    assert "quota" not in again.json()["properties"]
    assert again.json()["tags"] == {"a": "1", "b": "2"}
    bad = await api.patch(COLL, json={"properties": {"sku": {"name": "Gold"}}})
    assert bad.status_code == 400
    assert bad.json()["error"]["target"] == "properties.sku.name"


async def test_free_collections_refuse_outbound_authentication(api):
    assert (await api.put(COLL, json={"properties": {"sku": {"name": "Free"}}})).status_code == 201
    body = job()
    body["properties"]["action"]["request"]["authentication"] = {
        "type": "Basic",
        "username": "u",
        "password": "hunter2",
    }
    refused = await api.put(f"{COLL}/jobs/auth", json=body)
    assert refused.status_code == 409
    assert "outbound authentication" in refused.json()["error"]["message"]
    assert "hunter2" not in refused.text
    assert (await api.get(f"{COLL}/jobs/auth")).status_code == 404
    body["properties"]["action"]["request"]["authentication"] = {"type": "NotSpecified"}
    assert (await api.put(f"{COLL}/jobs/auth", json=body)).status_code == 201
