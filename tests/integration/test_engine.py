"""The engine against Azurite: store, dispatcher, executor, retries, error action, history."""

from __future__ import annotations

import asyncio
import functools
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from azure.data.tables.aio import TableServiceClient

from shared.clock import FixedClock
from shared.engine.records import DueEntry, RunStatus
from shared.model.job import ActionName, HistoryStatus, JobState
from shared.names import CollectionRef
from shared.storage.rows import row_keys
from shared.timefmt import to_iso
from tests.support.engine import job_as_shown, work_queue
from tests.support.http_target import HttpTarget

pytestmark = pytest.mark.integration

REF = CollectionRef.parse("main")
COLLECTION = REF.key  # the store's partition of the collection


def http_job(target: HttpTarget, **properties: Any) -> dict[str, Any]:
    action: dict[str, Any] = {
        "type": "Http",
        "request": {"uri": f"{target.url}/hook", "method": "POST", "body": "ping"},
    }
    action.update(properties.pop("action", {}))
    return {"properties": {"action": action, **properties}}


async def status_of(runtime, job: str) -> Any:
    return (await job_as_shown(runtime, COLLECTION, job)).status


async def history_of(runtime, job: str) -> list[Any]:
    records, _ = await runtime.store.history(COLLECTION, job, top=100)
    return [r.properties for r in records]


async def test_one_time_job_fires_once_records_history_and_completes(runtimes, target):
    runtime = await runtimes()
    await runtime.jobs.put_collection(REF, ENABLED)
    due = (datetime.now(UTC) + timedelta(seconds=2)).replace(microsecond=0)
    job, created = await runtime.jobs.put_job(REF, "once", http_job(target, startTime=to_iso(due)))
    assert created and job.next_fire == due

    async def done() -> bool:
        stored = await runtime.store.get_job(COLLECTION, "once")
        return stored is not None and stored.state is JobState.COMPLETED

    await work_queue(runtime, done)
    [request] = target.requests
    assert request.method == "POST" and request.body == "ping"
    assert request.at >= due, "fired before its second"
    assert (request.at - due).total_seconds() < 1.0
    headers = {k.lower(): v for k, v in request.headers.items()}
    assert headers["x-ms-scheduler-jobid"] == "once"
    assert headers["x-ms-scheduler-jobcollectionid"] == REF.name
    assert headers["x-ms-scheduler-expected-execution-time"].startswith(to_iso(due)[:19])
    for name in ("x-ms-execution-tag", "x-ms-client-request-id", "idempotency-key"):
        assert headers[name]
    stored = await runtime.store.get_job(COLLECTION, "once")
    assert stored is not None
    assert (stored.execution_count, stored.failure_count, stored.faulted_count) == (1, 0, 0)
    assert stored.next_fire is None and stored.last_execution_time is not None
    [row] = await history_of(runtime, "once")
    assert row.status is HistoryStatus.COMPLETED and row.action_name is ActionName.MAIN_ACTION
    assert row.expected_execution_time == due and row.repeat_count == 1 and row.retry_count == 0
    assert "200" in row.message


async def test_retries_keep_one_idempotency_key_then_succeed(runtimes, target):
    runtime = await runtimes()
    await runtime.jobs.put_collection(REF, ENABLED)
    target.statuses = [500, 503, 200]
    retry = {"retryType": "fixed", "retryInterval": "PT1S", "retryCount": 3}
    await runtime.jobs.put_job(REF, "flaky", http_job(target, action={"retryPolicy": retry}))

    async def done() -> bool:
        stored = await runtime.store.get_job(COLLECTION, "flaky")
        return stored is not None and stored.state is JobState.COMPLETED

    await work_queue(runtime, done)
    assert len(target.requests) == 3
    keys = {r.headers["Idempotency-Key"] for r in target.requests}
    assert len(keys) == 1
    gaps = [
        b.monotonic - a.monotonic
        for a, b in zip(target.requests, target.requests[1:], strict=False)
    ]
    assert all(gap >= 0.9 for gap in gaps), gaps
    stored = await runtime.store.get_job(COLLECTION, "flaky")
    assert stored is not None
    assert (stored.execution_count, stored.failure_count, stored.faulted_count) == (1, 2, 0)
    rows = await history_of(runtime, "flaky")
    assert [r.status for r in rows] == [
        HistoryStatus.COMPLETED,
        HistoryStatus.FAILED,
        HistoryStatus.FAILED,
    ]
    assert [r.retry_count for r in rows] == [2, 1, 0]
    assert "500" in rows[2].message and "503" in rows[1].message


async def test_exhausted_retries_call_the_error_action_and_fault_the_job(
    runtimes, target, error_target
):
    runtime = await runtimes()
    await runtime.jobs.put_collection(REF, ENABLED)
    target.statuses = [500]
    error_target.statuses = [500, 200]
    action = {
        "retryPolicy": {"retryType": "Fixed", "retryInterval": "PT1S", "retryCount": 1},
        "errorAction": {
            "type": "http",
            "request": {"uri": f"{error_target.url}/error", "method": "POST"},
            "retryPolicy": {"retryType": "fixed", "retryInterval": "PT1S", "retryCount": 1},
        },
    }
    await runtime.jobs.put_job(REF, "doomed", http_job(target, action=action))

    async def done() -> bool:
        stored = await runtime.store.get_job(COLLECTION, "doomed")
        return stored is not None and stored.state is JobState.FAULTED

    await work_queue(runtime, done)
    assert len(target.requests) == 2 and len(error_target.requests) == 2
    stored = await runtime.store.get_job(COLLECTION, "doomed")
    assert stored is not None
    assert (stored.execution_count, stored.failure_count, stored.faulted_count) == (1, 2, 1)
    rows = await history_of(runtime, "doomed")
    assert [(r.action_name, r.status, r.retry_count) for r in rows] == [
        (ActionName.ERROR_ACTION, HistoryStatus.COMPLETED, 1),
        (ActionName.ERROR_ACTION, HistoryStatus.FAILED, 0),
        (ActionName.MAIN_ACTION, HistoryStatus.FAILED, 1),
        (ActionName.MAIN_ACTION, HistoryStatus.FAILED, 0),
    ]


async def test_hanging_target_times_out_as_a_failed_attempt(runtimes, target):
    runtime = await runtimes()
    await runtime.jobs.put_collection(REF, ENABLED)
    target.hang = True
    action = {
        "request": {"uri": f"{target.url}/slow", "method": "GET", "timeoutSeconds": 1},
        "retryPolicy": {"retryType": "None"},
    }
    await runtime.jobs.put_job(REF, "slow", http_job(target, action=action))

    async def done() -> bool:
        stored = await runtime.store.get_job(COLLECTION, "slow")
        return stored is not None and stored.state is JobState.FAULTED

    await work_queue(runtime, done)
    [row] = await history_of(runtime, "slow")
    assert row.status is HistoryStatus.FAILED
    assert "timed out" in row.message.lower()
    assert row.end_time is not None and (row.end_time - row.start_time).total_seconds() < 5


async def test_recurring_job_with_count_completes_after_its_last_occurrence(runtimes, target):
    start = datetime(2030, 1, 7, 9, 0, 0, tzinfo=UTC)
    clock = FixedClock(start - timedelta(minutes=10))
    runtime = await runtimes(clock=clock)
    await runtime.jobs.put_collection(REF, ENABLED)
    body = http_job(
        target,
        startTime=to_iso(start),
        recurrence={"frequency": "minute", "interval": 5, "count": 3},
    )
    job, _ = await runtime.jobs.put_job(REF, "thrice", body)
    assert job.next_fire == start
    for index, minutes in enumerate((0, 5, 10), start=1):
        clock.set(start + timedelta(minutes=minutes))
        report = await runtime.dispatcher.dispatch_due()
        assert report.dispatched == 1

        async def arrived(n: int = index) -> bool:
            return len(target.requests) >= n

        await work_queue(runtime, arrived)
    stored = await runtime.store.get_job(COLLECTION, "thrice")
    assert stored is not None

    async def completed() -> bool:
        current = await runtime.store.get_job(COLLECTION, "thrice")
        return current is not None and current.state is JobState.COMPLETED

    await work_queue(runtime, completed)
    expected = [start + timedelta(minutes=m) for m in (0, 5, 10)]
    seen = [r.headers["x-ms-scheduler-expected-execution-time"][:19] for r in target.requests]
    assert seen == [to_iso(t)[:19] for t in expected]
    clock.set(start + timedelta(minutes=30))
    assert (await runtime.dispatcher.dispatch_due()).dispatched == 0


async def test_downtime_runs_the_latest_missed_occurrence_once_flagged_late(runtimes, target):
    start = datetime(2030, 1, 7, 9, 0, 0, tzinfo=UTC)
    clock = FixedClock(start - timedelta(minutes=5))
    runtime = await runtimes(clock=clock)
    await runtime.jobs.put_collection(REF, ENABLED)
    body = http_job(
        target, startTime=to_iso(start), recurrence={"frequency": "Minute", "interval": 1}
    )
    await runtime.jobs.put_job(REF, "minutely", body)
    # The app is down from 08:55 to 09:10:30: no timer pass ran.
    clock.set(start + timedelta(minutes=10, seconds=30))
    report = await runtime.dispatcher.dispatch_due()
    assert (report.dispatched, report.missed) == (3, 10)  # 09:10 late, then 09:11 and 09:12

    async def arrived() -> bool:
        return len(target.requests) >= 1

    await work_queue(runtime, arrived)
    first = target.requests[0].headers["x-ms-scheduler-expected-execution-time"]
    assert first.startswith("2030-01-07T09:10:00")
    stored = await runtime.store.get_job(COLLECTION, "minutely")
    assert stored is not None and stored.missed_count == 10
    assert stored.next_fire == start + timedelta(minutes=13)

    async def recorded() -> bool:
        return len(await history_of(runtime, "minutely")) >= 1

    await work_queue(runtime, recorded)
    [row] = await history_of(runtime, "minutely")
    assert "Late by 30.0 s" in row.message and "10 earlier missed" in row.message


async def test_timer_reads_only_due_rows_not_every_job(runtimes, target):
    runtime = await runtimes()
    await runtime.jobs.put_collection(REF, ENABLED)
    later = to_iso(datetime.now(UTC) + timedelta(days=3))
    for index in range(40):
        await runtime.jobs.put_job(REF, f"later{index}", http_job(target, startTime=later))
    soon = to_iso(datetime.now(UTC) + timedelta(seconds=90))
    await runtime.jobs.put_job(REF, "soon", http_job(target, startTime=soon))
    horizon = datetime.now(UTC) + runtime.settings.lookahead
    due = (await runtime.store.scan(horizon)).entries
    assert due == []  # "soon" was dispatched at creation, the other 40 are not due
    assert len((await runtime.store.scan(horizon + timedelta(days=4))).entries) == 40
    report = await runtime.dispatcher.dispatch_due()
    assert (report.dispatched, report.stale) == (0, 0)


async def test_jobs_are_read_in_queries_within_the_service_limit_of_15_comparisons(
    runtimes, target
):
    runtime = await runtimes()
    other = CollectionRef.parse("other")
    later = to_iso(datetime.now(UTC) + timedelta(days=3))
    wanted = []
    for ref, count in ((REF, 30), (other, 3)):
        await runtime.jobs.put_collection(ref, ENABLED)
        for index in range(count):
            await runtime.jobs.put_job(ref, f"job{index}", http_job(target, startTime=later))
            wanted.append((ref.key, f"job{index}"))
    filters: list[str] = []
    table = runtime.store.table_for(REF.key)
    query_entities = table.query_entities

    def spy(query_filter: str, **kwargs: Any) -> Any:
        filters.append(query_filter)
        return query_entities(query_filter, **kwargs)

    table.query_entities = spy
    found = await runtime.store.get_jobs([*wanted, (REF.key, "missing")])

    assert sorted(found) == sorted(wanted)
    assert len(filters) == 3  # 31 names of the collection in 3 queries (12, 12, 7)
    # Table Storage's limit: 15 comparisons, the partition, a RowKey range and 12 keys.
    assert max(sum(f.count(op) for op in (" eq ", " ge ", " le ")) for f in filters) == 15


async def test_the_due_index_lists_a_collection_until_its_rows_are_gone_and_minute_settled(
    runtimes,
):
    runtime = await runtimes()
    store = runtime.store
    await runtime.jobs.put_collection(REF, ENABLED)
    t0 = datetime(2031, 1, 1, 12, 0, 30, tzinfo=UTC)
    later = DueEntry(t0 + timedelta(hours=1), COLLECTION, "later")
    overdue = DueEntry(t0 - timedelta(days=1), COLLECTION, "overdue")
    await store.put_due(later, t0)
    await store.put_due(overdue, t0)  # filed in the minute it is written, not in its own
    await store.tables.due_index.upsert_entity(
        {"PartitionKey": "203101011200", "RowKey": "s|g|gone"}
    )

    async def index() -> set[tuple[str, str]]:
        rows = store.tables.due_index.list_entities()
        return {(row["PartitionKey"], row["RowKey"]) async for row in rows}

    assert await index() == {
        ("203101011300", COLLECTION),
        ("203101011200", COLLECTION),
        ("203101011200", "s|g|gone"),
    }
    assert (await store.scan(t0 + timedelta(minutes=2), now=t0)).entries == [overdue]
    assert len(await index()) == 3  # the minute is not settled yet

    await store.delete_due(overdue)
    settled = t0 + timedelta(minutes=10)
    assert (await store.scan(settled, now=settled)).entries == []
    assert await index() == {("203101011300", COLLECTION)}  # a collection without a table too

    late = t0 + timedelta(hours=2)
    assert (await store.scan(late, now=late)).entries == [later]
    assert await index() == {("203101011300", COLLECTION)}  # its row is still filed there
    await store.delete_due(later)
    assert (await store.scan(late, now=late)).entries == []
    assert await index() == set()


async def test_a_pass_over_several_slices_dispatches_every_row_once(runtimes, target):
    start = datetime(2031, 3, 1, 8, 0, 0, tzinfo=UTC)
    clock = FixedClock(start - timedelta(days=1))
    runtime = await runtimes(clock=clock)
    other = CollectionRef.parse("second")
    names = {REF: [f"a{i:03d}" for i in range(180)], other: [f"b{i:03d}" for i in range(70)]}
    for ref, jobs in names.items():
        await runtime.jobs.put_collection(ref, ENABLED)
        for offset, name in enumerate(jobs):
            due = to_iso(start + timedelta(seconds=offset % 90))
            await runtime.jobs.put_job(ref, name, http_job(target, startTime=due))
    clock.set(start - timedelta(seconds=5))

    report = await runtime.dispatcher.dispatch_due()

    assert (report.dispatched, report.conflicts, report.stale) == (250, 0, 0)
    properties = await runtime.queue.client.get_queue_properties()
    assert properties.approximate_message_count == 250
    assert (await runtime.store.scan(start + timedelta(days=1))).entries == []
    for ref, jobs in names.items():
        found = await runtime.store.get_jobs((ref.key, name) for name in jobs)
        assert len(found) == len(jobs)
        assert all(job.next_fire is None and job.occurrences == 1 for job in found.values())
    assert (await runtime.dispatcher.dispatch_due()).dispatched == 0


async def test_a_collection_table_deleted_by_hand_comes_back_with_the_next_job(
    runtimes, target, storage_connection
):
    runtime = await runtimes()
    await runtime.jobs.put_collection(REF, ENABLED)
    table_name = runtime.store.table_for(COLLECTION).table_name
    async with TableServiceClient.from_connection_string(storage_connection) as service:
        await service.delete_table(table_name)
    fresh = await runtimes()  # another instance, which has not made the table itself

    assert await fresh.store.get_job(COLLECTION, "back") is None
    later = to_iso(datetime.now(UTC) + timedelta(days=1))
    job, created = await fresh.jobs.put_job(REF, "back", http_job(target, startTime=later))

    stored = await fresh.store.get_job(COLLECTION, "back")
    assert created and stored is not None and stored.etag == job.etag
    assert len((await fresh.store.scan(datetime.now(UTC) + timedelta(days=2))).entries) == 1


async def test_two_dispatchers_racing_dispatch_each_occurrence_once(runtimes, target):
    start = (datetime.now(UTC) + timedelta(seconds=3)).replace(microsecond=0)
    clock = FixedClock(start - timedelta(minutes=5))
    first = await runtimes(clock=clock)
    second = await runtimes(clock=clock)
    await first.jobs.put_collection(REF, ENABLED)
    for index in range(30):
        await first.jobs.put_job(REF, f"race{index}", http_job(target, startTime=to_iso(start)))
    clock.set(start - timedelta(seconds=1))
    reports = await asyncio.gather(
        first.dispatcher.dispatch_due(), second.dispatcher.dispatch_due()
    )
    assert sum(r.dispatched for r in reports) == 30

    async def all_done() -> bool:
        return len(target.requests) >= 30 and await _no_runs_left(first, 30)

    clock.set(start)
    # Every message is delivered twice, to two executors at once: each occurrence still runs once.
    await asyncio.gather(
        work_queue(first, all_done, deliver_twice=True), work_queue(second, all_done)
    )
    keys = [r.headers["Idempotency-Key"] for r in target.requests]
    assert len(keys) == 30 and len(set(keys)) == 30


async def test_crash_between_run_creation_and_message_is_recovered(runtimes, target):
    start = datetime(2030, 3, 1, 12, 0, 0, tzinfo=UTC)
    clock = FixedClock(start - timedelta(hours=1))
    runtime = await runtimes(clock=clock)
    await runtime.jobs.put_collection(REF, ENABLED)
    await runtime.jobs.put_job(REF, "crash", http_job(target, startTime=to_iso(start)))
    job = await runtime.store.get_job(COLLECTION, "crash")
    assert job is not None
    # Steps 1-2 of a dispatch, then the process dies before sending the message.
    from dataclasses import replace

    from shared.engine.records import Run

    run = Run(COLLECTION, "crash", job.generation, start, repeat_count=1, due=start, last=True)
    await runtime.store.commit_dispatch(
        replace(job, next_fire=None, occurrences=1), run, clock.now()
    )
    clock.set(start)
    report = await runtime.dispatcher.dispatch_due()
    assert report.recovered == 1

    async def done() -> bool:
        stored = await runtime.store.get_job(COLLECTION, "crash")
        return stored is not None and stored.state is JobState.COMPLETED

    await work_queue(runtime, done)
    assert len(target.requests) == 1
    assert (await runtime.store.scan(start + timedelta(days=1))).entries == []


async def test_crash_while_running_is_taken_over_after_the_lease(runtimes, target):
    now = datetime.now(UTC).replace(microsecond=0)
    clock = FixedClock(now)
    runtime = await runtimes(clock=clock)
    await runtime.jobs.put_collection(REF, ENABLED)
    await runtime.jobs.put_job(
        REF, "orphan", http_job(target, startTime=to_iso(now + timedelta(hours=1)))
    )
    job = await runtime.store.get_job(COLLECTION, "orphan")
    assert job is not None
    run = await runtime.dispatcher.run_on_demand(job)
    stored_run = await runtime.store.get_run(COLLECTION, run.row_key)
    assert stored_run is not None
    from dataclasses import replace

    # An executor claimed it and died mid-action.
    lease = now + timedelta(minutes=2)
    await runtime.store.move_run(
        stored_run,
        replace(stored_run, status=RunStatus.RUNNING, claimed_until=lease, watch_at=lease),
        now,
    )
    messages = [m async for m in runtime.queue.client.receive_messages(visibility_timeout=1)]
    assert len(messages) == 1
    # Held by the (dead) executor: a redelivery before the lease ends is not run, but put back
    # to be looked at when the lease ends (so a holder that never records cannot lose the run).
    from shared.storage.queue import AttemptMessage

    await runtime.executor.execute(AttemptMessage.from_json(messages[0].content))
    assert target.requests == []
    properties = await runtime.queue.client.get_queue_properties()
    assert properties.approximate_message_count == 2
    clock.set(now + timedelta(minutes=3))
    await runtime.executor.execute(AttemptMessage.from_json(messages[0].content))
    assert len(target.requests) == 1
    [row] = await history_of(runtime, "orphan")
    assert row.status is HistoryStatus.COMPLETED and "on demand" in row.message.lower()


async def test_run_now_counts_an_execution_without_touching_the_schedule(runtimes, target):
    runtime = await runtimes()
    await runtime.jobs.put_collection(REF, ENABLED)
    later = datetime.now(UTC) + timedelta(days=1)
    job, _ = await runtime.jobs.put_job(
        REF, "manual", http_job(target, startTime=to_iso(later), state="Disabled")
    )
    await runtime.jobs.run_on_demand(REF, "manual")

    async def arrived() -> bool:
        return len(await history_of(runtime, "manual")) == 1

    await work_queue(runtime, arrived)
    assert (await status_of(runtime, "manual")).execution_count == 1
    stored = await runtime.store.get_job(COLLECTION, "manual")
    assert stored is not None
    assert stored.state is JobState.DISABLED and stored.next_fire is None


async def test_disabled_job_does_not_fire(runtimes, target):
    now = datetime.now(UTC).replace(microsecond=0)
    clock = FixedClock(now)
    runtime = await runtimes(clock=clock)
    await runtime.jobs.put_collection(REF, ENABLED)
    soon = now + timedelta(seconds=2)
    await runtime.jobs.put_job(REF, "paused", http_job(target, startTime=to_iso(soon)))
    # Disabled after its occurrence was already queued: the executor drops it.
    await runtime.jobs.put_job(
        REF, "paused", http_job(target, startTime=to_iso(soon), state="disabled")
    )
    clock.set(soon)
    await work_queue(runtime, lambda: _no_runs_left(runtime, 0))
    assert target.requests == []
    assert (await runtime.store.scan(soon + timedelta(days=1))).entries == []


async def test_history_keeps_the_newest_rows_within_the_limits(runtimes, target):
    now = datetime.now(UTC).replace(microsecond=0)
    clock = FixedClock(now - timedelta(days=61))
    runtime = await runtimes(clock=clock, history_max_rows=4)
    await runtime.jobs.put_collection(REF, ENABLED)
    await runtime.jobs.put_job(
        REF, "chatty", http_job(target, startTime=to_iso(now + timedelta(days=5)))
    )
    await runtime.jobs.run_on_demand(REF, "chatty")  # 61 days ago
    await work_queue(runtime, lambda: _history_count(runtime, "chatty", 1))
    clock.set(now)
    for count in range(2, 8):
        await runtime.jobs.run_on_demand(REF, "chatty")
        await work_queue(runtime, functools.partial(_executions, runtime, "chatty", count))
    rows = await history_of(runtime, "chatty")
    assert len(rows) == 4
    assert all(r.start_time >= now - timedelta(days=60) for r in rows)
    starts = [r.start_time for r in rows]
    assert starts == sorted(starts, reverse=True)


async def test_deleting_a_job_removes_its_index_runs_and_history(runtimes, target):
    runtime = await runtimes()
    await runtime.jobs.put_collection(REF, ENABLED)
    later = datetime.now(UTC) + timedelta(days=1)
    await runtime.jobs.put_job(REF, "gone", http_job(target, startTime=to_iso(later)))
    await runtime.jobs.run_on_demand(REF, "gone")
    await work_queue(runtime, lambda: _history_count(runtime, "gone", 1))
    await runtime.jobs.delete_job(REF, "gone")
    assert await runtime.store.get_job(COLLECTION, "gone") is None
    assert (await runtime.store.scan(later + timedelta(days=1))).entries == []
    records, _ = await runtime.store.history(COLLECTION, "gone", top=10)
    assert records == []


ENABLED = {"properties": {"state": "Enabled"}}


async def _history_count(runtime, job: str, count: int) -> bool:
    return len(await history_of(runtime, job)) >= count


async def _executions(runtime, job: str, count: int) -> bool:
    return bool((await status_of(runtime, job)).execution_count >= count)


async def _no_runs_left(runtime, _: int) -> bool:
    table = runtime.store.table_for(COLLECTION)
    remaining = [key async for key in row_keys(table, COLLECTION, "run|")]
    return remaining == []


@pytest.mark.parametrize("state", ["Disabled", "Suspended"])
async def test_jobs_of_a_collection_that_is_off_do_not_fire_until_it_is_enabled(
    runtimes, target, state
):
    start = datetime(2030, 2, 1, 10, 0, 0, tzinfo=UTC)
    clock = FixedClock(start - timedelta(hours=1))
    runtime = await runtimes(clock=clock)
    await runtime.jobs.put_collection(REF, ENABLED)
    await runtime.jobs.put_job(REF, "held", http_job(target, startTime=to_iso(start)))
    await runtime.jobs.put_collection(REF, {"properties": {"state": state}})
    clock.set(start)
    report = await runtime.dispatcher.dispatch_due()
    assert report.dispatched == 0 and report.stale == 1
    clock.set(start + timedelta(minutes=5))
    await runtime.jobs.put_collection(REF, ENABLED)
    stored = await runtime.store.get_job(COLLECTION, "held")
    assert stored is not None and stored.occurrences == 1  # dispatched (late) on re-enable

    async def done() -> bool:
        return len(target.requests) == 1

    await work_queue(runtime, done)
