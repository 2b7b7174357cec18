"""The IoT Hub-compatible part of the API: its paths and its error shape.

IoT Hub answers errors as `{"Message": "ErrorCode:<code>;<text>", "ExceptionMessage":
"Tracking ID:<id>-TimeStamp:<utc>"}` with the code again in the `iothub-errorcode` header
(azure-iot-sdk-csharp `ExceptionHandlingHelper.cs`); the codes and their HTTP statuses are those
of IoT Hub's "common error codes" page (ArgumentInvalid 400004, IotHubUnauthorizedAccess 401002,
DeviceNotFound 404001, DeviceNotOnline 404103, DeviceAlreadyExists 409001, PreconditionFailed
412001, GatewayTimeout 504101). Clients of IoT Hub read those, not ARM's; the rest of the API
keeps ARM's shape (shared/api/errors.py asks `is_iot_path` which one a request gets). These
paths take any api-version: the SDKs pin their own (azure-iot-hub 2.7.0 sends 2021-04-12).
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

from fastapi.responses import JSONResponse

from shared.errors import (
    AlreadyExists,
    BadDeviceAnswer,
    Conflict,
    DeviceNotOnline,
    DeviceTimeout,
    InvalidRequest,
    NotFound,
    PreconditionFailed,
    SchedulerError,
)

# Served by HTTP functions of their own under Azure Functions (function_app.py), anonymous at the
# host: the shared access signature decides (shared/api/iot_auth.py).
PATH_PREFIXES = ("/api/devices", "/api/twins", "/api/jobs/v2")
ERROR_CODE_HEADER = "iothub-errorcode"


class IotHubError(SchedulerError):
    """An error to answer in IoT Hub's shape: status, IoT Hub's error code, a safe message."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def is_iot_path(path: str) -> bool:
    lowered = path.lower()
    return any(lowered == p or lowered.startswith(f"{p}/") for p in PATH_PREFIXES)


# Error codes for the statuses a request can end with before a handler decides.
_STATUS_CODES = {
    400: "ArgumentInvalid",
    404: "NotFound",
    405: "MethodNotAllowed",
    409: "Conflict",
    412: "PreconditionFailed",
    413: "RequestEntityTooLarge",
    415: "InvalidContentEncodingOrType",
    502: "BadGateway",
    504: "GatewayTimeout",
}


def hub_error_body(code: str, message: str) -> dict[str, str]:
    now = datetime.now(UTC).strftime("%m/%d/%Y %H:%M:%S")
    return {
        "Message": f"ErrorCode:{code};{message}",
        "ExceptionMessage": f"Tracking ID:{uuid.uuid4().hex}-TimeStamp:{now}",
    }


def hub_error_response(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse(
        hub_error_body(code, message), status_code=status, headers={ERROR_CODE_HEADER: code}
    )


def hub_error_bytes(status: int, message: str) -> tuple[bytes, list[tuple[bytes, bytes]]]:
    """The body and headers of an error the front door answers before the app runs."""
    code = status_code_name(status)
    payload = json.dumps(hub_error_body(code, message)).encode()
    return payload, [(ERROR_CODE_HEADER.encode(), code.encode())]


def status_code_name(status: int) -> str:
    return _STATUS_CODES.get(status, "ServerError" if status >= 500 else "BadRequest")


def hub_error_for(error: Exception) -> JSONResponse | None:
    """IoT Hub's answer for one of the app's exceptions, or None when it is not one of them."""
    match error:
        case InvalidRequest():
            return hub_error_response(400, "ArgumentInvalid", str(error))
        case DeviceNotOnline():
            return hub_error_response(404, "DeviceNotOnline", str(error))
        case NotFound():
            return hub_error_response(404, "DeviceNotFound", str(error))
        case AlreadyExists():
            return hub_error_response(409, "DeviceAlreadyExists", str(error))
        case PreconditionFailed():
            return hub_error_response(412, "PreconditionFailed", str(error))
        case Conflict():
            return hub_error_response(409, "Conflict", str(error))
        case DeviceTimeout():
            return hub_error_response(504, "GatewayTimeout", str(error))
        case BadDeviceAnswer():
            return hub_error_response(502, "DeviceInvalidResultPayload", str(error))
        case IotHubError():
            return hub_error_response(error.status, error.code, error.message)
    return None
