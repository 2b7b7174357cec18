"""The WebJobs this app ships, and the scheduler job that keeps each one's state, counters and
history in the reserved collection `webjobs`.

At start-up (`WebJobCatalog.load`) the folders are discovered and the collection is made to
match them: one job per folder, created or updated when its folder says something else than the
stored job, disabled when its folder is gone. A job already matching is left alone, so every
instance of the app may do this at start-up and the result is the same (a racing write of the
same definition is harmless). The folders are the truth: a job changed through the scheduler
API is set back at the next start-up.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from shared.errors import SchedulerError
from shared.kinds.webjob.folders import TRIGGERED, WebJobFolder, discover
from shared.kinds.webjob.model import WebJobAction
from shared.model.job import JobState
from shared.names import CollectionRef

if TYPE_CHECKING:
    from shared.engine.records import StoredJob
    from shared.engine.service import JobService
    from shared.kinds.webjob.kind import WebJobSettings

log = logging.getLogger(__name__)

WEBJOBS_COLLECTION = "webjobs"
WEBJOBS_REF = CollectionRef.parse(WEBJOBS_COLLECTION)


def job_name_of(folder_type: str, name: str) -> str:
    """The scheduler job of a folder: `triggered-<name>` / `continuous-<name>` (both types may
    hold a folder of the same name)."""
    return f"{folder_type}-{name}"


def desired_definition(folder: WebJobFolder) -> dict[str, Any]:
    """The job a folder asks for. A triggered job with a schedule recurs on it (6-field
    NCRONTAB, UTC); any other is stored Disabled and runs on demand only (on-demand runs ignore
    the state). No retries: Kudu does not retry a run either. `is_singleton` (the default) is
    the overlap policy Forbid: an occurrence due while a run is in progress is skipped."""
    scheduled = folder.type == TRIGGERED and folder.runnable and folder.settings.schedule
    properties: dict[str, Any] = {
        "action": {
            "type": "WebJob",
            "webJob": {"name": folder.name, "jobType": folder.type},
            "retryPolicy": {"retryType": "None"},
        },
        "state": "Enabled" if scheduled else "Disabled",
        "overlap": "Forbid" if folder.settings.is_singleton else "Allow",
    }
    if scheduled:
        properties["recurrence"] = {"cron": folder.settings.schedule}
    return {"properties": properties}


def _fingerprint_of_stored(job: StoredJob) -> tuple[Any, ...]:
    props = job.properties
    payload = props.action.payload
    recurrence = props.recurrence
    return (
        payload.to_json_dict() if isinstance(payload, WebJobAction) else None,
        recurrence.cron if recurrence is not None else None,
        job.state.value,
        props.action.retry_policy.retry_type.value if props.action.retry_policy else None,
        props.overlap.value,
    )


def _fingerprint_of_definition(definition: dict[str, Any]) -> tuple[Any, ...]:
    props = definition["properties"]
    return (
        props["action"]["webJob"],
        props.get("recurrence", {}).get("cron"),
        props["state"],
        "None",
        props["overlap"],
    )


@dataclass
class WebJobCatalog:
    """The folders found at start-up, and why a folder's job could not be stored, if so."""

    folders: list[WebJobFolder] = field(default_factory=list)
    errors: dict[tuple[str, str], str] = field(default_factory=dict)

    def find(self, folder_type: str, name: str) -> WebJobFolder | None:
        return next(
            (f for f in self.folders if f.type == folder_type and f.name.lower() == name.lower()),
            None,
        )

    def of_type(self, folder_type: str) -> list[WebJobFolder]:
        return [f for f in self.folders if f.type == folder_type]

    def error_of(self, folder: WebJobFolder) -> str | None:
        return folder.error or self.errors.get((folder.type, folder.name))

    @classmethod
    async def load(cls, options: WebJobSettings, jobs: JobService) -> WebJobCatalog:
        """Discover the folders and make the reserved collection match them."""
        catalog = cls(discover(options.root))
        if not catalog.folders and not options.root.is_dir():
            return catalog
        await catalog.sync(jobs)
        return catalog

    async def sync(self, jobs: JobService) -> None:
        try:
            await jobs.get_collection(WEBJOBS_REF)
        except SchedulerError:
            await jobs.put_collection(WEBJOBS_REF, {"properties": {"state": "Enabled"}})
        stored, _ = await jobs.list_jobs(WEBJOBS_REF, top=1000, after=None)
        by_name = {job.name: job for job in stored}
        wanted: set[str] = set()
        for folder in self.folders:
            name = job_name_of(folder.type, folder.name)
            wanted.add(name)
            definition = desired_definition(folder)
            current = by_name.get(name)
            if current is not None and _fingerprint_of_stored(current) == (
                _fingerprint_of_definition(definition)
            ):
                continue
            try:
                await jobs.put_job(WEBJOBS_REF, name, definition)
                log.info("WebJob %s/%s stored as job %s", folder.type, folder.name, name)
            except SchedulerError as error:
                self.errors[(folder.type, folder.name)] = f"cannot be scheduled: {error}"
                log.warning("WebJob %s/%s not stored: %s", folder.type, folder.name, error)
        for name, job in by_name.items():
            if name not in wanted and job.state is JobState.ENABLED:
                await jobs.patch_job(WEBJOBS_REF, name, {"properties": {"state": "Disabled"}})
                log.info("WebJob job %s disabled: its folder is gone", name)
