"""SendPriority: storage work waits for the sends due now, and only for those."""

from __future__ import annotations

import asyncio

from shared.engine.send_priority import MAX_WAIT_PAST_DUE, SendPriority


async def test_nothing_due_means_no_wait() -> None:
    priority = SendPriority(window=0.05)
    loop = asyncio.get_running_loop()
    priority.announce(loop.time() + 10)  # far beyond the window
    await asyncio.wait_for(priority.after_due_sends(), 1)


async def test_a_wait_ends_when_the_sends_due_are_out_not_before() -> None:
    priority = SendPriority(window=0.05)
    loop = asyncio.get_running_loop()
    first = priority.announce(loop.time())
    second = priority.announce(loop.time() + 0.01)
    waiter = asyncio.create_task(priority.after_due_sends())
    await asyncio.sleep(0)
    first()
    first()  # a second signal changes nothing
    await asyncio.sleep(0)
    assert not waiter.done(), "woken while a send due was still going out"
    second()
    await asyncio.wait_for(waiter, 1)
    assert priority.pending == 0


async def test_sends_announced_after_the_wait_began_do_not_hold_it() -> None:
    priority = SendPriority(window=0.05)
    loop = asyncio.get_running_loop()
    due = priority.announce(loop.time())
    waiter = asyncio.create_task(priority.after_due_sends())
    await asyncio.sleep(0)
    priority.announce(loop.time())  # never sent: it must not starve the waiter
    due()
    await asyncio.wait_for(waiter, 1)


async def test_a_send_that_never_says_it_is_out_holds_a_wait_only_until_the_bound() -> None:
    """A gate never waits unboundedly: a send stuck before it is out (a connection that hangs)
    holds storage work at most MAX_WAIT_PAST_DUE past its due time, and no one after that."""
    priority = SendPriority()
    loop = asyncio.get_running_loop()
    stuck = loop.time() - MAX_WAIT_PAST_DUE + 0.2  # overdue, 0.2 s of its bound left
    priority.announce(stuck)  # never signalled
    await asyncio.wait_for(priority.after_due_sends(), 2)
    assert loop.time() >= stuck + MAX_WAIT_PAST_DUE
    await asyncio.wait_for(priority.after_due_sends(), 0.05)  # past its bound: no wait at all
    later = priority.announce(loop.time())
    waiter = asyncio.create_task(priority.after_due_sends())
    await asyncio.sleep(0)
    later()  # the wait that gave up left no stale waiter behind: this one still wakes
    await asyncio.wait_for(waiter, 0.1)


async def test_the_sends_held_for_a_second_are_counted_until_they_are_out() -> None:
    priority = SendPriority()
    second = asyncio.get_running_loop().time() + 5.0
    outs = [priority.announce(second + 0.0001 * i) for i in range(3)]
    priority.announce(second + 1.0)  # the next second's
    assert priority.announced_at(second) == 3
    outs[0]()
    outs[0]()  # a second call changes nothing
    assert priority.announced_at(second) == 2
    assert priority.announced_at(second + 1.0) == 1
