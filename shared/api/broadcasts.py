"""IoT Hub's jobs API (`/api/jobs/v2`): create, get, cancel and query broadcast jobs. Rights:
creating and cancelling need RegistryWrite, reading RegistryRead (IoT Hub's docs ask "registry
write" for jobs that update twins and "service connect" for method jobs; one write right for both
keeps a read-only policy read-only; docs/broadcasts.md). The service decides everything
(shared/broadcasts/service.py)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import JSONResponse

from shared.api.body import json_body
from shared.api.devices import (
    CONTINUATION_HEADER,
    HUB_ERRORS,
    ITEM_TYPE_HEADER,
    MAX_ITEM_COUNT_HEADER,
    READ,
    WRITE,
)
from shared.api.refs import RuntimeDep
from shared.broadcasts.model import JOB_ID_PATTERN
from shared.broadcasts.service import MAX_JOBS_PAGE
from shared.errors import InvalidRequest

router = APIRouter(responses=HUB_ERRORS)

JobId = Annotated[str, Path(json_schema_extra={"pattern": JOB_ID_PATTERN})]
# The Python SDK (azure-iot-hub 2.7.0) reads the jobs query as the swagger QueryResult object;
# the service and the other SDKs answer a JSON array with paging headers.
SDK_AGENT = "iothubgatewayserviceapis/"


@router.get(
    "/jobs/v2/query", name="Jobs_QueryJobs", summary="Query broadcast jobs", dependencies=READ
)
async def query_jobs(
    request: Request,
    rt: RuntimeDep,
    jobType: Annotated[str | None, Query()] = None,
    jobStatus: Annotated[str | None, Query()] = None,
    pageSize: Annotated[str | None, Query()] = None,
    continuationToken: Annotated[str | None, Query()] = None,
) -> Any:
    size_text = pageSize if pageSize is not None else request.headers.get(MAX_ITEM_COUNT_HEADER)
    size = _page_size(size_text, "pageSize" if pageSize is not None else MAX_ITEM_COUNT_HEADER)
    token = continuationToken or request.headers.get(CONTINUATION_HEADER) or None
    page = await rt.broadcasts.query(jobType, jobStatus, size, token)
    if SDK_AGENT in request.headers.get("user-agent", ""):
        return {"type": page.item_type, "items": page.items, "continuationToken": page.continuation}
    headers = {ITEM_TYPE_HEADER: page.item_type}
    if page.continuation is not None:
        headers[CONTINUATION_HEADER] = page.continuation
    return JSONResponse(page.items, headers=headers)


@router.put(
    "/jobs/v2/{jobId}",
    name="Jobs_CreateScheduledJob",
    summary="Create a broadcast job",
    dependencies=WRITE,
)
async def create_job(jobId: JobId, request: Request, rt: RuntimeDep) -> Any:
    body = await json_body(request, required=True)
    return await rt.broadcasts.create(jobId, body)


@router.get(
    "/jobs/v2/{jobId}",
    name="Jobs_GetScheduledJob",
    summary="Get a broadcast job",
    dependencies=READ,
)
async def get_job(jobId: JobId, rt: RuntimeDep) -> Any:
    return await rt.broadcasts.get(jobId)


@router.post(
    "/jobs/v2/{jobId}/cancel",
    name="Jobs_CancelScheduledJob",
    summary="Cancel a broadcast job",
    dependencies=WRITE,
)
async def cancel_job(jobId: JobId, rt: RuntimeDep) -> Any:
    return await rt.broadcasts.cancel(jobId)


def _page_size(raw: str | None, field: str) -> int:
    if raw is None or not raw.strip():
        return MAX_JOBS_PAGE
    try:
        value = int(raw.strip())
    except ValueError:
        value = 0
    if not 1 <= value <= MAX_JOBS_PAGE:
        raise InvalidRequest(field, f"must be an integer from 1 to {MAX_JOBS_PAGE}")
    return value
