"""Job operations: create, read, change, delete, list, run now, and our occurrence preview.
Paths are relative to a `.../jobCollections` prefix; the router is mounted on both
(shared/api/app.py). Each route's `name` is its operation's id."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse

from shared.api.body import json_body
from shared.api.odata import MAX_PAGE, Filter, Skip, SkipToken, Top, parse_filter
from shared.api.refs import CollectionRefDep, JobName, RuntimeDep
from shared.api.runs import job_url_of
from shared.api.schemas import JOB_PATCH_BODY, JobListOut, JobOut, OccurrencesOut, RunOut
from shared.api.views import job_json, page, run_json
from shared.engine.run_lookup import RunView, run_id_of
from shared.model.job import JobState
from shared.timefmt import to_iso

JOB = "/{jobCollectionName}/jobs/{jobName}"

router = APIRouter()


@router.get(
    "/{jobCollectionName}/jobs",
    response_model=JobListOut,
    response_model_exclude_none=True,
    name="Jobs_List",
    summary="List Jobs",
)
async def list_jobs(
    request: Request,
    rt: RuntimeDep,
    ref: CollectionRefDep,
    top: Top = MAX_PAGE,
    skip: Skip = 0,
    skiptoken: SkipToken = None,
    filter: Filter = None,
) -> Any:
    state = parse_filter(filter, "state", JobState)
    jobs, token = await rt.jobs.list_jobs(ref, top, skiptoken, skip, state)
    jobs = await rt.jobs.with_status(jobs)
    return page(request, (job_json(j) for j in jobs), token)


@router.put(
    JOB,
    response_model=JobOut,
    response_model_exclude_none=True,
    responses={201: {"model": JobOut, "description": "Created"}},
    name="Jobs_CreateOrUpdate",
    summary="Put Job",
    # openapi_extra: the body's schema, set by shared/api/app.py when the API is built
)
async def put_job(jobName: JobName, request: Request, rt: RuntimeDep, ref: CollectionRefDep) -> Any:
    body = await json_body(request, required=True)
    stored, created = await rt.jobs.put_job(ref, jobName, body)
    [stored] = await rt.jobs.with_status([stored])
    return JSONResponse(job_json(stored), status_code=201 if created else 200)


@router.patch(
    JOB,
    response_model=JobOut,
    response_model_exclude_none=True,
    name="Jobs_Patch",
    summary="Patch Job",
    openapi_extra=JOB_PATCH_BODY,
)
async def patch_job(
    jobName: JobName, request: Request, rt: RuntimeDep, ref: CollectionRefDep
) -> Any:
    body = await json_body(request, required=True)
    patched = await rt.jobs.patch_job(ref, jobName, body)
    [patched] = await rt.jobs.with_status([patched])
    return job_json(patched)


@router.get(
    JOB, response_model=JobOut, response_model_exclude_none=True, name="Jobs_Get", summary="Get Job"
)
async def get_job(jobName: JobName, rt: RuntimeDep, ref: CollectionRefDep) -> Any:
    [found] = await rt.jobs.with_status([await rt.jobs.get_job(ref, jobName)])
    return job_json(found)


@router.delete(JOB, response_class=Response, name="Jobs_Delete", summary="Delete Job")
async def delete_job(jobName: JobName, rt: RuntimeDep, ref: CollectionRefDep) -> Response:
    await rt.jobs.delete_job(ref, jobName)
    return Response(status_code=200)


@router.post(
    f"{JOB}/run",
    response_model=RunOut,
    response_model_exclude_none=True,
    name="Jobs_Run",
    summary="Run Job",
)
async def run_job(
    jobName: JobName, request: Request, rt: RuntimeDep, ref: CollectionRefDep
) -> Response:
    """200 as Azure Scheduler answered; ours: the body is the run started (Scheduled) and
    `Location` its URL (Jobs_GetRun), which follows it to its end."""
    run = await rt.jobs.run_on_demand(ref, jobName)
    job = await rt.jobs.get_job(ref, jobName)
    view = RunView(run_id_of(run.nominal, run.token), run.nominal, True, run)
    job_url = job_url_of(request, "/run")
    return JSONResponse(
        run_json(view, job, job_url),
        status_code=200,
        headers={"Location": f"{job_url}/runs/{view.run_id}"},
    )


@router.get(
    f"{JOB}/occurrences",
    response_model=OccurrencesOut,
    name="Jobs_ListOccurrences",
    summary="Occurrences",
)
async def occurrences(
    jobName: JobName,
    rt: RuntimeDep,
    ref: CollectionRefDep,
    count: Annotated[int, Query(ge=1, le=1000)] = 10,
    after: Annotated[datetime | None, Query()] = None,
) -> Any:
    if after is not None and after.tzinfo is None:
        after = after.replace(tzinfo=UTC)
    times = await rt.jobs.preview(ref, jobName, count, after)
    return {"value": [to_iso(t) for t in times]}
