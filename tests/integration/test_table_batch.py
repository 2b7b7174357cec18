"""Entity-group transactions of shared/storage/table_batch.py against Azurite: every behaviour
holds on both paths, the fast encoder and the fallback through `TableClient.submit_transaction`."""

from __future__ import annotations

import importlib.metadata
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

import pytest
from azure.core.exceptions import ResourceNotFoundError
from azure.data.tables.aio import TableClient, TableServiceClient

from shared.storage.table_batch import (
    Kind,
    Operation,
    TransactionFailed,
    fast_path_supported,
    submit_encoded,
    submit_through_sdk,
)

pytestmark = pytest.mark.integration

PARTITION = "sub|rg|it's a collection"

Submit = Callable[[TableClient, Sequence[Operation]], Awaitable[list[str | None]]]
PATHS = {"fast": submit_encoded, "fallback": submit_through_sdk}


@pytest.fixture
async def service(storage_connection: str) -> AsyncIterator[TableServiceClient]:
    client = TableServiceClient.from_connection_string(storage_connection)
    yield client
    await client.close()


@pytest.fixture
async def table(service: TableServiceClient, unique_name: str) -> AsyncIterator[TableClient]:
    client = await service.create_table(unique_name)
    yield client
    await client.close()


@pytest.fixture(params=list(PATHS))
def submit(request: pytest.FixtureRequest) -> Submit:
    """Each test below runs once per path."""
    return PATHS[request.param]


def row(key: str, **properties: object) -> dict[str, object]:
    return {"PartitionKey": PARTITION, "RowKey": key, **properties}


async def test_each_kind_of_operation_applies_and_returns_the_row_etag(
    table: TableClient, submit: Submit
) -> None:
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


async def test_a_refused_operation_applies_nothing_and_names_its_index(
    table: TableClient, submit: Submit
) -> None:
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


async def test_a_stale_etag_is_refused_with_412(table: TableClient, submit: Submit) -> None:
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


async def test_a_missing_row_is_refused_with_404(table: TableClient, submit: Submit) -> None:
    for operation in (
        Operation(Kind.REPLACE, row("job|missing", n=1)),
        Operation(Kind.DELETE, row("job|missing")),
    ):
        with pytest.raises(TransactionFailed) as refused:
            await submit(table, [operation])
        assert refused.value.status == 404
        assert refused.value.index == 0


async def test_a_full_transaction_of_100_rows(table: TableClient, submit: Submit) -> None:
    etags = await submit(
        table, [Operation(Kind.INSERT, row(f"hist|{i:03d}", i=i)) for i in range(100)]
    )
    assert len(etags) == 100 and all(etags)
    rows = [entity async for entity in table.list_entities()]
    assert sorted(entity["i"] for entity in rows) == list(range(100))


async def test_bad_input_is_refused_before_anything_is_sent(
    table: TableClient, submit: Submit
) -> None:
    with pytest.raises(ValueError, match="1 to 100"):
        await submit(table, [])
    with pytest.raises(ValueError, match="1 to 100"):
        await submit(table, [Operation(Kind.INSERT, row(f"r{i}")) for i in range(101)])
    for value in (2**31, float("nan"), b"bytes"):
        with pytest.raises(TypeError, match="v:"):
            await submit(table, [Operation(Kind.INSERT, row("r", v=value))])
    assert [entity async for entity in table.list_entities()] == []


# --- the two paths agree -------------------------------------------------------------------------


def typed_properties(entity: Any) -> dict[str, tuple[Any, str]]:
    """Each property with the Python type it reads back as (so Edm.Double vs Int32 shows)."""
    return {
        name: (value, type(value).__name__)
        for name, value in dict(entity).items()
        if name != "Timestamp"
    }


async def outcome_of(
    table: TableClient, submit: Submit, operations: Sequence[Operation]
) -> tuple[str, Any]:
    """What a transaction did: ("ok", rows with their ETags as returned) or ("refused", (status,
    index)), plus the rows left in the table."""
    try:
        etags = await submit(table, operations)
    except TransactionFailed as refused:
        result: tuple[str, Any] = ("refused", (refused.status, refused.index))
    else:
        stored = {entity["RowKey"]: entity async for entity in table.list_entities()}
        returned = []
        for operation, etag in zip(operations, etags, strict=True):
            key = operation.entity["RowKey"]
            if operation.kind is Kind.DELETE:
                returned.append((key, etag))
            else:
                assert etag is not None and etag == stored[key].metadata["etag"]
                returned.append((key, "etag of the stored row"))
        result = ("ok", returned)
    rows = sorted(
        [typed_properties(entity) async for entity in table.list_entities()],
        key=lambda entity: str(entity["RowKey"][0]),
    )
    return result[0], (result[1], rows)


async def test_the_fast_path_and_the_fallback_give_the_same_results(
    service: TableServiceClient, unique_name: str
) -> None:
    tables = {path: await service.create_table(f"{unique_name}{path}") for path in PATHS}
    try:
        outcomes: dict[str, list[tuple[str, Any]]] = {path: [] for path in PATHS}
        for path, submit in PATHS.items():
            table = tables[path]
            await table.create_entity(row("job|b", n=1))
            await table.create_entity(row("job|c", n=1))
            etag_b = (await table.get_entity(PARTITION, "job|b")).metadata["etag"]
            steps = [
                [
                    Operation(Kind.INSERT, row("job|a", text="ünïcode ✓", n=7, x=0.5, flag=True)),
                    Operation(Kind.REPLACE, row("job|b", n=2, y=1.0), etag_b),
                    Operation(Kind.UPSERT, row("run|a", n=3, gone=None)),
                    Operation(Kind.DELETE, row("job|c")),
                ],
                # 409: the second insert meets an existing row
                [Operation(Kind.INSERT, row("new")), Operation(Kind.INSERT, row("job|a"))],
                # 412: job|b moved on from etag_b
                [
                    Operation(Kind.UPSERT, row("x", n=1)),
                    Operation(Kind.UPSERT, row("y", n=1)),
                    Operation(Kind.REPLACE, row("job|b", n=9), etag_b),
                ],
                [Operation(Kind.DELETE, row("job|b"), etag_b)],
                # 404: job|c is gone
                [Operation(Kind.UPSERT, row("z")), Operation(Kind.DELETE, row("job|c"))],
                [Operation(Kind.REPLACE, row("job|c", n=1))],
                [Operation(Kind.REPLACE, row("job|b", n=4)), Operation(Kind.DELETE, row("run|a"))],
            ]
            for operations in steps:
                outcomes[path].append(await outcome_of(table, submit, operations))
        assert outcomes["fast"] == outcomes["fallback"]
        refusals = [detail[0] for kind, detail in outcomes["fast"] if kind == "refused"]
        assert refusals == [(409, 1), (412, 2), (412, 0), (404, 1), (404, 0)]
    finally:
        for table in tables.values():
            await table.delete_table()
            await table.close()


def test_the_fast_path_is_used_only_with_verified_sdk_versions() -> None:
    assert not fast_path_supported("12.8.0")
    assert not fast_path_supported("13.0.0")
    # Fails when azure-data-tables is upgraded: verify the encoder with the new version, then
    # add it to VERIFIED_SDK_VERSIONS (until then transactions take the slower fallback).
    assert fast_path_supported(importlib.metadata.version("azure-data-tables"))
