"""Precision at the second: a held attempt does its groundwork before its second, and the
sends due at a second go before other attempts' storage work (issue 12, bench (c)).

Real parts: Azurite behind a proxy that notes when each storage request reaches it, HTTP
targets and a token authority on 127.0.0.1."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiohttp import web

from shared.clock import sleep_until
from shared.engine.dispatcher import message_for
from shared.engine.records import Run
from shared.model.job import HistoryStatus, JobState
from shared.names import CollectionRef
from shared.runtime import Runtime
from shared.storage.queue import EARLY_ARRIVAL_SECONDS
from shared.timefmt import to_iso
from tests.support.engine import job_as_shown
from tests.support.flaky_proxy import FlakyProxy

pytestmark = pytest.mark.integration

REF = CollectionRef.parse("precision")
COLLECTION = REF.key
ENABLED = {"properties": {"state": "Enabled"}}
TOKEN = "token-for-the-second"
SECOND = timedelta(seconds=1)


@dataclass
class TokenAuthority:
    """A Microsoft Entra stand-in on 127.0.0.1: answers every token request with `TOKEN` and
    notes when each arrived (monotonic clock)."""

    arrivals: list[float] = field(default_factory=list)
    port: int = 0
    _runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> TokenAuthority:
        app = web.Application()
        app.router.add_post("/{tenant}/oauth2/v2.0/token", self._token)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _token(self, request: web.Request) -> web.Response:
        self.arrivals.append(time.monotonic())
        return web.json_response({"access_token": TOKEN, "expires_in": 3600})


@pytest.fixture
async def authority() -> AsyncIterator[TokenAuthority]:
    server = await TokenAuthority().start()
    yield server
    await server.stop()


@pytest.fixture
async def proxied_runtime(runtimes: Any, azurite: Any) -> AsyncIterator[tuple[Runtime, FlakyProxy]]:
    """A runtime whose table traffic goes through a proxy that notes each request."""
    proxy = await FlakyProxy(azurite.ports["Table"]).start()
    connection = azurite.connection_string.replace(
        f"127.0.0.1:{azurite.ports['Table']}", f"127.0.0.1:{proxy.port}"
    )
    runtime = await runtimes(storage_connection=connection)
    yield runtime, proxy
    await proxy.stop()


def next_second(lead: float) -> tuple[datetime, float]:
    """A whole second at least `lead` seconds ahead, and the same instant on the monotonic
    clock (the loop's, which the proxy and the targets also stamp with)."""
    now = datetime.now(UTC)
    due = (now + timedelta(seconds=lead + 1)).replace(microsecond=0)
    return due, time.monotonic() + (due - now).total_seconds()


async def run_of(runtime: Runtime, job: str) -> Run:
    [run] = await runtime.store.runs_of(COLLECTION, job)
    return run


async def test_a_held_attempt_gets_its_token_before_its_second_and_only_sends_at_it(
    runtimes, target, authority
):
    """The target's URL is vetted, the token fetched and the request built while the attempt
    waits for its second: at the second only the send is left."""
    runtime = await runtimes(aad_authority=authority.url)
    await runtime.jobs.put_collection(REF, ENABLED)
    due, second = next_second(1.5)
    authentication = {
        "type": "ActiveDirectoryOAuth",
        "tenant": "contoso.onmicrosoft.com",
        "audience": "api://precision",
        "clientId": "11111111-2222-3333-4444-555555555555",
        "secret": "a-client-secret",
    }
    action = {
        "type": "Http",
        "request": {"uri": f"{target.url}/hook", "authentication": authentication},
    }
    job = {"properties": {"startTime": to_iso(due), "action": action}}
    await runtime.jobs.put_job(REF, "prepared", job)

    await runtime.executor.execute(message_for(await run_of(runtime, "prepared")))

    [token_requested] = authority.arrivals
    [call] = target.requests
    assert token_requested < second, "the token was fetched at the second, not before it"
    assert call.at >= due, "fired before its second"
    assert call.headers["Authorization"] == f"Bearer {TOKEN}"
    assert (await job_as_shown(runtime, COLLECTION, "prepared")).state is JobState.COMPLETED


async def test_a_recording_due_just_before_a_burst_waits_until_the_bursts_sends_are_out(
    proxied_runtime, target, error_target
):
    """An attempt of the previous second whose target answers 20 ms before the next second
    would record (a storage transaction's CPU on the event loop) as that second's 30 held
    attempts wake: it waits until their sends are out."""
    runtime, proxy = proxied_runtime
    slow = error_target
    slow.hold = True
    await runtime.jobs.put_collection(REF, ENABLED)
    due, second = next_second(6.0)  # time to create the jobs
    names = [f"burst-{i:02d}" for i in range(30)]
    for name in names:
        await runtime.jobs.put_job(REF, name, http_job(f"{target.url}/{name}", due))
    await runtime.jobs.put_job(REF, "previous", http_job(f"{slow.url}/slow", due - SECOND))
    runs = [await run_of(runtime, name) for name in [*names, "previous"]]
    # Messages surface 1 to 2 s early (EARLY_ARRIVAL_SECONDS); earlier ones are hidden again.
    await sleep_until(second - EARLY_ARRIVAL_SECONDS - 1.3)
    attempts = asyncio.gather(*(runtime.executor.execute(message_for(run)) for run in runs))
    await slow.wait_for(1)  # the previous second's attempt is waiting for its answer
    while runtime.executor.send_priority.pending < len(names):
        assert not attempts.done(), "an attempt ended without being held"
        await asyncio.sleep(0.01)
    assert time.monotonic() < second - 0.1, "the claims took too long (machine too busy)"
    answered = second - 0.02
    asyncio.get_running_loop().call_at(answered, slow.release)
    proxy.requests.clear()

    await attempts

    assert len(target.requests) == len(names)
    last_send = max(r.monotonic for r in target.requests)
    transactions = [at for at, line in proxy.requests if at >= answered and "$batch" in line]
    assert len(transactions) > len(names), "every attempt recorded (a transaction each)"
    assert min(transactions) > last_send, "a recording went before the second's sends"
    for name in [*names, "previous"]:
        [row] = [r.properties for r in (await runtime.store.history(COLLECTION, name, top=5))[0]]
        assert row.status is HistoryStatus.COMPLETED


def http_job(uri: str, start: datetime) -> dict[str, Any]:
    return {
        "properties": {
            "startTime": to_iso(start),
            "action": {"type": "Http", "request": {"uri": uri}},
        }
    }
