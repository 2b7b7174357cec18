"""A job's history, newest first, filtered by status. The path is relative to a
`.../jobCollections` prefix; the router is mounted on both (shared/api/app.py)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from shared.api.odata import MAX_PAGE, Filter, Skip, SkipToken, Top, parse_filter
from shared.api.refs import CollectionRefDep, JobName, RuntimeDep
from shared.api.schemas import HistoryListOut
from shared.api.views import history_json, page
from shared.model.job import HistoryStatus

router = APIRouter()


@router.get(
    "/{jobCollectionName}/jobs/{jobName}/history",
    response_model=HistoryListOut,
    response_model_exclude_none=True,
    name="Jobs_ListJobHistory",
    summary="History",
)
async def list_history(
    jobName: JobName,
    request: Request,
    rt: RuntimeDep,
    ref: CollectionRefDep,
    top: Top = MAX_PAGE,
    skip: Skip = 0,
    skiptoken: SkipToken = None,
    filter: Filter = None,
) -> Any:
    status = parse_filter(filter, "status", HistoryStatus)
    records, token = await rt.jobs.history(ref, jobName, top, skiptoken, skip, status)
    here = str(request.url.replace(query=""))  # .../history, under the prefix the client used
    return page(
        request,
        (history_json(r, f"{here}/{r.public_id}/output" if r.output else None) for r in records),
        token,
    )
