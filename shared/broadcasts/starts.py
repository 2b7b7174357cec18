"""A broadcast's start as a one-time scheduler job, so it fires through the due index at the
exact second like every job (any distance ahead, no queue delay limit).

The jobs live in the reserved collection `iothub-jobs` (default subscription and resource
group), created on first use and shown by the scheduler API like any other: each is named after
the broadcast (`start_job_name`) and holds `{"type": "Broadcast", "broadcast": {"jobId": ...}}`,
whose runner calls the repeatable starter (shared/kinds/broadcast.py)."""

from __future__ import annotations

import hashlib
import re
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from shared.errors import AlreadyExists, Conflict, NotFound
from shared.names import NAME, CollectionRef
from shared.timefmt import to_iso

if TYPE_CHECKING:
    from shared.engine.service import JobService

START_COLLECTION = "iothub-jobs"
_TRIES = 3
_NOT_IN_JOB_NAMES = re.compile(r"[^A-Za-z0-9_-]")


def start_job_name(broadcast_id: str) -> str:
    """The scheduler job name of a broadcast's start: the id itself when it is a valid job name,
    else its job-name characters and a hash of the id (`.`, `:`, `@` are not allowed there)."""
    if NAME.fullmatch(broadcast_id):
        return broadcast_id
    digest = hashlib.sha256(broadcast_id.encode()).hexdigest()[:12]
    readable = _NOT_IN_JOB_NAMES.sub("-", broadcast_id).lstrip("-_") or "broadcast"
    return f"{readable}--{digest}"  # a job name starts with a letter or digit


def start_second(start: datetime) -> datetime:
    """The scheduler's second for a startTime: rounded up, so the start is never early."""
    whole = start.replace(microsecond=0)
    return whole if whole == start else whole + timedelta(seconds=1)


class StartJobs:
    """Puts and removes broadcasts' start jobs through the job service (validation, due index,
    immediate dispatch when the start is near)."""

    def __init__(self, jobs: JobService) -> None:
        self._jobs = jobs
        self._ref = CollectionRef.parse(START_COLLECTION)

    async def put(self, broadcast_id: str, start: datetime) -> None:
        """Make sure the start job exists (idempotent: an existing one is left as it is)."""
        name = start_job_name(broadcast_id)
        body = {
            "properties": {
                "startTime": to_iso(start_second(start)),
                "action": {"type": "Broadcast", "broadcast": {"jobId": broadcast_id}},
            }
        }
        for _ in range(_TRIES):
            if await self._exists(name):
                return
            await self._ensure_collection()
            try:
                await self._jobs.put_job(self._ref, name, body)
            except NotFound:  # the collection was deleted meanwhile: make it again
                continue
            # Read back: a collection created by a racing first use clears its partition.
        if not await self._exists(name):
            raise Conflict(f"the start job of broadcast {broadcast_id} could not be stored")

    async def _exists(self, name: str) -> bool:
        try:
            await self._jobs.get_job(self._ref, name)
        except NotFound:
            return False
        return True

    async def remove(self, broadcast_id: str) -> bool:
        """Delete the start job with its history (a cancel before the start, or the broadcast's
        retention); gone already (or never made: a recurring broadcast's) is fine: False."""
        try:
            await self._jobs.delete_job(self._ref, start_job_name(broadcast_id))
        except NotFound:
            return False
        return True

    async def _ensure_collection(self) -> None:
        try:
            await self._jobs.get_collection(self._ref)
            return
        except NotFound:
            pass
        try:
            await self._jobs.put_collection(self._ref, {})
        except (AlreadyExists, Conflict):
            pass  # another create made it meanwhile
