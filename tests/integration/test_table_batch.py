"""Entity-group transactions encoded by shared/table_batch.py, against Azurite."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from azure.core.exceptions import ResourceNotFoundError
from azure.data.tables.aio import TableClient, TableServiceClient

from shared.table_batch import Kind, Operation, TransactionFailed, submit

pytestmark = pytest.mark.integration

PARTITION = "sub|rg|it's a collection"


@pytest.fixture
async def table(storage_connection: str, unique_name: str) -> AsyncIterator[TableClient]:
    service = TableServiceClient.from_connection_string(storage_connection)
    client = await service.create_table(unique_name)
    yield client
    await client.close()
    await service.close()


def row(key: str, **properties: object) -> dict[str, object]:
    return {"PartitionKey": PARTITION, "RowKey": key, **properties}


async def test_each_kind_of_operation_applies_and_returns_the_row_etag(table):
    await table.create_entity(row("job|b", n=1))
    await table.create_entity(row("job|c", n=1))
    before = await table.get_entity(PARTITION, "job|b")

    etags = await submit(
        table,
        [
            Operation(Kind.INSERT, row("job|a", text="ünïcode ✓", n=7, x=0.5, flag=True)),
            Operation(Kind.REPLACE, row("job|b", n=2), before.metadata["etag"]),
            Operation(Kind.UPSERT, row("run|a|1|20261121T000000Z", n=3, gone=None)),
            Operation(Kind.DELETE, row("job|c")),
        ],
    )

    inserted = await table.get_entity(PARTITION, "job|a")
    assert dict(inserted) == row("job|a", text="ünïcode ✓", n=7, x=0.5, flag=True)
    assert isinstance(inserted["x"], float)
    replaced = await table.get_entity(PARTITION, "job|b")
    assert dict(replaced) == row("job|b", n=2)
    upserted = await table.get_entity(PARTITION, "run|a|1|20261121T000000Z")
    assert "gone" not in upserted
    with pytest.raises(ResourceNotFoundError):
        await table.get_entity(PARTITION, "job|c")
    assert etags == [
        inserted.metadata["etag"],
        replaced.metadata["etag"],
        upserted.metadata["etag"],
        None,
    ]


async def test_a_refused_operation_applies_nothing_and_names_its_index(table):
    await table.create_entity(row("job|taken", n=1))

    with pytest.raises(TransactionFailed) as refused:
        await submit(
            table,
            [
                Operation(Kind.INSERT, row("job|new", n=1)),
                Operation(Kind.INSERT, row("job|taken", n=2)),
            ],
        )

    assert refused.value.status == 409
    assert refused.value.index == 1
    with pytest.raises(ResourceNotFoundError):
        await table.get_entity(PARTITION, "job|new")
    assert (await table.get_entity(PARTITION, "job|taken"))["n"] == 1


async def test_a_stale_etag_is_refused_with_412(table):
    await table.create_entity(row("job|a", n=1))
    stale = (await table.get_entity(PARTITION, "job|a")).metadata["etag"]
    await table.update_entity(row("job|a", n=2))

    for operation in (
        Operation(Kind.REPLACE, row("job|a", n=3), stale),
        Operation(Kind.DELETE, row("job|a"), stale),
    ):
        with pytest.raises(TransactionFailed) as refused:
            await submit(table, [operation])
        assert refused.value.status == 412
    assert (await table.get_entity(PARTITION, "job|a"))["n"] == 2


async def test_a_missing_row_is_refused_with_404(table):
    for operation in (
        Operation(Kind.REPLACE, row("job|missing", n=1)),
        Operation(Kind.DELETE, row("job|missing")),
    ):
        with pytest.raises(TransactionFailed) as refused:
            await submit(table, [operation])
        assert refused.value.status == 404
        assert refused.value.index == 0


async def test_a_full_transaction_of_100_rows(table):
    etags = await submit(
        table, [Operation(Kind.INSERT, row(f"hist|{i:03d}", i=i)) for i in range(100)]
    )
    assert len(etags) == 100 and all(etags)
    rows = [entity async for entity in table.list_entities()]
    assert sorted(entity["i"] for entity in rows) == list(range(100))


async def test_bad_input_is_refused_before_anything_is_sent(table):
    with pytest.raises(ValueError, match="1 to 100"):
        await submit(table, [])
    with pytest.raises(ValueError, match="1 to 100"):
        await submit(table, [Operation(Kind.INSERT, row(f"r{i}")) for i in range(101)])
    for value in (2**31, float("nan"), b"bytes"):
        with pytest.raises(TypeError, match="v:"):
            await submit(table, [Operation(Kind.INSERT, row("r", v=value))])
    assert [entity async for entity in table.list_entities()] == []
