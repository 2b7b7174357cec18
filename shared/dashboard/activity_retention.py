"""Retention of the dashboard's activity counters (`{prefix}Activity`): an hour's rows go when
they are older than `SCHEDULER_HISTORY_MAX_DAYS`, the age history rows are pruned at, so the
charts never count attempts whose history is gone and the table does not grow for ever.

History is pruned per job by its own attempts; these rows belong to no job, so the dispatch timer
(shared/triggers.py) runs this, at most once per `INTERVAL` per instance unless the previous pass
ran out of budget. Four rows an hour make ~100 a day: a pass is a single range query."""

from __future__ import annotations

from datetime import datetime, timedelta

from shared.clock import Clock
from shared.storage.activity import ActivityRows

ROW_BUDGET = 500  # rows deleted per pass at most
INTERVAL = timedelta(hours=1)  # between passes that finished their work


class ActivityRetention:
    def __init__(self, rows: ActivityRows, clock: Clock, keep: timedelta) -> None:
        self._rows = rows
        self._clock = clock
        self._keep = keep
        self._next_pass: datetime | None = None

    async def run_if_due(self) -> int:
        """One pass when due; returns the rows deleted."""
        now = self._clock.now()
        if self._next_pass is not None and now < self._next_pass:
            return 0
        deleted, done = await self._rows.prune(now - self._keep, ROW_BUDGET)
        self._next_pass = now + INTERVAL if done else None
        return deleted
