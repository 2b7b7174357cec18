"""The HTTP client of every command: one place that sends the key, signs IoT Hub paths and
turns an error answer into a message naming the API's code, field and HTTP status."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx

from scheduler_cli import __version__
from scheduler_cli.config import Config
from scheduler_cli.errors import CliError, ExitCode
from scheduler_cli.sas import IOT_PREFIXES, SignIotRequests

REQUEST_TIMEOUT_SECONDS = 30.0
FOLLOW_TIMEOUT_SECONDS = 60.0  # the output route long-polls up to 25 s


class ApiError(CliError):
    def __init__(self, response: httpx.Response) -> None:
        self.status = response.status_code
        self.error_code, self.reason, self.target = describe_error(response)
        where = f" at {self.target}" if self.target else ""
        message = f"{self.error_code} (HTTP {self.status}){where}: {self.reason}"
        super().__init__(message, exit_code_of(self.status))


def exit_code_of(status: int) -> ExitCode:
    if status == 404:
        return ExitCode.NOT_FOUND
    if status in (401, 403):
        return ExitCode.UNAUTHORIZED
    if status >= 500:
        return ExitCode.SERVER
    return ExitCode.REFUSED


def describe_error(response: httpx.Response) -> tuple[str, str, str | None]:
    """(code, message, field) from the ARM shape `{"error": {...}}`, IoT Hub's
    `{"Message": "ErrorCode:X;why"}`, or the plain text of anything else."""
    try:
        body: Any = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        error = body["error"]
        return (
            str(error.get("code") or response.reason_phrase),
            str(error.get("message") or ""),
            str(error["target"]) if error.get("target") else None,
        )
    if isinstance(body, dict) and isinstance(body.get("Message"), str):
        text = body["Message"]
        if text.startswith("ErrorCode:"):
            code, _, why = text[len("ErrorCode:") :].partition(";")
            return code, why or text, None
        return response.reason_phrase, text, None
    text = response.text.strip()[:500] or response.reason_phrase
    return response.reason_phrase or str(response.status_code), text, None


class Api:
    """A synchronous client of one app (`config.url` is its `.../api` base)."""

    def __init__(self, config: Config) -> None:
        self.config = config
        headers = {"user-agent": f"sched/{__version__}"}
        if config.key:
            headers["x-functions-key"] = config.key
        base = httpx.URL(config.url + "/")
        self.http = httpx.Client(
            base_url=base,
            headers=headers,
            timeout=REQUEST_TIMEOUT_SECONDS,
            auth=SignIotRequests(base, config.iot),
        )

    def close(self) -> None:
        self.http.close()

    def send(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        timeout: float | None = None,
        ok: tuple[int, ...] = (),
    ) -> httpx.Response:
        """`path` is relative to the base URL (or absolute, for URLs the API returned)."""
        if path.lstrip("/").startswith(tuple(p.lstrip("/") for p in IOT_PREFIXES)):
            self._need_iot()
        try:
            response = self.http.request(
                method,
                path.lstrip("/") if "://" not in path else path,
                json=json,
                params=params,
                headers=headers,
                timeout=timeout if timeout is not None else REQUEST_TIMEOUT_SECONDS,
            )
        except httpx.TimeoutException:
            raise CliError(
                f"{self.config.url} did not answer in time ({method} {path})",
                ExitCode.UNREACHABLE,
            ) from None
        except httpx.TransportError as error:
            raise CliError(
                f"cannot reach {self.config.url}: {error or type(error).__name__} "
                "(is the app running? set --url, SCHED_URL or a profile)",
                ExitCode.UNREACHABLE,
            ) from None
        if response.status_code >= 400 and response.status_code not in ok:
            raise ApiError(response)
        return response

    def get(self, path: str, **params: Any) -> Any:
        return self.send("GET", path, params=params or None).json()

    def pages(self, path: str, limit: int | None = None, **params: Any) -> Iterator[Any]:
        """The `value` items of an ARM list, following `nextLink` (up to `limit` items)."""
        url: str | None = path
        given: dict[str, Any] | None = params or None
        count = 0
        while url:
            body = self.send("GET", url, params=given).json()
            for item in body.get("value", []):
                yield item
                count += 1
                if limit is not None and count >= limit:
                    return
            url, given = body.get("nextLink"), None

    def _need_iot(self) -> None:
        if self.config.iot is None:
            raise CliError(
                "devices and broadcasts are IoT Hub paths signed with a shared access policy: "
                "give --iot-connection-string, SCHED_IOT_CONNECTION_STRING or a profile's "
                "iot_connection_string",
                ExitCode.USAGE,
            )
