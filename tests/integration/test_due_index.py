"""`DueIndex.indexed_write` against Azurite: the one order "index, write, unindex" that the API,
the dispatcher and a job's delete share, so a crash between two steps never loses a due row."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from shared.engine.records import DueEntry
from shared.names import CollectionRef
from shared.runtime import Runtime

pytestmark = pytest.mark.integration

COLLECTION = CollectionRef.parse("main").key
NOW = datetime(2031, 3, 1, 12, 0, 0, tzinfo=UTC)
OLD = DueEntry(NOW + timedelta(minutes=1), COLLECTION, "job")
NEW = DueEntry(NOW + timedelta(minutes=2), COLLECTION, "job")


class WriteFailed(Exception):
    """Stands for a write that lost a race or died midway."""


async def _due(runtime: Runtime) -> list[DueEntry]:
    return (await runtime.store.scan(NOW + timedelta(days=1), now=NOW)).entries


async def test_the_new_row_is_indexed_before_the_write_and_the_old_one_unindexed_after(
    runtimes,
) -> None:
    runtime = await runtimes()
    await runtime.store.put_due(OLD, NOW)
    seen_by_the_write: list[DueEntry] = []

    async def write() -> str:
        seen_by_the_write.extend(await _due(runtime))
        return "written"

    result = await runtime.store.due_index.indexed_write(
        write, index=[NEW], unindex=lambda written: [OLD] if written else [], now=NOW
    )

    assert result == "written"
    assert seen_by_the_write == [OLD, NEW]
    assert await _due(runtime) == [NEW]


async def test_a_write_that_fails_unindexes_nothing(runtimes) -> None:
    runtime = await runtimes()
    await runtime.store.put_due(OLD, NOW)

    async def write() -> None:
        raise WriteFailed

    with pytest.raises(WriteFailed):
        await runtime.store.due_index.indexed_write(
            write, index=[NEW], unindex=lambda _: [OLD], now=NOW
        )

    assert await _due(runtime) == [OLD, NEW]  # an extra row, dropped when it comes due


async def test_a_row_both_indexed_and_unindexed_stays(runtimes) -> None:
    """A job rewritten with the same next occurrence keeps its row."""
    runtime = await runtimes()
    await runtime.store.put_due(OLD, NOW)

    async def write() -> None:
        return None

    await runtime.store.due_index.indexed_write(
        write, index=[OLD], unindex=lambda _: [OLD], now=NOW
    )

    assert await _due(runtime) == [OLD]


async def test_indexing_without_the_current_time_is_refused_before_the_write(runtimes) -> None:
    runtime = await runtimes()
    called = False

    async def write() -> None:
        nonlocal called
        called = True

    with pytest.raises(ValueError, match="current time"):
        await runtime.store.due_index.indexed_write(write, index=[NEW], unindex=lambda _: [])

    assert not called
    assert await _due(runtime) == []
