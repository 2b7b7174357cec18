"""The Broadcast kind: a scheduler job's occurrence starts a broadcast job (docs/broadcasts.md).

Two forms of the `broadcast` payload:
- `{"jobId": "..."}`: start that existing broadcast (its start job in `iothub-jobs` holds this:
  shared/broadcasts/starts.py). The attempt ends once it has started; the jobs API reports the
  rest.
- the JobRequest without `jobId` and `startTime` (`type`, `cloudToDeviceMethod` | `updateTwin`,
  `queryCondition`, `maxExecutionTimeInSeconds`, `rollout`, `abortConfig`, `retryConfig`),
  checked by the jobs API's rules: each occurrence starts a broadcast now, under an id made from
  the occurrence (`occurrence_broadcast_id`), so a retried attempt finds the same broadcast
  instead of starting another. The attempt then waits for it to end, at most
  `SCHEDULER_BROADCAST_WAIT_SECONDS` (and never longer than the broadcast's own time limit), and
  reports its id and final statistics; a failed or cancelled (aborted) broadcast fails the
  attempt, one still running past the wait fails it saying so (a retry waits again, for the
  same broadcast).
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Protocol

from pydantic import model_validator

from shared.broadcasts.model import (
    COMPLETED,
    DEFAULT_MAX_EXECUTION_SECONDS,
    ENDED,
    check_job_id,
    parse_job_request,
)
from shared.broadcasts.records import Broadcast
from shared.errors import ConfigError, InvalidRequest
from shared.kinds.base import ActionContext, ActionOutcome, ActionRunner, Kind
from shared.model.common import ApiModel, field_error
from shared.timefmt import compact, to_iso

if TYPE_CHECKING:
    from shared.config import Settings
    from shared.model.actions import JobErrorAction

WAIT_SETTING = "SCHEDULER_BROADCAST_WAIT_SECONDS"
DEFAULT_WAIT_SECONDS = 300
MAX_WAIT_SECONDS = 480  # the attempt, its start included, must end within functionTimeout (10 min)
# What a start may take (the device snapshot and its records), on top of the wait.
START_BUDGET = timedelta(seconds=90)
_POLL_FIRST, _POLL_MOST = 0.1, 2.0  # seconds between looks at a running broadcast
_ID_PREFIX = 32  # characters of the job name in an occurrence's broadcast id


class BroadcastAction(ApiModel):
    """`jobId` alone, or a JobRequest without `jobId` and `startTime` (the fields are checked by
    the jobs API's own rules; errors name `broadcast.<field>`)."""

    job_id: str | None = None
    type: Any = None
    query_condition: Any = None
    max_execution_time_in_seconds: Any = None
    cloud_to_device_method: Any = None
    update_twin: Any = None
    rollout: Any = None
    abort_config: Any = None
    retry_config: Any = None

    @model_validator(mode="after")
    def _one_form_by_the_jobs_api_rules(self) -> BroadcastAction:
        request = self.request()
        try:
            if self.job_id is not None:
                check_job_id(self.job_id)
                if request:
                    raise InvalidRequest(
                        sorted(request)[0], "is not allowed with jobId (which names a broadcast)"
                    )
            else:
                parse_job_request("occurrence", request)
        except InvalidRequest as error:
            raise field_error(error.field, None, error.reason) from None
        return self

    def request(self) -> dict[str, Any]:
        """The JobRequest fields given (camelCase), `jobId` left out."""
        body = self.to_json_dict()
        body.pop("jobId", None)
        return body

    def time_limit(self) -> int:
        given = self.max_execution_time_in_seconds
        return given if isinstance(given, int) else DEFAULT_MAX_EXECUTION_SECONDS


def occurrence_broadcast_id(context: ActionContext) -> str:
    """The broadcast of one occurrence: the same for each of its attempts, another for each
    occurrence (and job, collection): `<job, 32 chars>@<nominal>.<hash of the occurrence>`."""
    digest = hashlib.sha256(context.idempotency_key.encode()).hexdigest()[:10]
    return f"{context.job[:_ID_PREFIX]}@{compact(context.nominal)}.{digest}"


class Broadcasts(Protocol):
    """What the runner needs of the broadcast service (shared/broadcasts/service.py)."""

    async def start_now(self, job_id: str, body: Mapping[str, Any]) -> Broadcast | None: ...

    async def read(self, job_id: str) -> Broadcast | None: ...

    async def statistics(self, job_id: str) -> dict[str, int]: ...

    async def start(self, job_id: str) -> Broadcast | None: ...


@dataclass(frozen=True)
class BroadcastSettings:
    wait: timedelta


class BroadcastActionRunner:
    """Starts broadcasts through the runtime's broadcast service (built by the runtime: it needs
    the service, so the kind's own `runner` cannot make it)."""

    def __init__(self, broadcasts: Broadcasts) -> None:
        self._broadcasts = broadcasts

    async def run(self, action: JobErrorAction, context: ActionContext) -> ActionOutcome:
        payload = action.payload_as(BroadcastAction)
        if payload is None:
            raise ValueError("Broadcast action without a broadcast payload")
        try:
            if payload.job_id is not None:
                return await self._start(payload.job_id)
            job_id = occurrence_broadcast_id(context)
            job = await self._broadcasts.start_now(job_id, payload.request())
            if job is None:
                return _failed(f"Broadcast {job_id} was deleted before it ended")
            wait = wait_of(payload, context.settings)
            return await self._outcome(await self._until_ended(job, wait), wait)
        except InvalidRequest as error:  # a stored request the current rules refuse
            return _failed(f"Broadcast request refused: {error.field} {error.reason}")

    async def _start(self, job_id: str) -> ActionOutcome:
        job = await self._broadcasts.start(job_id)
        if job is None:
            return _failed(f"Broadcast {job_id} does not exist")
        if job.status in ENDED:
            return ActionOutcome(True, f"Broadcast {job_id} was {job.status} before its start")
        if job.status != "running":
            return _failed(f"Broadcast {job_id} is not due until {to_iso(job.start)}")
        return ActionOutcome(True, f"Broadcast {job_id} started: deviceCount={job.device_count}")

    async def _until_ended(self, job: Broadcast, wait: timedelta) -> Broadcast:
        """The job once ended, or as it is when the wait is over (polled: the device work runs
        in other processes, with no signal to await)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait.total_seconds()
        pause = _POLL_FIRST
        while job.status not in ENDED and loop.time() < deadline:
            await asyncio.sleep(min(pause, max(deadline - loop.time(), 0)))
            pause = min(pause * 2, _POLL_MOST)
            job = await self._broadcasts.read(job.spec.job_id) or job
        return job

    async def _outcome(self, job: Broadcast, wait: timedelta) -> ActionOutcome:
        job_id = job.spec.job_id
        stats = await self._broadcasts.statistics(job_id)
        figures = ", ".join(
            f"{name}={stats[name]}" for name in ("deviceCount", "succeededCount", "failedCount")
        )
        if job.status not in ENDED:
            seconds = int(wait.total_seconds())
            return _failed(f"Broadcast {job_id} still running after {seconds} s: {figures}")
        reason = f" ({job.failure_reason})" if job.failure_reason else ""
        message = f"Broadcast {job_id} {job.status}{reason}: {figures}"
        return ActionOutcome(job.status == COMPLETED, message)

    async def aclose(self) -> None:
        """Nothing to close: the broadcast service belongs to the runtime."""


class UnwiredBroadcastRunner:
    """The runner of a runtime built without a broadcast service (a bare `KindRunners`)."""

    async def run(self, action: JobErrorAction, context: ActionContext) -> ActionOutcome:
        return _failed("broadcasts are not available in this process")

    async def aclose(self) -> None:
        """Nothing to close."""


def wait_of(payload: BroadcastAction, settings: Settings) -> timedelta:
    """How long an occurrence waits for its broadcast: the setting, or the broadcast's time
    limit and a minute when that is shorter."""
    configured: BroadcastSettings = settings.for_kind(BROADCAST)
    return min(configured.wait, timedelta(seconds=payload.time_limit() + 60))


def _failed(message: str) -> ActionOutcome:
    return ActionOutcome(succeeded=False, message=message)


class BroadcastKind(Kind[BroadcastAction]):
    type_names = ("Broadcast",)
    payload_field = "broadcast"
    payload_model = BroadcastAction
    settings = (WAIT_SETTING,)

    def runner(self, settings: Settings) -> ActionRunner:
        return UnwiredBroadcastRunner()

    def timeout(self, payload: BroadcastAction, settings: Settings) -> timedelta:
        if payload.job_id is not None:
            return START_BUDGET
        return START_BUDGET + wait_of(payload, settings)

    def configure(self, app_settings: Mapping[str, str]) -> BroadcastSettings:
        text = app_settings.get(WAIT_SETTING, "").strip()
        if not text:
            return BroadcastSettings(timedelta(seconds=DEFAULT_WAIT_SECONDS))
        if not text.isdigit() or not 1 <= int(text) <= MAX_WAIT_SECONDS:
            raise ConfigError(
                WAIT_SETTING, f"must be a whole number of seconds, 1 to {MAX_WAIT_SECONDS}"
            )
        return BroadcastSettings(timedelta(seconds=int(text)))


BROADCAST = BroadcastKind()
