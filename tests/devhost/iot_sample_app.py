"""A function app shaped like function_app.py (keyed catch-all + anonymous IoT Hub functions
over one ASGI app) whose IoT Hub routes are a small test-only router, so the guard is tested
over HTTP without storage. Policies come from SCHEDULER_IOT_POLICIES, read at call time."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import azure.functions as func
from fastapi import APIRouter, FastAPI

from shared.api.functions import CATCH_ALL_FUNCTION, serve_iot_hub_paths
from shared.api.iot_auth import fallback, install_iothub_errors, require_iot_sas
from shared.devices.sas import AccessPolicy, IotRight, parse_policies

router = APIRouter(prefix="/api")


@router.get("/devices/{device_id}", dependencies=[require_iot_sas(IotRight.REGISTRY_READ)])
async def read_device(device_id: str) -> dict[str, Any]:
    return {"deviceId": device_id}


@router.put("/devices/{device_id}", dependencies=[require_iot_sas(IotRight.REGISTRY_WRITE)])
async def write_device(device_id: str) -> dict[str, Any]:
    return {"deviceId": device_id, "written": True}


@router.post("/twins/{device_id}/methods", dependencies=[require_iot_sas(IotRight.SERVICE_CONNECT)])
async def invoke_method(device_id: str) -> dict[str, Any]:
    return {"status": 200, "payload": device_id}


@router.get("/ping")
async def ping() -> dict[str, str]:
    return {"pong": "keyed"}


async def policies() -> Sequence[AccessPolicy]:
    return parse_policies(os.environ.get("SCHEDULER_IOT_POLICIES", ""))


def _create_api() -> FastAPI:
    api = FastAPI()
    api.state.get_iot_policies = policies
    install_iothub_errors(api)
    api.include_router(router)
    api.include_router(fallback)
    return api


app = func.AsgiFunctionApp(
    app=_create_api(), http_auth_level=func.AuthLevel.FUNCTION, function_name=CATCH_ALL_FUNCTION
)
serve_iot_hub_paths(app)
