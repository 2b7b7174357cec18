"""The FastAPI application factory: the routers mounted on both path families, the error
handlers and the front door. Routes carry the `/api` prefix because the Functions host passes
the full URL path (route prefix included) to an AsgiFunctionApp."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Depends, FastAPI
from fastapi.routing import APIRoute

from shared.api import broadcasts as broadcasts_api
from shared.api import collections as collections_api
from shared.api import dashboard as dashboard_api
from shared.api import dashboard_iot, dashboard_page
from shared.api import devices as devices_api
from shared.api import history as history_api
from shared.api import jobs as jobs_api
from shared.api import output as output_api
from shared.api import runs as runs_api
from shared.api import webjobs as webjobs_api
from shared.api.errors import install_error_handlers
from shared.api.iot_auth import PoliciesProvider, install_iothub_errors
from shared.api.iot_auth import fallback as iot_fallback
from shared.api.middleware import FrontDoor
from shared.api.read_only import ChangeGate
from shared.api.refs import RuntimeProvider, arm_scope
from shared.api.schemas import ERRORS, job_put_body
from shared.devices.sas import AccessPolicy
from shared.runtime import current_runtime

ARM_PREFIX = (
    "/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}"
    "/providers/Microsoft.Scheduler/jobCollections"
)
SHORT_PREFIX = "/jobCollections"
# The short paths' list of collections names no resource group: its id says so.
_SHORT_IDS = {"JobCollections_ListByResourceGroup": "JobCollections_ListDefault"}


def _arm_operation_id(route: APIRoute) -> str:
    return route.name


def _short_operation_id(route: APIRoute) -> str:
    return _SHORT_IDS.get(route.name, f"{route.name}_Short")


@dataclass(frozen=True)
class Mount:
    """Where the collection-relative routers go: a prefix, the dependencies its own path
    parameters need, the tag that groups it in the document, and its operations' ids."""

    prefix: str
    tag: str
    operation_id: Callable[[APIRoute], str]
    dependencies: Sequence[Any] = ()


MOUNTS = (
    Mount(ARM_PREFIX, "jobCollections", _arm_operation_id, (Depends(arm_scope),)),
    Mount(SHORT_PREFIX, "jobCollections (short paths)", _short_operation_id),
)
ROUTERS = (
    collections_api.router,
    jobs_api.router,
    history_api.router,
    output_api.router,
    runs_api.router,
)


def build_router() -> APIRouter:
    """Every operation under `/api`: each router once per mount, and the subscription list."""
    put_body = job_put_body()  # the action kinds registered by now, not those known at import
    for route in jobs_api.router.routes:
        if isinstance(route, APIRoute) and route.endpoint is jobs_api.put_job:
            route.openapi_extra = put_body
    api = APIRouter(prefix="/api", responses=ERRORS)
    api.include_router(
        collections_api.by_subscription,
        tags=["jobCollections"],
        generate_unique_id_function=_arm_operation_id,
    )
    # IoT Hub's paths (its SDKs' base URL is the host name plus `/api`), not under a prefix.
    api.include_router(
        devices_api.router,
        tags=["devices (IoT Hub)"],
        generate_unique_id_function=_arm_operation_id,
    )
    api.include_router(
        broadcasts_api.router,
        tags=["jobs (IoT Hub)"],
        generate_unique_id_function=_arm_operation_id,
    )
    # Kudu's WebJobs paths, under `/api` as on Kudu's own host.
    api.include_router(
        webjobs_api.router,
        tags=["webjobs (Kudu)"],
        generate_unique_id_function=_arm_operation_id,
    )
    # The dashboard: its page and assets (anonymous under Functions) and its own reads.
    api.include_router(dashboard_page.router)
    api.include_router(
        dashboard_api.router, tags=["dashboard"], generate_unique_id_function=_arm_operation_id
    )
    api.include_router(
        dashboard_iot.router, tags=["dashboard"], generate_unique_id_function=_arm_operation_id
    )
    for mount in MOUNTS:
        for router in ROUTERS:
            api.include_router(
                router,
                prefix=mount.prefix,
                tags=[mount.tag],
                dependencies=mount.dependencies,
                generate_unique_id_function=mount.operation_id,
            )
    return api


def create_api(
    get_runtime: RuntimeProvider = current_runtime,
    iot_policies: Sequence[AccessPolicy] | None = None,
) -> FastAPI:
    """The app; `iot_policies` (tests) stand in for the runtime's `SCHEDULER_IOT_POLICIES`."""
    api = FastAPI(
        title="Job scheduler",
        summary="Azure Scheduler (2016-03-01) compatible jobs on your own storage",
        version="0.1.0",
        openapi_url="/api/openapi.json",
        docs_url="/api/docs",
        redoc_url=None,
    )
    api.state.get_runtime = get_runtime
    api.state.get_iot_policies = _policies_provider(get_runtime, iot_policies)
    install_error_handlers(api)
    install_iothub_errors(api)
    api.include_router(build_router())
    api.include_router(iot_fallback)  # last: it answers what no IoT Hub route serves
    api.add_middleware(ChangeGate, get_runtime=get_runtime)
    api.add_middleware(FrontDoor)
    return api


def _policies_provider(
    get_runtime: RuntimeProvider, given: Sequence[AccessPolicy] | None
) -> PoliciesProvider:
    async def policies() -> Sequence[AccessPolicy]:
        if given is not None:
            return given
        return (await get_runtime()).settings.iot_policies

    return policies
