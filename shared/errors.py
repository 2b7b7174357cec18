"""Domain errors.

SchedulerError
 ├── NotFound            a collection, job or run that does not exist
 ├── Conflict            a write that lost a race (ETag mismatch, row already there)
 └── InvalidRequest      input refused, with the field it is about (-> HTTP 400)

ConfigError              an app setting refused at start-up, with its name (stops the app)
"""

from __future__ import annotations

from azure.core.exceptions import AzureError, HttpResponseError


class SchedulerError(Exception):
    pass


class NotFound(SchedulerError):
    pass


class Conflict(SchedulerError):
    """Another writer changed the row first; re-read and decide again."""


class InvalidRequest(SchedulerError):
    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


class ConfigError(Exception):
    """An app setting the app cannot run with. Raised at start-up only, so a bad setting stops
    the app with its name instead of failing every attempt; the text never quotes a secret."""

    def __init__(self, setting: str, reason: str) -> None:
        super().__init__(f"{setting}: {reason}")
        self.setting = setting
        self.reason = reason


def is_transient(error: BaseException) -> bool:
    """A storage fault that may pass: a lost or reset connection, a timeout, throttling or a
    server error (never a refusal such as an ETag mismatch, which callers see as Conflict)."""
    status = getattr(error, "status", None)
    if isinstance(error, HttpResponseError):
        status = error.status_code
    if isinstance(status, int):
        return status >= 500 or status in (408, 429)
    return isinstance(error, AzureError | OSError | TimeoutError)
