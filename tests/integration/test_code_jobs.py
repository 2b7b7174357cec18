"""Code jobs against Azurite (tables, queue and blobs): handlers registered by name, their
output kept in append blobs, readable during the run, capped and pruned, and the feed sample."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from shared.engine.dispatcher import message_for
from shared.kinds.code import CodeContext, register_handler, unregister_handler
from shared.model.job import ActionName, HistoryStatus
from shared.names import CollectionRef
from shared.samples.feed_poll import feed_poll
from shared.storage.app_clients import AppStorageClients
from shared.storage.output import output_container, output_name_of_key
from shared.timefmt import compact, to_iso
from tests.support.engine import api_client, work_queue
from tests.support.feed_server import FeedServer

pytestmark = pytest.mark.integration

REF = CollectionRef.parse("code")
COLLECTION = REF.key
BASE = "/api/jobCollections/code/jobs"


@pytest.fixture
def handlers() -> Iterator[Callable[[str, Any], None]]:
    """Registers handlers for one test and forgets them after."""
    names: list[str] = []

    def register(name: str, function: Any) -> None:
        register_handler(name, function)
        names.append(name)

    yield register
    for name in names:
        unregister_handler(name)


def code_job(name: str, due: datetime, **extra: Any) -> dict[str, Any]:
    action: dict[str, Any] = {"type": "Code", "code": {"handler": name, **extra.pop("code", {})}}
    action.update(extra.pop("action", {}))
    return {"properties": {"startTime": to_iso(due), "action": action, **extra}}


def soon() -> datetime:
    return (datetime.now(UTC) + timedelta(seconds=1)).replace(microsecond=0)


async def start_job(runtime: Any, job: str, body: dict[str, Any]) -> None:
    await runtime.jobs.put_collection(REF, {"properties": {"state": "Enabled"}})
    await runtime.jobs.put_job(REF, job, body)


async def history_of(runtime: Any, job: str) -> list[Any]:
    records, _ = await runtime.store.history(COLLECTION, job, top=100)
    return list(records)


async def run_until_rows(runtime: Any, job: str, rows: int, timeout: float = 30) -> list[Any]:
    async def enough() -> bool:
        return len(await history_of(runtime, job)) >= rows

    await work_queue(runtime, enough, timeout=timeout)
    return await history_of(runtime, job)


async def output_text(runtime: Any, record: Any) -> str:
    name = output_name_of_key(COLLECTION, record.row_key)
    found = await runtime.store.outputs.read(name)
    assert found is not None, "no output blob"
    return str(found.data.decode())


async def test_a_handler_s_logs_prints_and_result_are_its_output_linked_from_history(
    runtimes, handlers
):
    def greet(ctx: CodeContext) -> dict[str, Any]:  # sync: runs in a thread of its own
        ctx.log.info("hello %s", ctx.arguments["who"])
        print("printed line")
        return {"greeted": ctx.arguments["who"], "attempt": ctx.attempt}

    handlers("greet", greet)
    runtime = await runtimes()
    await start_job(runtime, "greet", code_job("greet", soon(), code={"arguments": {"who": "x"}}))
    [record] = await run_until_rows(runtime, "greet", 1)

    assert record.properties.status is HistoryStatus.COMPLETED
    assert record.properties.message == (
        'Code Action - handler \'greet\' returned {"greeted": "x", "attempt": 0}'
    )
    text = await output_text(runtime, record)
    lines = text.splitlines()
    assert any(line.endswith(" INFO hello x") for line in lines)
    assert any(line.endswith(" OUT printed line") for line in lines)
    assert lines[-1].endswith('INFO Returned {"greeted": "x", "attempt": 0}')
    assert all(line[:4].isdigit() and line[23] == "Z" for line in lines), "time-stamped"

    async with api_client(runtime) as client:
        listed = (await client.get(f"{BASE}/greet/history")).json()["value"]
        url = listed[0]["properties"]["output"]
        assert url == f"http://test{BASE}/greet/history/{record.public_id}/output"
        whole = await client.get(url)
        assert whole.status_code == 200 and whole.text == text
        assert whole.headers["x-output-ended"] == "true"
        assert whole.headers["content-type"].startswith("text/plain")
        part = await client.get(url, headers={"Range": "bytes=0-9"})
        assert part.status_code == 206 and part.content == text.encode()[:10]
        assert part.headers["content-range"] == f"bytes 0-9/{len(text.encode())}"
        tail = await client.get(url, headers={"Range": "bytes=-5"})
        assert tail.status_code == 206 and tail.content == text.encode()[-5:]
        beyond = await client.get(url, headers={"Range": f"bytes={len(text.encode())}-"})
        assert beyond.status_code == 416
        assert beyond.headers["content-range"] == f"bytes */{len(text.encode())}"
        bad = await client.get(url, headers={"Range": "lines=1-2"})
        assert bad.status_code == 400 and bad.json()["error"]["target"] == "Range"


async def test_a_raising_handler_is_retried_then_its_error_action_runs(runtimes, handlers):
    alerts: list[str] = []

    async def broken(ctx: CodeContext) -> None:
        raise ValueError(f"broken on attempt {ctx.attempt}")

    async def alert(ctx: CodeContext) -> str:
        alerts.append(ctx.job)
        return "alerted"

    handlers("broken", broken)
    handlers("alert", alert)
    runtime = await runtimes()
    body = code_job(
        "broken",
        soon(),
        action={
            "retryPolicy": {"retryType": "Fixed", "retryInterval": "PT1S", "retryCount": 1},
            "errorAction": {"type": "Code", "code": {"handler": "alert"}},
        },
    )
    await start_job(runtime, "broken", body)
    rows = await run_until_rows(runtime, "broken", 3)

    phases = sorted((r.properties.action_name, r.properties.retry_count) for r in rows)
    assert phases == [
        (ActionName.ERROR_ACTION, 0),
        (ActionName.MAIN_ACTION, 0),
        (ActionName.MAIN_ACTION, 1),
    ]
    main = [r for r in rows if r.properties.action_name is ActionName.MAIN_ACTION]
    for record in main:
        assert record.properties.status is HistoryStatus.FAILED
        assert "raised ValueError: broken on attempt" in record.properties.message
        text = await output_text(runtime, record)
        assert "Traceback (most recent call last)" in text and "ValueError" in text
    assert alerts == ["broken"]
    stored = await runtime.store.get_job(COLLECTION, "broken")
    [shown] = await runtime.store.with_status([stored])
    assert (shown.status.failure_count, shown.status.faulted_count) == (2, 1)


async def test_an_async_handler_past_its_timeout_is_cancelled(runtimes, handlers):
    cancelled = asyncio.Event()

    async def slow(ctx: CodeContext) -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    handlers("slow", slow)
    runtime = await runtimes()
    await start_job(runtime, "slow", code_job("slow", soon(), code={"timeoutSeconds": 1}))
    [record] = await run_until_rows(runtime, "slow", 1)

    assert cancelled.is_set()
    assert record.properties.status is HistoryStatus.FAILED
    assert record.properties.message == "Code Action - handler 'slow' timed out after 1 s"
    assert "ERROR Timed out after 1 s" in await output_text(runtime, record)


async def test_a_sync_handler_past_its_timeout_is_abandoned(runtimes, handlers):
    release = threading.Event()
    finished = threading.Event()

    def stuck(ctx: CodeContext) -> None:
        release.wait(30)
        print("after the deadline")  # dropped: the attempt is over
        finished.set()

    handlers("stuck", stuck)
    runtime = await runtimes()
    await start_job(runtime, "stuck", code_job("stuck", soon(), code={"timeoutSeconds": 1}))
    [record] = await run_until_rows(runtime, "stuck", 1)

    assert record.properties.status is HistoryStatus.FAILED
    assert "timed out after 1 s" in record.properties.message
    assert not finished.is_set(), "the thread is still running, abandoned"
    release.set()
    assert await asyncio.to_thread(finished.wait, 10)
    assert "after the deadline" not in await output_text(runtime, record)


async def test_an_unknown_handler_is_refused_with_the_names_available(runtimes, handlers):
    handlers("known-one", lambda ctx: None)
    runtime = await runtimes()
    await runtime.jobs.put_collection(REF, {"properties": {"state": "Enabled"}})
    async with api_client(runtime) as client:
        answer = await client.put(f"{BASE}/nope", json=code_job("missing", soon()))
    assert answer.status_code == 400
    error = answer.json()["error"]
    text = str(error)
    assert "properties.action.code.handler" in text
    assert "'missing' is not registered" in text and "known-one" in text


async def test_output_is_readable_while_the_handler_runs(runtimes, handlers):
    go_on = asyncio.Event()

    async def waits(ctx: CodeContext) -> str:
        ctx.log.info("halfway")
        await go_on.wait()
        ctx.log.info("done")
        return "ok"

    handlers("waits", waits)
    runtime = await runtimes()
    due = soon()
    await start_job(runtime, "waits", code_job("waits", due))
    worker = asyncio.create_task(run_until_rows(runtime, "waits", 1))
    url = f"{BASE}/waits/history/current-{compact(due)}-m000/output"
    async with api_client(runtime) as client:
        seen = b""
        while b"halfway" not in seen:  # long polling: each call waits for new bytes
            if worker.done():
                worker.result()
            answer = await client.get(url, params={"follow": "true", "offset": len(seen)})
            if answer.status_code == 404:  # the attempt has not started yet
                await asyncio.sleep(0.1)
                continue
            assert answer.status_code == 200
            assert answer.headers["x-output-ended"] == "false"
            seen += answer.content
            assert int(answer.headers["x-output-next-offset"]) == len(seen)
        assert b"done" not in seen
        go_on.set()
        [record] = await worker
        while True:
            answer = await client.get(url, params={"follow": "true", "offset": len(seen)})
            seen += answer.content
            if answer.headers["x-output-ended"] == "true" and not answer.content:
                break
    assert seen.decode() == await output_text(runtime, record)
    assert b"INFO done" in seen


async def test_output_past_the_cap_ends_with_one_marker(runtimes, handlers):
    def chatty(ctx: CodeContext) -> str:
        for number in range(200):
            print(f"line {number:04d} " + "x" * 40)
        return "done"

    handlers("chatty", chatty)
    runtime = await runtimes(output_max_bytes=2048)
    await start_job(runtime, "chatty", code_job("chatty", soon()))
    [record] = await run_until_rows(runtime, "chatty", 1)

    assert record.properties.status is HistoryStatus.COMPLETED
    text = await output_text(runtime, record)
    lines = text.splitlines()
    assert lines, (record.properties.message, text)
    assert lines[-1].endswith("[output truncated at 2048 bytes]")
    assert text.count("output truncated") == 1
    assert len(text.encode()) - len(lines[-1]) - 1 <= 2048
    assert "Returned" not in text


async def test_pruned_history_rows_take_their_output_with_them(
    runtimes, handlers, storage_connection
):
    calls: list[int] = []
    handlers("tiny", lambda ctx: calls.append(ctx.attempt))
    # One row kept: every attempt prunes (housekeeping runs each time at this limit).
    runtime = await runtimes(history_max_rows=1)
    await start_job(runtime, "tiny", code_job("tiny", soon()))
    clients = AppStorageClients.from_connection_string(storage_connection)
    container = clients.blobs.get_container_client(output_container(runtime.settings.table_prefix))

    async def blobs() -> list[str]:
        return [b.name async for b in container.list_blobs()]

    async def settled(attempts: int) -> bool:
        rows = await history_of(runtime, "tiny")
        return len(calls) == attempts and len(rows) == 1 and len(await blobs()) == 1

    try:
        await work_queue(runtime, lambda: settled(1))
        [first] = await blobs()
        for attempts in (2, 3):
            await runtime.jobs.run_on_demand(REF, "tiny")
            await work_queue(runtime, lambda n=attempts: settled(n))  # type: ignore[misc]
        [record] = await history_of(runtime, "tiny")
        assert await blobs() == [output_name_of_key(COLLECTION, record.row_key)]
        assert first not in await blobs()
    finally:
        await clients.close()


async def test_the_feed_sample_stores_each_new_item_once(runtimes, handlers, storage_connection):
    handlers("feed-poll", feed_poll)
    feed = await FeedServer(items=["1", "2"]).start()
    runtime = await runtimes()
    table = "feed" + runtime.settings.table_prefix
    arguments = {"url": feed.url, "table": table}
    try:
        await start_job(
            runtime, "feed", code_job("feed-poll", soon(), code={"arguments": arguments})
        )
        [first] = await run_until_rows(runtime, "feed", 1)
        assert first.properties.status is HistoryStatus.COMPLETED, first.properties.message
        assert '"new": 2' in first.properties.message
        assert "2 new item(s) of 2" in await output_text(runtime, first)

        await runtime.jobs.run_on_demand(REF, "feed")  # unchanged: a 304
        rows = await run_until_rows(runtime, "feed", 2)
        assert '"status": 304' in rows[0].properties.message

        feed.items += ["3"]
        await runtime.jobs.run_on_demand(REF, "feed")
        rows = await run_until_rows(runtime, "feed", 3)
        assert '"new": 1' in rows[0].properties.message

        # A retried attempt (the state row lost, as if the earlier attempt died before it)
        # fetches everything again and stores nothing twice.
        clients = AppStorageClients.from_connection_string(storage_connection)
        try:
            state = clients.tables.get_table_client(table)
            async for row in state.query_entities("PartitionKey eq 'feed-state'"):
                await state.delete_entity(row["PartitionKey"], row["RowKey"])
            await runtime.jobs.run_on_demand(REF, "feed")
            rows = await run_until_rows(runtime, "feed", 4)
            assert '"new": 0' in rows[0].properties.message
            items = [row async for row in state.query_entities("PartitionKey ne 'feed-state'")]
        finally:
            await clients.close()
        assert sorted(row["title"] for row in items) == ["Item 1", "Item 2", "Item 3"]
        assert feed.answers == [200, 304, 200, 200]
    finally:
        await feed.stop()


async def test_a_replaced_code_job_s_history_row_links_the_output_it_wrote(runtimes, handlers):
    started = asyncio.Event()

    async def waits(ctx: CodeContext) -> None:
        ctx.log.info("working")
        if not started.is_set():  # the first run works until it is cancelled
            started.set()
            await asyncio.Event().wait()

    handlers("waits", waits)
    runtime = await runtimes()
    never = datetime(2099, 1, 1, tzinfo=UTC)  # on-demand runs only
    await start_job(runtime, "waits", code_job("waits", never, overlap="Replace"))
    job = await runtime.store.get_job(COLLECTION, "waits")
    assert job is not None
    first = await runtime.dispatcher.run_on_demand(job)
    running = asyncio.create_task(runtime.executor.execute(message_for(first)))
    await started.wait()
    second = await runtime.dispatcher.run_on_demand(job)  # it replaces the first run
    await runtime.executor.execute(message_for(second))
    await running
    rows = await history_of(runtime, "waits")
    [replaced] = [r for r in rows if r.properties.status is HistoryStatus.CANCELLED]
    assert replaced.properties.message.startswith("Cancelled: replaced by")
    assert replaced.output, "the attempt wrote its output; its row links it"
    assert "INFO working" in await output_text(runtime, replaced)
