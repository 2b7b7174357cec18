"""Job collections (JobCollectionDefinition): state, SKU and quota, and the limits they impose."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from pydantic import Field, field_validator

from shared.model.common import ApiModel, CaseInsensitiveEnum, Integer
from shared.model.recurrence import Frequency


class CollectionState(CaseInsensitiveEnum):
    ENABLED = "Enabled"
    DISABLED = "Disabled"
    SUSPENDED = "Suspended"
    DELETED = "Deleted"


class SkuName(CaseInsensitiveEnum):
    STANDARD = "Standard"
    FREE = "Free"
    P10_PREMIUM = "P10Premium"
    P20_PREMIUM = "P20Premium"


class Sku(ApiModel):
    name: SkuName


class MaxRecurrence(ApiModel):
    frequency: Frequency
    interval: Integer = Field(default=1, ge=1, le=1000)

    @property
    def period(self) -> timedelta:
        return FREQUENCY_PERIOD[self.frequency] * self.interval


MAX_JOB_OCCURRENCE = 100_000


class CollectionQuota(ApiModel):
    max_job_count: Integer | None = Field(default=None, ge=1, le=1_000_000)
    # How many times a job of the collection may run in all (its recurrence's count, or the
    # occurrences before its endTime); checked by counting, hence bounded.
    max_job_occurrence: Integer | None = Field(default=None, ge=1, le=MAX_JOB_OCCURRENCE)
    max_recurrence: MaxRecurrence | None = None


class CollectionProperties(ApiModel):
    sku: Sku | None = None
    state: CollectionState = CollectionState.ENABLED
    quota: CollectionQuota | None = None

    @field_validator("state")
    @classmethod
    def _settable(cls, state: CollectionState) -> CollectionState:
        if state is CollectionState.DELETED:
            raise ValueError("Deleted cannot be set: DELETE the collection instead")
        return state


class CollectionDefinition(ApiModel):
    """The PUT/PATCH body; `id`, `type` and `name` are read-only and ignored."""

    id: str | None = None
    type: str | None = None
    name: str | None = None
    location: str | None = Field(default=None, max_length=100)
    tags: dict[str, str] | None = None
    properties: CollectionProperties = Field(default_factory=CollectionProperties)

    @field_validator("tags")
    @classmethod
    def _arm_tag_limits(cls, tags: dict[str, str] | None) -> dict[str, str] | None:
        if tags is not None:
            if len(tags) > 50:
                raise ValueError("at most 50 tags")
            for key, value in tags.items():
                if not 1 <= len(key) <= 512 or len(value) > 256:
                    raise ValueError("tag names are 1-512 characters, values at most 256")
        return tags


# The shortest spacing a frequency stands for (a month counts as 28 days: the shortest).
FREQUENCY_PERIOD = {
    Frequency.MINUTE: timedelta(minutes=1),
    Frequency.HOUR: timedelta(hours=1),
    Frequency.DAY: timedelta(days=1),
    Frequency.WEEK: timedelta(weeks=1),
    Frequency.MONTH: timedelta(days=28),
}


@dataclass(frozen=True)
class Limits:
    """What a collection allows: job count, shortest recurrence, outbound authentication."""

    max_jobs: int | None
    min_recurrence: timedelta
    outbound_auth: bool
    source: str  # says where a limit comes from, for the 409 message
    max_occurrences: int | None = None


SKU_LIMITS = {
    SkuName.FREE: Limits(5, timedelta(hours=1), False, "the Free SKU"),
    SkuName.STANDARD: Limits(50, timedelta(minutes=1), True, "the Standard SKU"),
    SkuName.P10_PREMIUM: Limits(50, timedelta(minutes=1), True, "the P10Premium SKU"),
    SkuName.P20_PREMIUM: Limits(1000, timedelta(minutes=1), True, "the P20Premium SKU"),
}


def effective_limits(
    properties: CollectionProperties, app_max_jobs: int | None, app_min_recurrence: timedelta
) -> Limits:
    """SKU limits (or, with no SKU, the app-wide settings), overridden by the quota."""
    if properties.sku is not None:
        base = SKU_LIMITS[properties.sku.name]
    else:
        base = Limits(app_max_jobs, app_min_recurrence, True, "the app settings")
    quota = properties.quota
    if quota is None:
        return base
    return Limits(
        max_jobs=quota.max_job_count if quota.max_job_count is not None else base.max_jobs,
        min_recurrence=(
            quota.max_recurrence.period if quota.max_recurrence else base.min_recurrence
        ),
        outbound_auth=base.outbound_auth,
        max_occurrences=quota.max_job_occurrence,
        source="the collection's quota"
        if quota.max_job_count or quota.max_recurrence
        else base.source,
    )
