"""Queue functions on real Azurite: decoding, retries, poison, batch limits and polling."""

from __future__ import annotations

import base64
import json
import os
import time
from pathlib import Path

import pytest
from azure.core.exceptions import ResourceNotFoundError
from azure.storage.queue import TextBase64EncodePolicy
from azure.storage.queue.aio import QueueClient

from devhost.azurite import connection_string
from devhost.host import DevHost
from tests.devhost.sample_app import RECORDER, wait_until

SAMPLE = "tests.devhost.sample_app:app"


@pytest.fixture(autouse=True)
def fresh_recorder():
    RECORDER.reset()


def project(directory: Path, **queues: object) -> Path:
    settings = {"maxPollingInterval": "00:00:01", **queues}
    document = {"version": "2.0", "extensions": {"queues": settings}}
    (directory / "host.json").write_text(json.dumps(document))
    return directory


def queue_only(storage: str, queue: str, **settings: str) -> dict[str, str]:
    return {
        "SAMPLE_QUEUE": queue,
        "SampleStorage": storage,
        "AzureWebJobs.tick.Disabled": "true",
        **settings,
    }


@pytest.fixture
async def sender(storage_connection, unique_name):
    """Sends as the app would: Base64 text, which is what the host expects by default."""
    async with QueueClient.from_connection_string(
        storage_connection, unique_name, message_encode_policy=TextBase64EncodePolicy()
    ) as client:
        yield client


async def queue_is_empty(storage: str, queue: str) -> bool:
    """Counts invisible (running) messages too, so empty means deleted."""
    async with QueueClient.from_connection_string(storage, queue) as client:
        return (await client.get_queue_properties()).approximate_message_count == 0


async def poisoned(storage: str, queue: str, body: bytes) -> bool:
    """True once `<queue>-poison` holds exactly this message, still Base64 as it was sent."""
    async with QueueClient.from_connection_string(storage, f"{queue}-poison") as client:
        try:
            messages = await client.peek_messages(max_messages=32)
        except ResourceNotFoundError:
            return False
        return [m.content for m in messages] == [base64.b64encode(body).decode()]


@pytest.mark.integration
async def test_a_base64_message_is_delivered_decoded_and_deleted(
    tmp_path, storage_connection, unique_name, sender
):
    settings = queue_only(storage_connection, unique_name)
    async with DevHost(SAMPLE, project_dir=project(tmp_path), settings_overrides=settings, port=0):
        await sender.send_message("héllo {json}")
        await wait_until(lambda: len(RECORDER.of("work")) == 1)
        await wait_until(lambda: queue_is_empty(storage_connection, unique_name))

    call = RECORDER.of("work")[0]
    assert call.data["body"] == "héllo {json}"
    assert call.data["dequeue_count"] == 1


@pytest.mark.integration
async def test_messageencoding_none_passes_the_text_as_is(
    tmp_path, storage_connection, unique_name
):
    settings = queue_only(storage_connection, unique_name)
    directory = project(tmp_path, messageEncoding="none")
    async with (
        DevHost(SAMPLE, project_dir=directory, settings_overrides=settings, port=0),
        QueueClient.from_connection_string(storage_connection, unique_name) as plain,
    ):
        await plain.send_message("plain text")
        await wait_until(lambda: len(RECORDER.of("work")) == 1)

    assert RECORDER.of("work")[0].data["body"] == "plain text"


@pytest.mark.integration
async def test_a_failing_message_is_retried_after_visibility_timeout_then_poisoned(
    tmp_path, storage_connection, unique_name, sender
):
    directory = project(tmp_path, visibilityTimeout="00:00:01", maxDequeueCount=3)
    settings = queue_only(storage_connection, unique_name)
    async with DevHost(SAMPLE, project_dir=directory, settings_overrides=settings, port=0):
        await sender.send_message("fail please")
        await wait_until(lambda: len(RECORDER.of("work")) == 3)
        await wait_until(lambda: poisoned(storage_connection, unique_name, b"fail please"))
        assert await queue_is_empty(storage_connection, unique_name)

    calls = RECORDER.of("work")
    assert [c.data["dequeue_count"] for c in calls] == [1, 2, 3]
    for failed, retried in zip(calls, calls[1:], strict=False):
        assert failed.finished is not None
        assert retried.started - failed.finished > 0.8  # visibilityTimeout 1 s


@pytest.mark.integration
async def test_a_message_dequeued_too_often_goes_to_poison_without_running(
    tmp_path, storage_connection, unique_name, sender
):
    await sender.create_queue()
    await sender.send_message("tired")
    for _ in range(3):  # as if three earlier hosts had died while running it
        [message] = [m async for m in sender.receive_messages(max_messages=1)]
        await sender.update_message(message.id, message.pop_receipt, visibility_timeout=0)
    settings = queue_only(storage_connection, unique_name)
    directory = project(tmp_path, maxDequeueCount=2)
    async with DevHost(SAMPLE, project_dir=directory, settings_overrides=settings, port=0):
        await wait_until(lambda: poisoned(storage_connection, unique_name, b"tired"))

    assert RECORDER.of("work") == []


@pytest.mark.integration
async def test_batch_size_and_new_batch_threshold_bound_concurrency(
    tmp_path, storage_connection, unique_name, sender
):
    directory = project(tmp_path, batchSize=2, newBatchThreshold=1)
    settings = queue_only(storage_connection, unique_name, SAMPLE_WORK_SECONDS="0.3")
    async with DevHost(SAMPLE, project_dir=directory, settings_overrides=settings, port=0):
        for number in range(8):
            await sender.send_message(f"message {number}")
        await wait_until(
            lambda: sum(c.finished is not None for c in RECORDER.of("work")) == 8, timeout=15
        )

    # The host's limit is batchSize + newBatchThreshold running at once.
    assert 2 <= RECORDER.max_running["work"] <= 3


@pytest.mark.integration
async def test_a_delayed_message_is_picked_up_soon_after_it_becomes_visible(
    tmp_path, storage_connection, unique_name, sender
):
    settings = queue_only(storage_connection, unique_name)
    async with DevHost(SAMPLE, project_dir=project(tmp_path), settings_overrides=settings, port=0):
        sent = time.monotonic()
        await sender.send_message("later", visibility_timeout=2)
        await wait_until(lambda: len(RECORDER.of("work")) == 1, timeout=10)

    waited = RECORDER.of("work")[0].started - sent
    # Visible after ~2 s; maxPollingInterval is 1 s, so it should run before ~3 s (tolerant).
    assert 1.0 < waited < 2 + 1.5, waited


async def test_start_fails_fast_and_clearly_without_storage(tmp_path, unique_name):
    unreachable = connection_string(blob_port=1, queue_port=1, table_port=1)
    settings = queue_only(unreachable, unique_name)
    host = DevHost(SAMPLE, project_dir=project(tmp_path), settings_overrides=settings, port=0)
    started = time.monotonic()

    with pytest.raises(RuntimeError, match="Is Azurite running"):
        await host.start()

    assert time.monotonic() - started < 5
    assert "SAMPLE_QUEUE" not in os.environ  # settings are put back after a failed start


@pytest.mark.integration
async def test_a_queue_function_can_be_run_by_hand(tmp_path, storage_connection, unique_name):
    settings = queue_only(storage_connection, unique_name)
    async with DevHost(
        SAMPLE, project_dir=project(tmp_path), settings_overrides=settings, port=0
    ) as host:
        succeeded = await host.invoke("work", "by hand")
        failed = await host.invoke("work", "fail by hand")

    assert succeeded.succeeded
    assert not failed.succeeded
    assert [c.data["body"] for c in RECORDER.of("work")] == ["by hand", "fail by hand"]
