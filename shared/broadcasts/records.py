"""The records the broadcast engine works on: plain dataclasses, no I/O."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from shared.broadcasts.model import BroadcastSpec
from shared.devices.model import Endpoint
from shared.timefmt import to_iso


@dataclass(frozen=True)
class Broadcast:
    """One broadcast job as stored. `device_count` is None until the devices are snapshotted."""

    spec: BroadcastSpec
    status: str  # queued, running, completed, failed, cancelled (scheduled is derived)
    created: datetime
    start: datetime  # the startTime asked for, or the creation time
    ended: datetime | None = None
    failure_reason: str | None = None
    status_message: str | None = None
    device_count: int | None = None


@dataclass(frozen=True)
class DeviceJob:
    """One device's part of a broadcast (a `devices.jobs` record)."""

    job_id: str
    job_type: str
    device_id: str
    status: str
    created: datetime
    updated: datetime
    attempt: int = 0
    started: datetime | None = None
    ended: datetime | None = None
    lease_until: datetime | None = None
    timed_out: bool = False
    outcome: dict[str, Any] | None = None
    error: dict[str, str] | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    # The device's endpoint as the start's snapshot read it (method jobs; None: read the
    # registry at call time). Kept only while the device is open; never in `json()` or a repr:
    # its headers may hold the device's credentials.
    endpoint: Endpoint | None = field(default=None, repr=False)

    def json(self) -> dict[str, Any]:
        """As IoT Hub's `SELECT * FROM devices.jobs` answers it (the `...Utc` field names)."""
        body: dict[str, Any] = {
            "deviceId": self.device_id,
            "jobId": self.job_id,
            "jobType": self.job_type,
            "status": self.status,
            "startTimeUtc": None if self.started is None else to_iso(self.started),
            "endTimeUtc": None if self.ended is None else to_iso(self.ended),
            "createdDateTimeUtc": to_iso(self.created),
            "lastUpdatedDateTimeUtc": to_iso(self.updated),
        }
        if self.outcome is not None:
            body["outcome"] = self.outcome
        if self.error is not None:
            body["error"] = self.error
        return body
