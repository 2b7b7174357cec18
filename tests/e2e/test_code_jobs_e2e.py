"""Code jobs end to end: a real `python -m devhost` process runs the user's app
(tests/e2e/code_app: function_app plus the user's own handlers), driven over HTTP with a
function key; its timer dispatches and its queue triggers run the attempts.

Handlers succeed, fail with retries and an error action, time out; the feed sample stores only
new items across runs and a retried attempt; output is read while an attempt runs (long
polling, Range), capped, and pruned with the history; the overlap policies hold."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from azure.data.tables.aio import TableClient

from devhost.azurite import Azurite
from shared.timefmt import compact, to_iso
from tests.e2e.code_jobs_support import (
    CODE_APP,
    code_job,
    create,
    history,
    history_rows,
    host_settings,
    new_collection,
    new_prefix,
    run_now,
    until,
)
from tests.support.devhost_process import DevhostProcess, start_devhost
from tests.support.feed_server import FeedServer
from tests.support.http_target import HttpTarget

pytestmark = pytest.mark.e2e

OUTPUT_MAX_BYTES = 2048
HISTORY_MAX_ROWS = 5  # every attempt prunes (one in max(1, rows // 20))


@pytest.fixture(scope="module")
def app(azurite: Azurite, tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevhostProcess]:
    """One devhost process for the module (it takes seconds to start); each test its own
    collection."""
    settings = host_settings(
        azurite.connection_string,
        new_prefix(),
        SCHEDULER_OUTPUT_MAX_BYTES=str(OUTPUT_MAX_BYTES),
        SCHEDULER_HISTORY_MAX_ROWS=str(HISTORY_MAX_ROWS),
    )
    process = start_devhost(tmp_path_factory.mktemp("codeapp"), settings, app=CODE_APP)
    yield process
    process.stop()


@pytest.fixture
async def held() -> AsyncIterator[HttpTarget]:
    """A server that answers only once released: a handler calling it is still running."""
    target = await HttpTarget(hold=True).start()
    yield target
    target.release()
    await target.stop()


async def output_of(api: Any, row: dict[str, Any]) -> str:
    answer = await api.get(row["properties"]["output"])
    assert answer.status_code == 200, answer.text
    assert answer.headers["X-Output-Ended"] == "true"
    return str(answer.text)


async def test_without_the_function_key_the_api_is_refused(app: DevhostProcess):
    async with app.client() as api:
        api.headers.pop("x-functions-key")
        assert (await api.get("/jobCollections")).status_code == 401


async def test_a_handler_succeeds_and_its_history_row_links_its_output(app: DevhostProcess):
    collection = new_collection()
    async with app.client() as api:
        await create(api, collection, "greet", code_job("greet", arguments={"name": "devhost"}))
        await run_now(api, collection, "greet")
        [row] = await history_rows(api, collection, "greet", 1)
        properties = row["properties"]
        assert properties["status"] == "Completed", properties
        assert properties["message"] == "Run on demand. " + (
            """Code Action - handler 'greet' returned {"greeted": "devhost", "attempt": 0}"""
        )
        assert properties["onDemand"] is True
        text = await output_of(api, row)
        assert "INFO Handler 'greet' attempt 0 started" in text
        assert "INFO greeting devhost" in text
        assert "OUT hello, devhost" in text
        assert """INFO Returned {"greeted": "devhost", "attempt": 0}""" in text


async def test_a_failing_handler_is_retried_then_its_error_action_calls_out(
    app: DevhostProcess,
):
    alert = await HttpTarget().start()
    collection = new_collection()
    body = code_job(
        "fail",
        retryPolicy={"retryType": "Fixed", "retryInterval": "PT1S", "retryCount": 1},
        errorAction={
            "type": "Http",
            "request": {"uri": f"{alert.url}/alert", "method": "POST", "body": "fail failed"},
            "retryPolicy": {"retryType": "None"},
        },
    )
    try:
        async with app.client() as api:
            await create(api, collection, "fail", body)
            await run_now(api, collection, "fail")
            [alerted] = await alert.wait_for(1)
            assert alerted.body == "fail failed" and alerted.path == "/alert"
            rows = await history_rows(api, collection, "fail", 3)
            main = [r for r in rows if r["properties"]["actionName"] == "MainAction"]
            error = [r for r in rows if r["properties"]["actionName"] == "ErrorAction"]
            assert [r["properties"]["status"] for r in main] == ["Failed", "Failed"]
            assert [r["properties"]["retryCount"] for r in main] == [1, 0]
            assert main[0]["properties"]["message"].endswith(
                "Code Action - handler 'fail' raised RuntimeError: boom on attempt 1"
            )
            assert [r["properties"]["status"] for r in error] == ["Completed"]
            first = await output_of(api, main[1])
            assert "WARNING attempt 0 is about to fail" in first
            assert "RuntimeError: boom on attempt 0" in first and "Traceback" in first
            job = (await api.get(f"/jobCollections/{collection}/jobs/fail")).json()
            assert job["properties"]["status"]["failureCount"] >= 1
    finally:
        await alert.stop()


async def test_a_handler_past_its_timeout_is_cancelled_as_a_failed_attempt(app: DevhostProcess):
    collection = new_collection()
    async with app.client() as api:
        body = code_job("sleep", arguments={"seconds": 30}, timeoutSeconds=1)
        await create(api, collection, "sleep", body)
        await run_now(api, collection, "sleep")
        [row] = await history_rows(api, collection, "sleep", 1, timeout=20)
        assert row["properties"]["status"] == "Failed"
        assert row["properties"]["message"].endswith(
            "Code Action - handler 'sleep' timed out after 1 s"
        )
        text = await output_of(api, row)
        assert "INFO sleeping 30 s" in text and "ERROR Timed out after 1 s" in text
        assert "woke up" not in text


async def test_an_unknown_handler_is_a_400_listing_the_user_s_handlers(app: DevhostProcess):
    async with app.client() as api:
        collection = new_collection()
        await api.put(f"/jobCollections/{collection}", json={})
        answer = await api.put(f"/jobCollections/{collection}/jobs/nope", json=code_job("nope"))
        assert answer.status_code == 400
        message = answer.text
        assert "properties.action.code.handler" in message
        for name in ("greet", "fail", "feed-poll", "feed-poll-once-failing"):
            assert name in message


async def stored_items(connection: str, table: str) -> list[str]:
    async with TableClient.from_connection_string(connection, table) as client:
        return [
            str(entity["title"])
            async for entity in client.list_entities()
            if entity["PartitionKey"] != "feed-state"
        ]


async def test_the_feed_sample_stores_only_new_items_across_runs_and_a_retry(
    app: DevhostProcess, azurite: Azurite
):
    feed = await FeedServer(items=["1", "2"]).start()
    collection = new_collection()
    table = "feed" + collection.replace("-", "")
    arguments = {"url": feed.url, "table": table}
    retried = {"retryType": "Fixed", "retryInterval": "PT1S", "retryCount": 1}
    try:
        async with app.client() as api:
            await create(api, collection, "poll", code_job("feed-poll", arguments=arguments))
            flaky = code_job("feed-poll-once-failing", arguments=arguments, retryPolicy=retried)
            await create(api, collection, "flaky", flaky)

            await run_now(api, collection, "poll")  # two new items
            [first] = await history_rows(api, collection, "poll", 1)
            assert '"new": 2' in first["properties"]["message"]
            await run_now(api, collection, "poll")  # unchanged: the ETag gives a 304
            second, _ = await history_rows(api, collection, "poll", 2)
            assert '"status": 304, "new": 0' in second["properties"]["message"]
            assert feed.answers == [200, 304]

            feed.items.append("3")  # the first attempt stores it, then fails; the retry
            await run_now(api, collection, "flaky")  # asks with the ETag stored: 304
            retry, failed = await history_rows(api, collection, "flaky", 2)
            assert failed["properties"]["status"] == "Failed"
            assert "failing after storing 1 new item(s)" in failed["properties"]["message"]
            assert retry["properties"]["status"] == "Completed"
            assert '"status": 304, "new": 0' in retry["properties"]["message"]
            assert feed.answers == [200, 304, 200, 304]

            feed.items.append("4")  # a feed that ignores If-None-Match: the retry gets the
            feed.conditional = False  # whole feed again and stores none of it twice
            await run_now(api, collection, "flaky")
            rows = await history_rows(api, collection, "flaky", 4)
            retry, failed = rows[0], rows[1]
            assert "failing after storing 1 new item(s)" in failed["properties"]["message"]
            assert '"status": 200, "new": 0, "items": 4' in retry["properties"]["message"]
            assert "INFO 0 new item(s) of 4 in the feed" in await output_of(api, retry)
        titles = await stored_items(azurite.connection_string, table)
        assert sorted(titles) == ["Item 1", "Item 2", "Item 3", "Item 4"]
    finally:
        await feed.stop()


async def test_output_is_followed_while_the_attempt_runs_and_read_by_range_after(
    app: DevhostProcess, held: HttpTarget
):
    collection = new_collection()
    due = (datetime.now(UTC) + timedelta(seconds=3)).replace(microsecond=0)
    body = code_job("call", start=to_iso(due), arguments={"url": f"{held.url}/hold"})
    async with app.client() as api:
        await create(api, collection, "call", body)
        await held.wait_for(1)  # the timer's occurrence is running, its call held
        running = f"/jobCollections/{collection}/jobs/call/history/current-{compact(due)}-m000"
        seen = b""
        while b"calling on attempt 0" not in seen:  # long polling: answers on new bytes
            answer = await api.get(
                f"{running}/output", params={"follow": "true", "offset": len(seen)}
            )
            assert answer.status_code == 200, answer.text
            assert answer.headers["X-Output-Ended"] == "false"
            seen += answer.content
            assert int(answer.headers["X-Output-Next-Offset"]) == len(seen)
        partial = await api.get(f"{running}/output", headers={"Range": "bytes=0-9"})
        assert partial.status_code == 206 and partial.content == seen[:10]
        assert partial.headers["Content-Range"].startswith("bytes 0-9/")
        assert partial.headers["X-Output-Ended"] == "false"
        assert b"answered" not in seen

        held.release()
        while True:
            answer = await api.get(
                f"{running}/output", params={"follow": "true", "offset": len(seen)}
            )
            seen += answer.content
            if answer.headers["X-Output-Ended"] == "true" and not answer.content:
                break
        [row] = await history_rows(api, collection, "call", 1)
        assert row["properties"]["status"] == "Completed"
        whole = await api.get(row["properties"]["output"])
        assert whole.content == seen and b"INFO answered 200" in seen
        tail = await api.get(row["properties"]["output"], headers={"Range": "bytes=-12"})
        assert tail.status_code == 206 and tail.content == seen[-12:]
        beyond = await api.get(
            row["properties"]["output"], headers={"Range": f"bytes={len(seen)}-"}
        )
        assert beyond.status_code == 416
        assert beyond.headers["Content-Range"] == f"bytes */{len(seen)}"
        bad = await api.get(row["properties"]["output"], headers={"Range": "lines=1-2"})
        assert bad.status_code == 400 and "Range" in bad.text


async def test_output_past_the_cap_ends_with_one_marker(app: DevhostProcess):
    collection = new_collection()
    async with app.client() as api:
        await create(api, collection, "chatty", code_job("chatty", arguments={"lines": 200}))
        await run_now(api, collection, "chatty")
        [row] = await history_rows(api, collection, "chatty", 1)
        assert row["properties"]["status"] == "Completed"  # never blocked by its output
        text = await output_of(api, row)
        lines = text.splitlines()
        assert lines[-1].endswith(f"WARN [output truncated at {OUTPUT_MAX_BYTES} bytes]")
        assert sum("truncated" in line for line in lines) == 1
        assert len(text.encode()) - len(lines[-1]) - 1 <= OUTPUT_MAX_BYTES
        assert "OUT line 0000" in text and "line 0199" not in text


async def test_pruned_history_rows_take_their_output_with_them(app: DevhostProcess):
    collection = new_collection()
    async with app.client() as api:
        await create(api, collection, "greet", code_job("greet"))
        await run_now(api, collection, "greet")
        [oldest] = await history_rows(api, collection, "greet", 1)
        link = oldest["properties"]["output"]
        assert (await api.get(link)).status_code == 200
        for _ in range(HISTORY_MAX_ROWS):
            await run_now(api, collection, "greet")

        async def pruned() -> bool:
            return (await api.get(link)).status_code == 404

        await until(pruned)
        rows = await history(api, collection, "greet")
        assert len(rows) == HISTORY_MAX_ROWS and oldest["id"] not in [r["id"] for r in rows]
        for row in rows:
            assert (await api.get(row["properties"]["output"])).status_code == 200


async def test_overlap_allow_runs_two_at_once(app: DevhostProcess, held: HttpTarget):
    collection = new_collection()
    async with app.client() as api:
        await create(api, collection, "call", code_job("call", arguments={"url": held.url}))
        await run_now(api, collection, "call")
        await run_now(api, collection, "call")
        await held.wait_for(2)  # both attempts are in their call at once
        held.release()
        rows = await history_rows(api, collection, "call", 2)
        assert [r["properties"]["status"] for r in rows] == ["Completed", "Completed"]


async def test_overlap_forbid_skips_the_newcomer_and_says_so(app: DevhostProcess, held: HttpTarget):
    collection = new_collection()
    body = code_job("call", arguments={"url": held.url}, overlap="Forbid")
    async with app.client() as api:
        await create(api, collection, "call", body)
        await run_now(api, collection, "call")
        await held.wait_for(1)
        await run_now(api, collection, "call")
        [skipped] = await history_rows(api, collection, "call", 1)
        assert skipped["properties"]["status"] == "Cancelled"
        message = skipped["properties"]["message"]
        assert message.startswith("Skipped: the previous occurrence") and "Forbid" in message
        assert len(held.requests) == 1
        held.release()
        rows = await history_rows(api, collection, "call", 2)
        assert sorted(r["properties"]["status"] for r in rows) == ["Cancelled", "Completed"]
        assert len(held.requests) == 1


async def test_overlap_replace_cancels_the_running_code_job(app: DevhostProcess, held: HttpTarget):
    collection = new_collection()
    body = code_job("call", arguments={"url": held.url}, overlap="Replace")
    async with app.client() as api:
        await create(api, collection, "call", body)
        await run_now(api, collection, "call")
        await held.wait_for(1)
        await run_now(api, collection, "call")
        await held.wait_disconnected(1)  # the first handler's call was cancelled
        await held.wait_for(2)  # and the newcomer runs
        held.release()
        rows = await history_rows(api, collection, "call", 2)
        by_status = {r["properties"]["status"]: r for r in rows}
        assert set(by_status) == {"Cancelled", "Completed"}
        replaced = by_status["Cancelled"]["properties"]["message"]
        assert replaced.startswith("Cancelled: replaced by") and "Replace" in replaced
        assert "answered" not in await output_of(api, by_status["Cancelled"])
