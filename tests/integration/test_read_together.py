"""A crowded second's point reads made together (shared/engine/read_together.py): runs and
jobs read many to a query, each reader given its own row, on Azurite."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from shared.clock import FixedClock
from shared.engine.read_together import ReadTogether
from shared.engine.records import StoredJob
from shared.errors import StorageError
from shared.names import CollectionRef
from shared.timefmt import to_iso
from tests.integration.test_bursts import create_burst

pytestmark = pytest.mark.integration

REF = CollectionRef.parse("together")
DUE = datetime(2031, 6, 2, 9, 0, 0, tzinfo=UTC)


async def test_many_runs_are_read_14_to_a_query_each_as_its_own_point_read(runtimes, target):
    clock = FixedClock(DUE - timedelta(days=1))
    runtime = await runtimes(clock=clock)
    await create_burst(runtime, target, 30, DUE)
    clock.set(DUE - timedelta(seconds=30))
    assert (await runtime.dispatcher.dispatch_due()).dispatched == 30
    burst = CollectionRef.parse("burst").key
    runs = [run for i in range(30) for run in await runtime.store.runs_of(burst, f"b{i:04d}")]
    keys = [(burst, run.row_key) for run in runs]
    queries: list[str] = []
    table = runtime.store.table_for(burst)
    query_entities = table.query_entities

    def spy(query_filter: str, **kwargs: Any) -> Any:
        queries.append(query_filter)
        return query_entities(query_filter, **kwargs)

    table.query_entities = spy
    found = await runtime.store.get_runs([*keys, (burst, "run|missing")])

    assert len(queries) == 3  # 31 keys of one partition
    assert sorted(found) == sorted(keys)
    for collection, row_key in keys:
        assert found[(collection, row_key)] == await runtime.store.get_run(collection, row_key)


async def test_reads_asked_for_together_are_made_in_one_batched_read(runtimes, target):
    runtime = await runtimes()
    await runtime.jobs.put_collection(REF, {"properties": {"state": "Enabled"}})
    later = to_iso(datetime.now(UTC) + timedelta(days=3))
    body = {
        "properties": {
            "startTime": later,
            "action": {"type": "Http", "request": {"uri": f"{target.url}/x", "method": "GET"}},
        }
    }
    names = [f"j{i:02d}" for i in range(20)]
    for name in names:
        await runtime.jobs.put_job(REF, name, body)
    batches: list[list[tuple[str, str]]] = []

    async def get_jobs(keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], StoredJob]:
        batches.append(list(keys))
        found: dict[tuple[str, str], StoredJob] = await runtime.store.get_jobs(batches[-1])
        return found

    reads = ReadTogether(get_jobs)
    asked = [(REF.key, name) for name in [*names, *names[:5], "missing"]]

    found = await asyncio.gather(*(reads.get(key) for key in asked))

    assert len(batches) == 1 and sorted(batches[0]) == sorted(set(asked))
    for (collection, name), job in zip(asked, found, strict=True):
        if name == "missing":
            assert job is None
        else:
            assert job == await runtime.store.get_job(collection, name)
    # Reads asked for later make a read of their own.
    assert (await reads.get((REF.key, "j00"))) == found[0]
    assert len(batches) == 2


async def test_a_storage_fault_reaches_every_reader_and_the_next_read_is_fresh() -> None:
    calls = 0

    async def flaky(keys: Iterable[str]) -> dict[str, int]:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise StorageError("the table is busy")
        return {key: len(key) for key in keys}

    reads: ReadTogether[str, int] = ReadTogether(flaky)
    outcomes = await asyncio.gather(*(reads.get(k) for k in ("a", "bb")), return_exceptions=True)
    assert all(isinstance(o, StorageError) for o in outcomes)
    assert [await reads.get("a"), await reads.get("bb")] == [1, 2]


async def test_a_cancelled_reader_does_not_disturb_the_others() -> None:
    started, release = asyncio.Event(), asyncio.Event()

    async def slow(keys: Iterable[str]) -> dict[str, int]:
        started.set()
        await release.wait()
        return dict.fromkeys(keys, 1)

    reads: ReadTogether[str, int] = ReadTogether(slow)
    gone = asyncio.create_task(reads.get("a"))
    kept = asyncio.create_task(reads.get("b"))
    await started.wait()  # the read is under way
    gone.cancel()
    release.set()
    assert await kept == 1
    with pytest.raises(asyncio.CancelledError):
        await gone
