"""Response shapes of the API (what the OpenAPI document promises and responses are checked
against), and the request bodies' schemas for the document. Request bodies are validated by the
domain models in shared/model (the routes read the raw body), so their schemas are only
described here, inlined into each operation."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from shared.model.collection import CollectionDefinition, CollectionProperties
from shared.model.common import ApiModel
from shared.model.job import (
    OVERLAP_DESCRIPTION,
    JobEnvelope,
    JobHistoryProperties,
    JobState,
    JobStatus,
    OverlapPolicy,
)


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
    overlap: OverlapPolicy = Field(default=OverlapPolicy.ALLOW, description=OVERLAP_DESCRIPTION)
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
    output: str | None = None  # the URL of a code-job attempt's output


class HistoryOut(ApiModel):
    id: str
    type: str
    name: str
    properties: HistoryPropertiesOut


class HistoryListOut(ApiModel):
    value: list[HistoryOut]
    next_link: str | None = None


class RunAttemptOut(ApiModel):
    id: str = Field(description="The attempt's history id")
    action_name: str
    retry_count: int
    status: str
    start_time: datetime
    end_time: datetime | None = None
    output: str | None = Field(None, description="The URL of the attempt's output (code jobs)")


class RunPropertiesOut(ApiModel):
    expected_execution_time: datetime
    on_demand: bool | None = None
    state: str = Field(description="Scheduled, Running (in flight) or Ended")
    status: str | None = Field(
        None, description="Once Ended: its main action's last attempt's status"
    )
    action_name: str | None = Field(None, description="In flight: the attempt under way or next")
    retry_count: int | None = None
    start_time: datetime | None = None
    output: str | None = Field(
        None, description="Running: the URL of the output of the attempt under way (code jobs)"
    )
    attempts: list[RunAttemptOut]


class RunOut(ApiModel):
    id: str
    type: str
    name: str
    properties: RunPropertiesOut


class RunListOut(ApiModel):
    value: list[RunOut]
    next_link: str | None = None


class OccurrencesOut(ApiModel):
    value: list[datetime]


ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorResponse, "description": "Bad request: `error.target` names the field"},
    404: {"model": ErrorResponse, "description": "The collection or job does not exist"},
    409: {"model": ErrorResponse, "description": "A limit, a final state or a concurrent change"},
    # ARM's convention (`default: CloudError`); it also keeps FastAPI from documenting a 422 that
    # this API never sends (request validation errors are 400s).
    "default": {
        "model": ErrorResponse,
        "description": "Any other error (405, 413 body too large, ...), in the same shape",
    },
}


def inline_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The model's JSON schema with every `$ref` replaced by its definition.

    A request model is not in the document's components (FastAPI only puts the models it
    validates there), and pydantic's `#/$defs/...` references would resolve against the document
    root, so the definitions are inlined (the models are not recursive). Discriminator mappings
    point into `$defs` too and are dropped: the `oneOf` says the same.
    """
    schema = model.model_json_schema(by_alias=True)
    definitions: dict[str, Any] = schema.pop("$defs", {})

    def resolve(node: Any) -> Any:
        if isinstance(node, dict):
            if "$ref" in node:
                target = definitions[node["$ref"].removeprefix("#/$defs/")]
                rest = {k: resolve(v) for k, v in node.items() if k != "$ref"}
                return {**resolve(target), **rest}
            return {k: resolve(v) for k, v in node.items() if k != "discriminator"}
        if isinstance(node, list):
            return [resolve(item) for item in node]
        return node

    resolved: dict[str, Any] = resolve(schema)
    return resolved


def json_body(
    schema: dict[str, Any], description: str, *, required: bool, example: Any = None
) -> dict[str, Any]:
    """An operation's `requestBody`, for `openapi_extra`."""
    media: dict[str, Any] = {"schema": schema}
    if example is not None:
        media["example"] = example
    return {
        "requestBody": {
            "required": required,
            "description": description,
            "content": {"application/json": media},
        }
    }


JOB_EXAMPLE = {
    "properties": {
        "startTime": "2030-01-01T00:00:00Z",
        "action": {
            "type": "Http",
            "request": {"uri": "https://example.com/hook", "method": "POST", "body": "ping"},
            "retryPolicy": {"retryType": "Fixed", "retryInterval": "PT30S", "retryCount": 4},
        },
        "recurrence": {"frequency": "Hour", "interval": 1},
        "state": "Enabled",
        "overlap": "Forbid",
    }
}
COLLECTION_EXAMPLE = {
    "location": "westeurope",
    "properties": {"sku": {"name": "Standard"}, "state": "Enabled"},
}


MERGE_PATCH = {"type": "object", "description": "A JSON merge patch (RFC 7396)"}


def job_put_body() -> dict[str, Any]:
    """The job PUT body's schema, made when the router is built (not at import), so the action
    kinds an app registers before building its API are listed."""
    return json_body(
        inline_schema(JobEnvelope),
        "The job definition. A bare properties object (without the `properties` envelope, as "
        "in Azure Scheduler's classic examples) is accepted too. At most 16 KiB.",
        required=True,
        example=JOB_EXAMPLE,
    )


JOB_PATCH_BODY = json_body(
    MERGE_PATCH,
    'A JSON merge patch of the job definition (`{"properties": {...}}` or the bare properties)',
    required=True,
    example={"properties": {"state": "Disabled"}},
)
COLLECTION_PUT_BODY = json_body(
    inline_schema(CollectionDefinition),
    "The job collection definition; an empty body creates an Enabled collection",
    required=False,
    example=COLLECTION_EXAMPLE,
)
COLLECTION_PATCH_BODY = json_body(
    MERGE_PATCH,
    "A JSON merge patch of the job collection definition",
    required=True,
    example={"tags": {"team": "ops"}},
)
