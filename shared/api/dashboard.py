"""The dashboard's own read operations, under `/api/dashboard-data/` (with the function key, as
every scheduler operation): the jobs of all collections searched, filtered, sorted and paged on
the server, the overview, a job's schedule in words, and whether the app is read-only. The page
itself is served anonymously by shared/api/dashboard_page.py; it holds no data."""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import APIRouter, Query

from shared.api.refs import RuntimeDep
from shared.dashboard.service import SORTS, JobQuery
from shared.errors import InvalidRequest, NotFound
from shared.model.job import JobState
from shared.names import CollectionRef

router = APIRouter(prefix="/dashboard-data")

_JOB_ID = re.compile(
    r"/subscriptions/([^/]+)/resourceGroups/([^/]+)/providers/Microsoft\.Scheduler"
    r"/jobCollections/([^/]+)/jobs/([^/]+)",
    re.IGNORECASE,
)


@router.get("/settings", name="Dashboard_Settings", summary="Dashboard settings")
async def settings(rt: RuntimeDep) -> dict[str, Any]:
    return {"readOnly": rt.settings.read_only}


@router.get("/jobs", name="Dashboard_ListJobs", summary="Jobs of all collections")
async def list_jobs(
    rt: RuntimeDep,
    search: Annotated[str, Query(max_length=100)] = "",
    state: str = "",
    kind: Annotated[str, Query(max_length=64)] = "",
    collection: Annotated[str, Query(max_length=400)] = "",
    sort: str = "name",
    order: str = "asc",
    top: Annotated[int, Query(ge=1, le=100)] = 25,
    skip: Annotated[int, Query(ge=0)] = 0,
) -> dict[str, Any]:
    if sort not in SORTS:
        raise InvalidRequest("sort", f"must be one of {', '.join(SORTS)}")
    if order not in ("asc", "desc"):
        raise InvalidRequest("order", "must be asc or desc")
    query = JobQuery(
        search=search,
        state=_state(state),
        kind=kind,
        collection=collection,
        sort=sort,
        descending=order == "desc",
        top=top,
        skip=skip,
    )
    return await rt.dashboard.jobs(query)


@router.get("/overview", name="Dashboard_Overview", summary="Overview numbers and charts")
async def overview(rt: RuntimeDep) -> dict[str, Any]:
    return await rt.dashboard.overview()


@router.get("/job", name="Dashboard_Job", summary="A job's schedule in words, its runs")
async def job(rt: RuntimeDep, id: Annotated[str, Query(max_length=600)]) -> dict[str, Any]:
    match = _JOB_ID.fullmatch(id)
    if match is None:
        raise InvalidRequest("id", "must be a job's resource id (/subscriptions/.../jobs/{name})")
    subscription, group, collection, name = match.groups()
    ref = CollectionRef.parse(collection, subscription, group)
    found = await rt.dashboard.job(ref, name)
    if not found:
        raise NotFound(f"job '{collection}/{name}' not found")
    return found


def _state(text: str) -> JobState | None:
    if not text:
        return None
    for state in JobState:
        if state.value.lower() == text.lower():
            return state
    raise InvalidRequest("state", f"must be one of {', '.join(s.value for s in JobState)}")
