"""`rollout.exponentialRate` end to end (against Azurite, a real device endpoint on 127.0.0.1):
the request is checked (a 400 naming the field, nothing stored), returned as given, and the
device calls follow the planned slots (shared/broadcasts/planning.py), stage by stage."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from shared.broadcasts.planning import rollout_delay_seconds
from shared.runtime import Runtime
from shared.storage.broadcasts import BroadcastRows
from tests.integration.test_broadcast_starts import broadcast_ids, with_device_work
from tests.integration.test_broadcasts import add_devices, method_job
from tests.integration.test_devices_api import assert_hub_error
from tests.support.engine import api_client

pytestmark = pytest.mark.integration

# Azurite's visibility timeouts are whole seconds from when the message was sent: a call may
# come up to this much before its slot measured from just before the start.
VISIBILITY_GRAIN = 1.0


@pytest.fixture
async def api(runtime: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client(runtime) as client:
        client.params = httpx.QueryParams({"api-version": "2021-04-12"})
        yield client


def exponential(**overrides: Any) -> dict[str, Any]:
    rate: dict[str, Any] = {
        "baseRatePerMinute": 30,
        "incrementFactor": 2,
        "rateIncreaseCriteria": {"numberOfNotifiedThings": 2},
    }
    rate.update(overrides)
    return {"exponentialRate": rate}


async def test_an_exponential_rollout_calls_the_devices_at_their_planned_slots(
    api, device_endpoint, work, runtime
):
    """30 a minute doubled every 2 devices: slots 0, 2, 4, 5, 6, 6, 7, 7 s. Each device is
    called in slot order and never before its slot; the rollout takes its planned time."""
    ids = [f"x{i}" for i in range(8)]
    await add_devices(api, device_endpoint, ids)
    rollout = exponential()
    created = await api.put("/api/jobs/v2/exp", json=method_job("exp", rollout=rollout))
    assert created.status_code == 200, created.text
    assert (await api.get("/api/jobs/v2/exp")).json()["rollout"] == rollout

    loop = asyncio.get_running_loop()
    before_start = loop.time()

    async def all_called() -> bool:
        return len(device_endpoint.calls) >= len(ids)

    await with_device_work(runtime, work, all_called)

    settings = runtime.settings
    rows = BroadcastRows.from_connection_string(
        settings.storage_connection, settings.broadcasts_table
    )
    try:
        order = [record.device_id async for record, _ in rows.records("exp")]
    finally:
        await rows.close()
    job = await runtime.broadcasts.read("exp")
    assert job is not None
    slots = {
        device_id: rollout_delay_seconds(index, None, job.spec.exponential_rate)
        for index, device_id in enumerate(order)
    }
    assert sorted(slots.values()) == [0, 2, 4, 5, 6, 6, 7, 7]
    called = [slots[str(caller)] for caller in device_endpoint.callers]
    assert called == sorted(called), "devices called out of their slot order"
    for caller, arrived in zip(device_endpoint.callers, device_endpoint.arrived, strict=True):
        assert arrived - before_start >= slots[str(caller)] - VISIBILITY_GRAIN, caller
    # At the base rate alone the last device would wait 14 s: the rate did rise.
    assert max(device_endpoint.arrived) - before_start < 13
    final = (await api.get("/api/jobs/v2/exp")).json()
    assert final["deviceJobStatistics"]["succeededCount"] == 8


@pytest.mark.parametrize(
    ("rollout", "field"),
    [
        ({"maximumPerMinute": 10, **exponential()}, "rollout.exponentialRate"),
        (exponential(baseRatePerMinute=0), "rollout.exponentialRate.baseRatePerMinute"),
        (exponential(baseRatePerMinute=1001), "rollout.exponentialRate.baseRatePerMinute"),
        (exponential(baseRatePerMinute=None), "rollout.exponentialRate.baseRatePerMinute"),
        (exponential(incrementFactor=1.0), "rollout.exponentialRate.incrementFactor"),
        (exponential(incrementFactor=5.1), "rollout.exponentialRate.incrementFactor"),
        (exponential(incrementFactor=1.55), "rollout.exponentialRate.incrementFactor"),
        (exponential(incrementFactor="2"), "rollout.exponentialRate.incrementFactor"),
        (
            exponential(rateIncreaseCriteria={}),
            "rollout.exponentialRate.rateIncreaseCriteria",
        ),
        (
            exponential(
                rateIncreaseCriteria={"numberOfNotifiedThings": 1, "numberOfSucceededThings": 1}
            ),
            "rollout.exponentialRate.rateIncreaseCriteria",
        ),
        (
            exponential(rateIncreaseCriteria={"numberOfSucceededThings": 10_001}),
            "rollout.exponentialRate.rateIncreaseCriteria.numberOfSucceededThings",
        ),
        (
            exponential(rateIncreaseCriteria={"numberOfNotifiedThings": 0}),
            "rollout.exponentialRate.rateIncreaseCriteria.numberOfNotifiedThings",
        ),
        (exponential(rateIncreaseCriteria=3), "rollout.exponentialRate.rateIncreaseCriteria"),
        ({"exponentialRate": 5}, "rollout.exponentialRate"),
        ({"maximumPerMinute": 1001}, "rollout.maximumPerMinute"),
    ],
)
async def test_a_bad_rollout_is_a_400_naming_the_field_and_nothing_is_stored(api, rollout, field):
    response = await api.put("/api/jobs/v2/bad", json=method_job("bad", rollout=rollout))
    message = assert_hub_error(response, 400, "ArgumentInvalid")
    assert f"{field}: " in message, message
    assert await broadcast_ids(api) == []


async def test_a_succeeded_criterion_with_a_fractional_factor_is_returned_as_given(api):
    rollout = exponential(
        baseRatePerMinute=1000,
        incrementFactor=1.5,
        rateIncreaseCriteria={"numberOfSucceededThings": 10_000},
    )
    created = await api.put("/api/jobs/v2/ok", json=method_job("ok", rollout=rollout))
    assert created.status_code == 200, created.text
    assert (await api.get("/api/jobs/v2/ok")).json()["rollout"] == rollout
