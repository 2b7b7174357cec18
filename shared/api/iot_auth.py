"""The guard of the IoT Hub-compatible routes: IoT Hub's shared access signatures, not keys.

Routes under `/api/devices`, `/api/twins` and `/api/jobs/v2` declare the right they need with
`dependencies=[require_iot_sas(IotRight.REGISTRY_READ)]` (per route or per router). Under Azure
Functions those paths are served by anonymous HTTP functions (function_app.py), so this check is
the only one. A refusal is IoT Hub's 401 `IotHubUnauthorizedAccess`.

The request's public name is its `Host` header (as the client wrote it, port included) followed
by the request path (route prefix included, `/api/...`): a token's `sr` must equal it or be a
prefix of it, so `HostName=localhost:7071/api` in a connection string covers every call.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import JSONResponse

from shared.api.iothub import PATH_PREFIXES, IotHubError, hub_error_response
from shared.devices.sas import AccessPolicy, IotRight, SasRefused, by_name, shown, verify

log = logging.getLogger(__name__)

UNAUTHORIZED = "IotHubUnauthorizedAccess"
PoliciesProvider = Callable[[], Awaitable[Sequence[AccessPolicy]]]


def require_iot_sas(right: IotRight | None) -> Any:
    """A FastAPI dependency: the request carries a valid token of a policy granting `right`
    (`None`: any valid token). Its value is the policy, for handlers that want it."""

    async def iot_sas_guard(request: Request) -> AccessPolicy:
        provider: PoliciesProvider = request.app.state.get_iot_policies
        try:
            return verify(
                request.headers.get("authorization"),
                policies=by_name(await provider()),
                scheme=request.url.scheme,
                host=request.headers.get("host", ""),
                path=request.url.path,
                right=right,
                now=time.time(),
            )
        except SasRefused as refused:
            log.info(
                "Refused %s %s: %s", request.method, shown(request.url.path), refused
            )  # the reason never holds a key or a signature
            raise IotHubError(401, UNAUTHORIZED, str(refused)) from None

    return Depends(iot_sas_guard)


def install_iothub_errors(app: FastAPI) -> None:
    @app.exception_handler(IotHubError)
    async def iothub_error(_: Request, exc: IotHubError) -> JSONResponse:
        return hub_error_response(exc.status, exc.code, exc.message)


# Every path under the IoT prefixes that no route serves is still guarded: an unsigned caller
# learns nothing (401), a signed one gets IoT Hub's 404. Mounted after every other router.
fallback = APIRouter(dependencies=[require_iot_sas(None)], include_in_schema=False)
_ALL_METHODS = ["GET", "PUT", "POST", "PATCH", "DELETE", "HEAD", "OPTIONS"]


async def no_such_operation(request: Request) -> None:
    raise IotHubError(404, "NotFound", f"no operation {request.method} {shown(request.url.path)}")


for _prefix in PATH_PREFIXES:
    fallback.add_api_route(_prefix, no_such_operation, methods=_ALL_METHODS)
    fallback.add_api_route(f"{_prefix}/{{rest:path}}", no_such_operation, methods=_ALL_METHODS)
