"""A job's final state, settled when its schedule has ended and its last outstanding run ends.

The final state itself (Completed if the last scheduled occurrence succeeded, Faulted if not) is
decided by that occurrence's last attempt and kept in its tally (`TallyRow.final_state`); runs of
earlier occurrences may still be retrying then, so the job only takes it once none of its
scheduled runs is left. Whoever ends a run of such a job tries at once; a watch row makes the
timer try again should that process die first.
"""

from __future__ import annotations

import logging
from dataclasses import replace

from shared.engine.records import Watch
from shared.errors import Conflict
from shared.model.job import JobState
from shared.storage.store import JobStore

log = logging.getLogger(__name__)

_TRIES = 5


async def settle_final_state(
    store: JobStore, collection: str, name: str, watch: Watch | None = None
) -> bool:
    """Give the job its final state if it is due one, deleting `watch` (the timer's reminder to
    check) in the same transaction. True when nothing is left to wait for (settled now,
    settled before, or not a job that ends); False while runs are outstanding."""
    for _ in range(_TRIES):
        job = await store.get_job(collection, name)
        if job is None or job.state is not JobState.ENABLED or job.next_fire is not None:
            return True
        runs = await store.runs_of(collection, name)
        if any(job.schedules(run) for run in runs):
            return False
        tallies = await store.tallies_of(collection, name)
        folded = job.folded(tallies)
        if folded.final_state is None or folded.final_state_generation != job.generation:
            log.warning("Job %s in %s ended without a final outcome", name, collection)
            return True
        try:
            await store.fold(replace(job, state=folded.final_state), tallies, watch=watch)
        except Conflict:
            watch = None  # someone else may have settled it, and taken the watch too
            continue
        log.info("Job %s in %s is %s", name, collection, folded.final_state.value)
        return True
    return False
