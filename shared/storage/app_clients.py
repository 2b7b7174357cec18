"""The app's own storage account (AzureWebJobsStorage) as a code-job handler sees it: the SDK's
async service clients, plus the few table steps the shipped samples need, so that handler code
outside this package does not import the storage SDKs itself."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
from azure.data.tables.aio import TableServiceClient
from azure.storage.blob.aio import BlobServiceClient
from azure.storage.queue.aio import QueueServiceClient


@dataclass
class AppStorageClients:
    """Table, queue and blob service clients of one connection; closed after the attempt."""

    tables: TableServiceClient
    queues: QueueServiceClient
    blobs: BlobServiceClient

    @classmethod
    def from_connection_string(cls, connection: str) -> AppStorageClients:
        return cls(
            tables=TableServiceClient.from_connection_string(connection),
            queues=QueueServiceClient.from_connection_string(connection),
            blobs=BlobServiceClient.from_connection_string(connection),
        )

    async def close(self) -> None:
        await self.tables.close()
        await self.queues.close()
        await self.blobs.close()

    async def ensure_table(self, table: str) -> None:
        try:
            await self.tables.create_table(table)
        except ResourceExistsError:
            pass

    async def insert_once(self, table: str, entity: dict[str, Any]) -> bool:
        """Insert the entity; False (and nothing written) when its key is already there."""
        try:
            await self.tables.get_table_client(table).create_entity(entity)
        except ResourceExistsError:
            return False
        return True

    async def read_entity(
        self, table: str, partition_key: str, row_key: str
    ) -> dict[str, Any] | None:
        try:
            entity = await self.tables.get_table_client(table).get_entity(partition_key, row_key)
        except ResourceNotFoundError:
            return None
        return dict(entity)

    async def upsert(self, table: str, entity: dict[str, Any]) -> None:
        await self.tables.get_table_client(table).upsert_entity(entity)
