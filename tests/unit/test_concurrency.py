"""run_bounded: a failure stops the siblings, the limit holds, results keep their order."""

from __future__ import annotations

import asyncio

import pytest

from shared.concurrency import run_bounded


class Refused(Exception):
    pass


async def test_a_failing_call_cancels_its_siblings_before_the_error_is_raised() -> None:
    started = asyncio.Event()
    release = asyncio.Event()
    reached = asyncio.Event()
    cancelled = asyncio.Event()

    async def call(item: str) -> str:
        if item == "fails":
            await started.wait()
            raise Refused("no")
        started.set()
        try:
            await release.wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise
        reached.set()
        return item

    with pytest.raises(Refused):
        await run_bounded(4, call, ["slow", "fails"])
    assert cancelled.is_set()  # stopped before the error reached us, not left running
    release.set()
    await asyncio.sleep(0)  # give a sibling left running its turn, to show there is none
    assert not reached.is_set()


async def test_the_error_is_raised_plainly_with_its_own_cause() -> None:
    async def call(item: int) -> int:
        try:
            raise KeyError(item)
        except KeyError as missing:
            raise Refused(f"item {item}") from missing

    with pytest.raises(Refused) as caught:
        await run_bounded(2, call, [7])
    assert not isinstance(caught.value, BaseExceptionGroup)
    assert isinstance(caught.value.__cause__, KeyError)


async def test_errors_of_calls_failing_together_are_noted_on_the_first() -> None:
    both = asyncio.Barrier(2)

    async def call(item: int) -> int:
        await both.wait()
        raise Refused(f"item {item}")

    with pytest.raises(Refused) as caught:
        await run_bounded(2, call, [1, 2])
    other = "2" if str(caught.value) == "item 1" else "1"
    assert caught.value.__notes__ == [f"1 concurrent call(s) also failed: Refused: item {other}"]


async def test_no_more_than_the_limit_run_at_once() -> None:
    running = peak = 0

    async def call(item: int) -> int:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        for _ in range(3):
            await asyncio.sleep(0)  # yield, so every call that may start does
        running -= 1
        return item

    assert await run_bounded(3, call, range(10)) == list(range(10))
    assert peak == 3


async def test_a_shared_semaphore_bounds_several_fan_outs_together() -> None:
    running = peak = 0

    async def call(item: int) -> int:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        for _ in range(3):
            await asyncio.sleep(0)
        running -= 1
        return item

    shared = asyncio.Semaphore(2)
    await asyncio.gather(run_bounded(shared, call, range(5)), run_bounded(shared, call, range(5)))
    assert peak == 2


async def test_results_keep_the_items_order_whatever_order_calls_finish_in() -> None:
    done = [asyncio.Event() for _ in range(5)]

    async def call(item: int) -> str:
        if item + 1 < len(done):
            await done[item + 1].wait()  # the last item finishes first
        done[item].set()
        return f"r{item}"

    assert await run_bounded(5, call, range(5)) == ["r0", "r1", "r2", "r3", "r4"]


async def test_no_items_no_calls() -> None:
    async def call(item: int) -> int:
        raise AssertionError("not called")

    assert await run_bounded(3, call, []) == []
