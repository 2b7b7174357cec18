"""The app's exceptions: one tree, so a reader (and an `except`) finds every error here.

SchedulerError
 ├── NotFound             a collection, job, run or device that does not exist (-> HTTP 404)
 │    └── DeviceNotOnline a device with no endpoint, or one that cannot be reached (-> 404,
 │                        IoT Hub's DeviceNotOnline; shared/devices/calls.py)
 ├── Conflict             a write that lost a race (ETag mismatch, row already there) (-> 409)
 │    ├── LimitExceeded   a collection's SKU or quota refuses the change (-> 409)
 │    ├── AlreadyExists   a create whose id is taken (-> 409, IoT Hub's DeviceAlreadyExists)
 │    └── PreconditionFailed  an `If-Match` etag that is not the current one (-> 412)
 ├── DeviceTimeout        a device did not answer a direct method in time (-> 504,
 │                        IoT Hub's GatewayTimeout)
 ├── BadDeviceAnswer      a device answered a direct method with something else than
 │                        `{"status": int, "payload": ...}` (-> 502)
 ├── InvalidRequest       input refused, with the field it is about (-> HTTP 400)
 │    └── InvalidQuery    a device query or condition that does not parse, with the 1-based
 │                        position of the fault (shared/devices/query.py)
 ├── SasRefused           an IoT Hub shared access signature that does not authorise the
 │                        request; the reason holds no secret (-> 401; shared/devices/sas.py)
 ├── IotHubError          an error answered in IoT Hub's shape, with its code
 │                        (shared/api/iothub.py)
 ├── BodyTooLarge         a request body past the API's cap (-> 413; shared/api/middleware.py)
 ├── ConfigError          an app setting refused at start-up, with its name (stops the app)
 ├── ActionError          an attempt's target could not be reached as asked; the text is safe
 │    │                   for job history (no secret, no token)
 │    ├── GuardError      the network guard refused or could not resolve the target
 │    │                   (shared/kinds/http/network_guard.py: OutboundRefused, ResolutionFailed)
 │    ├── CredentialError credentials could not be obtained (shared/kinds/http/outbound_auth.py)
 │    └── QueueSendError  a user's queue refused the message (shared/storage/user_queue.py)
 └── StorageError         storage refused what the store asked
      ├── TransactionFailed    an entity-group transaction refused, with its status and the
      │                        failed operation's index (shared/storage/table_batch.py)
      ├── CollectionGone       the collection has no job count row: it was deleted
      │                        (shared/storage/jobs.py)
      └── JobLimitReached      a create would pass the collection's job count limit (same)

Faults of the network or of storage itself (azure.core's AzureError, OSError, timeouts) are not
ours: `is_transient` tells which of them may pass on a retry.
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


class InvalidQuery(InvalidRequest):
    """A device query or condition refused; `position` (1-based, counted in characters from the
    start of the text) is where the fault is, so a client can point at it."""

    def __init__(self, field: str, reason: str, position: int) -> None:
        super().__init__(field, f"{reason} at position {position}")
        self.position = position


class LimitExceeded(Conflict):
    """A collection's SKU or quota refuses the change (HTTP 409)."""


class AlreadyExists(Conflict):
    """A create found the id taken (a device created without `If-Match`)."""


class PreconditionFailed(Conflict):
    """The client's `If-Match` etag is not the current one: it read an older version."""


class DeviceNotOnline(NotFound):
    """A device cannot be reached: it registered no endpoint, or the endpoint refused, failed
    or was refused by the network guard. The text is safe to answer (no header, no secret)."""


class DeviceTimeout(SchedulerError):
    """A device did not answer a direct method within its response timeout."""


class BadDeviceAnswer(SchedulerError):
    """A device answered a direct method, but not with `{"status": int, "payload": ...}`."""


class ActionError(SchedulerError):
    """An attempt's target could not be reached as asked; the text is safe for job history."""


class StorageError(SchedulerError):
    """Storage refused what the store asked (not a fault of the network or the service)."""


class ConfigError(SchedulerError):
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
