"""Routes of the management API: Azure Scheduler 2016-03-01 on ARM-shaped paths, the same
operations on short `/api/jobCollections/...` paths (default subscription and resource group),
plus our occurrence preview."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.exceptions import HTTPException

from shared.api.errors import bad_request_from_validation
from shared.api.middleware import MAX_BODY_BYTES, BodyTooLarge
from shared.api.schemas import (
    COLLECTION_PATCH_BODY,
    COLLECTION_PUT_BODY,
    ERRORS,
    JOB_PATCH_BODY,
    CollectionListOut,
    CollectionOut,
    HistoryListOut,
    JobListOut,
    JobOut,
    OccurrencesOut,
    job_put_body,
)
from shared.engine.records import Collection, HistoryRecord, StoredJob
from shared.errors import InvalidRequest
from shared.model.job import HistoryStatus, JobState
from shared.names import NAME, NAME_RULE, RESOURCE_GROUP, SUBSCRIPTION, CollectionRef
from shared.runtime import Runtime
from shared.timefmt import to_iso

MAX_PAGE = 100
ARM_BASE = (
    "/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}"
    "/providers/Microsoft.Scheduler/jobCollections"
)
SHORT_BASE = "/jobCollections"

RuntimeProvider = Callable[[], Awaitable[Runtime]]


async def runtime_of(request: Request) -> Runtime:
    """The runtime the app was created with (tests pass their own)."""
    provider: RuntimeProvider = request.app.state.get_runtime
    return await provider()


def _documented(pattern: re.Pattern[str], description: str) -> Any:
    """A path segment whose rule the OpenAPI document states; it is enforced by shared.names
    (a 400 that names the segment and the rule), not by FastAPI."""
    return Path(description=description, json_schema_extra={"pattern": f"^{pattern.pattern}$"})


SubscriptionId = Annotated[str, _documented(SUBSCRIPTION, "1-64 letters, digits and '-'")]
ResourceGroupName = Annotated[
    str,
    _documented(
        RESOURCE_GROUP, "1-90 letters, digits, '_', '-', '.', '(' and ')', not ending in '.'"
    ),
]
CollectionName = Annotated[str, _documented(NAME, NAME_RULE)]
JobName = Annotated[str, _documented(NAME, NAME_RULE)]


def short_ref(jobCollectionName: CollectionName) -> CollectionRef:
    return CollectionRef.parse(jobCollectionName)


def arm_ref(
    subscriptionId: SubscriptionId,
    resourceGroupName: ResourceGroupName,
    jobCollectionName: CollectionName,
) -> CollectionRef:
    return CollectionRef.parse(jobCollectionName, subscriptionId, resourceGroupName)


RuntimeDep = Annotated[Runtime, Depends(runtime_of)]
Top = Annotated[int, Query(alias="$top", ge=1, le=MAX_PAGE)]
Skip = Annotated[int, Query(alias="$skip", ge=0, le=100_000)]
SkipToken = Annotated[str | None, Query(alias="$skiptoken", max_length=300)]
Filter = Annotated[str | None, Query(alias="$filter", max_length=200)]

_FILTER = re.compile(r"^\s*(\w+)\s+eq\s+'?(\w+)'?\s*$", re.IGNORECASE)


def parse_filter(text: str | None, field: str, kind: type[JobState] | type[HistoryStatus]) -> Any:
    """`state eq 'Enabled'` (jobs) or `status eq 'Failed'` (history), as Azure Scheduler took."""
    if text is None:
        return None
    match = _FILTER.match(text)
    if not match or match.group(1).lower() != field:
        raise InvalidRequest("$filter", f"only \"{field} eq '<value>'\" is supported")
    try:
        return kind(match.group(2))  # case-insensitive enum
    except ValueError:
        allowed = ", ".join(member.value for member in kind)
        raise InvalidRequest("$filter", f"{field} must be one of {allowed}") from None


def collection_json(collection: Collection) -> dict[str, Any]:
    definition = collection.definition
    body: dict[str, Any] = {
        "id": collection.ref.resource_id,
        "type": "Microsoft.Scheduler/jobCollections",
        "name": collection.ref.name,
        "location": definition.location,
        "tags": definition.tags or {},
        "properties": definition.properties.to_json_dict(),
    }
    return body


def job_json(job: StoredJob) -> dict[str, Any]:
    ref = CollectionRef.from_key(job.collection)
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
        "id": f"{ref.resource_id}/jobs/{job.name}",
        "type": "Microsoft.Scheduler/jobCollections/jobs",
        "name": f"{ref.name}/{job.name}",
        "properties": properties,
    }


def history_json(record: HistoryRecord) -> dict[str, Any]:
    ref = CollectionRef.from_key(record.collection)
    props = record.properties.to_json_dict()
    if record.late_seconds:
        props["lateSeconds"] = round(record.late_seconds, 3)
    if record.manual:
        props["onDemand"] = True
    history_id = record.row_key.split("|", 2)[2].replace("|", "-")
    return {
        "id": f"{ref.resource_id}/jobs/{record.job}/history/{history_id}",
        "type": "Microsoft.Scheduler/jobCollections/jobs/history",
        "name": f"{ref.name}/{record.job}/{history_id}",
        "properties": props,
    }


MAX_DEPTH = 64  # a job is about 8 levels deep; anything far deeper is not a definition
_JSON_MEDIA = re.compile(r"^application/(?:[\w.+-]+\+)?json$")


async def _json_body(request: Request, *, required: bool) -> dict[str, Any]:
    """The body as a JSON object. Refused: non-JSON content types (415), more than 64 KiB
    (413), bytes that are not UTF-8, text that is not JSON (`NaN`, `Infinity` included, and
    numbers too large for a float, like `1e400`), duplicate keys, anything but an object at
    the top, nesting deeper than MAX_DEPTH, and strings with lone surrogates (they cannot be
    stored nor sent)."""
    raw = await request.body()
    if len(raw) > MAX_BODY_BYTES:
        raise BodyTooLarge(MAX_BODY_BYTES)
    if not raw.strip():
        if required:
            raise InvalidRequest("body", "a JSON body is required")
        return {}
    media_type = request.headers.get("content-type", "application/json").split(";")[0]
    if not _JSON_MEDIA.match(media_type.strip().lower()):
        raise HTTPException(
            415, f"the body must be application/json, not '{media_type.strip()[:60]}'"
        )
    try:
        value = json.loads(
            raw.decode("utf-8-sig"),
            parse_constant=_not_json,
            parse_float=_finite,
            object_pairs_hook=_unique_keys,
        )
    except UnicodeDecodeError as error:
        raise InvalidRequest("body", f"not UTF-8 ({error.reason} at byte {error.start})") from None
    except RecursionError:
        raise InvalidRequest("body", f"nested deeper than {MAX_DEPTH} levels") from None
    except ValueError as error:  # json.JSONDecodeError, or the hooks' refusals
        raise InvalidRequest("body", f"not valid JSON ({error})") from None
    if not isinstance(value, dict):
        raise InvalidRequest("body", f"must be a JSON object, not {_json_kind(value)}")
    _check_tree(value)
    return value


def _not_json(constant: str) -> Any:
    raise ValueError(f"{constant} is not a JSON number")


def _finite(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise ValueError(f"{text[:40]} is too large for a number")
    return value


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, item in pairs:
        if key in result:
            raise ValueError(f"duplicate key {json.dumps(key)[:60]}")
        result[key] = item
    return result


def _json_kind(value: object) -> str:
    names = {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}
    return names.get(type(value), "a number")


def _check_tree(value: object) -> None:
    """Depth and text checks, without recursion (the path names a bad string's field)."""
    stack: list[tuple[object, str, int]] = [(value, "", 1)]
    while stack:
        node, path, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise InvalidRequest("body", f"nested deeper than {MAX_DEPTH} levels")
        if isinstance(node, dict):
            for key, item in node.items():
                _check_text(key, path)  # a bad key is not repeated: the target is its object
                stack.append((item, f"{path}.{key}" if path else key, depth + 1))
        elif isinstance(node, list):
            stack.extend((item, f"{path}[{i}]", depth + 1) for i, item in enumerate(node))
        elif isinstance(node, str):
            _check_text(node, path)


def _check_text(text: str, path: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidRequest(path or "body", "a lone surrogate is not text") from None


def _next_link(request: Request, token: str | None) -> str | None:
    if token is None:
        return None
    params = {k: v for k, v in request.query_params.items() if k != "$skip"}
    params["$skiptoken"] = token
    return str(request.url.replace_query_params(**params))


async def _collection_page(
    rt: Runtime,
    request: Request,
    subscription: str,
    resource_group: str | None,
    top: int,
    skiptoken: str | None,
) -> dict[str, Any]:
    found, token = await rt.jobs.list_collections(subscription, resource_group, top, skiptoken)
    return {"value": [collection_json(c) for c in found], "nextLink": _next_link(request, token)}


def _body_prefix(body: object) -> str:
    return "" if isinstance(body, dict) and "properties" in body else "properties"


def build_router() -> APIRouter:
    router = APIRouter(prefix="/api", responses=ERRORS)

    @router.get(
        "/subscriptions/{subscriptionId}/providers/Microsoft.Scheduler/jobCollections",
        response_model=CollectionListOut,
        response_model_exclude_none=True,
        operation_id="JobCollections_ListBySubscription",
        tags=["jobCollections"],
    )
    async def list_by_subscription(
        subscriptionId: SubscriptionId,
        request: Request,
        rt: RuntimeDep,
        top: Top = MAX_PAGE,
        skiptoken: SkipToken = None,
    ) -> dict[str, Any]:
        CollectionRef.parse("x", subscriptionId)  # validates the subscription id
        return await _collection_page(rt, request, subscriptionId, None, top, skiptoken)

    @router.get(
        ARM_BASE,
        response_model=CollectionListOut,
        response_model_exclude_none=True,
        operation_id="JobCollections_ListByResourceGroup",
        tags=["jobCollections"],
    )
    async def list_by_resource_group(
        subscriptionId: SubscriptionId,
        resourceGroupName: ResourceGroupName,
        request: Request,
        rt: RuntimeDep,
        top: Top = MAX_PAGE,
        skiptoken: SkipToken = None,
    ) -> dict[str, Any]:
        ref = CollectionRef.parse("x", subscriptionId, resourceGroupName)
        return await _collection_page(
            rt, request, ref.subscription, ref.resource_group, top, skiptoken
        )

    @router.get(
        SHORT_BASE,
        response_model=CollectionListOut,
        response_model_exclude_none=True,
        operation_id="JobCollections_ListDefault",
        tags=["jobCollections (short paths)"],
    )
    async def list_default(
        request: Request, rt: RuntimeDep, top: Top = MAX_PAGE, skiptoken: SkipToken = None
    ) -> dict[str, Any]:
        ref = CollectionRef.parse("x")
        return await _collection_page(
            rt, request, ref.subscription, ref.resource_group, top, skiptoken
        )

    _add_collection_routes(router, ARM_BASE, arm_ref, "", "jobCollections")
    _add_collection_routes(router, SHORT_BASE, short_ref, "_Short", "jobCollections (short paths)")
    return router


def _add_collection_routes(
    router: APIRouter,
    base: str,
    ref_of: Callable[..., CollectionRef],
    suffix: str,
    tag: str,
) -> None:
    """Every collection and job operation under `base` (registered once per path family)."""
    collection = f"{base}/{{jobCollectionName}}"
    job = f"{collection}/jobs/{{jobName}}"
    tags: list[str | Any] = [tag]
    Ref = Depends(ref_of)

    @router.put(
        collection,
        response_model=CollectionOut,
        response_model_exclude_none=True,
        status_code=200,
        responses={201: {"model": CollectionOut, "description": "Created"}},
        operation_id=f"JobCollections_CreateOrUpdate{suffix}",
        tags=tags,
        openapi_extra=COLLECTION_PUT_BODY,
    )
    async def put_collection(request: Request, rt: RuntimeDep, ref: CollectionRef = Ref) -> Any:
        body = await _json_body(request, required=False)
        try:
            stored, created = await rt.jobs.put_collection(ref, body)
        except ValidationError as error:
            return bad_request_from_validation(error, "")
        return JSONResponse(collection_json(stored), status_code=201 if created else 200)

    @router.patch(
        collection,
        response_model=CollectionOut,
        response_model_exclude_none=True,
        operation_id=f"JobCollections_Patch{suffix}",
        tags=tags,
        openapi_extra=COLLECTION_PATCH_BODY,
    )
    async def patch_collection(request: Request, rt: RuntimeDep, ref: CollectionRef = Ref) -> Any:
        body = await _json_body(request, required=True)
        try:
            return collection_json(await rt.jobs.patch_collection(ref, body))
        except ValidationError as error:
            return bad_request_from_validation(error, "")

    @router.get(
        collection,
        response_model=CollectionOut,
        response_model_exclude_none=True,
        operation_id=f"JobCollections_Get{suffix}",
        tags=tags,
    )
    async def get_collection(rt: RuntimeDep, ref: CollectionRef = Ref) -> Any:
        return collection_json(await rt.jobs.get_collection(ref))

    @router.delete(
        collection,
        response_class=Response,
        operation_id=f"JobCollections_Delete{suffix}",
        tags=tags,
    )
    async def delete_collection(rt: RuntimeDep, ref: CollectionRef = Ref) -> Response:
        await rt.jobs.delete_collection(ref)
        return Response(status_code=200)

    @router.post(
        f"{collection}/enable",
        response_class=Response,
        operation_id=f"JobCollections_Enable{suffix}",
        tags=tags,
    )
    async def enable(rt: RuntimeDep, ref: CollectionRef = Ref) -> Response:
        await rt.jobs.set_all_jobs_state(ref, JobState.ENABLED)
        return Response(status_code=200)

    @router.post(
        f"{collection}/disable",
        response_class=Response,
        operation_id=f"JobCollections_Disable{suffix}",
        tags=tags,
    )
    async def disable(rt: RuntimeDep, ref: CollectionRef = Ref) -> Response:
        await rt.jobs.set_all_jobs_state(ref, JobState.DISABLED)
        return Response(status_code=200)

    @router.get(
        f"{collection}/jobs",
        response_model=JobListOut,
        response_model_exclude_none=True,
        operation_id=f"Jobs_List{suffix}",
        tags=tags,
    )
    async def list_jobs(
        request: Request,
        rt: RuntimeDep,
        ref: CollectionRef = Ref,
        top: Top = MAX_PAGE,
        skip: Skip = 0,
        skiptoken: SkipToken = None,
        filter: Filter = None,
    ) -> Any:
        state = parse_filter(filter, "state", JobState)
        jobs, token = await rt.jobs.list_jobs(ref, top, skiptoken, skip, state)
        jobs = await rt.jobs.with_status(jobs)
        return {"value": [job_json(j) for j in jobs], "nextLink": _next_link(request, token)}

    @router.put(
        job,
        response_model=JobOut,
        response_model_exclude_none=True,
        responses={201: {"model": JobOut, "description": "Created"}},
        operation_id=f"Jobs_CreateOrUpdate{suffix}",
        tags=tags,
        openapi_extra=job_put_body(),  # the action kinds known when the API is built
    )
    async def put_job(
        jobName: JobName,
        request: Request,
        rt: RuntimeDep,
        ref: CollectionRef = Ref,
    ) -> Any:
        body = await _json_body(request, required=True)
        try:
            stored, created = await rt.jobs.put_job(ref, jobName, body)
        except ValidationError as error:
            return bad_request_from_validation(error, _body_prefix(body))
        [stored] = await rt.jobs.with_status([stored])
        return JSONResponse(job_json(stored), status_code=201 if created else 200)

    @router.patch(
        job,
        response_model=JobOut,
        response_model_exclude_none=True,
        operation_id=f"Jobs_Patch{suffix}",
        tags=tags,
        openapi_extra=JOB_PATCH_BODY,
    )
    async def patch_job(
        jobName: JobName,
        request: Request,
        rt: RuntimeDep,
        ref: CollectionRef = Ref,
    ) -> Any:
        body = await _json_body(request, required=True)
        try:
            patched = await rt.jobs.patch_job(ref, jobName, body)
        except ValidationError as error:
            return bad_request_from_validation(error, "")
        [patched] = await rt.jobs.with_status([patched])
        return job_json(patched)

    @router.get(
        job,
        response_model=JobOut,
        response_model_exclude_none=True,
        operation_id=f"Jobs_Get{suffix}",
        tags=tags,
    )
    async def get_job(jobName: JobName, rt: RuntimeDep, ref: CollectionRef = Ref) -> Any:
        [found] = await rt.jobs.with_status([await rt.jobs.get_job(ref, jobName)])
        return job_json(found)

    @router.delete(job, response_class=Response, operation_id=f"Jobs_Delete{suffix}", tags=tags)
    async def delete_job(
        jobName: JobName,
        rt: RuntimeDep,
        ref: CollectionRef = Ref,
    ) -> Response:
        await rt.jobs.delete_job(ref, jobName)
        return Response(status_code=200)

    @router.post(f"{job}/run", response_class=Response, operation_id=f"Jobs_Run{suffix}", tags=tags)
    async def run_job(jobName: JobName, rt: RuntimeDep, ref: CollectionRef = Ref) -> Response:
        await rt.jobs.run_now(ref, jobName)
        return Response(status_code=200)

    @router.get(
        f"{job}/history",
        response_model=HistoryListOut,
        response_model_exclude_none=True,
        operation_id=f"Jobs_ListJobHistory{suffix}",
        tags=tags,
    )
    async def history(
        jobName: JobName,
        request: Request,
        rt: RuntimeDep,
        ref: CollectionRef = Ref,
        top: Top = MAX_PAGE,
        skip: Skip = 0,
        skiptoken: SkipToken = None,
        filter: Filter = None,
    ) -> Any:
        status = parse_filter(filter, "status", HistoryStatus)
        records, token = await rt.jobs.history(ref, jobName, top, skiptoken, skip, status)
        return {"value": [history_json(r) for r in records], "nextLink": _next_link(request, token)}

    @router.get(
        f"{job}/occurrences",
        response_model=OccurrencesOut,
        operation_id=f"Jobs_ListOccurrences{suffix}",
        tags=tags,
    )
    async def occurrences(
        jobName: JobName,
        rt: RuntimeDep,
        ref: CollectionRef = Ref,
        count: Annotated[int, Query(ge=1, le=1000)] = 10,
        after: Annotated[datetime | None, Query()] = None,
    ) -> Any:
        if after is not None and after.tzinfo is None:
            after = after.replace(tzinfo=UTC)
        times = await rt.jobs.preview(ref, jobName, count, after)
        return {"value": [to_iso(t) for t in times]}
