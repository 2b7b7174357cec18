"""The table service connection and the scheduler's tables: their names and their provisioning.

Three fixed tables (`{prefix}Due`, `{prefix}Collections`, `{prefix}Devices`) are made at
start-up; a collection's own table is made the first time this process writes new rows to it (a
create that finds it is one request), so a table deleted by hand comes back at the next start.
"""

from __future__ import annotations

import asyncio

from azure.core.exceptions import ResourceExistsError
from azure.data.tables.aio import TableClient, TableServiceClient

from shared.config import Settings
from shared.storage.keys import collection_table


class Tables:
    """The scheduler's table clients: `Tables.from_settings(...)`, then `ensure()`."""

    def __init__(self, service: TableServiceClient, settings: Settings) -> None:
        self._service = service
        self._table_prefix = settings.table_prefix
        self.due_index: TableClient = service.get_table_client(settings.due_table)
        self.collections: TableClient = service.get_table_client(settings.collections_table)
        self.devices: TableClient = service.get_table_client(settings.devices_table)
        self._collection_tables: dict[str, TableClient] = {}
        self._made: set[str] = set()
        self._ready = False
        self._ready_lock = asyncio.Lock()

    @classmethod
    def from_settings(cls, settings: Settings) -> Tables:
        return cls(TableServiceClient.from_connection_string(settings.storage_connection), settings)

    async def ensure(self) -> None:
        """Create the fixed tables once per process (idempotent)."""
        async with self._ready_lock:
            if not self._ready:
                for table in (self.due_index, self.collections, self.devices):
                    await self._create(table.table_name)
                self._ready = True

    async def close(self) -> None:
        fixed = (self.due_index, self.collections, self.devices)
        for table in (*fixed, *self._collection_tables.values()):
            await table.close()
        await self._service.close()

    def table_for(self, collection: str) -> TableClient:
        """The table that holds a collection's jobs, runs, history and due rows."""
        table = self._collection_tables.get(collection)
        if table is None:
            name = collection_table(self._table_prefix, collection)
            table = self._service.get_table_client(name)
            self._collection_tables[collection] = table
        return table

    async def ensure_table(self, collection: str) -> TableClient:
        """The collection's table, created the first time this process writes new rows to it."""
        table = self.table_for(collection)
        if table.table_name not in self._made:
            await self._create(table.table_name)
        return table

    def forget(self, collection: str) -> None:
        """The collection's table was found missing: the next `ensure_table` makes it again."""
        self._made.discard(self.table_for(collection).table_name)

    async def _create(self, name: str) -> None:
        try:
            await self._service.create_table(name)
        except ResourceExistsError:
            pass
        self._made.add(name)


__all__ = ["Tables"]
