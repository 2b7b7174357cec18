"""host.json lets each queue trigger run up to 16,384 messages at once, so the executors can
hold a crowded second's attempts; dispatch slices and device work keep to their own
QUEUE_WORK_AT_ONCE per instance (shared/concurrency.py), as under the host's former 64."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from devhost.azurite import PROJECT_ROOT
from devhost.host_config import load_host_config
from shared.concurrency import QUEUE_WORK_AT_ONCE
from shared.engine.lead import CLAIM_RATE
from shared.kinds.code import CodeContext, register_handler, unregister_handler
from shared.storage.device_work import WorkMessage
from shared.storage.dispatch_queue import DispatchSlice
from shared.storage.queue import MAX_EARLY_SECONDS
from tests.integration.test_actions import context
from tests.integration.test_code_jobs import COLLECTION, code_job, soon, start_job

pytestmark = pytest.mark.integration


class Gate:
    """Counts the calls inside at once; lets them all out together."""

    def __init__(self, full: int) -> None:
        self.inside = 0
        self.most = 0
        self.full = full
        self.filled = asyncio.Event()
        self.opened = asyncio.Event()

    def wrap(self, call: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        async def gated(*args: Any, **kwargs: Any) -> Any:
            self.inside += 1
            self.most = max(self.most, self.inside)
            if self.inside >= self.full:
                self.filled.set()
            try:
                await self.opened.wait()
                return await call(*args, **kwargs)
            finally:
                self.inside -= 1

        return gated

    async def open_when_full(self) -> None:
        await self.filled.wait()
        for _ in range(20):  # turns of the loop for any call beyond the limit to come in
            await asyncio.sleep(0)
        self.opened.set()


def test_the_host_runs_enough_messages_at_once_to_hold_a_crowded_second() -> None:
    """Everything one instance can claim in the longest early arrival fits in its slots: a
    10,000 burst is held whole on one instance."""
    queues = load_host_config(PROJECT_ROOT).queues
    at_once = queues.batch_size + queues.threshold
    assert at_once == 16_384
    assert at_once >= MAX_EARLY_SECONDS * CLAIM_RATE >= 10_000


async def test_an_instance_works_at_most_64_dispatch_slices_at_once(runtimes, monkeypatch):
    runtime = await runtimes()
    gate = Gate(QUEUE_WORK_AT_ONCE)
    monkeypatch.setattr(runtime.store, "due_rows", gate.wrap(runtime.store.due_rows))
    part = DispatchSlice("sub|rg|none", "due|", "due|~", datetime(2031, 1, 1, tzinfo=UTC))

    await asyncio.gather(
        gate.open_when_full(),
        *(runtime.dispatcher.dispatch_slice(part) for _ in range(100)),
    )

    assert gate.most == QUEUE_WORK_AT_ONCE == 64


async def test_an_instance_works_at_most_64_device_work_messages_at_once(runtimes, monkeypatch):
    runtime = await runtimes()
    engine = runtime.broadcasts.engine
    gate = Gate(QUEUE_WORK_AT_ONCE)
    monkeypatch.setattr(engine, "sweep", gate.wrap(engine.sweep))

    await asyncio.gather(
        gate.open_when_full(),
        *(engine.handle(WorkMessage("sweep", f"none-{i}")) for i in range(100)),
    )

    assert gate.most == QUEUE_WORK_AT_ONCE


async def test_an_instance_runs_at_most_64_code_jobs_at_once(runtimes):
    """A code job (or a WebJob's process) does all its work when sent, so however many
    attempts an instance holds, only QUEUE_WORK_AT_ONCE of them run their code at once."""
    runtime = await runtimes()
    gate = Gate(QUEUE_WORK_AT_ONCE)

    async def held(ctx: CodeContext) -> None:
        await gate.wrap(asyncio.sleep)(0)

    register_handler("held-in-turn", held)
    try:
        await start_job(runtime, "in-turn", code_job("held-in-turn", soon()))
        job = await runtime.store.get_job(COLLECTION, "in-turn")
        action = job.properties.action

        outcomes = await asyncio.gather(
            gate.open_when_full(),
            *(
                runtime.runners.run(
                    action, context(job=f"in-turn-{i}", output_name=f"in-turn-{i}.log")
                )
                for i in range(100)
            ),
        )
    finally:
        unregister_handler("held-in-turn")

    assert gate.most == QUEUE_WORK_AT_ONCE
    assert all(outcome.succeeded for outcome in outcomes[1:])
