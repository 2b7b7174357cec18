"""One place that turns errors into ARM-style JSON: `{"error": {"code", "message", "target"}}`,
or, on the routes IoT Hub's SDKs call, into IoT Hub's shape (shared/api/iothub.py)."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.exceptions import HTTPException

from shared.api.iothub import (
    hub_error_for,
    hub_error_response,
    is_iot_path,
    status_code_name,
)
from shared.errors import (
    BadDeviceAnswer,
    Conflict,
    DeviceTimeout,
    InvalidRequest,
    NotFound,
)

log = logging.getLogger(__name__)


def error_response(
    status: int,
    code: str,
    message: str,
    target: str | None = None,
    details: Any = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    error: dict[str, Any] = {"code": code, "message": message}
    if target:
        error["target"] = target
    if details:
        error["details"] = details
    return JSONResponse({"error": error}, status_code=status, headers=headers)


def field_path(loc: tuple[int | str, ...]) -> str:
    """`("properties", "recurrence", "schedule", "monthDays", 0)` -> `properties.recurrence...[0]`.

    Union branch names that pydantic inserts (`function-after[...]`) are left out.
    """
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif "[" in part or part.startswith("function-"):
            continue
        else:
            path = f"{path}.{part}" if path else part
    return path


def validation_details(error: ValidationError) -> list[dict[str, str]]:
    details = []
    for item in error.errors(include_url=False):
        message = str(item["msg"]).removeprefix("Value error, ")
        details.append({"target": field_path(tuple(item["loc"])), "message": message})
    return details


def bad_request_from_validation(error: ValidationError) -> JSONResponse:
    """A body the domain models refused: its locations are paths in the body as the API
    documents it (shared/model makes them so), each one a detail; the first is the target."""
    details = validation_details(error)
    first = details[0]
    return error_response(
        400,
        "BadRequest",
        f"{first['target']}: {first['message']}",
        first["target"],
        [{"code": "BadRequest", **d} for d in details],
    )


HTTP_CODES = {
    400: "BadRequest",
    404: "ResourceNotFound",
    405: "InvalidHttpVerb",
    413: "RequestEntityTooLarge",
    415: "UnsupportedMediaType",
}


def _hub(request: Request, exc: Exception) -> JSONResponse | None:
    """IoT Hub's answer when the request is on one of its routes."""
    if not is_iot_path(request.url.path):
        return None
    return hub_error_for(exc)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(InvalidRequest)
    async def invalid(request: Request, exc: InvalidRequest) -> JSONResponse:
        if (hub := _hub(request, exc)) is not None:
            return hub
        return error_response(400, "BadRequest", f"{exc.field}: {exc.reason}", exc.field)

    @app.exception_handler(ValidationError)
    async def model_invalid(request: Request, exc: ValidationError) -> JSONResponse:
        # The service validates bodies with the domain models and lets their refusal out;
        # this is the one place it becomes a 400.
        if is_iot_path(request.url.path):
            first = validation_details(exc)[0]
            return hub_error_response(
                400, "ArgumentInvalid", f"{first['target']}: {first['message']}"
            )
        return bad_request_from_validation(exc)

    @app.exception_handler(NotFound)
    async def not_found(request: Request, exc: NotFound) -> JSONResponse:
        if (hub := _hub(request, exc)) is not None:
            return hub
        return error_response(404, "ResourceNotFound", str(exc))

    @app.exception_handler(Conflict)
    async def conflict(request: Request, exc: Conflict) -> JSONResponse:
        if (hub := _hub(request, exc)) is not None:
            return hub
        return error_response(409, "ConflictError", str(exc))

    @app.exception_handler(DeviceTimeout)
    async def device_timeout(request: Request, exc: DeviceTimeout) -> JSONResponse:
        return _hub(request, exc) or error_response(504, "GatewayTimeout", str(exc))

    @app.exception_handler(BadDeviceAnswer)
    async def bad_device_answer(request: Request, exc: BadDeviceAnswer) -> JSONResponse:
        return _hub(request, exc) or error_response(502, "BadGateway", str(exc))

    @app.exception_handler(RequestValidationError)
    async def request_invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        details = [
            {
                "code": "BadRequest",
                "target": field_path(tuple(e["loc"])),
                "message": str(e["msg"]),
            }
            for e in exc.errors()
        ]
        first = details[0]
        if is_iot_path(request.url.path):
            return hub_error_response(
                400, "ArgumentInvalid", f"{first['target']}: {first['message']}"
            )
        return error_response(
            400, "BadRequest", f"{first['target']}: {first['message']}", first["target"], details
        )

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        # The exception's headers are kept: a 405 says which methods are allowed (`Allow`).
        if is_iot_path(request.url.path):
            hub = hub_error_response(exc.status_code, status_code_name(exc.status_code), exc.detail)
            hub.headers.update(exc.headers or {})
            return hub
        return error_response(
            exc.status_code,
            HTTP_CODES.get(exc.status_code, "Error"),
            exc.detail,
            "body" if exc.status_code in (413, 415) else None,
            headers=exc.headers,
        )

    @app.exception_handler(json.JSONDecodeError)
    async def bad_json(request: Request, exc: json.JSONDecodeError) -> JSONResponse:
        if is_iot_path(request.url.path):
            return hub_error_response(400, "ArgumentInvalid", f"body: not valid JSON ({exc.msg})")
        return error_response(400, "BadRequest", f"body: not valid JSON ({exc.msg})", "body")
