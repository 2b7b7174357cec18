"""`DeviceRegistry`: what the device and twin operations do, with IoT Hub's rules.

Devices: a PUT without `If-Match` creates (409 AlreadyExists when the id is taken); with
`If-Match` it updates (404 when there is no such device, 412 when the etag is not the
device's current one; `*` and `"*"` match any). Twins: PATCH merges `tags` and
`properties.desired` (JSON merge patch: `null` removes a key), PUT replaces both; each change
bumps the twin's `version` (and etag), and a desired change bumps desired `$version` and is then
pushed to the device's endpoint, best effort (the write stands whatever the push does). Reported
properties are the device's: our extension `PATCH /api/twins/{id}/reported` merges them.

Every change is read, decide, write-if-the-row-is-unchanged (the table ETag); a write that lost
a race is decided again on a fresh read, so a client etag that went stale meanwhile is a 412 and
an unconditional change is never lost.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from shared.clock import Clock
from shared.devices.call_budget import CallBudget
from shared.devices.calls import DeviceCaller, MethodResult
from shared.devices.model import (
    ANY_ETAG,
    DeviceRecord,
    Endpoint,
    IfMatch,
    MethodCall,
    carry_endpoint_headers,
    check_device_id,
    check_properties,
    new_generation_id,
    parse_device,
    parse_method,
    without_metadata,
)
from shared.devices.query import parse_query
from shared.errors import (
    AlreadyExists,
    Conflict,
    DeviceNotOnline,
    InvalidRequest,
    NotFound,
    PreconditionFailed,
)
from shared.merge_patch import merge_patch
from shared.storage.devices import DeviceRows, ScanKey, StoredDevice

log = logging.getLogger(__name__)

MAX_LIST = 1000  # IoT Hub's `top` on GET /devices
MAX_PAGE = 100  # IoT Hub's largest query page
MAX_SCANNED = 5000  # rows a query request reads at most; then it answers with a continuation
_RACE_RETRIES = 10
CONTINUATION_FIELD = "x-ms-continuation"
IDEMPOTENCY_HEADER = "Idempotency-Key"


class QueryPage:
    """A page of a device query: IoT Hub's item type, the items and the continuation."""

    def __init__(self, item_type: str, items: list[dict[str, Any]], continuation: str | None):
        self.item_type = item_type
        self.items = items
        self.continuation = continuation


class DeviceRegistry:
    def __init__(self, rows: DeviceRows, caller: DeviceCaller, clock: Clock) -> None:
        self._rows = rows
        self._caller = caller
        self._clock = clock

    @property
    def call_budget(self) -> CallBudget:
        """The process's budget of device calls in flight (broadcasts take a slot per call)."""
        return self._caller.budget

    # --- devices -----------------------------------------------------------------------------

    async def put_device(
        self, device_id: str, body: Mapping[str, Any], if_match: IfMatch
    ) -> DeviceRecord:
        check_device_id(device_id)
        if if_match is None:
            return await self._create(device_id, body)

        def update(current: DeviceRecord) -> DeviceRecord:
            _check_etag(if_match, current.device_etag)
            spec = parse_device(body, device_id, current.authentication)
            endpoint = current.endpoint
            if isinstance(spec.endpoint, Endpoint):
                endpoint = carry_endpoint_headers(spec.endpoint, current.endpoint)
            elif spec.endpoint is None:
                endpoint = None
            changed_status = spec.status != current.status
            return replace(
                current,
                device_version=current.device_version + 1,
                status=spec.status,
                status_reason=spec.status_reason,
                status_updated=self._clock.now() if changed_status else current.status_updated,
                authentication=spec.authentication,
                iot_edge=spec.iot_edge,
                endpoint=endpoint,
            )

        return (await self._change(device_id, update)).record

    async def _create(self, device_id: str, body: Mapping[str, Any]) -> DeviceRecord:
        spec = parse_device(body, device_id)
        if await self._rows.get(device_id) is not None:
            raise AlreadyExists(f"A device with ID '{device_id}' is already registered.")
        now = self._clock.now()
        record = DeviceRecord(
            device_id=device_id,
            generation_id=new_generation_id(),
            device_version=1,
            status=spec.status,
            status_reason=spec.status_reason,
            status_updated=now,
            authentication=spec.authentication,
            iot_edge=spec.iot_edge,
            endpoint=spec.endpoint if isinstance(spec.endpoint, Endpoint) else None,
            tags={},
            desired={},
            desired_version=1,
            desired_updated=now,
            reported={},
            reported_version=1,
            reported_updated=now,
            twin_version=1,
        )
        return (await self._rows.create(record)).record

    async def get_device(self, device_id: str) -> DeviceRecord:
        return (await self._read(device_id)).record

    async def list_devices(self, top: int) -> list[DeviceRecord]:
        found: list[DeviceRecord] = []
        async for record, _ in self._rows.scan(None, page_size=top):
            found.append(record)
            if len(found) >= top:
                break
        return found

    async def delete_device(self, device_id: str, if_match: IfMatch) -> None:
        check_device_id(device_id)
        for _ in range(_RACE_RETRIES):
            stored = await self._read(device_id)
            _check_etag(if_match, stored.record.device_etag)
            try:
                await self._rows.delete(device_id, stored.table_etag)
                return
            except Conflict:
                continue
        raise Conflict(f"device {device_id} keeps changing; try again")

    # --- twins -------------------------------------------------------------------------------

    async def get_twin(self, device_id: str) -> DeviceRecord:
        return await self.get_device(device_id)

    async def patch_twin(
        self, device_id: str, body: Mapping[str, Any], if_match: IfMatch
    ) -> DeviceRecord:
        tags, desired = _twin_sections(body)

        def patch(current: DeviceRecord) -> DeviceRecord:
            _check_etag(if_match, current.twin_etag)
            new_tags = current.tags if tags is None else merge_patch(current.tags, tags)
            new_desired = (
                current.desired if desired is None else merge_patch(current.desired, desired)
            )
            return self._twin_changed(current, new_tags, new_desired)

        return await self._push_if_desired_changed(await self._change(device_id, patch))

    async def replace_twin(
        self, device_id: str, body: Mapping[str, Any], if_match: IfMatch
    ) -> DeviceRecord:
        tags, desired = _twin_sections(body)

        def put(current: DeviceRecord) -> DeviceRecord:
            _check_etag(if_match, current.twin_etag)
            return self._twin_changed(current, _no_nulls(tags or {}), _no_nulls(desired or {}))

        return await self._push_if_desired_changed(await self._change(device_id, put))

    async def patch_reported(
        self, device_id: str, body: Mapping[str, Any], if_match: IfMatch
    ) -> DeviceRecord:
        """Our extension for devices: merge `body` (the reported properties) into the twin."""
        reported = check_properties("reported", without_metadata(dict(body)))

        def patch(current: DeviceRecord) -> DeviceRecord:
            _check_etag(if_match, current.twin_etag)
            merged = merge_patch(current.reported, reported)
            if merged == current.reported:
                return current
            _check_size("reported", merged)
            return replace(
                current,
                reported=merged,
                reported_version=current.reported_version + 1,
                reported_updated=self._clock.now(),
                twin_version=current.twin_version + 1,
            )

        return (await self._change(device_id, patch)).record

    def _twin_changed(
        self, current: DeviceRecord, tags: Mapping[str, Any], desired: Mapping[str, Any]
    ) -> DeviceRecord:
        _check_size("tags", tags)
        _check_size("properties.desired", desired)
        desired_changed = desired != current.desired
        if not desired_changed and tags == current.tags:
            return current
        now = self._clock.now()
        return replace(
            current,
            tags=tags,
            desired=desired,
            desired_version=current.desired_version + (1 if desired_changed else 0),
            desired_updated=now if desired_changed else current.desired_updated,
            twin_version=current.twin_version + 1,
        )

    async def _push_if_desired_changed(self, result: _Changed) -> DeviceRecord:
        record = result.record
        if result.before.desired_version != record.desired_version and record.endpoint is not None:
            await self._caller.push_desired(
                record.device_id, record.endpoint, record.desired_json(), record.desired_version
            )
        return record

    # --- direct methods ----------------------------------------------------------------------

    async def invoke_method(self, device_id: str, body: Mapping[str, Any]) -> MethodResult:
        call = parse_method(body)
        record = await self.get_device(device_id)
        return await self._caller.invoke(device_id, record.endpoint, call)

    async def call_method(
        self,
        device_id: str,
        call: MethodCall,
        idempotency_key: str,
        known: Endpoint | None = None,
    ) -> MethodResult:
        """A broadcast's call: the same `Idempotency-Key` on every try for one device, so a
        device can tell a call repeated after a crash from a new one. With `known` (the
        endpoint a recent read found) the device is called there without reading its row; if
        it cannot be reached there, its row is read and, when it registered another endpoint
        meanwhile, it is called at that one (where it is connected now)."""
        headers = {IDEMPOTENCY_HEADER: idempotency_key}
        if known is not None:
            try:
                return await self._caller.invoke(device_id, known, call, headers)
            except DeviceNotOnline:
                current = await self.get_device(device_id)
                if current.endpoint == known:
                    raise
                return await self._caller.invoke(device_id, current.endpoint, call, headers)
        record = await self.get_device(device_id)
        return await self._caller.invoke(device_id, record.endpoint, call, headers)

    # --- queries -----------------------------------------------------------------------------

    async def query(self, text: object, max_items: int, continuation: str | None) -> QueryPage:
        """A page of twins that meet the query's condition. `devices.jobs` records come with the
        jobs API; until then that collection is empty."""
        if not isinstance(text, str):
            raise InvalidRequest("query", "is required: a string")
        if parse_query(text).collection == "devices.jobs":
            return QueryPage("deviceJob", [], None)
        records, token = await self.search(text, "", max_items, continuation)
        return QueryPage("twin", [record.twin_json() for record in records], token)

    async def search(
        self, text: str, id_prefix: str, max_items: int, continuation: str | None
    ) -> tuple[list[DeviceRecord], str | None]:
        """The devices whose twin meets the query's condition and whose id starts with
        `id_prefix` (the dashboard's search: ids are hashed over partitions, so a prefix is a
        filter, not a range), at most `max_items`, and the continuation (None on the last)."""
        query = parse_query(text)

        def matches(twin: Mapping[str, Any]) -> bool:
            return str(twin["deviceId"]).startswith(id_prefix) and query.matches(twin)

        token = _decode_token(continuation)
        ids = query.candidate_keys("deviceId")
        if ids is not None:
            return await self._query_ids(matches, sorted(ids), max_items, token)
        found: list[DeviceRecord] = []
        after = _scan_key(token)
        scanned = 0
        async for record, key in self._rows.scan(after, page_size=min(MAX_SCANNED, 1000)):
            scanned += 1
            if matches(record.twin_json()):
                found.append(record)
            if len(found) >= max_items or scanned >= MAX_SCANNED:
                return found, _encode_token({"pk": key[0], "rk": key[1]})
        return found, None

    async def _query_ids(
        self,
        matches: Callable[[Mapping[str, Any]], bool],
        ids: list[str],
        max_items: int,
        token: Mapping[str, Any] | None,
    ) -> tuple[list[DeviceRecord], str | None]:
        """The candidate-key path: point reads of the ids the condition pins, in id order."""
        after = token.get("id") if token is not None else None
        if token is not None and not isinstance(after, str):
            raise InvalidRequest(CONTINUATION_FIELD, "is not a continuation this query gave")
        found: list[DeviceRecord] = []
        for device_id in ids:
            if after is not None and device_id <= after:
                continue
            stored = await self._rows.get(device_id)
            if stored is not None and matches(stored.record.twin_json()):
                found.append(stored.record)
                if len(found) >= max_items:
                    return found, _encode_token({"id": device_id})
        return found, None

    # --- common ------------------------------------------------------------------------------

    async def _read(self, device_id: str) -> StoredDevice:
        check_device_id(device_id)
        stored = await self._rows.get(device_id)
        if stored is None:
            raise NotFound(f"Device {device_id} not found.")
        return stored

    async def _change(
        self, device_id: str, change: Callable[[DeviceRecord], DeviceRecord]
    ) -> _Changed:
        """Read, decide with `change`, write if the row is unchanged; again on a lost race."""
        for _ in range(_RACE_RETRIES):
            stored = await self._read(device_id)
            updated = change(stored.record)
            if updated is stored.record:
                return _Changed(stored.record, stored.record)
            try:
                written = await self._rows.replace(updated, stored.table_etag)
            except Conflict:
                continue
            return _Changed(stored.record, written.record)
        raise Conflict(f"device {device_id} keeps changing; try again")

    async def aclose(self) -> None:
        await self._caller.aclose()


@dataclass(frozen=True)
class _Changed:
    """A change's before and after (the same record when nothing changed)."""

    before: DeviceRecord
    record: DeviceRecord


def _check_etag(if_match: IfMatch, current: str) -> None:
    if if_match is None or if_match is ANY_ETAG:
        return
    if if_match != current:
        raise PreconditionFailed(
            f"The etag '{if_match}' does not match the current one ('{current}')."
        )


def _twin_sections(body: Mapping[str, Any]) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """The tags and desired properties a twin body sets; reported properties and the
    service's own fields (`etag`, `version`, `$metadata`, ...) are ignored, as an SDK twin
    read, changed and sent back carries them."""
    tags = body.get("tags")
    properties = body.get("properties")
    if properties is not None and not isinstance(properties, dict):
        raise InvalidRequest("properties", "must be a JSON object")
    desired = (properties or {}).get("desired")
    checked_tags = None if tags is None else check_properties("tags", tags)
    checked_desired = (
        None
        if desired is None
        else check_properties("properties.desired", without_metadata(desired))
    )
    return checked_tags, checked_desired


def _no_nulls(value: Mapping[str, Any]) -> dict[str, Any]:
    """A replacement as a merge onto nothing: `null` values are no values."""
    merged = merge_patch({}, dict(value))
    assert isinstance(merged, dict)
    return merged


def _check_size(field: str, value: Mapping[str, Any]) -> None:
    check_properties(field, dict(value))


def _encode_token(value: Mapping[str, Any]) -> str:
    text = json.dumps(dict(value), separators=(",", ":"))
    return base64.urlsafe_b64encode(text.encode()).decode("ascii")


def _decode_token(token: str | None) -> dict[str, Any] | None:
    if token is None or token == "":
        return None
    try:
        value = json.loads(base64.urlsafe_b64decode(token.encode("ascii")))
    except (binascii.Error, ValueError, UnicodeError):
        raise InvalidRequest(CONTINUATION_FIELD, "is not a continuation this query gave") from None
    if not isinstance(value, dict):
        raise InvalidRequest(CONTINUATION_FIELD, "is not a continuation this query gave")
    return value


def _scan_key(token: Mapping[str, Any] | None) -> ScanKey | None:
    if token is None:
        return None
    partition, row = token.get("pk"), token.get("rk")
    if not isinstance(partition, str) or not isinstance(row, str):
        raise InvalidRequest(CONTINUATION_FIELD, "is not a continuation this query gave")
    return partition, row


__all__ = ["DeviceRegistry", "QueryPage", "MAX_LIST", "MAX_PAGE"]
