"""Response shapes of the API (what the OpenAPI document promises and responses are checked
against). Request bodies are validated by the domain models in shared/model."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from shared.model.collection import CollectionProperties
from shared.model.common import ApiModel
from shared.model.job import JobHistoryProperties, JobState, JobStatus


class ErrorDetail(BaseModel):
    code: str
    message: str
    target: str | None = None


class ErrorBody(BaseModel):
    code: str = Field(examples=["BadRequest"])
    message: str
    target: str | None = None
    details: list[ErrorDetail] | None = None


class ErrorResponse(BaseModel):
    """ARM's error shape."""

    error: ErrorBody


class JobPropertiesOut(ApiModel):
    model_config = ConfigDict(extra="allow")

    start_time: datetime | None = None
    action: dict[str, Any]
    recurrence: dict[str, Any] | None = None
    state: JobState
    status: JobStatus


class JobOut(ApiModel):
    id: str
    type: str
    name: str
    properties: JobPropertiesOut


class JobListOut(ApiModel):
    value: list[JobOut]
    next_link: str | None = None


class CollectionOut(ApiModel):
    id: str
    type: str
    name: str
    location: str | None = None
    tags: dict[str, str] | None = None
    properties: CollectionProperties


class CollectionListOut(ApiModel):
    value: list[CollectionOut]
    next_link: str | None = None


class HistoryPropertiesOut(JobHistoryProperties):
    late_seconds: float | None = None
    on_demand: bool | None = None


class HistoryOut(ApiModel):
    id: str
    type: str
    name: str
    properties: HistoryPropertiesOut


class HistoryListOut(ApiModel):
    value: list[HistoryOut]
    next_link: str | None = None


class OccurrencesOut(ApiModel):
    value: list[datetime]


ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorResponse, "description": "Bad request: `error.target` names the field"},
    404: {"model": ErrorResponse, "description": "The collection or job does not exist"},
    409: {"model": ErrorResponse, "description": "A limit, a final state or a concurrent change"},
}
