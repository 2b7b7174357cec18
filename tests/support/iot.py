"""Signing requests to the IoT Hub paths in tests, as azure-iot-hub does: a shared access
signature of a test policy over the host name the client uses (host and route prefix)."""

from __future__ import annotations

import time
from collections.abc import Generator

import httpx

from shared.api.iothub import is_iot_path
from shared.devices.sas import AccessPolicy, IotRight, build_token

OWNER = AccessPolicy(
    name="iothubowner",
    key=b"k" * 32,
    rights=frozenset({IotRight.REGISTRY_READ, IotRight.REGISTRY_WRITE, IotRight.SERVICE_CONNECT}),
)


class SignIotRequests(httpx.Auth):
    """Adds a fresh token (the SDK signs every request) to requests for the IoT Hub paths; the
    rest of the API is left as it is."""

    def __init__(self, policy: AccessPolicy = OWNER) -> None:
        self.policy = policy

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        if is_iot_path(request.url.path):
            host_name = f"{request.url.netloc.decode()}/api"
            expiry = int(time.time()) + 3600
            request.headers["Authorization"] = build_token(
                host_name, self.policy.name, self.policy.key, expiry
            )
        yield request
