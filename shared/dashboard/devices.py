"""A device as the dashboard lists it: its id, status and where it is reached (the endpoint's
host only). Never its keys, thumbprints or endpoint header values (they may hold the device's
own credentials): the page cannot show what it is never sent."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from shared.devices.model import DeviceRecord


def device_row(record: DeviceRecord) -> dict[str, Any]:
    return {
        "deviceId": record.device_id,
        "status": record.status,
        "statusReason": record.status_reason,
        "authenticationType": record.authentication.get("type", "sas"),
        "endpointHost": _host(record.endpoint.uri) if record.endpoint is not None else None,
        "tags": dict(record.tags),
    }


def _host(uri: str) -> str:
    """`host[:port]` of the endpoint: no path or query (a token could ride in either)."""
    parts = urlsplit(uri)
    host = parts.hostname or ""
    return f"{host}:{parts.port}" if parts.port else host
