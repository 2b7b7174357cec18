"""`sleep_until`: the executor's hold wakes at a fixed monotonic instant, never before it."""

from __future__ import annotations

import asyncio

from shared.clock import sleep_until


async def test_wakes_at_the_deadline_not_before() -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 0.05
    await sleep_until(deadline)
    assert loop.time() >= deadline


async def test_a_past_deadline_returns_at_once() -> None:
    loop = asyncio.get_running_loop()
    started = loop.time()
    await sleep_until(started - 1)
    assert loop.time() - started < 0.05


async def test_cancelling_the_wait_leaves_no_timer_behind() -> None:
    loop = asyncio.get_running_loop()
    waiting = asyncio.create_task(sleep_until(loop.time() + 60))
    await asyncio.sleep(0)
    waiting.cancel()
    await asyncio.gather(waiting, return_exceptions=True)
    assert waiting.cancelled()
