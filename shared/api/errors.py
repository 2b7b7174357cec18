"""One place that turns errors into ARM-style JSON: `{"error": {"code", "message", "target"}}`."""

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

from shared.errors import Conflict, InvalidRequest, NotFound

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


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(InvalidRequest)
    async def invalid(_: Request, exc: InvalidRequest) -> JSONResponse:
        return error_response(400, "BadRequest", f"{exc.field}: {exc.reason}", exc.field)

    @app.exception_handler(ValidationError)
    async def model_invalid(_: Request, exc: ValidationError) -> JSONResponse:
        # The service validates bodies with the domain models and lets their refusal out;
        # this is the one place it becomes a 400.
        return bad_request_from_validation(exc)

    @app.exception_handler(NotFound)
    async def not_found(_: Request, exc: NotFound) -> JSONResponse:
        return error_response(404, "ResourceNotFound", str(exc))

    @app.exception_handler(Conflict)
    async def conflict(_: Request, exc: Conflict) -> JSONResponse:
        return error_response(409, "ConflictError", str(exc))

    @app.exception_handler(RequestValidationError)
    async def request_invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        details = [
            {
                "code": "BadRequest",
                "target": field_path(tuple(e["loc"])),
                "message": str(e["msg"]),
            }
            for e in exc.errors()
        ]
        first = details[0]
        return error_response(
            400, "BadRequest", f"{first['target']}: {first['message']}", first["target"], details
        )

    @app.exception_handler(HTTPException)
    async def http_error(_: Request, exc: HTTPException) -> JSONResponse:
        # The exception's headers are kept: a 405 says which methods are allowed (`Allow`).
        return error_response(
            exc.status_code,
            HTTP_CODES.get(exc.status_code, "Error"),
            exc.detail,
            "body" if exc.status_code in (413, 415) else None,
            headers=exc.headers,
        )

    @app.exception_handler(json.JSONDecodeError)
    async def bad_json(_: Request, exc: json.JSONDecodeError) -> JSONResponse:
        return error_response(400, "BadRequest", f"body: not valid JSON ({exc.msg})", "body")
