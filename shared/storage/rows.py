"""Row operations every part of the store shares: key reads, range reads, pages, deleting rows
in batches, and transactions that report a lost race as `Conflict`."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Iterable
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import ResourceModifiedError, ResourceNotFoundError
from azure.data.tables import TableEntity, UpdateMode
from azure.data.tables.aio import TableClient

from shared.concurrency import run_bounded
from shared.errors import Conflict
from shared.storage.keys import prefix_filter
from shared.storage.table_batch import MAX_OPERATIONS, Kind, Operation, TransactionFailed, submit

_RANGE_QUERY = "PartitionKey eq @pk and RowKey ge @low and RowKey lt @high"
# Table Storage allows 15 comparisons in a $filter: the PartitionKey, a RowKey range around
# the keys (so the service scans that range, not the partition) and 12 RowKeys.
_MAX_COMPARISONS = 15
KEYS_PER_QUERY = _MAX_COMPARISONS - 3
# Fewer keys than this are read one by one: a query is one request, but the storage emulator
# scans the whole table for it, where a point read is a lookup.
_QUERY_FROM_KEYS = 4


async def rows_by_key(
    table: TableClient, partition: str, keys: list[str]
) -> AsyncIterator[TableEntity]:
    """The rows of `partition` with these RowKeys (at most KEYS_PER_QUERY): one query for
    many, point reads for a few."""
    if len(keys) < _QUERY_FROM_KEYS:
        read = functools.partial(_point_read, table, partition)
        for entity in await run_bounded(_QUERY_FROM_KEYS, read, keys):
            if entity is not None:
                yield entity
        return
    params: dict[str, Any] = {"pk": partition, "low": min(keys), "high": max(keys)}
    clauses = []
    for index, key in enumerate(keys):
        params[f"r{index}"] = key
        clauses.append(f"RowKey eq @r{index}")
    # Spaces around the parentheses: the SDK finds @parameters by splitting on spaces.
    query_text = (
        f"PartitionKey eq @pk and RowKey ge @low and RowKey le @high and ( {' or '.join(clauses)} )"
    )
    async for entity in table.query_entities(query_text, parameters=params):
        yield entity


async def _point_read(table: TableClient, partition: str, key: str) -> TableEntity | None:
    try:
        return await table.get_entity(partition, key)
    except ResourceNotFoundError:
        return None


def chunks(items: list[Any], size: int) -> Iterable[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


async def partition_keys(table: TableClient, partition: str) -> AsyncIterator[str]:
    async for entity in table.query_entities(
        "PartitionKey eq @pk", parameters={"pk": partition}, select=["RowKey"]
    ):
        yield entity["RowKey"]


async def row_keys(table: TableClient, partition: str, prefix: str) -> AsyncIterator[str]:
    """The keys of a partition's rows under `prefix`."""
    query = f"PartitionKey eq @pk and {prefix_filter(prefix)}"
    async for entity in table.query_entities(
        query, parameters={"pk": partition}, select=["RowKey"]
    ):
        yield entity["RowKey"]


async def key_range(
    table: TableClient, partition: str, low: str, high: str
) -> AsyncIterator[TableEntity]:
    """A partition's rows with `low` <= RowKey < `high`, in one range read."""
    params = {"pk": partition, "low": low, "high": high}
    async for entity in table.query_entities(_RANGE_QUERY, parameters=params):
        yield entity


async def page(
    table: TableClient, query: str, params: dict[str, Any], *, top: int, skip: int
) -> tuple[list[TableEntity], str | None]:
    """Up to `top` rows after skipping `skip`, and the row key to continue after (None when
    this page is the last)."""
    rows: list[TableEntity] = []
    seen = 0
    async for entity in table.query_entities(
        query, parameters=params, results_per_page=min(top + skip + 1, 1000)
    ):
        seen += 1
        if seen <= skip:
            continue
        rows.append(entity)
        if len(rows) > top:
            return rows[:top], rows[top - 1]["RowKey"]
    return rows, None


async def delete_rows(table: TableClient, partition: str, keys: Iterable[str]) -> None:
    """Delete these rows of a partition, 100 to a transaction; rows already gone are fine."""
    batch: list[Operation] = []
    for key in keys:
        batch.append(Operation(Kind.DELETE, {"PartitionKey": partition, "RowKey": key}))
        if len(batch) == MAX_OPERATIONS:
            await _delete_batch(table, partition, batch)
            batch = []
    if batch:
        await _delete_batch(table, partition, batch)


async def delete_row(table: TableClient, partition: str, key: str) -> None:
    """Delete one row; one already gone is fine."""
    try:
        await table.delete_entity(partition, key)
    except ResourceNotFoundError:
        pass


async def _delete_batch(table: TableClient, partition: str, batch: list[Operation]) -> None:
    try:
        await submit(table, batch)
    except TransactionFailed as error:
        if error.status != 404:
            raise
        # A row vanished meanwhile (another deleter): fall back to one by one, ignoring 404s.
        for operation in batch:
            await delete_row(table, partition, operation.entity["RowKey"])


async def transact(
    table: TableClient, partition: str, operations: list[Operation]
) -> list[str | None]:
    """A transaction on a collection's table; Conflict when a row it expected had changed."""
    try:
        return await submit(table, operations)
    except TransactionFailed as error:
        lost = lost_race(error, partition)
        if lost is not None:
            raise lost from error
        raise


def lost_race(error: TransactionFailed, partition: str) -> Conflict | None:
    """The Conflict a refused transaction means when a row it expected had changed (or was
    gone, or already there); None for any other refusal."""
    if error.status in (404, 409, 412):
        return Conflict(f"transaction on {partition} lost a race: {error}")
    return None


async def replace_unchanged(table: TableClient, entity: dict[str, Any], etag: str | None) -> str:
    """Replace a row only if its etag still matches; Conflict if someone changed it."""
    try:
        meta = await table.update_entity(
            entity,
            mode=UpdateMode.REPLACE,
            etag=etag,
            match_condition=MatchConditions.IfNotModified,
        )
    except (ResourceModifiedError, ResourceNotFoundError) as error:
        raise Conflict(f"{entity['RowKey']} in {entity['PartitionKey']} changed") from error
    return str(meta["etag"])


__all__ = [
    "chunks",
    "delete_row",
    "delete_rows",
    "key_range",
    "lost_race",
    "page",
    "partition_keys",
    "replace_unchanged",
    "row_keys",
    "transact",
]
