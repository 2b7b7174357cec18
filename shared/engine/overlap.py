"""The overlap policy's storage side: asking runs to stop, waiting for them, and a call that
stops when its run is asked to (policy Replace). The decisions themselves are pure
(`decide_overlap`, `plan_skipped`, `plan_replaced` in shared/engine/planning.py).

A request to stop is a field of the run row (`Run.replaced_by`), written with the run's ETag,
so it never overwrites an attempt's recording: if the run moved on meanwhile, it is read again
and judged again. The executor holding the run reads its row every `REPLACE_POLL` while it
calls, and cancels the call (an HTTP request in flight is closed) when it finds the request; a
run between attempts finds it when its next message arrives; a dead holder's run finds it when
the timer resumes it after its lease.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Iterable
from dataclasses import replace
from datetime import datetime

from shared.engine.planning import REPLACE_POLL, REPLACE_WAIT, still_running
from shared.engine.records import Run, RunStatus
from shared.errors import Conflict, is_transient
from shared.kinds.base import ActionOutcome
from shared.storage.store import JobStore

log = logging.getLogger(__name__)

_TRIES = 5
_STOP_POLL_SECONDS = 0.2


async def request_stop(store: JobStore, run: Run, by: str, now: datetime) -> Run | None:
    """Write `by` into the run's request to stop, unless it has ended or stopped running
    meanwhile; the run as written (None: nothing left to stop)."""
    current: Run | None = run
    for _ in range(_TRIES):
        if current is None or not still_running(current, now):
            return None
        if current.replaced_by:
            return current
        try:
            return await store.move_run(current, replace(current, replaced_by=by), now)
        except Conflict:
            current = await store.get_run(run.collection, run.row_key)
    log.warning("Could not ask %s to stop: it kept changing", run.log_name)
    return None


async def wait_until_stopped(store: JobStore, runs: Iterable[Run]) -> bool:
    """Wait, at most `REPLACE_WAIT`, until each of these runs that was calling has recorded
    its end (its row gone or moved on from that claim). True if all did in time."""
    waiting = [run for run in runs if run.status is RunStatus.RUNNING]
    loop = asyncio.get_running_loop()
    deadline = loop.time() + REPLACE_WAIT.total_seconds()
    while waiting:
        current = [await store.get_run(run.collection, run.row_key) for run in waiting]
        waiting = [
            run
            for run, now_read in zip(waiting, current, strict=True)
            if now_read is not None
            and now_read.status is RunStatus.RUNNING
            and now_read.claimed_until == run.claimed_until
        ]
        if not waiting:
            return True
        if loop.time() >= deadline:
            log.warning("Starting anyway: %s did not stop in time", waiting[0].log_name)
            return False
        await asyncio.sleep(_STOP_POLL_SECONDS)
    return True


async def call_unless_replaced(
    store: JobStore, call: Awaitable[ActionOutcome], claimed: Run
) -> tuple[ActionOutcome | None, Run | None]:
    """Perform the call while reading the run row every `REPLACE_POLL`: (outcome, None) if it
    ended, (None, the run as read) if a request to stop came first and the call was cancelled.
    A storage fault while looking only delays the next look."""
    task: asyncio.Task[ActionOutcome] = asyncio.ensure_future(call)
    try:
        while True:
            done, _ = await asyncio.wait({task}, timeout=REPLACE_POLL.total_seconds())
            if done:
                return task.result(), None
            try:
                current = await store.get_run(claimed.collection, claimed.row_key)
            except Exception as error:
                if not is_transient(error):
                    raise
                continue
            if (
                current is not None
                and current.replaced_by
                and current.step == claimed.step
                and current.claimed_until == claimed.claimed_until
            ):
                task.cancel()
                await asyncio.wait({task})
                if task.cancelled():
                    return None, current
                return task.result(), None  # it ended just before: its outcome stands
    finally:
        if not task.done():
            task.cancel()
            await asyncio.wait({task})


__all__ = ["call_unless_replaced", "request_stop", "wait_until_stopped"]
