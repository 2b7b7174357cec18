"""A job's runs (ours): the runs in flight, and one run by its id, in flight or ended, with the
output link of the attempt under way. What `Jobs_Run` answers points here, so a client that ran
a job now can follow that run to its end. Paths are relative to a `.../jobCollections` prefix;
the router is mounted on both (shared/api/app.py)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Request

from shared.api.odata import Filter, parse_filter
from shared.api.refs import CollectionRefDep, JobName, RuntimeDep
from shared.api.schemas import RunListOut, RunOut
from shared.api.views import run_json
from shared.engine.records import RunStatus
from shared.model.common import CaseInsensitiveEnum

router = APIRouter()
RUNS = "/{jobCollectionName}/jobs/{jobName}/runs"
RunIdParam = Annotated[
    str,
    Path(
        max_length=60,
        description="The run's id: its nominal time and token (`20300506T080000Zmanual-1a2b3c4d`)",
    ),
]


class RunState(CaseInsensitiveEnum):
    """The states of a run in flight, as `$filter=state eq '...'` takes them."""

    SCHEDULED = RunStatus.SCHEDULED.value
    RUNNING = RunStatus.RUNNING.value


def job_url_of(request: Request, suffix: str) -> str:
    """The job's URL under the prefix the client used: this request's path less `suffix`."""
    url = str(request.url.replace(query=""))
    return url[: -len(suffix)] if suffix and url.endswith(suffix) else url


@router.get(
    RUNS,
    response_model=RunListOut,
    response_model_exclude_none=True,
    name="Jobs_ListRuns",
    summary="Runs in flight (ours)",
)
async def list_runs(
    jobName: JobName, request: Request, rt: RuntimeDep, ref: CollectionRefDep, filter: Filter = None
) -> Any:
    """The job's runs in flight, newest first; `$filter=state eq 'Running'` keeps those with an
    attempt under way (each with the `output` link of that attempt, for code jobs)."""
    state = parse_filter(filter, "state", RunState)
    job = await rt.jobs.get_job(ref, jobName)
    views = await rt.jobs.runs(ref, jobName)
    job_url = job_url_of(request, "/runs")
    shown = [run_json(view, job, job_url) for view in views]
    if state is not None:
        shown = [run for run in shown if run["properties"]["state"] == state.value]
    return {"value": shown, "nextLink": None}


@router.get(
    f"{RUNS}/{{runId}}",
    response_model=RunOut,
    response_model_exclude_none=True,
    name="Jobs_GetRun",
    summary="One run, in flight or ended (ours)",
)
async def get_run(
    jobName: JobName, runId: RunIdParam, request: Request, rt: RuntimeDep, ref: CollectionRefDep
) -> Any:
    """State `Scheduled` or `Running` while in flight, then `Ended` with the run's `status`
    (its main action's last attempt: Completed, Failed, Cancelled or Postponed)."""
    job = await rt.jobs.get_job(ref, jobName)
    view = await rt.jobs.run(ref, jobName, runId)
    return run_json(view, job, job_url_of(request, f"/runs/{runId}"))
