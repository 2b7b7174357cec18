"""A small probe of (c)'s floor: where the time goes around each attempt's second.

`python -m bench.attempt_probe --jobs 300 --rate 15` runs function_app.py in devhost (as (c)
does, on a private Azurite, the sink in a process of its own) with one-time HTTP jobs due
`rate` per whole second, and stamps in-process (wall clock) when each storage call of the
executor starts and ends and when each HTTP send starts. It prints how late the sends start
and arrive, and how many storage calls of other attempts started in each second's send window
(between the second and its last send): the work that competes with the sends on the app's
one event loop. Not part of `make bench`; a breakdown, meant for a busy machine.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import shutil
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from bench.lateness import _close_app_runtime, app_settings, job_body, wait_until
from bench.sink import ProcessSink
from bench.util import bounded, percentile, unique_name
from devhost.azurite import PROJECT_ROOT, start_azurite
from devhost.host import DevHost
from shared.kinds.http import runner as http_runner
from shared.storage.store import JobStore

STORAGE_CALLS = ("get_run", "get_job", "move_run", "commit_attempt")
COLLECTION = "probe"


class Stamps:
    """(what, start, end) of each storage call; (expected second, start) of each send."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, float, float]] = []
        self.sends: list[tuple[float, float]] = []
        self.answers: list[float] = []  # send start to response headers, seconds
        self.lag: list[tuple[float, float]] = []

    def wrap_store(self) -> Callable[[], None]:
        originals = {name: getattr(JobStore, name) for name in STORAGE_CALLS}
        for name, original in originals.items():
            setattr(JobStore, name, self._timed(name, original))
        # The send itself: prepared requests (one per vetted address), or, in code from before
        # the prepare step, the request and its vetted target.
        name = (
            "send_first_connecting"
            if hasattr(http_runner, "send_first_connecting")
            else ("send_pinned")
        )
        send = getattr(http_runner, name)

        async def timed_send(client: Any, pinned: Any, *target: Any) -> Any:
            first = pinned[0] if isinstance(pinned, list) else pinned
            expected = first.headers["x-ms-scheduler-expected-execution-time"]
            due = datetime.fromisoformat(expected.replace("Z", "+00:00")).timestamp()
            began = time.time()
            self.sends.append((due, began))
            try:
                return await send(client, pinned, *target)
            finally:
                self.answers.append(time.time() - began)

        setattr(http_runner, name, timed_send)

        def restore() -> None:
            for name, original in originals.items():
                setattr(JobStore, name, original)
            setattr(http_runner, name, send)

        return restore

    def _timed(self, name: str, original: Callable[..., Awaitable[Any]]) -> Any:
        @functools.wraps(original)
        async def timed(*args: Any, **kwargs: Any) -> Any:
            began = time.time()
            try:
                return await original(*args, **kwargs)
            finally:
                self.calls.append((name, began, time.time()))

        return timed

    async def sample_lag(self, stop: asyncio.Event) -> None:
        """How late a 10 ms timer wakes: the event loop's lag."""
        loop = asyncio.get_running_loop()
        while not stop.is_set():
            planned = loop.time() + 0.01
            await asyncio.sleep(0.01)
            self.lag.append((time.time(), (loop.time() - planned) * 1000))


async def probe(jobs: int, rate: int, lead: float) -> dict[str, Any]:
    azurite = start_azurite()
    stamps = Stamps()
    restore = stamps.wrap_store()
    changed = asyncio.Event()
    sink = await ProcessSink(changed).start()
    prefix = unique_name("probe")
    stop = asyncio.Event()
    try:
        with tempfile.TemporaryDirectory() as project:
            shutil.copy(PROJECT_ROOT / "host.json", Path(project) / "host.json")
            host = DevHost(
                "function_app:app",
                project_dir=Path(project),
                settings_overrides=app_settings(azurite.connection_string, prefix),
                port=0,
            )
            await host.start()
            try:
                start = (datetime.now(UTC) + timedelta(seconds=lead)).replace(microsecond=0)
                starts = [start + timedelta(seconds=i // rate) for i in range(jobs)]
                async with httpx.AsyncClient(base_url=host.api_url, timeout=60) as client:
                    (await client.put(f"/jobCollections/{COLLECTION}", json={})).raise_for_status()

                    async def put(i: int) -> None:
                        body = job_body(sink.url, starts[i])
                        url = f"/jobCollections/{COLLECTION}/jobs/job-{i:04d}"
                        (await client.put(url, json=body)).raise_for_status()

                    await bounded(16, (put(i) for i in range(jobs)))
                created = datetime.now(UTC)
                stamps.calls.clear()
                lag = asyncio.create_task(stamps.sample_lag(stop))
                loop = asyncio.get_running_loop()
                deadline = loop.time() + (starts[-1] - created).total_seconds() + 30
                await wait_until(changed, lambda: len(sink.snapshot()) >= jobs, deadline)
                await asyncio.sleep(2)  # the last recordings
                stop.set()
                await lag
            finally:
                await host.stop()
                await _close_app_runtime()
    finally:
        restore()
        await sink.stop()
        azurite.stop()
    return summarize(stamps, sink, start, jobs)


def summarize(stamps: Stamps, sink: ProcessSink, start: datetime, jobs: int) -> dict[str, Any]:
    arrivals = sink.snapshot()
    arrived = [(a.at - datetime.fromisoformat(a.expected)).total_seconds() * 1000 for a in arrivals]
    sent = [(at - due) * 1000 for due, at in stamps.sends]
    # Per second: the window from the second to its last send; storage calls started in it.
    last_send: dict[float, float] = {}
    for due, at in stamps.sends:
        last_send[due] = max(last_send.get(due, due), at)
    in_window: dict[str, int] = {}
    for name, began, _ in stamps.calls:
        for due, last in last_send.items():
            if due <= began <= last:
                in_window[name] = in_window.get(name, 0) + 1
    records = sorted(end - began for name, began, end in stamps.calls if name == "commit_attempt")
    lag = [ms for _, ms in stamps.lag]
    return {
        "jobs": jobs,
        "arrived": len(arrivals),
        "send_started_late_ms": _spread(sent),
        "arrived_late_ms": _spread(arrived),
        "send_to_answer_ms": _spread([1000 * s for s in stamps.answers]),
        "send_window_ms": _spread([(last - due) * 1000 for due, last in last_send.items()]),
        "storage_calls_started_in_send_windows": in_window,
        "record_round_trip_ms": _spread([1000 * s for s in records]),
        "loop_lag_ms": _spread(lag),
    }


def _spread(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    return {
        "n": len(values),
        "p50": round(percentile(values, 50), 1),
        "p90": round(percentile(values, 90), 1),
        "p99": round(percentile(values, 99), 1),
        "max": round(max(values), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.attempt_probe", description=__doc__)
    parser.add_argument("--jobs", type=int, default=300)
    parser.add_argument("--rate", type=int, default=15, help="jobs due per second")
    parser.add_argument("--lead", type=float, default=25.0, help="seconds before the first")
    parser.add_argument(
        "--no-priority", action="store_true", help="storage work does not wait for due sends"
    )
    args = parser.parse_args()
    if args.no_priority:
        from shared.engine.send_priority import SendPriority

        async def at_once(self: SendPriority) -> None:
            return None

        SendPriority.after_due_sends = at_once  # type: ignore[method-assign]
    result = asyncio.run(probe(args.jobs, args.rate, args.lead))
    for key, value in result.items():
        print(f"{key}: {value}")


if __name__ == "__main__":
    main()
