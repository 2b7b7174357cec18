"""The device registry's rows: one row per device (the device and its twin) in `{prefix}Devices`.

Layout: PartitionKey is a two-hex-digit bucket of the device id's SHA-256 (256 partitions, so
100,000 devices spread evenly and no partition is hot); RowKey is the device id with `%`, `#`
and `?` percent-encoded (a RowKey cannot hold `#` or `?`; encoding `%` keeps the mapping
one-to-one). A lookup by id is a point read. The row's table ETag is the concurrency check of
every change: a write replaces the row only if nobody changed it since it was read.

A scan walks the table in (PartitionKey, RowKey) order and hands out each row's key, so a caller
may stop in the middle of a storage page (a query page ends after `max-item-count` matches) and
resume after that key without losing or repeating a row (a table continuation token can only
resume at a page boundary).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator, Mapping
from datetime import datetime
from typing import Any
from urllib.parse import quote, unquote

from azure.core import MatchConditions
from azure.core.exceptions import (
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
)
from azure.data.tables import TableEntity, UpdateMode
from azure.data.tables.aio import TableClient

from shared.devices.model import DeviceRecord, Endpoint
from shared.errors import AlreadyExists, Conflict
from shared.timefmt import from_iso, to_iso

ScanKey = tuple[str, str]  # (PartitionKey, RowKey) of the last row a scan returned
# The SDK finds parameters by splitting on spaces: `@rk` must not touch the parenthesis.
_AFTER = "PartitionKey gt @pk or (PartitionKey eq @pk and RowKey gt @rk )"


def bucket_of(device_id: str) -> str:
    """The device's partition: the first byte of its id's SHA-256, in hex."""
    return hashlib.sha256(device_id.encode("utf-8")).hexdigest()[:2]


def row_key_of(device_id: str) -> str:
    return quote(device_id, safe="-.+_*!(),:=@$'")


class StoredDevice:
    """A device as read, with the table ETag its next write must match."""

    def __init__(self, record: DeviceRecord, table_etag: str) -> None:
        self.record = record
        self.table_etag = table_etag


class DeviceRows:
    """Reads and writes of device rows; knows nothing of IoT Hub's rules (the registry does)."""

    def __init__(self, table: TableClient) -> None:
        self.table = table

    async def get(self, device_id: str) -> StoredDevice | None:
        try:
            entity = await self.table.get_entity(bucket_of(device_id), row_key_of(device_id))
        except ResourceNotFoundError:
            return None
        return _stored(entity)

    async def create(self, record: DeviceRecord) -> StoredDevice:
        """AlreadyExists when the id is taken."""
        entity = to_entity(record)
        try:
            meta = await self.table.create_entity(entity)
        except ResourceExistsError as error:
            raise AlreadyExists(f"device {record.device_id} already exists") from error
        return StoredDevice(record, str(meta["etag"]))

    async def replace(self, record: DeviceRecord, table_etag: str) -> StoredDevice:
        """Conflict when the row changed (or went) since it was read with `table_etag`."""
        try:
            meta = await self.table.update_entity(
                to_entity(record),
                mode=UpdateMode.REPLACE,
                etag=table_etag,
                match_condition=MatchConditions.IfNotModified,
            )
        except (ResourceModifiedError, ResourceNotFoundError) as error:
            raise Conflict(f"device {record.device_id} changed meanwhile") from error
        return StoredDevice(record, str(meta["etag"]))

    async def delete(self, device_id: str, table_etag: str) -> None:
        """Conflict when the row changed since it was read; a row already gone is fine."""
        try:
            await self.table.delete_entity(
                bucket_of(device_id),
                row_key_of(device_id),
                etag=table_etag,
                match_condition=MatchConditions.IfNotModified,
            )
        except ResourceModifiedError as error:
            raise Conflict(f"device {device_id} changed meanwhile") from error
        except ResourceNotFoundError:
            pass

    async def scan(
        self, after: ScanKey | None, page_size: int = 1000
    ) -> AsyncIterator[tuple[DeviceRecord, ScanKey]]:
        """Every device after the key `after`, in key order, each with its own key (where a
        scan that stops there resumes)."""
        if after is None:
            rows = self.table.list_entities(results_per_page=page_size)
        else:
            partition, row = after
            rows = self.table.query_entities(
                _AFTER, parameters={"pk": partition, "rk": row}, results_per_page=page_size
            )
        async for entity in rows:
            yield _record(entity), (entity["PartitionKey"], entity["RowKey"])


def to_entity(record: DeviceRecord) -> dict[str, Any]:
    endpoint = record.endpoint
    return {
        "PartitionKey": bucket_of(record.device_id),
        "RowKey": row_key_of(record.device_id),
        "GenerationId": record.generation_id,
        "DeviceVersion": record.device_version,
        "Status": record.status,
        "StatusReason": record.status_reason,
        "StatusUpdated": to_iso(record.status_updated),
        "Authentication": _json(record.authentication),
        "IotEdge": record.iot_edge,
        "Endpoint": None
        if endpoint is None
        else _json({"uri": endpoint.uri, "headers": dict(endpoint.headers)}),
        "Tags": _json(record.tags),
        "Desired": _json(record.desired),
        "DesiredVersion": record.desired_version,
        "DesiredUpdated": to_iso(record.desired_updated),
        "Reported": _json(record.reported),
        "ReportedVersion": record.reported_version,
        "ReportedUpdated": to_iso(record.reported_updated),
        "TwinVersion": record.twin_version,
    }


def _stored(entity: TableEntity) -> StoredDevice:
    return StoredDevice(_record(entity), str(entity.metadata["etag"]))


def _record(entity: Mapping[str, Any]) -> DeviceRecord:
    endpoint = entity.get("Endpoint")
    parsed = json.loads(endpoint) if endpoint else None
    return DeviceRecord(
        device_id=unquote(entity["RowKey"]),
        generation_id=entity["GenerationId"],
        device_version=int(entity["DeviceVersion"]),
        status=entity["Status"],
        status_reason=entity.get("StatusReason"),
        status_updated=_time(entity["StatusUpdated"]),
        authentication=json.loads(entity["Authentication"]),
        iot_edge=bool(entity.get("IotEdge", False)),
        endpoint=None if parsed is None else Endpoint(parsed["uri"], parsed.get("headers") or {}),
        tags=json.loads(entity["Tags"]),
        desired=json.loads(entity["Desired"]),
        desired_version=int(entity["DesiredVersion"]),
        desired_updated=_time(entity["DesiredUpdated"]),
        reported=json.loads(entity["Reported"]),
        reported_version=int(entity["ReportedVersion"]),
        reported_updated=_time(entity["ReportedUpdated"]),
        twin_version=int(entity["TwinVersion"]),
    )


def _time(text: str) -> datetime:
    return from_iso(text)


def _json(value: object) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


__all__ = ["DeviceRows", "ScanKey", "StoredDevice", "bucket_of", "row_key_of", "to_entity"]
