"""The overlap policy (`properties.overlap`) against Azurite and a real HTTP target that holds
each call until the test releases it: Allow, Forbid, Replace, on-demand runs, a dead holder,
and the API's side (validation, GET, PATCH, OpenAPI)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from shared.clock import FixedClock
from shared.engine.dispatcher import message_for
from shared.engine.records import Run, RunStatus
from shared.model.job import HistoryStatus, JobState
from shared.names import CollectionRef
from shared.runtime import Runtime
from shared.timefmt import to_iso
from tests.support.engine import api_client, job_as_shown
from tests.support.http_target import HttpTarget

pytestmark = pytest.mark.integration

REF = CollectionRef.parse("overlap")
COLLECTION = REF.key
START = datetime(2031, 6, 2, 9, 0, 0, tzinfo=UTC)
MINUTE = timedelta(minutes=1)


async def minute_job(
    runtimes: Any, target: HttpTarget, overlap: str | None, count: int
) -> tuple[Runtime, FixedClock]:
    """A job every minute from START, `count` times, whose occurrences are all dispatched (the
    clock then reads START - 1 s)."""
    clock = FixedClock(START - timedelta(hours=1))
    runtime = await runtimes(clock=clock)
    await runtime.jobs.put_collection(REF, {"properties": {"state": "Enabled"}})
    properties: dict[str, Any] = {
        "startTime": to_iso(START),
        "action": {"type": "Http", "request": {"uri": f"{target.url}/hook"}},
        "recurrence": {"frequency": "Minute", "count": count},
    }
    if overlap is not None:
        properties["overlap"] = overlap
    await runtime.jobs.put_job(REF, "j", {"properties": properties})
    clock.set(START - timedelta(seconds=1))
    while (await runtime.dispatcher.dispatch_due()).dispatched:
        pass
    return runtime, clock


async def run_at(runtime: Runtime, nominal: datetime) -> Run:
    [run] = [r for r in await runtime.store.runs_of(COLLECTION, "j") if r.nominal == nominal]
    return run


def start(runtime: Runtime, run: Run) -> asyncio.Task[None]:
    """The attempt's message handled in the background, as a second host invocation would."""
    return asyncio.create_task(runtime.executor.execute(message_for(run)))


async def history_of(runtime: Runtime) -> list[Any]:
    records, _ = await runtime.store.history(COLLECTION, "j", top=100)
    return records


async def test_allow_runs_two_occurrences_at_once(runtimes, target):
    target.hold = True
    runtime, clock = await minute_job(runtimes, target, None, 2)
    clock.set(START)
    first = start(runtime, await run_at(runtime, START))
    await target.wait_for(1)
    clock.set(START + MINUTE)
    second = start(runtime, await run_at(runtime, START + MINUTE))
    await target.wait_for(2)  # both calls are in flight together
    target.release()
    await asyncio.gather(first, second)
    rows = await history_of(runtime)
    assert [r.properties.status for r in rows] == [HistoryStatus.COMPLETED] * 2
    assert (await job_as_shown(runtime, COLLECTION, "j")).state is JobState.COMPLETED


async def test_forbid_skips_an_occurrence_while_the_previous_runs_then_runs_the_next(
    runtimes, target
):
    target.hold = True
    runtime, clock = await minute_job(runtimes, target, "forbid", 3)
    clock.set(START)
    first = start(runtime, await run_at(runtime, START))
    await target.wait_for(1)

    clock.set(START + MINUTE)
    await runtime.executor.execute(message_for(await run_at(runtime, START + MINUTE)))
    assert len(target.requests) == 1, "the second occurrence must not call"
    [skipped] = await history_of(runtime)
    assert skipped.properties.status is HistoryStatus.CANCELLED
    assert skipped.properties.expected_execution_time == START + MINUTE
    assert skipped.properties.message.startswith(
        f"Skipped: the previous occurrence (nominal {START.isoformat()}) was still running"
    )

    target.release()
    await first
    clock.set(START + MINUTE + timedelta(seconds=1))
    await runtime.dispatcher.dispatch_due()  # the third occurrence is now within the lookahead
    clock.set(START + 2 * MINUTE)
    await runtime.executor.execute(message_for(await run_at(runtime, START + 2 * MINUTE)))
    assert len(target.requests) == 2, "the previous one ended: the next occurrence runs"
    job = await job_as_shown(runtime, COLLECTION, "j")
    assert job.state is JobState.COMPLETED
    assert (job.status.execution_count, job.status.failure_count) == (2, 0), "a skip is neither"
    assert await runtime.store.runs_of(COLLECTION, "j") == []


async def test_forbid_applies_to_an_on_demand_run(runtimes, target):
    target.hold = True
    runtime, clock = await minute_job(runtimes, target, "Forbid", 1)
    clock.set(START)
    first = start(runtime, await run_at(runtime, START))
    await target.wait_for(1)
    job = await runtime.store.get_job(COLLECTION, "j")
    assert job is not None
    on_demand = await runtime.dispatcher.run_on_demand(job)
    await runtime.executor.execute(message_for(on_demand))
    [skipped] = await history_of(runtime)
    assert skipped.on_demand and skipped.properties.status is HistoryStatus.CANCELLED
    assert "Skipped" in skipped.properties.message
    target.release()
    await first
    assert len(target.requests) == 1


async def test_forbid_is_not_blocked_by_a_dead_holder_whose_lease_ended(runtimes, target):
    runtime, clock = await minute_job(runtimes, target, "Forbid", 2)
    first = await run_at(runtime, START)
    # An executor claimed the first occurrence and died; its lease ended before the second.
    lease = START + timedelta(seconds=40)
    await runtime.store.move_run(
        first,
        replace(first, status=RunStatus.RUNNING, claimed_until=lease, watch_at=lease),
        START,
    )
    clock.set(START + MINUTE)
    await runtime.executor.execute(message_for(await run_at(runtime, START + MINUTE)))
    assert len(target.requests) == 1
    [row] = await history_of(runtime)
    assert row.properties.status is HistoryStatus.COMPLETED
    assert row.properties.expected_execution_time == START + MINUTE


async def test_replace_stops_the_running_call_and_starts_the_new_one(runtimes, target):
    target.hold = True
    runtime, clock = await minute_job(runtimes, target, "REPLACE", 2)
    clock.set(START)
    first = start(runtime, await run_at(runtime, START))
    await target.wait_for(1)

    clock.set(START + MINUTE)
    second = start(runtime, await run_at(runtime, START + MINUTE))
    assert await target.wait_disconnected(1) == [0], "the first call's connection is closed"
    await first
    await target.wait_for(2)  # the replacing occurrence calls after the first has stopped
    target.release()
    await second

    rows = await history_of(runtime)
    by_nominal = {r.properties.expected_execution_time: r.properties for r in rows}
    replaced = by_nominal[START]
    assert replaced.status is HistoryStatus.CANCELLED
    assert replaced.message == (
        f"Cancelled: replaced by the occurrence of {(START + MINUTE).isoformat()} "
        "(overlap policy Replace)."
    )
    assert by_nominal[START + MINUTE].status is HistoryStatus.COMPLETED
    assert len(rows) == 2
    job = await job_as_shown(runtime, COLLECTION, "j")
    assert job.state is JobState.COMPLETED, "the last occurrence succeeded"
    assert (job.status.execution_count, job.status.failure_count) == (2, 0)
    assert await runtime.store.runs_of(COLLECTION, "j") == []


async def test_replace_ends_a_run_whose_holder_died_when_the_timer_resumes_it(runtimes, target):
    runtime, clock = await minute_job(runtimes, target, "Replace", 2)
    first = await run_at(runtime, START)
    lease = START + timedelta(minutes=5)  # a dead holder with a live lease: nobody will answer
    first = await runtime.store.move_run(
        first,
        replace(first, status=RunStatus.RUNNING, claimed_until=lease, watch_at=lease),
        START,
    )
    clock.set(START + MINUTE)
    await runtime.executor.execute(message_for(await run_at(runtime, START + MINUTE)))
    assert len(target.requests) == 1, "started after the bounded wait"
    asked = await run_at(runtime, START)
    assert asked.replaced_by == f"the occurrence of {(START + MINUTE).isoformat()}"

    clock.set(lease + timedelta(seconds=1))  # the lease is over: the timer resumes the run
    await runtime.executor.execute(message_for(asked))
    assert len(target.requests) == 1, "a replaced run does not call again"
    statuses = {
        r.properties.expected_execution_time: r.properties.status for r in await history_of(runtime)
    }
    assert statuses == {START: HistoryStatus.CANCELLED, START + MINUTE: HistoryStatus.COMPLETED}
    assert await runtime.store.runs_of(COLLECTION, "j") == []


@pytest.fixture
async def api(runtime: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client(runtime) as client:
        await client.put("/api/jobCollections/ops", json={})
        yield client


JOB = "/api/jobCollections/ops/jobs/j"
ACTION = {"type": "Http", "request": {"uri": "http://127.0.0.1:9/hook"}}


@pytest.mark.parametrize("value", ["Sometimes", 1, None, ["Forbid"]])
async def test_a_bad_overlap_is_a_400_naming_the_field(api, value):
    body = {"properties": {"action": ACTION, "overlap": value}}
    response = await api.put(JOB, json=body)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["target"] == "properties.overlap", error
    assert (await api.get(JOB)).status_code == 404


async def test_overlap_is_shown_defaults_to_allow_and_survives_a_patch(api):
    created = await api.put(JOB, json={"properties": {"action": ACTION, "state": "Disabled"}})
    assert created.json()["properties"]["overlap"] == "Allow"
    await api.put(JOB, json={"properties": {"action": ACTION, "overlap": "forbid"}})
    assert (await api.get(JOB)).json()["properties"]["overlap"] == "Forbid"
    patched = await api.patch(JOB, json={"properties": {"state": "Disabled"}})
    assert patched.status_code == 200, patched.text
    assert patched.json()["properties"]["overlap"] == "Forbid"
    changed = await api.patch(JOB, json={"properties": {"overlap": "Replace"}})
    assert changed.json()["properties"]["overlap"] == "Replace"
    reset = await api.patch(JOB, json={"properties": {"overlap": None}})
    assert reset.json()["properties"]["overlap"] == "Allow", "null removes it: the default"


async def test_the_openapi_document_describes_overlap(api):
    document = (await api.get("/api/openapi.json")).json()
    text = str(document)
    assert "'Allow', 'Forbid', 'Replace'" in text
    assert "overlap" in text


async def test_replace_stops_a_running_on_demand_run_claimed_at_a_fraction_of_a_second(
    runtimes, target
):
    # A real clock claims at 09:00:00.123456; the row keeps milliseconds: the running call
    # must still recognise its own claim when the request to stop comes.
    target.hold = True
    runtime, clock = await minute_job(runtimes, target, "Replace", 1)
    job = await runtime.store.get_job(COLLECTION, "j")
    assert job is not None
    clock.set(START - timedelta(seconds=30, microseconds=-123456))
    first = start(runtime, await runtime.dispatcher.run_on_demand(job))
    await target.wait_for(1)
    clock.set(START - timedelta(seconds=29))
    second = start(runtime, await runtime.dispatcher.run_on_demand(job))
    assert await target.wait_disconnected(1, timeout=10) == [0], "the first call is closed"
    await first
    await target.wait_for(2)
    target.release()
    await second
    rows = await history_of(runtime)
    assert sorted(r.properties.status for r in rows) == [
        HistoryStatus.CANCELLED,
        HistoryStatus.COMPLETED,
    ]
    assert all(r.on_demand for r in rows)
