"""Fire a timer-trigger function on its schedule, one invocation at a time (the host's singleton).

The argument is `azure.functions.timer.TimerRequest`, the class the worker builds
(`func.TimerRequest` is its abstract base).

The next occurrence is computed after an invocation ends, so an overrunning invocation skips
the occurrences it covered instead of queueing them, as the host does. The host's schedule
monitor (`useMonitor`: catch-up after downtime) is not emulated: nothing is persisted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, datetime

from azure.functions.timer import TimerRequest

from devhost.functions import FunctionSpec
from devhost.invoker import Outcome, invoke
from devhost.ncrontab import Schedule, parse_schedule

logger = logging.getLogger(__name__)


async def wait_or_stop(stopping: asyncio.Event, seconds: float) -> bool:
    """Sleep up to `seconds`; True as soon as `stopping` is set."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stopping.wait(), timeout=max(seconds, 0))
    return stopping.is_set()


class TimerRunner:
    def __init__(self, spec: FunctionSpec) -> None:
        self.spec = spec
        try:
            self.schedule: Schedule = parse_schedule(str(spec.trigger["schedule"]))
        except ValueError as error:
            raise ValueError(f"function {spec.name}: {error}") from None
        self._lock = asyncio.Lock()
        self._last: datetime | None = None

    async def run(self, stopping: asyncio.Event) -> None:
        """Loop until `stopping` is set; an invocation in progress is awaited, not cancelled."""
        if self.spec.trigger.get("runOnStartup"):
            await self.fire(reason="Timer fired at startup (runOnStartup)")
        due = self.schedule.next_after(_now())
        while True:
            # Wall clock and the loop's monotonic clock can drift apart: re-check before firing.
            while (remaining := (due - _now()).total_seconds()) > 0:
                if await wait_or_stop(stopping, remaining):
                    return
            if stopping.is_set():
                return
            await self.fire(due=due, reason="Timer fired")
            # Strictly after `due` as well, so waking a little early never fires twice.
            due = self.schedule.next_after(max(_now(), due))

    async def fire(self, *, due: datetime | None = None, reason: str) -> Outcome:
        """Invoke now (scheduled, at startup or by hand), never overlapping another invocation."""
        async with self._lock:
            started = _now()
            # Past due when a whole occurrence went by before this one could start.
            past_due = due is not None and self.schedule.next_after(due) <= started
            request = TimerRequest(
                past_due=past_due,
                schedule_status={
                    "Last": (self._last or started).isoformat(),
                    "Next": self.schedule.next_after(started).isoformat(),
                    "LastUpdated": started.isoformat(),
                },
                schedule={"AdjustForDST": True},
            )
            self._last = started
            return await invoke(self.spec, request, reason=reason)


def _now() -> datetime:
    return datetime.now(UTC)
