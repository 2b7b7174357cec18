"""A body the domain models refuse is a 400 whose target is the field's path in the body as the
API documents it, on every operation that takes one (the one handler in shared/api/errors.py),
whether a job came as the ARM envelope or as a bare properties object."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from shared.runtime import Runtime
from tests.support.engine import api_client

pytestmark = pytest.mark.integration

BASE = "/api/jobCollections/targets"
ACTION = {"type": "Http", "request": {"uri": "http://127.0.0.1:9/hook", "method": "POST"}}
BAD_RETRY = {**ACTION, "retryPolicy": {"retryType": "Fixed", "retryCount": "3"}}
RETRY_TARGET = "properties.action.retryPolicy.retryCount"


@pytest.fixture
async def api(runtime: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client(runtime) as client:
        assert (await client.put(BASE, json={})).status_code in (200, 201)
        yield client


def refused_target(response: httpx.Response) -> str:
    assert response.status_code == 400, response.text
    error: dict[str, Any] = response.json()["error"]
    assert error["code"] == "BadRequest"
    assert error["message"].startswith(f"{error['target']}: ")
    assert error["details"][0]["target"] == error["target"]
    return str(error["target"])


async def test_a_refused_job_field_is_named_the_same_in_either_form_of_put(api):
    envelope = await api.put(f"{BASE}/jobs/j", json={"properties": {"action": BAD_RETRY}})
    bare = await api.put(f"{BASE}/jobs/j", json={"action": BAD_RETRY})

    assert refused_target(envelope) == RETRY_TARGET
    assert refused_target(bare) == RETRY_TARGET


async def test_a_refused_job_patch_names_the_field_in_either_form(api):
    assert (await api.put(f"{BASE}/jobs/j", json={"properties": {"action": ACTION}})).is_success
    patch = {"action": {"retryPolicy": {"retryType": "Fixed", "retryCount": "3"}}}

    envelope = await api.patch(f"{BASE}/jobs/j", json={"properties": patch})
    bare = await api.patch(f"{BASE}/jobs/j", json=patch)

    assert refused_target(envelope) == RETRY_TARGET
    assert refused_target(bare) == RETRY_TARGET


async def test_a_refused_collection_field_is_named_on_put_and_patch(api):
    body = {"properties": {"quota": {"maxJobCount": "20"}}}

    assert refused_target(await api.put(BASE, json=body)) == "properties.quota.maxJobCount"
    assert refused_target(await api.patch(BASE, json=body)) == "properties.quota.maxJobCount"
