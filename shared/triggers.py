"""What the timer and queue functions do, kept out of function_app.py so it stays wiring only."""

from __future__ import annotations

import logging

import azure.functions as func

from shared.engine.dispatcher import DispatchReport
from shared.kinds.webjob.continuous import CONTINUOUS_MESSAGE
from shared.runtime import current_runtime
from shared.storage.device_work import WorkMessage
from shared.storage.dispatch_queue import DispatchSlice
from shared.storage.queue import AttemptMessage

log = logging.getLogger(__name__)


async def dispatch_due_jobs(timer: func.TimerRequest) -> DispatchReport:
    if timer.past_due:
        log.warning("The dispatch timer is past due; catching up from the store")
    runtime = await current_runtime()
    report = await runtime.dispatcher.dispatch_due(spread=True)  # big passes: every instance
    await runtime.broadcast_retention.run_if_due()  # after the due jobs: they come first
    await runtime.activity_retention.run_if_due()  # the dashboard's counters, at history's age
    await runtime.continuous.watch()  # continuous WebJobs whose holder died restart
    return report


async def dispatch_slice(message: func.QueueMessage) -> DispatchReport:
    """A slice of a big timer pass, on whichever instance took the message."""
    runtime = await current_runtime()
    part = DispatchSlice.from_json(message.get_body().decode())
    return await runtime.dispatcher.dispatch_slice(part)


async def execute_attempt(message: func.QueueMessage) -> None:
    runtime = await current_runtime()
    await runtime.executor.execute(AttemptMessage.from_json(message.get_body().decode()))


async def run_device_work(message: func.QueueMessage) -> None:
    runtime = await current_runtime()
    work = WorkMessage.from_json(message.get_body().decode())
    if work.action == CONTINUOUS_MESSAGE:  # holds a continuous WebJob for one time slice
        await runtime.continuous.handle(work.job_id)
    else:
        await runtime.broadcasts.engine.handle(work)
