"""Action runners against real targets: HTTP servers on 127.0.0.1 and the test Azurite's queues."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from azure.storage.queue.aio import QueueClient

from shared.config import Settings
from shared.kinds.base import ActionContext
from shared.kinds.http.runner import HttpActionRunner
from shared.kinds.registry import KindRegistry, KindRunners, known_kinds
from shared.kinds.storage_queue import StorageQueueActionRunner
from shared.model.actions import JobAction
from tests.support.actions import queue_message_of

pytestmark = pytest.mark.integration

EXPECTED = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
BIG_BODY = ("x" * 1000 + "\n") * 100  # ~100 KB
SETTING = "TargetQueueStorage"
# The targets are on 127.0.0.1, which the network guard refuses unless allowed; jobs may use the
# queue connection SETTING only because it is listed.
ALLOW_LOOPBACK = {
    "SCHEDULER_ALLOWED_NETWORKS": "loopback",
    "SCHEDULER_QUEUE_CONNECTIONS": SETTING,
}
STORAGE = {"AzureWebJobsStorage": "UseDevelopmentStorage=true"}  # the app's own, not the targets'


def context(settings: dict[str, str] | None = None, **changes: Any) -> ActionContext:
    """A context whose settings are these app settings, parsed as at start-up."""
    app_settings = {**STORAGE, **ALLOW_LOOPBACK, **(settings or {})}
    values: dict[str, Any] = {
        "collection": "coll-1",
        "job": "job-1",
        "nominal": EXPECTED,
        "attempt_tag": "tag-123",
        "request_id": "req-456",
        "idempotency_key": "job-1/2030-01-02T03:04:05Z",
        "retry_count": 0,
        "repeat_count": 3,
        "default_timeout": timedelta(seconds=60),
        "settings": Settings.from_env(app_settings),
        "app_settings": app_settings,
    }
    return ActionContext(**{**values, **changes})


# --- a real HTTP target --------------------------------------------------------------------------


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


class Target(ThreadingHTTPServer):
    """A local HTTP server whose paths behave as the tests need; it records what it receives."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.received: list[Received] = []
        self.release = threading.Event()  # ends hanging handlers at teardown

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}{path}"

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Clients hanging up on the slow paths is expected; keep the output quiet."""


class _Handler(BaseHTTPRequestHandler):
    server: Target

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        self.server.received.append(
            Received(self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, body)
        )
        if self.path == "/ok":
            self._reply(200, b"hello")
        elif self.path == "/fail":
            self._reply(500, BIG_BODY.encode())
        elif self.path == "/redirect":
            self.send_response(302)
            self.send_header("Location", "/ok")
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif self.path == "/hang":
            self.server.release.wait(30)
        elif self.path == "/endless":
            # Announces 10 MB, sends 4 KB, then stalls: only a reader that stops early succeeds.
            self.send_response(200)
            self.send_header("Content-Length", str(10_000_000))
            self.end_headers()
            self.wfile.write(b"y" * 4096)
            self.wfile.flush()
            self.server.release.wait(30)
        elif self.path == "/trickle":
            # Each byte comes quickly, so only a deadline on the whole exchange stops this.
            self.send_response(200)
            self.end_headers()
            while not self.server.release.is_set():
                self.wfile.write(b".")
                self.wfile.flush()
                time.sleep(0.1)

    def _reply(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _handle


@pytest.fixture
def target() -> Iterator[Target]:
    server = Target()
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.release.set()
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.fixture
async def http_runner() -> AsyncIterator[HttpActionRunner]:
    runner = HttpActionRunner()
    try:
        yield runner
    finally:
        await runner.aclose()


def http_action(uri: str, **request: Any) -> JobAction:
    return JobAction.model_validate({"type": "http", "request": {"uri": uri, **request}})


# --- HTTP ----------------------------------------------------------------------------------------


async def test_http_success_sends_the_request_and_scheduler_headers(
    target: Target, http_runner: HttpActionRunner
) -> None:
    action = http_action(
        target.url("/ok"),
        method="post",
        body='{"hello": "world"}',
        headers={"Content-Type": "application/json", "Idempotency-Key": "user-chosen"},
    )
    outcome = await http_runner.run(action, context())

    assert outcome.succeeded
    assert outcome.status_code == 200
    assert outcome.message.startswith("Http Action - Response from host '127.0.0.1': 200 'OK' ")
    assert "Response Headers: " in outcome.message
    assert "Content-Type: text/plain; charset=utf-8" in outcome.message
    assert outcome.message.endswith("Body: hello")

    [received] = target.received
    assert received.method == "POST"
    assert received.path == "/ok"
    assert received.body == b'{"hello": "world"}'
    assert received.headers["content-type"] == "application/json"
    assert received.headers["x-ms-scheduler-jobid"] == "job-1"
    assert received.headers["x-ms-scheduler-jobcollectionid"] == "coll-1"
    assert received.headers["x-ms-scheduler-expected-execution-time"] == "2030-01-02T03:04:05Z"
    assert received.headers["x-ms-execution-tag"] == "tag-123"
    assert received.headers["x-ms-client-request-id"] == "req-456"
    # The scheduler's key wins: it must be the same for every attempt of the occurrence.
    assert received.headers["idempotency-key"] == "job-1/2030-01-02T03:04:05Z"
    assert received.headers["user-agent"] == "azure-functions-job-scheduler"


async def test_http_retry_attempts_share_the_idempotency_key(
    target: Target, http_runner: HttpActionRunner
) -> None:
    action = http_action(target.url("/ok"))
    for attempt in range(2):
        ctx = context(retry_count=attempt, request_id=f"req-{attempt}")
        assert (await http_runner.run(action, ctx)).succeeded
    keys = {r.headers["idempotency-key"] for r in target.received}
    request_ids = [r.headers["x-ms-client-request-id"] for r in target.received]
    assert keys == {"job-1/2030-01-02T03:04:05Z"}
    assert request_ids == ["req-0", "req-1"]


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"])
async def test_http_every_method_is_sent_as_is(
    target: Target, http_runner: HttpActionRunner, method: str
) -> None:
    outcome = await http_runner.run(http_action(target.url("/ok"), method=method), context())
    assert outcome.succeeded, outcome.message
    assert target.received[0].method == method


async def test_http_500_fails_with_status_and_at_most_2048_bytes_of_body(
    target: Target, http_runner: HttpActionRunner
) -> None:
    outcome = await http_runner.run(http_action(target.url("/fail")), context())

    assert not outcome.succeeded
    assert outcome.status_code == 500
    assert "500 'Internal Server Error'" in outcome.message
    body = outcome.message.split(" Body: ", 1)[1]
    assert body == BIG_BODY.encode()[:2048].decode()


async def test_http_reads_only_the_first_2048_bytes(
    target: Target, http_runner: HttpActionRunner
) -> None:
    started = time.monotonic()
    outcome = await http_runner.run(
        http_action(target.url("/endless"), timeoutSeconds=10), context()
    )
    assert time.monotonic() - started < 5
    assert outcome.succeeded, outcome.message
    assert outcome.message.endswith(" Body: " + "y" * 2048)


async def test_http_redirect_is_not_followed(target: Target, http_runner: HttpActionRunner) -> None:
    outcome = await http_runner.run(http_action(target.url("/redirect")), context())
    assert not outcome.succeeded
    assert outcome.status_code == 302
    assert "Location: /ok" in outcome.message
    assert [r.path for r in target.received] == ["/redirect"]


async def test_http_hang_times_out_after_timeout_seconds(
    target: Target, http_runner: HttpActionRunner
) -> None:
    started = time.monotonic()
    outcome = await http_runner.run(http_action(target.url("/hang"), timeoutSeconds=1), context())
    elapsed = time.monotonic() - started

    assert not outcome.succeeded
    assert outcome.status_code is None
    assert outcome.message == "Http Action - Request timed out after 1 s (host '127.0.0.1')"
    assert elapsed < 5


async def test_http_default_timeout_comes_from_the_context(
    target: Target, http_runner: HttpActionRunner
) -> None:
    ctx = context(default_timeout=timedelta(seconds=1))
    outcome = await http_runner.run(http_action(target.url("/hang")), ctx)
    assert outcome.message == "Http Action - Request timed out after 1 s (host '127.0.0.1')"


async def test_http_trickling_body_is_cut_by_the_overall_deadline(
    target: Target, http_runner: HttpActionRunner
) -> None:
    started = time.monotonic()
    action = http_action(target.url("/trickle"), timeoutSeconds=1)
    outcome = await http_runner.run(action, context())
    assert time.monotonic() - started < 5
    # 1 s of 10 bytes/s stays under the 2048-byte prefix, so the deadline is what ends it.
    assert not outcome.succeeded
    assert "timed out after 1 s" in outcome.message


async def test_http_connection_refused_fails_cleanly(http_runner: HttpActionRunner) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    outcome = await http_runner.run(http_action(f"http://127.0.0.1:{port}/x"), context())

    assert not outcome.succeeded
    assert outcome.status_code is None
    assert outcome.message.startswith("Http Action - Could not connect to host '127.0.0.1': ")


def test_http_runner_survives_a_new_event_loop(target: Target) -> None:
    """The executor may run on another loop than the last call (each test has its own)."""
    runner = HttpActionRunner()
    action = http_action(target.url("/ok"))
    assert asyncio.run(runner.run(action, context())).succeeded
    assert asyncio.run(runner.run(action, context())).succeeded
    asyncio.run(runner.aclose())


# --- registry ------------------------------------------------------------------------------------


async def test_registry_maps_types_to_runners(target: Target) -> None:
    runners = KindRunners(known_kinds(), context().settings)
    http = http_action(target.url("/ok"))
    https = JobAction.model_validate({"type": "Https", "request": {"uri": "https://a.example/"}})
    queue = queue_action("jobs", "m")
    assert isinstance(runners.runner_for(http), HttpActionRunner)
    assert runners.runner_for(https) is runners.runner_for(http)
    assert isinstance(runners.runner_for(queue), StorageQueueActionRunner)
    assert (await runners.run(http, context())).succeeded
    await runners.aclose()


def test_two_kinds_may_not_claim_one_type() -> None:
    http = known_kinds().kinds[0]
    with pytest.raises(ValueError, match="claimed by two kinds"):
        KindRegistry([http, http])


# --- storage queue -------------------------------------------------------------------------------


def queue_action(queue: str, message: str) -> JobAction:
    return JobAction.model_validate(
        {
            "type": "StorageQueue",
            "queueMessage": {"queueName": queue, "message": message, "connectionSetting": SETTING},
        }
    )


async def test_queue_message_arrives_as_plain_text(
    storage_connection: str, unique_name: str
) -> None:
    message = 'run <now> & "then" stop ✓'
    async with QueueClient.from_connection_string(storage_connection, unique_name) as queue:
        await queue.create_queue()
        outcome = await StorageQueueActionRunner().run(
            queue_action(unique_name, message), context({SETTING: storage_connection})
        )
        assert outcome.succeeded, outcome.message
        assert outcome.status_code == 201
        assert f"queue '{unique_name}' in storage account 'devstoreaccount1'" in outcome.message

        received = [m async for m in queue.receive_messages()]
        assert [m.content for m in received] == [message]


async def test_missing_queue_fails_and_is_not_created(
    storage_connection: str, unique_name: str
) -> None:
    outcome = await StorageQueueActionRunner().run(
        queue_action(unique_name, "m"), context({SETTING: storage_connection})
    )
    assert not outcome.succeeded
    assert outcome.status_code == 404
    assert f"queue '{unique_name}' does not exist" in outcome.message

    async with QueueClient.from_connection_string(storage_connection, unique_name) as queue:
        with pytest.raises(Exception, match="QueueNotFound"):
            await queue.get_queue_properties()


async def test_missing_connection_setting_fails_cleanly(unique_name: str) -> None:
    outcome = await StorageQueueActionRunner().run(queue_action(unique_name, "m"), context())
    assert not outcome.succeeded
    assert outcome.message == (
        f"StorageQueue Action - app setting '{SETTING}' (connectionSetting) is not set"
    )


async def test_malformed_connection_setting_is_not_echoed(unique_name: str) -> None:
    secret = "not-a-connection-string-but-a-secret"
    outcome = await StorageQueueActionRunner().run(
        queue_action(unique_name, "m"), context({SETTING: secret})
    )
    assert not outcome.succeeded
    assert "is not a storage connection string" in outcome.message
    assert secret not in outcome.message


async def test_unreachable_storage_fails_cleanly(unique_name: str) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    connection = (
        "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=a2V5;"
        f"QueueEndpoint=http://127.0.0.1:{port}/devstoreaccount1;"
    )
    outcome = await StorageQueueActionRunner().run(
        queue_action(unique_name, "m"), context({SETTING: connection})
    )
    assert not outcome.succeeded
    assert outcome.message.startswith(f"StorageQueue Action - sending to queue '{unique_name}'")


def test_account_and_sas_token_address_the_queue_url() -> None:
    """The SAS path cannot reach Azurite (its URL is *.queue.core.windows.net): check the client."""
    from shared.kinds.storage_queue import queue_of

    action = JobAction.model_validate(
        {
            "type": "StorageQueue",
            "queueMessage": {
                "storageAccount": "acct1",
                "queueName": "jobs",
                "sasToken": "?sv=2024-01-01&sig=abc",
                "message": "m",
            },
        }
    )
    queue = queue_of(queue_message_of(action), context().app_settings)
    assert queue.queue_name == "jobs"
    assert queue.queue_url is not None
    assert queue.queue_url.startswith("https://acct1.queue.core.windows.net/jobs?")
    assert "sig=abc" in queue.queue_url
