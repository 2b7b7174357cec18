"""The activity counters' table client closes everything it opened: a runtime closed after use
leaves no HTTP session behind (it did: the client came from a service client nobody closed)."""

from __future__ import annotations

import asyncio
import gc
from typing import Any

import pytest

from shared.storage.activity import ActivityRows

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
