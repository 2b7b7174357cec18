"""IoT Hub shared access signatures for the `/devices`, `/twins` and `/jobs/v2` paths, built as
the azure-iot-hub SDK builds them (README "IoT Hub paths: shared access signatures")."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
from collections.abc import Generator
from urllib.parse import quote, quote_plus

import httpx

from scheduler_cli.config import IotPolicy
from scheduler_cli.errors import usage_error

IOT_PREFIXES = ("/devices", "/twins", "/jobs/v2")
TOKEN_LIFETIME_SECONDS = 3600


def build_token(resource: str, policy: IotPolicy, expiry: int) -> str:
    """`sr` is the host and path the request goes to (e.g. `localhost:7071/api`)."""
    try:
        key = base64.b64decode(policy.key, validate=True)
    except binascii.Error:
        raise usage_error("the IoT connection string's SharedAccessKey is not base64") from None
    encoded = quote_plus(resource)
    digest = hmac.new(key, f"{encoded}\n{expiry}".encode(), hashlib.sha256).digest()
    signature = quote(base64.b64encode(digest).decode())
    return f"SharedAccessSignature sr={encoded}&sig={signature}&se={expiry}&skn={policy.name}"


class SignIotRequests(httpx.Auth):
    """Signs requests under the IoT Hub prefixes; the rest of the API uses the function key."""

    def __init__(self, base_url: httpx.URL, policy: IotPolicy | None) -> None:
        self.base_path = base_url.path.rstrip("/")
        self.policy = policy

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        relative = request.url.path[len(self.base_path) :].lower()
        if self.policy is not None and any(
            relative == p or relative.startswith(p + "/") for p in IOT_PREFIXES
        ):
            resource = f"{request.url.netloc.decode()}{self.base_path}"
            expiry = int(time.time()) + TOKEN_LIFETIME_SECONDS
            request.headers["Authorization"] = build_token(resource, self.policy, expiry)
        yield request
