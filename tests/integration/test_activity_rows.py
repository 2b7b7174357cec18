"""The activity counters' table client closes everything it opened: a runtime closed after use
leaves no HTTP session behind (it did: the client came from a service client nobody closed)."""

from __future__ import annotations

import asyncio
import gc
from datetime import UTC, datetime
from typing import Any

import pytest

from shared.engine.records import HistoryRecord
from shared.model.job import HistoryStatus
from shared.storage.activity import ActivityRows
from tests.support.flaky_proxy import FlakyProxy
from tests.support.history import main_attempt

pytestmark = pytest.mark.integration


async def test_closing_the_activity_rows_leaves_no_open_session(
    storage_connection: str, unique_name: str
) -> None:
    loop = asyncio.get_running_loop()
    reported: list[str] = []
    previous = loop.get_exception_handler()

    def handler(_: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        reported.append(str(context.get("message")))

    loop.set_exception_handler(handler)
    try:
        rows = await ActivityRows.from_connection_string(
            storage_connection, f"{unique_name}Activity"
        ).ensure()
        await rows.close()
        del rows
        gc.collect()
        await asyncio.sleep(0)  # let a report scheduled by a finalizer run
    finally:
        loop.set_exception_handler(previous)
    assert not [m for m in reported if "Unclosed" in m], reported


async def test_a_burst_of_attempts_costs_a_few_writes_and_loses_no_count(
    azurite: Any, unique_name: str
) -> None:
    """1,000 attempts recorded at once used to be 1,000 racing read-modify-writes on 4 rows
    (some gave up after 20 lost races, and the burst's storage paid for all of them)."""
    proxy = await FlakyProxy(azurite.ports["Table"]).start()
    connection = azurite.connection_string.replace(
        f"127.0.0.1:{azurite.ports['Table']}", f"127.0.0.1:{proxy.port}"
    )
    rows = await ActivityRows.from_connection_string(connection, f"{unique_name}Act").ensure()
    try:
        proxy.requests.clear()
        started = datetime(2030, 5, 6, 7, 30, tzinfo=UTC)
        await asyncio.gather(*(rows.record(attempt_at(started, i % 10 == 0)) for i in range(1000)))
        writes = len(proxy.requests)
        (hour,) = await rows.hours(started, started)
    finally:
        await rows.close()
        await proxy.stop()
    assert (hour.attempts, hour.failures, sum(hour.lateness)) == (1000, 100, 1000)
    assert writes <= 20, writes


def attempt_at(started: datetime, failed: bool) -> HistoryRecord:
    return main_attempt(
        started, started, HistoryStatus.FAILED if failed else HistoryStatus.COMPLETED
    )
