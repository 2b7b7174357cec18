"""The engine under overlap, races, lost answers and crashes (docs/ARCHITECTURE.md, Guarantees).

Each test orders the real calls of two app instances (or a flaky network) the way a failure
would, against Azurite and a real HTTP target."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from shared.clock import FixedClock
from shared.engine.dispatcher import message_for
from shared.engine.records import DueEntry, Run, RunStatus
from shared.model.job import ActionName, HistoryStatus, JobState
from shared.names import CollectionRef
from shared.runtime import Runtime
from shared.storage.queue import AttemptMessage
from shared.timefmt import to_iso
from tests.support.engine import api_client, job_as_shown, work_queue
from tests.support.flaky_proxy import FlakyProxy
from tests.support.http_target import HttpTarget

pytestmark = pytest.mark.integration

REF = CollectionRef.parse("resilience")
COLLECTION = REF.key
ENABLED = {"properties": {"state": "Enabled"}}
START = datetime(2031, 6, 2, 9, 0, 0, tzinfo=UTC)


def http_job(target: HttpTarget, **properties: Any) -> dict[str, Any]:
    action: dict[str, Any] = {"type": "Http", "request": {"uri": f"{target.url}/hook"}}
    action.update(properties.pop("action", {}))
    return {"properties": {"action": action, **properties}}


async def status_of(runtime, job: str) -> Any:
    return await job_as_shown(runtime, COLLECTION, job)


async def history_of(runtime, job: str) -> list[Any]:
    records, _ = await runtime.store.history(COLLECTION, job, top=100)
    return [r.properties for r in records]


async def with_job(
    runtimes: Any, target: HttpTarget, name: str, **properties: Any
) -> tuple[Runtime, FixedClock]:
    """A runtime whose clock reads an hour before START, holding job `name` (its startTime is
    START unless given): nothing is dispatched yet."""
    clock = FixedClock(START - timedelta(hours=1))
    runtime = await runtimes(clock=clock, **properties.pop("settings", {}))
    await runtime.jobs.put_collection(REF, ENABLED)
    properties.setdefault("startTime", to_iso(START))
    await runtime.jobs.put_job(REF, name, http_job(target, **properties))
    return runtime, clock


async def step_of(runtime: Runtime, job: str, nominal: datetime) -> Run:
    [run] = [r for r in await runtime.store.runs_of(COLLECTION, job) if r.nominal == nominal]
    return run


async def test_a_job_ends_only_when_its_last_outstanding_run_ends(runtimes, target, error_target):
    """A minute job with count 2 whose first occurrence is still retrying when the second (the
    last) succeeds: the first still gets its retries and its error action, and only then does
    the job take its final state (decided by the last occurrence)."""
    target.statuses = [200, 500]  # the second occurrence runs first and succeeds
    action = {
        "retryPolicy": {"retryType": "Fixed", "retryInterval": "PT45S", "retryCount": 2},
        "errorAction": {"type": "Http", "request": {"uri": f"{error_target.url}/alert"}},
    }
    recurrence = {"frequency": "Minute", "count": 2}
    runtime, clock = await with_job(
        runtimes, target, "overlap", recurrence=recurrence, action=action
    )
    clock.set(START - timedelta(seconds=1))
    report = await runtime.dispatcher.dispatch_due()
    assert report.dispatched == 2
    first, last = START, START + timedelta(minutes=1)

    clock.set(last)
    await runtime.executor.execute(message_for(await step_of(runtime, "overlap", last)))
    assert (await status_of(runtime, "overlap")).state is JobState.ENABLED, "ended too early"
    for retry in range(3):  # attempt 0 and two retries, 45 s apart
        run = await step_of(runtime, "overlap", first)
        assert (run.phase, run.attempt) == (ActionName.MAIN_ACTION, retry)
        clock.set(max(clock.now(), run.due))
        await runtime.executor.execute(message_for(run))
    run = await step_of(runtime, "overlap", first)
    assert run.phase is ActionName.ERROR_ACTION
    await runtime.executor.execute(message_for(run))

    assert len(target.requests) == 4 and len(error_target.requests) == 1
    job = await status_of(runtime, "overlap")
    assert job.state is JobState.COMPLETED, "the last occurrence succeeded"
    assert (job.status.execution_count, job.status.failure_count) == (2, 3)
    assert job.status.faulted_count == 1
    assert await runtime.store.runs_of(COLLECTION, "overlap") == []


async def test_a_run_of_a_disabled_job_is_cancelled_and_its_history_says_so(runtimes, target):
    runtime, clock = await with_job(runtimes, target, "off")
    clock.set(START - timedelta(seconds=1))
    await runtime.dispatcher.dispatch_due()
    run = await step_of(runtime, "off", START)
    await runtime.jobs.patch_job(REF, "off", {"properties": {"state": "Disabled"}})
    clock.set(START)
    await runtime.executor.execute(message_for(run))
    assert target.requests == []
    [row] = await history_of(runtime, "off")
    assert row.status is HistoryStatus.CANCELLED and "disabled" in row.message
    assert await runtime.store.runs_of(COLLECTION, "off") == []


@pytest.fixture
async def flaky_runtime(runtimes, azurite):
    """A runtime whose table traffic goes through a proxy that can reset a connection."""
    proxy = await FlakyProxy(azurite.ports["Table"]).start()
    connection = azurite.connection_string.replace(
        f"127.0.0.1:{azurite.ports['Table']}", f"127.0.0.1:{proxy.port}"
    )
    runtime = await runtimes(storage_connection=connection)
    yield runtime, proxy
    await proxy.stop()


@pytest.mark.parametrize("after_storage", [False, True], ids=["request-lost", "answer-lost"])
async def test_a_call_that_reached_the_target_is_recorded_once_despite_a_reset(
    flaky_runtime, target, after_storage
):
    runtime, proxy = flaky_runtime
    await runtime.jobs.put_collection(REF, ENABLED)
    later = datetime.now(UTC) + timedelta(days=1)
    await runtime.jobs.put_job(REF, "reset", http_job(target, startTime=to_iso(later)))
    await runtime.jobs.run_on_demand(REF, "reset")
    messages = [m async for m in runtime.queue.client.receive_messages(visibility_timeout=60)]
    [message] = messages
    parsed = AttemptMessage.from_json(message.content)
    run = await runtime.store.get_run(COLLECTION, parsed.run_key)
    assert run is not None

    async def cut_when_called() -> None:
        await target.wait_for(1)
        proxy.cut_next_batch(after_storage=after_storage)

    # Once the target has been called, the next transaction is the attempt's recording.
    watcher = asyncio.create_task(cut_when_called())
    await runtime.executor.execute(parsed)
    await watcher
    assert proxy.cuts == 1
    assert len(target.requests) == 1
    [row] = await history_of(runtime, "reset")
    assert row.status is HistoryStatus.COMPLETED
    assert await runtime.store.get_run(COLLECTION, parsed.run_key) is None
    assert (await status_of(runtime, "reset")).status.execution_count == 1


async def test_a_racing_dispatchers_next_row_is_not_deleted(runtimes, target):
    """Dispatcher B has indexed the job's next occurrence (step 1) but not yet committed; a
    slice of dispatcher A that read the job before B's commit must leave that row alone."""
    clock_b = FixedClock(START - timedelta(minutes=10))
    clock_a = FixedClock(START + timedelta(seconds=5))
    b = await runtimes(clock=clock_b)
    a = await runtimes(clock=clock_a)
    await b.jobs.put_collection(REF, ENABLED)
    await b.jobs.put_job(
        REF,
        "race",
        http_job(target, startTime=to_iso(START), recurrence={"frequency": "Hour"}),
    )
    following = START + timedelta(hours=1)
    row = DueEntry(following, COLLECTION, "race")
    await b.store.put_due(row, clock_b.now())  # B, step 1
    await a.dispatcher._dispatch([row], following)  # A's slice holding that row
    assert row in (await a.store.scan(following)).entries, "the next occurrence's row was deleted"


async def test_a_coalesced_run_survives_a_dispatcher_death_before_its_message(runtimes, target):
    runtime, clock = await with_job(runtimes, target, "late", recurrence={"frequency": "Minute"})
    job = await runtime.store.get_job(COLLECTION, "late")
    assert job is not None
    # Down for three and a half minutes: the dispatch coalesces 3 misses into the run at
    # START + 3 min, commits it, and dies before sending the message and deleting the row.
    nominal = START + timedelta(minutes=3)
    clock.set(nominal + timedelta(seconds=30))
    run = Run(COLLECTION, "late", job.generation, nominal, repeat_count=4, due=nominal, missed=3)
    advanced = replace(job, next_fire=nominal + timedelta(minutes=1), occurrences=4)
    await runtime.store.commit_dispatch(advanced, run, clock.now())
    clock.advance(timedelta(minutes=1))
    report = await runtime.dispatcher.dispatch_due()
    assert report.recovered == 1
    await work_queue(runtime, lambda: _calls(target, 1))
    [row] = await history_of(runtime, "late")
    assert row.expected_execution_time == nominal and "3 earlier missed" in row.message


async def _calls(target: HttpTarget, count: int) -> bool:
    return len(target.requests) >= count


async def test_every_coalesced_miss_is_noted_even_when_not_late(runtimes, target):
    runtime, clock = await with_job(runtimes, target, "missed", recurrence={"frequency": "Minute"})
    clock.set(START + timedelta(minutes=1, milliseconds=500))  # START missed, half a second on
    await runtime.dispatcher.dispatch_due()
    run = await step_of(runtime, "missed", START + timedelta(minutes=1))
    assert run.missed == 1 and run.late_seconds == 0
    await runtime.executor.execute(message_for(run))
    [row] = await history_of(runtime, "missed")
    assert "1 earlier missed occurrence(s) were counted" in row.message


async def test_a_racing_pass_does_not_resend_what_the_winner_is_sending(runtimes, target):
    clock = FixedClock(START - timedelta(hours=1))
    winner = await runtimes(clock=clock)
    loser = await runtimes(clock=clock)
    await winner.jobs.put_collection(REF, ENABLED)
    await winner.jobs.put_job(REF, "once", http_job(target, startTime=to_iso(START)))
    job = await winner.store.get_job(COLLECTION, "once")
    assert job is not None
    clock.set(START - timedelta(seconds=30))
    # The winner committed and is still sending its slice's messages: its rows are not deleted.
    run = Run(COLLECTION, "once", job.generation, START, repeat_count=1, due=START, last=True)
    await winner.store.commit_dispatch(
        replace(job, next_fire=None, occurrences=1), run, clock.now()
    )
    report = await loser.dispatcher.dispatch_due()
    assert report.recovered == 0
    properties = await loser.queue.client.get_queue_properties()
    assert properties.approximate_message_count == 0


async def test_next_execution_time_shows_an_occurrence_dispatched_but_not_run(runtimes, target):
    recurrence = {"frequency": "Minute", "count": 2}
    runtime, clock = await with_job(runtimes, target, "next", recurrence=recurrence)
    clock.set(START - timedelta(seconds=1))
    await runtime.dispatcher.dispatch_due()  # both occurrences: the job's next_fire is None
    async with api_client(runtime) as client:
        answer = await client.get(f"/api/jobCollections/{REF.name}/jobs/next")
        assert answer.json()["properties"]["status"]["nextExecutionTime"] == to_iso(START)
        clock.set(START)
        await runtime.executor.execute(message_for(await step_of(runtime, "next", START)))
        answer = await client.get(f"/api/jobCollections/{REF.name}/jobs/next")
        shown = answer.json()["properties"]["status"]["nextExecutionTime"]
        assert shown == to_iso(START + timedelta(minutes=1))


async def test_two_hundred_concurrent_runs_call_once_each_and_count_exactly(runtimes, target):
    first = await runtimes()
    second = await runtimes()
    await first.jobs.put_collection(REF, ENABLED)
    later = datetime.now(UTC) + timedelta(days=1)
    await first.jobs.put_job(REF, "busy", http_job(target, startTime=to_iso(later)))
    async with api_client(first) as client:
        path = f"/api/jobCollections/{REF.name}/jobs/busy/run"
        answers = await asyncio.gather(*(client.post(path) for _ in range(200)))
    assert {a.status_code for a in answers} == {200}

    async def recorded() -> bool:
        count, after = 0, None
        while True:
            page, after = await first.store.history(COLLECTION, "busy", top=100, after=after)
            count += len(page)
            if after is None:
                return count >= 200

    await asyncio.gather(
        work_queue(first, recorded, timeout=120), work_queue(second, recorded, timeout=120)
    )
    assert len(target.requests) == 200
    assert len({r.headers["Idempotency-Key"] for r in target.requests}) == 200
    async with api_client(first) as client:
        answer = await client.get(f"/api/jobCollections/{REF.name}/jobs/busy")
    assert answer.json()["properties"]["status"]["executionCount"] == 200


async def test_a_job_whose_closer_died_is_settled_by_the_next_pass(runtimes, target):
    """The executor recorded the last run's end (with the reminder to settle the job) and died
    before settling it: the timer pass that finds the reminder due gives the job its state."""
    from shared.engine.planning import FINAL_CHECK_GRACE, plan_next_step
    from shared.kinds.base import ActionOutcome

    runtime, clock = await with_job(runtimes, target, "orphaned")
    clock.set(START - timedelta(seconds=1))
    await runtime.dispatcher.dispatch_due()
    run = await step_of(runtime, "orphaned", START)
    job = await runtime.store.get_job(COLLECTION, "orphaned")
    assert job is not None and job.next_fire is None
    clock.set(START)
    plan = plan_next_step(
        job, run, job.properties.action, ActionOutcome(True, "ok", 200), START, START
    )
    reminder = START + FINAL_CHECK_GRACE
    await runtime.store.commit_attempt(
        run, None, history=plan.history, tally=plan.tally, check_final_at=reminder, now=START
    )
    await runtime.dispatcher.dispatch_due()
    assert (await status_of(runtime, "orphaned")).state is JobState.ENABLED, "not yet due"
    clock.set(reminder)
    await runtime.dispatcher.dispatch_due()
    settled = await status_of(runtime, "orphaned")
    assert settled.state is JobState.COMPLETED and settled.status.execution_count == 1
    assert (await runtime.store.scan(reminder, now=reminder)).watches == []


async def test_a_job_disabled_while_its_claimed_attempt_waits_for_its_second_is_not_called(
    runtimes, target
):
    """An early message is claimed, then held until its second; a disable answered during
    the hold must stop the call."""
    runtime, clock = await with_job(runtimes, target, "held")
    clock.set(START - timedelta(seconds=2))
    await runtime.dispatcher.dispatch_due()
    run = await step_of(runtime, "held", START)
    attempt = asyncio.create_task(runtime.executor.execute(message_for(run)))
    while (await step_of(runtime, "held", START)).status is not RunStatus.RUNNING:
        assert not attempt.done(), "the attempt ended without claiming"
        await asyncio.sleep(0.01)
    await runtime.jobs.patch_job(REF, "held", {"properties": {"state": "Disabled"}})
    await attempt
    assert target.requests == []
    [row] = await history_of(runtime, "held")
    assert row.status is HistoryStatus.CANCELLED


@pytest.mark.parametrize(
    ("timeout", "retry"),
    [(30, 5), (60, 30)],
    ids=["lease-ends-at-the-waiting-watch", "retry-watch-at-the-lease-end"],
)
async def test_a_watch_that_stays_in_its_second_is_left_in_place(runtimes, target, timeout, retry):
    """A run's watch moves from due + 60 s (waiting) to its lease's end (claimed), then to the
    retry's due + 60 s. When two of those fall in the same second they are one row, which one
    transaction may not delete and write again: it is left as it is."""
    target.statuses = [500, 200]
    action = {
        "request": {"uri": f"{target.url}/hook", "timeoutSeconds": timeout},
        "retryPolicy": {"retryType": "Fixed", "retryInterval": f"PT{retry}S", "retryCount": 1},
    }
    margin = {"lease_margin": timedelta(seconds=30)}
    runtime, clock = await with_job(runtimes, target, "same", action=action, settings=margin)
    clock.set(START)
    await runtime.dispatcher.dispatch_due()
    await runtime.executor.execute(message_for(await step_of(runtime, "same", START)))
    run = await step_of(runtime, "same", START)
    assert run.attempt == 1, "the first attempt was not recorded"
    clock.set(run.due)
    await runtime.executor.execute(message_for(run))
    assert len(target.requests) == 2
    assert (await status_of(runtime, "same")).state is JobState.COMPLETED


async def test_an_early_message_does_all_its_storage_calls_before_its_second(flaky_runtime, target):
    """Precision: the claim and the hold's re-read of the job are storage round trips; made
    after the second, they would be part of the call's lateness. None may reach storage between
    the run's second and the call (the proxy notes when each request reached it)."""
    runtime, proxy = flaky_runtime
    await runtime.jobs.put_collection(REF, ENABLED)
    loop = asyncio.get_running_loop()
    now = datetime.now(UTC)
    due = (now + timedelta(seconds=2.5)).replace(microsecond=0)  # held 1.5 to 2.5 s
    second = loop.time() + (due - now).total_seconds()  # the same instant, monotonic
    await runtime.jobs.put_job(REF, "punctual", http_job(target, startTime=to_iso(due)))
    run = await step_of(runtime, "punctual", due)
    proxy.requests.clear()

    await runtime.executor.execute(message_for(run))

    [request] = target.requests
    assert request.at >= due, "fired before its second"
    at_or_after = [line for at, line in proxy.requests if second <= at < request.monotonic]
    assert at_or_after == [], "storage calls between the second and the call"
    before = [line for at, line in proxy.requests if at < second]
    assert any(line.startswith("GET") and "job%7C" in line for line in before[1:]), (
        "the job was not read again during the hold"
    )
    assert (await status_of(runtime, "punctual")).state is JobState.COMPLETED
