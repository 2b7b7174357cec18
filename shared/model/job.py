"""The job definition (Azure Scheduler 2016-03-01 JobDefinition), its state, status and history."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pydantic import Field, field_validator

from shared.model.actions import DEFAULT_LIMITS, NO_LIMITS, JobAction, RequestLimits
from shared.model.common import ApiModel, CaseInsensitiveEnum, IsoDateTime
from shared.model.recurrence import Recurrence


class JobState(CaseInsensitiveEnum):
    ENABLED = "Enabled"
    DISABLED = "Disabled"
    FAULTED = "Faulted"
    COMPLETED = "Completed"

    @property
    def is_final(self) -> bool:
        return self in (JobState.FAULTED, JobState.COMPLETED)


class JobStatus(ApiModel):
    """Read-only counters, as reference section 1.9 recommends (plus `missedCount`, ours)."""

    execution_count: int = 0
    failure_count: int = 0
    faulted_count: int = 0
    missed_count: int = 0
    last_execution_time: datetime | None = None
    next_execution_time: datetime | None = None


class JobProperties(ApiModel):
    """What a user may write: startTime, action, recurrence, state (`status` is ignored)."""

    start_time: IsoDateTime | None = None
    action: JobAction
    recurrence: Recurrence | None = None
    state: JobState = JobState.ENABLED
    status: dict[str, Any] | None = Field(default=None, exclude=True)

    @field_validator("start_time", mode="after")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        """A date-time without an offset is UTC (Azure Scheduler's rule)."""
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.astimezone(UTC).replace(microsecond=0)

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
    body: object, now: datetime, limits: RequestLimits = DEFAULT_LIMITS
) -> JobProperties:
    """Validate a PUT body: the ARM envelope, or a bare properties object (the classic example).

    `now` feeds the rules that depend on time (endTime must be in the future), `limits` the
    request size limits of the app settings.
    Raises pydantic.ValidationError whose locations name the offending field.
    """
    context = {"now": now, "limits": limits}
    if isinstance(body, dict) and "properties" in body:
        return JobEnvelope.model_validate(body, context=context).properties
    return JobProperties.model_validate(body, context=context)


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
    "load_stored_definition",
    "parse_job_definition",
]
