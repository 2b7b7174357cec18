"""Claims and attempt records of one collection are group-committed
(shared/storage/group_commit.py): concurrent ones share transactions, and each caller still gets
exactly the outcome it would have had alone. Real Azurite behind a proxy that counts (and can
cut) the requests."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from azure.core.exceptions import AzureError
from azure.data.tables.aio import TableServiceClient

from shared.engine.records import Run, RunStatus
from shared.errors import Conflict
from shared.names import CollectionRef
from shared.storage.due_index import DueIndex
from shared.storage.runs import RunRows
from shared.storage.tables import Tables
from tests.support.engine import make_settings
from tests.support.flaky_proxy import FlakyProxy

pytestmark = pytest.mark.integration

COLLECTION = CollectionRef.parse("grouped").key
NOW = datetime(2030, 5, 6, 8, 0, 0, tzinfo=UTC)
# Where every claim of these tests moves its run's watch to: one minute, listed once by `warm`.
LEASE_END = NOW + timedelta(seconds=90)


@dataclass
class Rows:
    runs: RunRows
    proxy: FlakyProxy

    def transactions(self) -> int:
        return sum("$batch" in line for _, line in self.proxy.requests)


@pytest.fixture
async def rows(azurite: Any, unique_name: str) -> AsyncIterator[Rows]:
    """The run rows of one store, its table traffic through a counting proxy; the SDK does not
    retry, so a cut connection reaches the callers as the fault it is."""
    proxy = await FlakyProxy(azurite.ports["Table"]).start()
    connection = azurite.connection_string.replace(
        f"127.0.0.1:{azurite.ports['Table']}", f"127.0.0.1:{proxy.port}"
    )
    service = TableServiceClient.from_connection_string(connection, retry_total=0)
    tables = Tables(service, make_settings(connection, unique_name))
    await tables.ensure()
    await tables.ensure_table(COLLECTION)
    runs = RunRows(tables, DueIndex(tables))
    try:
        yield Rows(runs, proxy)
    finally:
        await runs.close()
        await tables.close()
        await proxy.stop()


async def scheduled_runs(rows: Rows, count: int) -> list[Run]:
    """`count` runs of one collection waiting for their executor, and one claim already made
    with the same lease end (so the minute its watch files in is listed before the test)."""
    made = [
        await rows.runs.create_run(
            Run(COLLECTION, f"job{index:03d}", 1, NOW, 0, NOW, on_demand=True), NOW
        )
        for index in range(count + 1)
    ]
    await rows.runs.move_run(made[-1], claimed(made[-1]), NOW)
    rows.proxy.requests.clear()
    return made[:-1]


def claimed(run: Run) -> Run:
    return replace(
        run, status=RunStatus.RUNNING, claimed_until=LEASE_END, started_at=NOW, watch_at=LEASE_END
    )


async def claim(rows: Rows, run: Run) -> Run | BaseException:
    try:
        return await rows.runs.move_run(run, claimed(run), NOW)
    except Exception as error:
        return error


async def stored(rows: Rows, run: Run) -> Run:
    found = await rows.runs.get_run(COLLECTION, run.row_key)
    assert found is not None
    return found


async def test_sixty_concurrent_claims_share_a_few_transactions(rows: Rows) -> None:
    """Sixty claims of one collection at one second were sixty transactions (sixty requests'
    CPU in the SDK's pipeline); now they leave together, 33 to a transaction (3 rows each)."""
    runs = await scheduled_runs(rows, 60)
    results = await asyncio.gather(*(claim(rows, run) for run in runs))
    transactions = rows.transactions()
    for run, result in zip(runs, results, strict=True):
        assert isinstance(result, Run), result
        assert result.etag == (await stored(rows, run)).etag
        assert (await stored(rows, run)).status is RunStatus.RUNNING
    assert transactions <= 4, transactions


async def test_a_stale_member_gets_conflict_and_the_rest_of_its_group_lands(rows: Rows) -> None:
    runs = await scheduled_runs(rows, 60)
    stale = runs[17]
    await rows.runs.move_run(stale, replace(stale, watch_at=LEASE_END), NOW)  # someone else
    rows.proxy.requests.clear()
    results = await asyncio.gather(*(claim(rows, run) for run in runs))
    transactions = rows.transactions()
    assert isinstance(results[17], Conflict), results[17]
    assert (await stored(rows, stale)).status is RunStatus.SCHEDULED
    for run, result in zip(runs, results, strict=True):
        if run is not stale:
            assert isinstance(result, Run), result
            assert result.etag == (await stored(rows, run)).etag
    # The group holding the stale claim is submitted again without it: one transaction more.
    assert transactions <= 5, transactions


async def test_two_claims_of_the_same_run_in_one_burst_one_wins(rows: Rows) -> None:
    """A message delivered twice: both claims arrive together; the second one waits for the
    next transaction (a row is never touched twice in one) and its ETag is stale by then."""
    runs = await scheduled_runs(rows, 10)
    twice = runs[4]
    results = await asyncio.gather(*(claim(rows, run) for run in [*runs, twice]))
    winners = [r for r in (results[4], results[-1]) if isinstance(r, Run)]
    losers = [r for r in (results[4], results[-1]) if isinstance(r, Conflict)]
    assert len(winners) == 1 and len(losers) == 1, results
    assert winners[0].etag == (await stored(rows, twice)).etag
    assert all(isinstance(result, Run) for result in results[:4] + results[5:-1])


async def test_a_storage_fault_in_a_group_reaches_every_member_and_writes_nothing(
    rows: Rows,
) -> None:
    runs = await scheduled_runs(rows, 20)  # 60 operations: one transaction
    rows.proxy.cut_next_batch(after_storage=False)
    results = await asyncio.gather(*(claim(rows, run) for run in runs))
    assert rows.proxy.cuts == 1
    assert all(isinstance(result, AzureError) for result in results), results
    for run in runs:
        after = await stored(rows, run)
        assert (after.status, after.etag) == (RunStatus.SCHEDULED, run.etag)
