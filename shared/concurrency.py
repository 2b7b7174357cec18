"""Bounded fan-out on `asyncio.TaskGroup`: the one way shared/ runs many calls at once.

`asyncio.gather` leaves the other calls running when one fails, so a failed pass keeps writing
storage behind its caller's back. Here a failure cancels the siblings, waits for them to stop,
then raises. The caller sees the first error itself, not an `ExceptionGroup`, so its `except`
clauses (Conflict, storage errors) keep working; errors of siblings that failed at the same
time are named in a note on it. A cancellation of the caller alone is raised as such.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from typing import TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")

# A count makes a limit of its own; a semaphore is a limit shared by several fan-outs (the
# sends of all the slices of a dispatch pass).
Limit = int | asyncio.Semaphore

# Queue-trigger work of one kind an instance takes on at once. host.json lets every queue
# trigger run batchSize + newBatchThreshold messages at once, set high (16,384) so the executors
# can hold a crowded second's attempts; dispatch slices, device work and the attempts of kinds
# that do all their work when sent (code jobs, WebJobs' processes) keep to this.
QUEUE_WORK_AT_ONCE = 64


async def run_bounded(
    limit: Limit, call: Callable[[Item], Awaitable[Result]], items: Iterable[Item]
) -> list[Result]:
    """`call(item)` for every item, at most `limit` at once; the results in the items' order.

    If a call raises, the others are cancelled and its error is raised once they have stopped.
    """
    gate = asyncio.Semaphore(limit) if isinstance(limit, int) else limit

    async def one(item: Item) -> Result:
        async with gate:
            return await call(item)

    failure: BaseException | None = None
    try:
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(one(item)) for item in items]
    except BaseExceptionGroup as failed:
        failure = _first_error(failed)
    if failure is not None:
        # Raised outside the handler: the error keeps its own cause and context.
        raise failure
    return [task.result() for task in tasks]


def _first_error(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The group's first leaf error, with a note naming the others."""
    leaves = _leaves(group)
    first = leaves[0]
    others = leaves[1:]
    if others:
        first.add_note(
            f"{len(others)} concurrent call(s) also failed: "
            + "; ".join(f"{type(error).__name__}: {error}" for error in others)
        )
    return first


def _leaves(error: BaseException) -> list[BaseException]:
    if isinstance(error, BaseExceptionGroup):
        return [leaf for inner in error.exceptions for leaf in _leaves(inner)]
    return [error]


__all__ = ["Limit", "run_bounded"]
