"""The dashboard's broadcast and device reads, and its broadcast cancel, under
`/api/dashboard-data/` with the function key. The IoT Hub paths (`/api/jobs/v2`, `/api/devices`)
take shared access signatures, which a page should not ask a person for: these routes call the
same services, so the function key is all the dashboard needs. The cancel is a POST, so
read-only mode refuses it like every change (shared/api/read_only.py)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from shared.api.refs import RuntimeDep
from shared.broadcasts.model import JOB_ID_PATTERN
from shared.broadcasts.planning import CANCELED, FAILED, PENDING, RUNNING, SUCCEEDED
from shared.broadcasts.service import MAX_JOBS_PAGE
from shared.dashboard.devices import device_row
from shared.devices.query import parse_condition
from shared.devices.registry import MAX_PAGE

router = APIRouter(prefix="/dashboard-data")

BroadcastId = Annotated[str, Query(pattern=JOB_ID_PATTERN)]
Continuation = Annotated[str, Query(max_length=2000)]
DEVICE_STATUSES = (PENDING, RUNNING, SUCCEEDED, FAILED, CANCELED)


@router.get("/broadcasts", name="Dashboard_Broadcasts", summary="Broadcast jobs, a page")
async def broadcasts(
    rt: RuntimeDep,
    jobStatus: Annotated[str, Query(max_length=20)] = "",
    jobType: Annotated[str, Query(max_length=40)] = "",
    top: Annotated[int, Query(ge=1, le=MAX_JOBS_PAGE)] = 25,
    continuation: Continuation = "",
) -> dict[str, Any]:
    page = await rt.broadcasts.query(jobType or None, jobStatus or None, top, continuation or None)
    return {"value": page.items, "continuation": page.continuation}


@router.get("/broadcast", name="Dashboard_Broadcast", summary="One broadcast job")
async def broadcast(rt: RuntimeDep, id: BroadcastId) -> dict[str, Any]:
    return await rt.broadcasts.get(id)


@router.get(
    "/broadcast-devices",
    name="Dashboard_BroadcastDevices",
    summary="A broadcast's per-device records, a page",
)
async def broadcast_devices(
    rt: RuntimeDep,
    id: BroadcastId,
    status: Annotated[str, Query(pattern=f"^({'|'.join(DEVICE_STATUSES)})?$")] = "",
    top: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 25,
    continuation: Continuation = "",
) -> dict[str, Any]:
    # The id and status are checked by their patterns: neither can hold a quote.
    condition = f"devices.jobs.jobId = '{id}'"
    if status:
        condition += f" AND devices.jobs.status = '{status}'"
    page = await rt.broadcasts.query_device_jobs(
        f"SELECT * FROM devices.jobs WHERE {condition}", top, continuation or None
    )
    return {"value": page.items, "continuation": page.continuation}


@router.post(
    "/broadcast-cancel", name="Dashboard_CancelBroadcast", summary="Cancel a broadcast job"
)
async def cancel_broadcast(rt: RuntimeDep, id: BroadcastId) -> dict[str, Any]:
    return await rt.broadcasts.cancel(id)


@router.get("/devices", name="Dashboard_Devices", summary="Registered devices, a page")
async def devices(
    rt: RuntimeDep,
    prefix: Annotated[str, Query(max_length=128)] = "",
    condition: Annotated[str, Query(max_length=4000)] = "",
    top: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 25,
    continuation: Continuation = "",
) -> dict[str, Any]:
    text = "SELECT * FROM devices"
    if condition.strip():
        parse_condition(condition, "condition")  # a fault's position counted in the condition
        text += f" WHERE {condition}"
    records, token = await rt.devices.search(text, prefix, top, continuation or None)
    return {"value": [device_row(record) for record in records], "continuation": token}
