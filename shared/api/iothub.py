"""The IoT Hub-compatible part of the API: its paths, its api-version, and its error shape.

IoT Hub answers errors as `{"Message": "ErrorCode:<code>;<text>", "ExceptionMessage":
"Tracking ID:<id>-TimeStamp:<utc>"}` with the code again in the `iothub-errorcode` header
(azure-iot-sdk-csharp `ExceptionHandlingHelper.cs`; docs: learn.microsoft.com/rest/api/iothub/
common-error-codes, 401 IotHubUnauthorizedAccess). Clients of IoT Hub read those, not ARM's.
"""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi.responses import JSONResponse

from shared.errors import SchedulerError

# Served by HTTP functions of their own under Azure Functions (function_app.py), anonymous at the
# host: the shared access signature decides (shared/api/iot_auth.py).
PATH_PREFIXES = ("/api/devices", "/api/twins", "/api/jobs/v2")
# What azure-iot-hub 2.7.0 sends (every operation pins it), and the version before it.
API_VERSIONS = frozenset({"2021-04-12", "2020-09-30"})
ERROR_CODE_HEADER = "iothub-errorcode"


def is_iot_path(path: str) -> bool:
    lowered = path.lower()
    return any(lowered == p or lowered.startswith(f"{p}/") for p in PATH_PREFIXES)


class IotHubError(SchedulerError):
    """An error to answer in IoT Hub's shape: status, IoT Hub's error code, a safe message."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def iothub_error_response(status: int, code: str, message: str, tracking_id: str) -> JSONResponse:
    stamp = datetime.now(UTC).strftime("%m/%d/%Y %H:%M:%S")
    body = {
        "Message": f"ErrorCode:{code};{message}",
        "ExceptionMessage": f"Tracking ID:{tracking_id}-TimeStamp:{stamp}",
    }
    return JSONResponse(body, status_code=status, headers={ERROR_CODE_HEADER: code})
