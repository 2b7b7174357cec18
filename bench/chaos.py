"""`make soak`: three app instances on one Azurite, one of them SIGKILLed and restarted every
10 s, while 2,000 occurrences fire over 4.5 minutes. Not part of `make test` (about 10 minutes).

Each instance is `python -m devhost` running function_app.py (HTTP API, dispatch timer every
minute, queue executors with host.json's polling), as `make run` starts it. The jobs:
minute jobs with `count: 5` and one-time jobs; a tenth always fail (two retries, then an error
action), a tenth fail their first attempt. A recording HTTP sink answers and keeps every call.

After the window it waits for the work to settle (leases end, timer passes resume what the dead
instances held), then reports: occurrences delivered, lost, repeated calls (the same attempt
called twice: only a kill between the call and its recording may cause one), runs stuck, and
whether every job's counters, history and final state agree with what the sink saw.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import re
import signal
import sys
import tempfile
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from aiohttp import web

from devhost.azurite import PROJECT_ROOT, start_azurite
from shared.config import Settings
from shared.model.job import JobState
from shared.names import CollectionRef
from shared.runtime import Runtime
from shared.timefmt import to_iso

INSTANCES = 3
KILL_EVERY_SECONDS = 10
WINDOW_SECONDS = 270
LEAD_SECONDS = 100
MINUTE_JOBS = 150  # x 5 occurrences
ONE_TIME_JOBS = 1_250
TIMEOUT_SECONDS = 10
SETTLE_SECONDS = 300
REF = CollectionRef.parse("chaos")


@dataclass(frozen=True)
class Call:
    job: str
    expected: str
    tag: str  # x-ms-execution-tag: one per attempt
    path: str
    status: int


@dataclass
class Sink:
    """Answers by path: /ok 200, /fail 500, /once 500 to an occurrence's first call, /alert 200."""

    calls: list[Call] = field(default_factory=list)
    port: int = 0
    _failed_once: set[str] = field(default_factory=set)
    _runner: web.AppRunner | None = None

    async def start(self) -> Sink:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.Response:
        headers = request.headers
        key = headers.get("Idempotency-Key", "")
        status = 200
        if request.path == "/fail":
            status = 500
        elif request.path == "/once" and key not in self._failed_once:
            self._failed_once.add(key)
            status = 500
        self.calls.append(
            Call(
                headers.get("x-ms-scheduler-jobid", ""),
                headers.get("x-ms-scheduler-expected-execution-time", ""),
                headers.get("x-ms-execution-tag", ""),
                request.path,
                status,
            )
        )
        return web.Response(status=status, text="answer")


@dataclass
class Instance:
    process: asyncio.subprocess.Process
    log: Path


async def start_instance(project: Path, env: dict[str, str], number: int) -> Instance:
    log = project / f"instance-{number}-{time.monotonic_ns()}.log"
    with log.open("wb") as out:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "devhost",
            "--project-dir",
            str(project),
            "--port",
            "0",
            cwd=PROJECT_ROOT,
            env=env,
            stdout=out,
            stderr=asyncio.subprocess.STDOUT,
        )
    deadline = time.monotonic() + 60
    while not re.search(r"API: http://localhost:\d+/api", log.read_text(errors="replace")):
        if process.returncode is not None or time.monotonic() > deadline:
            raise RuntimeError(f"instance {number} did not start:\n{log.read_text()}")
        await asyncio.sleep(0.2)
    return Instance(process, log)


def job_body(sink: Sink, kind: str, start: datetime, minutes: bool) -> dict[str, Any]:
    action: dict[str, Any] = {
        "type": "Http",
        "request": {
            "uri": f"http://127.0.0.1:{sink.port}/{kind}",
            "method": "POST",
            "timeoutSeconds": TIMEOUT_SECONDS,
        },
        "retryPolicy": {"retryType": "Fixed", "retryInterval": "PT10S", "retryCount": 2},
    }
    if kind == "fail":
        action["errorAction"] = {
            "type": "Http",
            "request": {"uri": f"http://127.0.0.1:{sink.port}/alert", "method": "POST"},
            "retryPolicy": {"retryType": "None"},
        }
    properties: dict[str, Any] = {"startTime": to_iso(start), "action": action}
    if minutes:
        properties["recurrence"] = {"frequency": "Minute", "count": 5}
    return {"properties": properties}


async def create_jobs(runtime: Runtime, sink: Sink, window_start: datetime) -> dict[str, set[str]]:
    """The jobs, and the expected execution times of each."""
    await runtime.jobs.put_collection(REF, {"properties": {"state": "Enabled"}})
    rng = random.Random(7)
    expected: dict[str, set[str]] = {}
    specs = []
    for i in range(MINUTE_JOBS):
        start = window_start + timedelta(seconds=rng.randrange(30))
        specs.append((f"m{i:04d}", start, True))
    for i in range(ONE_TIME_JOBS):
        start = window_start + timedelta(seconds=rng.randrange(WINDOW_SECONDS))
        specs.append((f"o{i:04d}", start, False))
    limit = asyncio.Semaphore(16)

    async def create(name: str, start: datetime, minutes: bool, kind: str) -> None:
        async with limit:
            await runtime.jobs.put_job(REF, name, job_body(sink, kind, start, minutes))

    tasks = []
    for index, (name, start, minutes) in enumerate(specs):
        kind = "fail" if index % 10 == 3 else "once" if index % 10 == 7 else "ok"
        times = [start + timedelta(minutes=k) for k in range(5 if minutes else 1)]
        expected[name] = {to_iso(t) for t in times}
        tasks.append(create(name, start, minutes, kind))
    await asyncio.gather(*tasks)
    return expected


async def kill_and_restart(
    instances: list[Instance], project: Path, env: dict[str, str], until: float, log: list[str]
) -> int:
    kills = 0
    rng = random.Random(11)
    while time.monotonic() < until:
        await asyncio.sleep(KILL_EVERY_SECONDS)
        number = rng.randrange(len(instances))
        victim = instances[number]
        victim.process.send_signal(signal.SIGKILL)
        await victim.process.wait()
        kills += 1
        log.append(f"{datetime.now(UTC):%H:%M:%S} killed instance {number}")
        instances[number] = await start_instance(project, env, number)
    return kills


async def settled(runtime: Runtime, sink: Sink, expected: dict[str, set[str]]) -> bool:
    seen = {(c.job, c.expected) for c in sink.calls if c.path != "/alert"}
    if any((job, t) not in seen for job, times in expected.items() for t in times):
        return False
    jobs, _ = await runtime.store.list_jobs(REF.key, top=100_000)
    return all(job.state.is_final for job in jobs)


async def report(runtime: Runtime, sink: Sink, expected: dict[str, set[str]], kills: int) -> bool:
    calls = sink.calls
    main_calls = [c for c in calls if c.path != "/alert"]
    seen = {(c.job, c.expected) for c in main_calls}
    wanted = {(job, t) for job, times in expected.items() for t in times}
    lost = wanted - seen
    by_tag = Counter(c.tag for c in calls)
    repeats = sum(n - 1 for n in by_tag.values() if n > 1)
    jobs, _ = await runtime.store.list_jobs(REF.key, top=100_000)
    shown = {job.name: job for job in await runtime.store.with_status(jobs)}
    stuck = 0
    disagree: list[str] = []
    tags_of: dict[str, set[str]] = defaultdict(set)
    failed_tags_of: dict[str, set[str]] = defaultdict(set)
    for call in main_calls:
        tags_of[call.job].add(call.tag)
        if call.status >= 300:
            failed_tags_of[call.job].add(call.tag)
    alerts: Counter[str] = Counter()
    for call in {c.tag: c for c in calls if c.path == "/alert"}.values():
        alerts[call.job] += 1
    for name in expected:
        job = shown.get(name)
        if job is None:
            disagree.append(f"{name}: missing")
            continue
        stuck += len(await runtime.store.runs_of(REF.key, name))
        status = job.status
        occurrences = len({t for j, t in seen if j == name})
        history, after = 0, None
        while True:
            page, after = await runtime.store.history(REF.key, name, top=100, after=after)
            history += len(page)
            if after is None:
                break
        always_fails = any(c.path == "/fail" for c in main_calls if c.job == name)
        want_state = JobState.FAULTED if always_fails else JobState.COMPLETED
        checks = {
            "executionCount": (status.execution_count, occurrences),
            "failureCount": (status.failure_count, len(failed_tags_of[name])),
            "faultedCount": (status.faulted_count, occurrences if always_fails else 0),
            "missedCount": (status.missed_count, 0),
            "history rows": (history, len(tags_of[name]) + alerts[name]),
            "state": (job.state, want_state),
        }
        wrong = [f"{k} {a} != {b}" for k, (a, b) in checks.items() if a != b]
        if wrong:
            disagree.append(f"{name}: {', '.join(wrong)}")
    print(f"occurrences expected {len(wanted)}, delivered {len(wanted & seen)}, lost {len(lost)}")
    print(f"calls {len(calls)}, repeated attempts (same execution tag) {repeats}, kills {kills}")
    print(f"runs still in flight after settling: {stuck}")
    print(f"jobs whose counters/history/state disagree with the sink: {len(disagree)}")
    for line in disagree[:20]:
        print("   ", line)
    for name, at in sorted(lost)[:20]:
        print("    lost:", name, at)
    return not lost and not stuck and not disagree


async def main(kill: bool) -> int:
    azurite = start_azurite()
    sink = await Sink().start()
    project = Path(tempfile.mkdtemp(prefix="chaos-"))
    (project / "host.json").write_text((PROJECT_ROOT / "host.json").read_text())
    prefix = "Chaos" + str(int(time.time()))
    env = {
        **os.environ,
        "AzureWebJobsStorage": azurite.connection_string,
        "SCHEDULER_TABLE_PREFIX": prefix,
        "SCHEDULER_EXECUTION_QUEUE": "chaos-executions",
        "SCHEDULER_DEVICE_WORK_QUEUE": "chaos-devicework",
        "SCHEDULER_DISPATCH_QUEUE": "chaos-disp",
        "DISPATCH_SCHEDULE": "0 * * * * *",
        "SCHEDULER_ALLOWED_NETWORKS": "loopback",
    }
    settings = Settings.from_env(env)
    runtime = await Runtime.create(settings, app_settings=env)
    instances: list[Instance] = []
    events: list[str] = []
    try:
        instances = [await start_instance(project, env, n) for n in range(INSTANCES)]
        window_start = (datetime.now(UTC) + timedelta(seconds=LEAD_SECONDS)).replace(microsecond=0)
        expected = await create_jobs(runtime, sink, window_start)
        print(f"{sum(map(len, expected.values()))} occurrences from {window_start:%H:%M:%S} on")
        # The last occurrence: a one-time job, or a minute job's fifth (it starts in the first
        # 30 s), both at most WINDOW_SECONDS after the window's start.
        to_start = (window_start - datetime.now(UTC)).total_seconds()
        window_end = time.monotonic() + to_start + WINDOW_SECONDS
        kills = 0
        if kill:
            kills = await kill_and_restart(instances, project, env, window_end, events)
        else:
            await asyncio.sleep(max(0.0, window_end - time.monotonic()))
        deadline = time.monotonic() + SETTLE_SECONDS
        while not await settled(runtime, sink, expected) and time.monotonic() < deadline:
            await asyncio.sleep(2)
        await asyncio.sleep(5)  # a late repeat of an attempt would show now
        ok = await report(runtime, sink, expected, kills)
        print("PASS" if ok else "FAIL")
        return 0 if ok else 1
    finally:
        for instance in instances:
            if instance.process.returncode is None:
                instance.process.send_signal(signal.SIGTERM)
                await instance.process.wait()
        await runtime.close()
        await sink.stop()
        azurite.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m bench.chaos", description=__doc__)
    parser.add_argument("--no-kill", action="store_true", help="instances race, nobody dies")
    args = parser.parse_args()
    raise SystemExit(asyncio.run(main(kill=not args.no_kill)))
