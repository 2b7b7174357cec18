"""The continuous WebJobs' rows (table `{prefix}Continuous`, one row per WebJob): the desired
state set by start/stop, the holder's lease (ETag-checked, so one holder at a time) and the
status Kudu's routes show. Written only with the ETag read, so racing writers never both win."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import (
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
)
from azure.data.tables import UpdateMode
from azure.data.tables.aio import TableClient

_PARTITION = "continuous"
RUNNING, PENDING_RESTART, STOPPED = "Running", "PendingRestart", "Stopped"
STARTING = "Starting"  # started, no holder yet


@dataclass(frozen=True)
class ContinuousRow:
    """One continuous WebJob's state. `holder` is empty when no invocation holds it;
    `restart_at` is when a restart is due (PendingRestart); `kicked_at` when a message to run
    it was last sent (the watch resends one that seems lost)."""

    name: str
    desired: str = STOPPED  # Running | Stopped
    status: str = STOPPED  # Starting | Running | PendingRestart | Stopped (Kudu's names)
    holder: str = ""
    lease_until: datetime | None = None
    restart_at: datetime | None = None
    kicked_at: datetime | None = None
    run_id: str = ""
    detail: str = ""
    etag: str | None = None

    def held(self, now: datetime) -> bool:
        return bool(self.holder) and self.lease_until is not None and self.lease_until > now

    def changed(self, **values: Any) -> ContinuousRow:
        return replace(self, **values)


def _to_entity(row: ContinuousRow) -> dict[str, Any]:
    entity: dict[str, Any] = {
        "PartitionKey": _PARTITION,
        "RowKey": row.name.lower(),
        "Name": row.name,
        "Desired": row.desired,
        "Status": row.status,
        "Holder": row.holder,
        "RunId": row.run_id,
        "Detail": row.detail,
    }
    for key, value in (
        ("LeaseUntil", row.lease_until),
        ("RestartAt", row.restart_at),
        ("KickedAt", row.kicked_at),
    ):
        if value is not None:
            entity[key] = value
    return entity


def _from_entity(entity: Any) -> ContinuousRow:
    return ContinuousRow(
        name=str(entity["Name"]),
        desired=str(entity.get("Desired", STOPPED)),
        status=str(entity.get("Status", STOPPED)),
        holder=str(entity.get("Holder", "")),
        lease_until=entity.get("LeaseUntil"),
        restart_at=entity.get("RestartAt"),
        kicked_at=entity.get("KickedAt"),
        run_id=str(entity.get("RunId", "")),
        detail=str(entity.get("Detail", "")),
        etag=entity.metadata["etag"],
    )


class ContinuousRows:
    def __init__(self, table: TableClient) -> None:
        self._table = table
        self._ready = False

    @classmethod
    def from_connection_string(cls, connection: str, table_name: str) -> ContinuousRows:
        return cls(TableClient.from_connection_string(connection, table_name))

    async def ensure(self) -> ContinuousRows:
        if not self._ready:
            try:
                await self._table.create_table()
            except ResourceExistsError:
                pass
            self._ready = True
        return self

    async def close(self) -> None:
        await self._table.close()

    async def get(self, name: str) -> ContinuousRow | None:
        try:
            return _from_entity(await self._table.get_entity(_PARTITION, name.lower()))
        except ResourceNotFoundError:
            return None

    async def all(self) -> list[ContinuousRow]:
        query = self._table.query_entities(f"PartitionKey eq '{_PARTITION}'")
        return [_from_entity(entity) async for entity in query]

    async def write(self, row: ContinuousRow) -> ContinuousRow | None:
        """Store `row` if the stored one is still the one read (`row.etag`; None = must not
        exist yet); the row as stored, or None when another writer came first."""
        entity = _to_entity(row)
        try:
            if row.etag is None:
                meta = await self._table.create_entity(entity)
            else:
                meta = await self._table.update_entity(
                    entity,
                    mode=UpdateMode.REPLACE,
                    etag=row.etag,
                    match_condition=MatchConditions.IfNotModified,
                )
        except (ResourceExistsError, ResourceModifiedError, ResourceNotFoundError):
            return None
        return row.changed(etag=meta["etag"])
