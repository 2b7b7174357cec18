"""Retention of finished broadcasts: a job that ended more than
`SCHEDULER_BROADCAST_RETENTION_DAYS` ago goes, with its device records and counters, and with
the start job it put in the reserved collection `iothub-jobs` (and that job's history).

Run from the dispatch timer (shared/triggers.py), at most once per `INTERVAL` per instance
unless the previous pass ran out of budget; each pass deletes at most `ROW_BUDGET` rows, so a
tick stays cheap however large the broadcasts. Records go first, then the start job, and the job
row last: a pass that dies midway leaves the job row, and the next pass finds it and goes on."""

from __future__ import annotations

from datetime import datetime, timedelta

from shared.broadcasts.model import ENDED
from shared.broadcasts.starts import StartJobs
from shared.clock import Clock
from shared.storage.broadcasts import BroadcastRows

ROW_BUDGET = 2000  # rows deleted per pass at most
INTERVAL = timedelta(minutes=10)  # between passes that finished their work


class BroadcastRetention:
    def __init__(
        self, rows: BroadcastRows, starts: StartJobs, clock: Clock, keep: timedelta
    ) -> None:
        self._rows = rows
        self._starts = starts
        self._clock = clock
        self._keep = keep
        self._next_pass: datetime | None = None

    async def run_if_due(self) -> int:
        """One pass when due (see the module); returns the rows deleted."""
        now = self._clock.now()
        if self._next_pass is not None and now < self._next_pass:
            return 0
        deleted, done = await self.purge(now, ROW_BUDGET)
        self._next_pass = now + INTERVAL if done else None
        return deleted

    async def purge(self, now: datetime, budget: int) -> tuple[int, bool]:
        """Delete up to `budget` rows of the broadcasts past retention; (rows deleted, whether
        every such broadcast is gone)."""
        deleted = 0
        for job in await self._rows.ended_before(ENDED, now - self._keep):
            if deleted >= budget:
                return deleted, False
            job_id = job.spec.job_id
            deleted += await self._rows.delete_records(job_id, budget - deleted)
            if deleted >= budget:  # maybe more of its rows left: the next pass goes on
                return deleted, False
            if await self._starts.remove(job_id):
                deleted += 1  # its few rows (job, history, due row) count as one
            await self._rows.delete_job(job_id)
            deleted += 1
        return deleted, True
