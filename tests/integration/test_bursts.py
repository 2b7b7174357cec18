"""Bursts: a heavy minute beyond the lookahead is dispatched in the pass before it (adaptive
lead), and a big pass handed out as slices on the dispatch queue dispatches every occurrence
exactly once, however many instances take the slices, twice over, racing a direct pass."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from shared.clock import FixedClock, sleep_until
from shared.concurrency import run_bounded
from shared.engine.lead import early_arrival
from shared.engine.planning import pickup_grace
from shared.names import CollectionRef
from shared.runtime import Runtime
from shared.storage.dispatch_queue import DispatchSlice
from shared.storage.queue import AttemptMessage
from shared.timefmt import to_iso
from tests.support.engine import work_queue
from tests.support.http_target import HttpTarget

pytestmark = pytest.mark.integration

REF = CollectionRef.parse("burst")
ENABLED = {"properties": {"state": "Enabled"}}


def http_job(target: HttpTarget, start: datetime) -> dict[str, Any]:
    return {
        "properties": {
            "startTime": to_iso(start),
            "action": {"type": "Http", "request": {"uri": f"{target.url}/hook", "method": "POST"}},
        }
    }


async def create_burst(runtime: Runtime, target: HttpTarget, count: int, at: datetime) -> None:
    await runtime.jobs.put_collection(REF, ENABLED)

    async def put(index: int) -> None:
        await runtime.jobs.put_job(REF, f"b{index:04d}", http_job(target, at))

    await run_bounded(16, put, range(count))


async def take_slices(consumers: list[Runtime], *, copies: int = 1) -> int:
    """Work the dispatch queue as the host does, each message given to every consumer `copies`
    times at once (a message delivered again while the first delivery still runs)."""
    client = consumers[0].dispatch_queue.client
    dispatched = 0
    while True:
        batch = [m async for m in client.receive_messages(max_messages=32, visibility_timeout=60)]
        if not batch:
            return dispatched

        async def handle(message: Any) -> int:
            part = DispatchSlice.from_json(message.content)
            reports = await asyncio.gather(
                *(c.dispatcher.dispatch_slice(part) for c in consumers for _ in range(copies))
            )
            await client.delete_message(message)
            return sum(r.dispatched for r in reports)

        dispatched += sum(await asyncio.gather(*(handle(m) for m in batch)))


async def test_a_heavy_minute_beyond_the_lookahead_is_dispatched_in_the_pass_before_it(
    runtimes, target
):
    minute = datetime(2031, 6, 2, 9, 0, 0, tzinfo=UTC)
    clock = FixedClock(minute - timedelta(days=1))
    runtime = await runtimes(clock=clock)
    await create_burst(runtime, target, 1_000, minute)
    # 130 s before: beyond the 120 s lookahead, but 1,000 rows need a lead of about 20 s.
    clock.set(minute - timedelta(seconds=130))

    report = await runtime.dispatcher.dispatch_due()

    assert (report.dispatched, report.conflicts) == (1_000, 0)
    assert (await runtime.store.scan(minute + timedelta(minutes=1))).entries == []


async def test_a_light_minute_beyond_the_lookahead_waits_for_its_pass(runtimes, target):
    minute = datetime(2031, 6, 2, 9, 0, 0, tzinfo=UTC)
    clock = FixedClock(minute - timedelta(days=1))
    runtime = await runtimes(clock=clock)
    await create_burst(runtime, target, 5, minute)
    clock.set(minute - timedelta(seconds=140))  # its lead (about 10 s) does not reach this pass
    assert (await runtime.dispatcher.dispatch_due()).dispatched == 0
    clock.set(minute - timedelta(seconds=110))
    assert (await runtime.dispatcher.dispatch_due()).dispatched == 5


async def test_slices_taken_by_racing_instances_dispatch_each_occurrence_once(runtimes, target):
    due = datetime(2031, 6, 2, 9, 0, 0, tzinfo=UTC)
    clock = FixedClock(due - timedelta(days=1))
    instances = [await runtimes(clock=clock) for _ in range(3)]
    timer = instances[0]
    await create_burst(timer, target, 300, due)
    clock.set(due - timedelta(seconds=1))  # messages hidden by a FixedClock's delay stay hidden

    handed = await timer.dispatcher.dispatch_due(spread=True)
    assert (handed.dispatched, handed.handed_out) == (0, 3)
    # Three instances take every slice, each twice at once, while a fourth passes directly.
    direct, from_slices = await asyncio.gather(
        instances[1].dispatcher.dispatch_due(), take_slices(instances, copies=2)
    )
    assert direct.dispatched + from_slices == 300
    assert (await timer.store.scan(due + timedelta(minutes=1))).entries == []

    clock.set(due)

    async def all_called() -> bool:
        return len(target.requests) >= 300

    await asyncio.gather(*(work_queue(i, all_called, timeout=60) for i in instances))
    keys = [r.headers["Idempotency-Key"] for r in target.requests]
    assert len(keys) == 300 and len(set(keys)) == 300


async def test_a_lost_slice_is_handed_out_again_by_the_next_pass(runtimes, target):
    due = datetime(2031, 6, 2, 9, 0, 0, tzinfo=UTC)
    clock = FixedClock(due - timedelta(days=1))
    runtime = await runtimes(clock=clock)
    await create_burst(runtime, target, 250, due)
    clock.set(due - timedelta(seconds=60))
    assert (await runtime.dispatcher.dispatch_due(spread=True)).handed_out == 3
    await runtime.dispatch_queue.client.clear_messages()  # the slices are lost

    clock.set(due - timedelta(seconds=30))
    again = await runtime.dispatcher.dispatch_due(spread=True)
    assert again.handed_out == 3
    assert await take_slices([runtime]) == 250
    properties = await runtime.queue.client.get_queue_properties()
    assert properties.approximate_message_count == 250


async def test_a_small_pass_is_dispatched_by_the_timer_itself(runtimes, target):
    due = datetime(2031, 6, 2, 9, 0, 0, tzinfo=UTC)
    clock = FixedClock(due - timedelta(days=1))
    runtime = await runtimes(clock=clock)
    await create_burst(runtime, target, 20, due)
    clock.set(due - timedelta(seconds=60))
    report = await runtime.dispatcher.dispatch_due(spread=True)
    assert (report.dispatched, report.handed_out) == (20, 0)


async def test_a_bursts_runs_still_waiting_a_minute_after_their_second_are_not_resent(
    runtimes, target
):
    """A backlog of 1,000 messages is not a lost message: resending them would add storage
    work while storage is what the backlog waits for. A lone run is resent after a minute."""
    due = datetime(2031, 6, 2, 9, 0, 0, tzinfo=UTC)
    clock = FixedClock(due - timedelta(days=1))
    runtime = await runtimes(clock=clock)
    await create_burst(runtime, target, 1_000, due)
    clock.set(due - timedelta(seconds=90))  # the API dispatches a job due this soon itself
    lone = CollectionRef.parse("lone")
    await runtime.jobs.put_collection(lone, ENABLED)
    await runtime.jobs.put_job(lone, "alone", http_job(target, due))
    clock.set(due - timedelta(seconds=60))
    handed = await runtime.dispatcher.dispatch_due(spread=True)
    assert handed.handed_out == 10
    assert await take_slices([runtime]) == 1_000

    clock.set(due + timedelta(seconds=61))  # nobody has taken any of them yet
    assert (await runtime.dispatcher.dispatch_due(spread=True)).resumed == 1
    clock.set(due + pickup_grace(1_000) - timedelta(seconds=1))
    assert (await runtime.dispatcher.dispatch_due(spread=True)).resumed == 0
    clock.set(due + pickup_grace(1_000) + timedelta(seconds=1))
    assert (await runtime.dispatcher.dispatch_due(spread=True)).resumed == 1_000


class ShiftedClock:
    """The real clock moved by `offset`: running at real speed (message delays are real)."""

    def __init__(self, offset: timedelta) -> None:
        self.offset = offset

    def now(self) -> datetime:
        return datetime.now(UTC) + self.offset


async def test_a_crowded_seconds_messages_surface_early_enough_to_be_held_all_at_once(
    runtimes, target
):
    """300 occurrences share one second: their messages surface 4 to 5 s before it (a lone
    one's 1 to 2 s), and every attempt taken that early is held, not hidden again, and sent at
    the second, once."""
    clock = ShiftedClock(timedelta(0))
    runtime = await runtimes(clock=clock)
    due = (clock.now() + timedelta(days=1)).replace(microsecond=0)
    await create_burst(runtime, target, 300, due)  # a day ahead: no dispatch on creation
    clock.offset = due - timedelta(seconds=20) - datetime.now(UTC)  # 20 s before the second
    assert early_arrival(300) == 4

    assert (await runtime.dispatcher.dispatch_due()).dispatched == 300
    loop = asyncio.get_running_loop()
    second = loop.time() + (due - clock.now()).total_seconds()
    client = runtime.queue.client
    await sleep_until(second - 5.2)
    assert await client.peek_messages(max_messages=32) == [], "surfaced too early"
    await sleep_until(second - 3.8)  # a lone second's message would still be hidden
    messages: list[Any] = []
    attempts: list[asyncio.Task[None]] = []
    while len(messages) < 300:  # taken as they come, as the host does
        batch = [m async for m in client.receive_messages(max_messages=32, visibility_timeout=60)]
        assert batch or messages, "a crowded second's messages had not surfaced 3.8 s before it"
        if not batch:
            await asyncio.sleep(0.05)  # the host's polling
        messages += batch
        attempts += [
            asyncio.create_task(runtime.executor.execute(AttemptMessage.from_json(m.content)))
            for m in batch
        ]

    await asyncio.gather(*attempts)

    keys = [r.headers["Idempotency-Key"] for r in target.requests]
    assert len(keys) == 300 and len(set(keys)) == 300
    first_call = min(r.at for r in target.requests) + clock.offset
    assert first_call >= due, "a held attempt was sent before its second"
