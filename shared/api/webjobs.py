"""Kudu's WebJobs routes (projectkudu/kudu JobsController), at Kudu's paths under `/api`: a
script that called them on `{site}.scm.azurewebsites.net` calls them here with another base URL
and the function key. No upload or delete routes: the WebJobs are the deployed folders
(README "WebJobs", why). Continuous WebJobs are started and stopped here and kept running by
their holders (shared/kinds/webjob/continuous.py)."""

from __future__ import annotations

import hashlib
import json
from typing import Annotated, Any

from fastapi import APIRouter, Header, Path, Query, Request
from fastapi.responses import Response

from shared.api.refs import RuntimeDep
from shared.errors import Conflict, NotFound
from shared.kinds.webjob.catalog import WEBJOBS_REF, job_name_of
from shared.kinds.webjob.folders import CONTINUOUS, TRIGGERED, WebJobFolder
from shared.kinds.webjob.views import (
    KuduUrls,
    in_progress,
    job_json,
    run_id,
    run_json,
    runs_of,
)
from shared.runtime import Runtime

router = APIRouter()
# Kudu's job names (letters, digits, '_' and '-'); a run id is an occurrence (views.py).
JobNameParam = Annotated[str, Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")]
RunIdParam = Annotated[str, Path(pattern=r"^[0-9]{8}T[0-9]{6}Z[A-Za-z0-9-]{0,40}$")]
_MAX_ARGUMENTS = 8000


def _urls(request: Request) -> KuduUrls:
    return KuduUrls(str(request.base_url))


def _folder(rt: Runtime, folder_type: str, name: str) -> WebJobFolder:
    folder = rt.webjobs.find(folder_type, name)
    if folder is None:
        raise NotFound(f"No {folder_type} job found with name '{name}'")
    return folder


async def _runs(rt: Runtime, folder: WebJobFolder, request: Request) -> list[dict[str, Any]]:
    collection = WEBJOBS_REF.key
    job = job_name_of(folder.type, folder.name)
    records, _ = await rt.store.history(collection, job, top=100)
    in_flight = await rt.store.runs_of(collection, job)
    now = rt.clock.now()
    return [
        run_json(folder, run, _urls(request), now)
        for run in runs_of(folder, records, in_flight, now)
    ]


async def _triggered_json(rt: Runtime, folder: WebJobFolder, request: Request) -> dict[str, Any]:
    runs = await _runs(rt, folder, request)
    return job_json(folder, rt.webjobs, _urls(request), runs[0] if runs else None)


async def _continuous_json(rt: Runtime, folder: WebJobFolder, request: Request) -> Any:
    state = await rt.continuous.status(folder.name)
    urls = _urls(request)
    shown = job_json(folder, rt.webjobs, urls, status=state.status)
    if state.detail:
        shown["detailed_status"] = f"{folder.name} is {state.status}: {state.detail}"
    if state.run_id:
        shown["log_url"] = urls.output(folder, state.run_id)
    return shown


@router.get("/webjobs", name="WebJobs_List", summary="All WebJobs (Kudu)")
async def list_all(rt: RuntimeDep, request: Request) -> Any:
    shown = [await _triggered_json(rt, f, request) for f in rt.webjobs.of_type(TRIGGERED)]
    shown += [await _continuous_json(rt, f, request) for f in rt.webjobs.of_type(CONTINUOUS)]
    return shown


@router.get("/triggeredwebjobs", name="TriggeredWebJobs_List", summary="Triggered WebJobs")
async def list_triggered(rt: RuntimeDep, request: Request) -> Any:
    return [await _triggered_json(rt, f, request) for f in rt.webjobs.of_type(TRIGGERED)]


@router.get("/triggeredwebjobs/{name}", name="TriggeredWebJobs_Get", summary="A triggered WebJob")
async def get_triggered(name: JobNameParam, rt: RuntimeDep, request: Request) -> Any:
    return await _triggered_json(rt, _folder(rt, TRIGGERED, name), request)


@router.post(
    "/triggeredwebjobs/{name}/run",
    name="TriggeredWebJobs_Run",
    summary="Run a triggered WebJob now (202 + Location of the run)",
    response_class=Response,
    status_code=202,
)
async def run_triggered(
    name: JobNameParam,
    rt: RuntimeDep,
    request: Request,
    arguments: Annotated[str, Query(max_length=_MAX_ARGUMENTS)] = "",
    user_agent: Annotated[str, Header(alias="User-Agent")] = "",
) -> Response:
    folder = _folder(rt, TRIGGERED, name)
    error = rt.webjobs.error_of(folder)
    if error is not None:
        raise Conflict(f"WebJob '{folder.name}' cannot run: {error}")
    job = job_name_of(folder.type, folder.name)
    if folder.settings.is_singleton and in_progress(
        await rt.store.runs_of(WEBJOBS_REF.key, job), rt.clock.now()
    ):
        raise Conflict(f"Cannot start a new run since job is already running: {folder.name}")
    trigger = f"External - {user_agent[:200]}".rstrip()
    run = await rt.jobs.run_on_demand(WEBJOBS_REF, job, arguments, trigger)
    location = _urls(request).run(folder, run_id(run.nominal, run.token))
    return Response(status_code=202, headers={"Location": location})


@router.get(
    "/triggeredwebjobs/{name}/history",
    name="TriggeredWebJobs_History",
    summary="Runs, newest first (ETag; If-None-Match gives 304)",
    response_class=Response,
)
async def history(
    name: JobNameParam,
    rt: RuntimeDep,
    request: Request,
    if_none_match: Annotated[str | None, Header(alias="If-None-Match")] = None,
) -> Response:
    folder = _folder(rt, TRIGGERED, name)
    body = json.dumps({"runs": await _runs(rt, folder, request)}).encode()
    etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
    if if_none_match is not None and etag in [t.strip() for t in if_none_match.split(",")]:
        return Response(status_code=304, headers={"ETag": etag})
    return Response(body, 200, headers={"ETag": etag}, media_type="application/json")


@router.get(
    "/triggeredwebjobs/{name}/history/{runId}",
    name="TriggeredWebJobs_GetRun",
    summary="One run",
)
async def get_run(name: JobNameParam, runId: RunIdParam, rt: RuntimeDep, request: Request) -> Any:
    folder = _folder(rt, TRIGGERED, name)
    found = next((r for r in await _runs(rt, folder, request) if r["id"] == runId), None)
    if found is None:
        raise NotFound(f"No run '{runId}' of WebJob '{folder.name}'")
    return found


@router.get("/continuouswebjobs", name="ContinuousWebJobs_List", summary="Continuous WebJobs")
async def list_continuous(rt: RuntimeDep, request: Request) -> Any:
    return [await _continuous_json(rt, f, request) for f in rt.webjobs.of_type(CONTINUOUS)]


@router.get(
    "/continuouswebjobs/{name}", name="ContinuousWebJobs_Get", summary="A continuous WebJob"
)
async def get_continuous(name: JobNameParam, rt: RuntimeDep, request: Request) -> Any:
    return await _continuous_json(rt, _folder(rt, CONTINUOUS, name), request)


@router.post(
    "/continuouswebjobs/{name}/start",
    name="ContinuousWebJobs_Start",
    summary="Start a continuous WebJob (200, no body; 409 when it cannot run)",
    response_class=Response,
)
async def start_continuous(name: JobNameParam, rt: RuntimeDep) -> Response:
    folder = _folder(rt, CONTINUOUS, name)
    error = rt.webjobs.error_of(folder)
    if error is not None:
        raise Conflict(f"WebJob '{folder.name}' cannot run: {error}")
    await rt.continuous.start(folder.name)
    return Response(status_code=200)


@router.post(
    "/continuouswebjobs/{name}/stop",
    name="ContinuousWebJobs_Stop",
    summary="Stop a continuous WebJob (200, no body); it ends gracefully within seconds",
    response_class=Response,
)
async def stop_continuous(name: JobNameParam, rt: RuntimeDep) -> Response:
    folder = _folder(rt, CONTINUOUS, name)
    await rt.continuous.stop(folder.name)
    return Response(status_code=200)
