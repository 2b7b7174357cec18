"""Job history: one row per attempt, newest first, read in pages, pruned by age and count.

The rows themselves are written by an attempt's recording transaction (shared/storage/runs.py);
this module reads them and holds the retention policy.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any

from azure.core.exceptions import ResourceNotFoundError

from shared.config import Settings
from shared.engine.records import HISTORY_KEY_INVERT_MS, HistoryRecord
from shared.model.job import HistoryStatus
from shared.storage.codecs import history_from_entity
from shared.storage.keys import history_older_than, history_prefix
from shared.storage.output import OutputStore, output_name_of_key
from shared.storage.rows import delete_rows, page, row_keys
from shared.storage.tables import Tables
from shared.timefmt import epoch_ms


class HistoryRows:
    """History pages, the check that an attempt's row landed, and pruning."""

    def __init__(self, tables: Tables, settings: Settings, outputs: OutputStore) -> None:
        self._tables = tables
        self._settings = settings
        self._outputs = outputs

    async def history(
        self,
        collection: str,
        name: str,
        *,
        top: int,
        after: str | None = None,
        skip: int = 0,
        status: HistoryStatus | None = None,
    ) -> tuple[list[HistoryRecord], str | None]:
        """A page of history, newest first; `after` is the row key the previous page ended on."""
        after_clause = " and RowKey gt @after" if after else ""
        query = f"PartitionKey eq @pk and RowKey ge @low{after_clause} and RowKey lt @high"
        params: dict[str, Any] = {
            "pk": collection,
            "after": after,
            "low": history_prefix(name),
            "high": f"hist|{name}}}",
        }
        if status is not None:
            query += " and status eq @status"
            params["status"] = status.value
        table = self._tables.table_for(collection)
        rows, last_key = await page(table, query, params, top=top, skip=skip)
        return [history_from_entity(entity) for entity in rows], last_key

    async def history_since(
        self, collection: str, name: str, since: datetime, limit: int
    ) -> list[HistoryRecord]:
        """The attempts that started at or after `since`, newest first, at most `limit` (a
        run's attempts all start after its nominal time: the rows to look through for them)."""
        newest_allowed = HISTORY_KEY_INVERT_MS - epoch_ms(since)
        query = "PartitionKey eq @pk and RowKey ge @low and RowKey lt @high"
        params = {
            "pk": collection,
            "low": history_prefix(name),
            "high": f"{history_prefix(name)}{newest_allowed + 1:013d}",
        }
        table = self._tables.table_for(collection)
        try:
            rows, _ = await page(table, query, params, top=limit, skip=0)
        except ResourceNotFoundError:
            return []
        return [history_from_entity(entity) for entity in rows]

    async def has_history(self, record: HistoryRecord) -> bool:
        """Whether this attempt's history row is stored (its recording landed)."""
        table = self._tables.table_for(record.collection)
        try:
            await table.get_entity(record.collection, record.row_key)
        except ResourceNotFoundError:
            return False
        return True

    async def keys_of(self, collection: str, name: str) -> list[str]:
        """The keys of every history row of a job (for its delete)."""
        table = self._tables.table_for(collection)
        return [key async for key in row_keys(table, collection, history_prefix(name))]

    async def prune_history(self, collection: str, name: str, now: datetime) -> int:
        """Keep the newest `history_max_rows` rows younger than `history_max_age`; the outputs
        of the rows pruned go with them (outputs of running attempts have no row yet and
        stay)."""
        keys = await self.keys_of(collection, name)
        oldest_kept = now - self._settings.history_max_age
        old = [
            key
            for index, key in enumerate(keys)
            if index >= self._settings.history_max_rows or history_older_than(key, oldest_kept)
        ]
        await delete_rows(self._tables.table_for(collection), collection, old)
        if old:
            names = [output_name_of_key(collection, key) for key in old]
            await self._outputs.delete_job_outputs(collection, name, only=names)
        return len(old)

    def housekeeping_due(self, attempt_key: str) -> bool:
        """Whether this attempt prunes its job's history and folds its tallies: about one
        attempt in every few, chosen by its key, often enough to hold the history limit and
        keep tallies few, rarely enough to stay cheap."""
        every = max(1, min(20, self._settings.history_max_rows // 20))
        digest = hashlib.sha256(attempt_key.encode()).digest()
        return int.from_bytes(digest[:4], "big") % every == 0


__all__ = ["HistoryRows"]
