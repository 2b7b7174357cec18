"""The activity counters' table client closes everything it opened: a runtime closed after use
leaves no HTTP session behind (it did: the client came from a service client nobody closed)."""

from __future__ import annotations

import asyncio
import gc
import logging
from datetime import UTC, datetime
from typing import Any

import pytest
from azure.data.tables.aio import TableClient

from shared.engine.records import HistoryRecord
from shared.model.job import HistoryStatus
from shared.storage.activity import ActivityRows
from tests.support.flaky_proxy import FlakyProxy
from tests.support.history import main_attempt
from tests.support.http_target import HttpTarget

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


async def test_a_count_whose_write_never_answers_holds_its_attempts_only_for_the_bound(
    azurite: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """A storage request that never answers (a dropped connection) waits the SDK's read timeout,
    300 s; the attempts whose counts it carries, and the runtime's close, wait only the bound.
    The log says so once for the write, not once per attempt (a burst of 10,000 logged 4,978
    identical warnings)."""
    silent = await HttpTarget(hang=True).start()
    connection = azurite.connection_string.replace(
        f"127.0.0.1:{azurite.ports['Table']}", f"127.0.0.1:{silent.port}"
    )
    rows = ActivityRows(TableClient.from_connection_string(connection, "Act"), wait_seconds=0.5)
    started = datetime(2030, 5, 6, 7, 30, tzinfo=UTC)
    try:
        with caplog.at_level(logging.WARNING, logger="shared.storage.activity"):
            attempts = (rows.record(attempt_at(started, False)) for _ in range(50))
            await asyncio.wait_for(asyncio.gather(*attempts), 10)
            await asyncio.wait_for(rows.close(), 10)
        assert len(silent.requests) == 1  # the write was tried, once for all 50
    finally:
        await silent.stop()
    assert [r.getMessage() for r in caplog.records if r.name == "shared.storage.activity"] == [
        "Activity counter write of 50 attempts still under way after 0.5 s",
        "Activity counters not written: storage did not answer",
    ]
