"""Routes of the management API: job collections, jobs, run-now, history, occurrence previews."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import Field, ValidationError

from shared.api.errors import bad_request_from_validation
from shared.errors import InvalidRequest
from shared.model.common import ApiModel
from shared.runtime import Runtime
from shared.store import Collection, CollectionState, HistoryRecord, StoredJob
from shared.timefmt import to_iso

DEFAULT_SUBSCRIPTION = "00000000-0000-0000-0000-000000000000"
DEFAULT_RESOURCE_GROUP = "default"
MAX_PAGE = 100

RuntimeProvider = Callable[[], Awaitable[Runtime]]


class CollectionProperties(ApiModel):
    state: CollectionState = CollectionState.ENABLED


class CollectionBody(ApiModel):
    """PUT body of a job collection; sku and quota arrive in a later version."""

    id: str | None = None
    type: str | None = None
    name: str | None = None
    location: str | None = None
    tags: dict[str, str] | None = None
    properties: CollectionProperties = Field(default_factory=CollectionProperties)


def collection_id(name: str) -> str:
    return (
        f"/subscriptions/{DEFAULT_SUBSCRIPTION}/resourceGroups/{DEFAULT_RESOURCE_GROUP}"
        f"/providers/Microsoft.Scheduler/jobCollections/{name}"
    )


def collection_json(collection: Collection) -> dict[str, Any]:
    return {
        "id": collection_id(collection.name),
        "type": "Microsoft.Scheduler/jobCollections",
        "name": collection.name,
        "properties": {"state": collection.state.value},
    }


def job_json(job: StoredJob) -> dict[str, Any]:
    props = job.properties
    properties: dict[str, Any] = {}
    if props.start_time is not None:
        properties["startTime"] = to_iso(props.start_time)
    properties["action"] = props.action.public_json()
    if props.recurrence is not None:
        properties["recurrence"] = props.recurrence.to_json_dict()
    properties["state"] = job.state.value
    properties["status"] = job.status.to_json_dict()
    return {
        "id": f"{collection_id(job.collection)}/jobs/{job.name}",
        "type": "Microsoft.Scheduler/jobCollections/jobs",
        "name": f"{job.collection}/{job.name}",
        "properties": properties,
    }


def history_json(record: HistoryRecord) -> dict[str, Any]:
    props = record.properties.to_json_dict()
    if record.late_seconds:
        props["lateSeconds"] = round(record.late_seconds, 3)
    if record.manual:
        props["onDemand"] = True
    return {
        "id": f"{collection_id(record.collection)}/jobs/{record.job}/history/"
        f"{record.row_key.split('|', 2)[2].replace('|', '-')}",
        "type": "Microsoft.Scheduler/jobCollections/jobs/history",
        "name": f"{record.collection}/{record.job}",
        "properties": props,
    }


async def _json_body(request: Request, *, required: bool) -> Any:
    raw = await request.body()
    if not raw.strip():
        if required:
            raise InvalidRequest("body", "a JSON body is required")
        return {}
    try:
        return json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise InvalidRequest("body", f"not valid JSON ({error})") from error


def _next_link(request: Request, token: str | None) -> str | None:
    if token is None:
        return None
    return str(request.url.include_query_params(**{"$skiptoken": token}))


async def runtime_of(request: Request) -> Runtime:
    """The runtime the app was created with (tests pass their own)."""
    provider: RuntimeProvider = request.app.state.get_runtime
    return await provider()


RuntimeDep = Annotated[Runtime, Depends(runtime_of)]
Top = Annotated[int, Query(alias="$top", ge=1, le=MAX_PAGE)]
SkipToken = Annotated[str | None, Query(alias="$skiptoken", max_length=300)]


def build_router() -> APIRouter:
    router = APIRouter(prefix="/api")

    @router.put("/jobCollections/{collection}")
    async def put_collection(collection: str, request: Request, rt: RuntimeDep) -> Response:
        body = await _json_body(request, required=False)
        try:
            parsed = CollectionBody.model_validate(body)
        except ValidationError as error:
            return bad_request_from_validation(error, "")
        stored, created = await rt.jobs.put_collection(collection, parsed.properties.state)
        return JSONResponse(collection_json(stored), status_code=201 if created else 200)

    @router.get("/jobCollections/{collection}")
    async def get_collection(collection: str, rt: RuntimeDep) -> dict[str, Any]:
        return collection_json(await rt.jobs.get_collection(collection))

    @router.delete("/jobCollections/{collection}")
    async def delete_collection(collection: str, rt: RuntimeDep) -> Response:
        await rt.jobs.delete_collection(collection)
        return Response(status_code=200)

    @router.put("/jobCollections/{collection}/jobs/{job}")
    async def put_job(collection: str, job: str, request: Request, rt: RuntimeDep) -> Response:
        body = await _json_body(request, required=True)
        try:
            stored, created = await rt.jobs.put_job(collection, job, body)
        except ValidationError as error:
            prefix = "" if isinstance(body, dict) and "properties" in body else "properties"
            return bad_request_from_validation(error, prefix)
        return JSONResponse(job_json(stored), status_code=201 if created else 200)

    @router.get("/jobCollections/{collection}/jobs/{job}")
    async def get_job(collection: str, job: str, rt: RuntimeDep) -> dict[str, Any]:
        return job_json(await rt.jobs.get_job(collection, job))

    @router.delete("/jobCollections/{collection}/jobs/{job}")
    async def delete_job(collection: str, job: str, rt: RuntimeDep) -> Response:
        await rt.jobs.delete_job(collection, job)
        return Response(status_code=200)

    @router.get("/jobCollections/{collection}/jobs")
    async def list_jobs(
        collection: str,
        request: Request,
        rt: RuntimeDep,
        top: Top = MAX_PAGE,
        skiptoken: SkipToken = None,
    ) -> dict[str, Any]:
        jobs, token = await rt.jobs.list_jobs(collection, top, skiptoken)
        return {"value": [job_json(j) for j in jobs], "nextLink": _next_link(request, token)}

    @router.post("/jobCollections/{collection}/jobs/{job}/run")
    async def run_job(collection: str, job: str, rt: RuntimeDep) -> Response:
        await rt.jobs.run_now(collection, job)
        return Response(status_code=200)

    @router.get("/jobCollections/{collection}/jobs/{job}/history")
    async def history(
        collection: str,
        job: str,
        request: Request,
        rt: RuntimeDep,
        top: Top = MAX_PAGE,
        skiptoken: SkipToken = None,
    ) -> dict[str, Any]:
        records, token = await rt.jobs.history(collection, job, top, skiptoken)
        return {
            "value": [history_json(r) for r in records],
            "nextLink": _next_link(request, token),
        }

    @router.get("/jobCollections/{collection}/jobs/{job}/occurrences")
    async def occurrences(
        collection: str,
        job: str,
        rt: RuntimeDep,
        count: Annotated[int, Query(ge=1, le=1000)] = 10,
        after: Annotated[datetime | None, Query()] = None,
    ) -> dict[str, Any]:
        if after is not None and after.tzinfo is None:
            after = after.replace(tzinfo=UTC)
        times = await rt.jobs.preview(collection, job, count, after)
        return {"value": [to_iso(t) for t in times]}

    return router
