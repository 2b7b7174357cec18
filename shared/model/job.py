"""The job definition (Azure Scheduler 2016-03-01 JobDefinition), its state, status and history."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import Field, field_validator, model_validator

from shared.kinds.http.model import DEFAULT_LIMITS, NO_LIMITS, RequestLimits
from shared.model.actions import JobAction
from shared.model.common import (
    CALENDAR_RANGE,
    ApiModel,
    CaseInsensitiveEnum,
    IsoDateTime,
    field_error,
    utc_instant,
)
from shared.model.recurrence import Recurrence


class JobState(CaseInsensitiveEnum):
    ENABLED = "Enabled"
    DISABLED = "Disabled"
    FAULTED = "Faulted"
    COMPLETED = "Completed"

    @property
    def is_final(self) -> bool:
        return self in (JobState.FAULTED, JobState.COMPLETED)


class OverlapPolicy(CaseInsensitiveEnum):
    """Ours: what an occurrence does when another run of the same job is still running
    (docs/ARCHITECTURE.md, Overlap). Allow is Azure Scheduler's behaviour, hence the default."""

    ALLOW = "Allow"
    FORBID = "Forbid"
    REPLACE = "Replace"


OVERLAP_DESCRIPTION = (
    "Ours: when an occurrence (or an on-demand run) is about to start while another run of the "
    "job is still running: Allow runs both (the default), Forbid skips the new one (history "
    "status Cancelled, 'Skipped: ...'), Replace stops the running one (history 'Cancelled: "
    "replaced by ...') and starts the new one."
)


class JobStatus(ApiModel):
    """Read-only counters, as docs/azure-scheduler.md §7 defines them (plus `missedCount`, ours)."""

    execution_count: int = 0
    failure_count: int = 0
    faulted_count: int = 0
    missed_count: int = 0
    last_execution_time: datetime | None = None
    next_execution_time: datetime | None = None


class JobProperties(ApiModel):
    """What a user may write: startTime, action, recurrence, state, and our `overlap` (`status`
    is ignored)."""

    start_time: IsoDateTime | None = None
    action: JobAction
    recurrence: Recurrence | None = None
    state: JobState = JobState.ENABLED
    overlap: OverlapPolicy = Field(
        default=OverlapPolicy.ALLOW,
        description=OVERLAP_DESCRIPTION,
    )
    status: dict[str, Any] | None = Field(default=None, exclude=True)

    @model_validator(mode="after")
    def _start_instant(self) -> JobProperties:
        """Store startTime as an instant (UTC). One with `Z` or an offset is an instant already;
        one without is a wall time in the recurrence's timeZone, as Azure Logic Apps reads it
        (UTC without a timeZone, Azure Scheduler's rule). Runs after every field is valid,
        because the zone comes from `recurrence`; errors still name `startTime`."""
        if self.start_time is None:
            return self
        zone_name = self.recurrence.time_zone if self.recurrence is not None else None
        zone = ZoneInfo(zone_name) if zone_name else UTC
        given = self.start_time
        if given.tzinfo is None:  # a wall time skipped by DST is shifted forward (fold=0)
            given = given.replace(tzinfo=zone, fold=0)
        try:
            instant = utc_instant(given, "startTime")
            instant.astimezone(zone)  # the schedule reads its wall clock: it must exist too
        except (ValueError, OverflowError):
            raise field_error(
                "startTime",
                self.start_time,
                f"startTime must lie within {CALENDAR_RANGE}"
                + (f", and so must its wall time in {zone_name}" if zone_name else "")
                + f"; got {self.start_time.isoformat()}",
            ) from None
        self.start_time = instant
        return self

    @field_validator("state", mode="after")
    @classmethod
    def _settable_state(cls, value: JobState) -> JobState:
        if value.is_final:
            raise ValueError("only Enabled or Disabled may be set; Completed and Faulted are final")
        return value


class JobEnvelope(ApiModel):
    """The 2016-03-01 request shape: `{"properties": {...}}` (id, type and name are read-only)."""

    id: str | None = None
    type: str | None = None
    name: str | None = None
    properties: JobProperties


def parse_job_definition(
    body: object, now: datetime, limits: RequestLimits = DEFAULT_LIMITS, settings: object = None
) -> JobProperties:
    """Validate a PUT body: the ARM envelope, or a bare properties object (the classic example).

    `now` feeds the rules that depend on time (endTime must be in the future), `limits` the
    request size limits of the app settings; `settings` (the app's `Settings`) is there for
    payload validators that need a kind's own settings (`settings.for_kind(kind)`).
    Raises pydantic.ValidationError whose locations name the offending field as a path in the
    envelope (`properties.action...`), whichever form was sent.
    """
    context = {"now": now, "limits": limits, "settings": settings}
    envelope = body if isinstance(body, dict) and "properties" in body else {"properties": body}
    return JobEnvelope.model_validate(envelope, context=context).properties


def load_stored_definition(data: object) -> JobProperties:
    """Re-read a stored definition: no time rules, no size limits (settings may have changed),
    and URIs stored before the stricter checks stay readable (they fail when called)."""
    return JobProperties.model_validate(data, context={"limits": NO_LIMITS, "stored": True})


class ActionName(CaseInsensitiveEnum):
    MAIN_ACTION = "MainAction"
    ERROR_ACTION = "ErrorAction"


class HistoryStatus(CaseInsensitiveEnum):
    COMPLETED = "Completed"
    FAILED = "Failed"
    POSTPONED = "Postponed"
    CANCELLED = "Cancelled"  # ours: a run its job's disable or replacement cancelled


class JobHistoryProperties(ApiModel):
    """One row of a job's history: one attempt of an action (JobHistoryDefinition.properties)."""

    start_time: datetime
    end_time: datetime | None = None
    expected_execution_time: datetime
    action_name: ActionName
    status: HistoryStatus
    message: str
    retry_count: int
    repeat_count: int


__all__ = [
    "ActionName",
    "HistoryStatus",
    "JobHistoryProperties",
    "JobProperties",
    "JobState",
    "JobStatus",
    "OverlapPolicy",
    "load_stored_definition",
    "parse_job_definition",
]
