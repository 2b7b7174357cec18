"""The device registry's routes, as IoT Hub's service API has them (under `/api`, next to the
scheduler's, not under its collection prefixes): devices, twins, direct methods and the device
query, plus our extension `PATCH /twins/{id}/reported`. Any `api-version` is accepted (the SDK
sends 2021-04-12) and errors take IoT Hub's shape (shared/api/iothub.py). The registry
decides everything (shared/devices/registry.py)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from shared.api.body import json_body
from shared.api.iot_auth import require_iot_sas
from shared.api.refs import RuntimeDep
from shared.broadcasts.service import Page
from shared.devices.model import DEVICE_ID_PATTERN, DEVICE_ID_RULE, parse_if_match
from shared.devices.query import parse_query
from shared.devices.registry import MAX_LIST, MAX_PAGE, QueryPage
from shared.devices.sas import IotRight
from shared.errors import InvalidRequest


class HubErrorResponse(BaseModel):
    """IoT Hub's error shape (header `iothub-errorcode` carries the code)."""

    model_config = ConfigDict(populate_by_name=True)
    Message: str = Field(examples=["ErrorCode:DeviceNotFound;Device d1 not found."])
    ExceptionMessage: str


def _error(description: str) -> dict[str, Any]:
    return {"model": HubErrorResponse, "description": description}


HUB_ERRORS: dict[int | str, dict[str, Any]] = {
    400: _error("ArgumentInvalid: the message names the field or header and the reason"),
    404: _error("DeviceNotFound, or DeviceNotOnline for a direct method"),
    409: _error("DeviceAlreadyExists"),
    412: _error("PreconditionFailed: `If-Match` is not the current etag"),
    502: _error("DeviceInvalidResultPayload: the device's answer is not a method response"),
    504: _error("GatewayTimeout: the device did not answer in time"),
    "default": _error("Any other error (405, 413, 415), in the same shape"),
}

router = APIRouter(responses=HUB_ERRORS)

DeviceId = Annotated[
    str, Path(description=DEVICE_ID_RULE, json_schema_extra={"pattern": DEVICE_ID_PATTERN})
]

DEVICE = "/devices/{deviceId}"
# IoT Hub's rights: reading the registry, changing it, talking to devices (direct methods).
READ = [require_iot_sas(IotRight.REGISTRY_READ)]
WRITE = [require_iot_sas(IotRight.REGISTRY_WRITE)]
CONNECT = [require_iot_sas(IotRight.SERVICE_CONNECT)]
TWIN = "/twins/{deviceId}"
MAX_ITEM_COUNT_HEADER = "x-ms-max-item-count"
CONTINUATION_HEADER = "x-ms-continuation"
ITEM_TYPE_HEADER = "x-ms-item-type"


def _if_match(request: Request) -> Any:
    return parse_if_match(request.headers.get("if-match"))


QUERY_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["query"],
                    "properties": {
                        "query": {
                            "type": "string",
                            "maxLength": 8192,
                            "examples": ["SELECT * FROM devices WHERE tags.site = 'berlin'"],
                        }
                    },
                }
            }
        },
    }
}


@router.post(
    "/devices/query",
    name="Devices_Query",
    summary="Query device twins",
    openapi_extra=QUERY_BODY,
    dependencies=READ,
)
async def query_devices(request: Request, rt: RuntimeDep) -> Any:
    body = await json_body(request, required=True)
    text, size = body.get("query"), _max_item_count(request)
    continuation = request.headers.get(CONTINUATION_HEADER)
    if isinstance(text, str) and is_device_jobs_query(text):
        page: QueryPage | Page = await rt.broadcasts.query_device_jobs(text, size, continuation)
    else:
        page = await rt.devices.query(text, size, continuation)
    headers = {ITEM_TYPE_HEADER: page.item_type}
    if page.continuation is not None:
        headers[CONTINUATION_HEADER] = page.continuation
    return JSONResponse(page.items, headers=headers)


TOP_RULE = f"at most this many devices; any value outside 1-{MAX_LIST} is taken as {MAX_LIST}"


@router.get("/devices", name="Devices_List", summary="List devices", dependencies=READ)
async def list_devices(
    rt: RuntimeDep, top: Annotated[int, Query(description=TOP_RULE)] = MAX_LIST
) -> Any:
    return [record.device_json() for record in await rt.devices.list_devices(_list_size(top))]


def _list_size(top: int) -> int:
    """IoT Hub takes a `top` outside 1-1000 as 1000 (its swagger and azure-iot-hub's
    `get_devices` say so, and the SDK passes any int on), so that is not an error here."""
    return top if 1 <= top <= MAX_LIST else MAX_LIST


@router.put(
    DEVICE,
    name="Devices_CreateOrUpdateIdentity",
    summary="Create or update a device",
    dependencies=WRITE,
)
async def put_device(deviceId: DeviceId, request: Request, rt: RuntimeDep) -> Any:
    body = await json_body(request, required=False)
    record = await rt.devices.put_device(deviceId, body, _if_match(request))
    return record.device_json()


@router.get(DEVICE, name="Devices_GetIdentity", summary="Get a device", dependencies=READ)
async def get_device(deviceId: DeviceId, rt: RuntimeDep) -> Any:
    return (await rt.devices.get_device(deviceId)).device_json()


@router.delete(
    DEVICE,
    name="Devices_DeleteIdentity",
    summary="Delete a device",
    status_code=204,
    response_class=Response,
    dependencies=WRITE,
)
async def delete_device(deviceId: DeviceId, request: Request, rt: RuntimeDep) -> Response:
    await rt.devices.delete_device(deviceId, _if_match(request))
    return Response(status_code=204)


@router.get(TWIN, name="Devices_GetTwin", summary="Get a device twin", dependencies=READ)
async def get_twin(deviceId: DeviceId, rt: RuntimeDep) -> Any:
    return (await rt.devices.get_twin(deviceId)).twin_json()


@router.patch(
    TWIN, name="Devices_UpdateTwin", summary="Merge tags and desired properties", dependencies=WRITE
)
async def patch_twin(deviceId: DeviceId, request: Request, rt: RuntimeDep) -> Any:
    body = await json_body(request, required=True)
    return (await rt.devices.patch_twin(deviceId, body, _if_match(request))).twin_json()


@router.put(
    TWIN,
    name="Devices_ReplaceTwin",
    summary="Replace tags and desired properties",
    dependencies=WRITE,
)
async def replace_twin(deviceId: DeviceId, request: Request, rt: RuntimeDep) -> Any:
    body = await json_body(request, required=True)
    return (await rt.devices.replace_twin(deviceId, body, _if_match(request))).twin_json()


@router.patch(
    f"{TWIN}/reported",
    name="Devices_UpdateReported",
    summary="Merge reported properties (our extension, for devices)",
    dependencies=WRITE,
)
async def patch_reported(deviceId: DeviceId, request: Request, rt: RuntimeDep) -> Any:
    body = await json_body(request, required=True)
    return (await rt.devices.patch_reported(deviceId, body, _if_match(request))).twin_json()


@router.post(
    f"{TWIN}/methods",
    name="Devices_InvokeMethod",
    summary="Invoke a direct method",
    dependencies=CONNECT,
)
async def invoke_method(deviceId: DeviceId, request: Request, rt: RuntimeDep) -> Any:
    body = await json_body(request, required=True)
    return (await rt.devices.invoke_method(deviceId, body)).json()


def _max_item_count(request: Request) -> int:
    raw = request.headers.get(MAX_ITEM_COUNT_HEADER)
    if raw is None or not raw.strip():
        return MAX_PAGE
    try:
        value = int(raw.strip())
    except ValueError:
        value = 0
    if not 1 <= value <= MAX_PAGE:
        raise InvalidRequest(MAX_ITEM_COUNT_HEADER, f"must be an integer from 1 to {MAX_PAGE}")
    return value


def is_device_jobs_query(text: str) -> bool:
    """Whether a query reads `devices.jobs` (the broadcasts' per-device records)."""
    return parse_query(text).collection == "devices.jobs"
