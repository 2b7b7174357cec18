"""A real app instance killed mid-action: its occurrence runs again within lease + one pass.

The instance is `python -m devhost` running function_app.py, as `make run` starts it. It takes
the occurrence, calls the target (which holds the call open), and is SIGKILLed. Its message stays
invisible for the host's 600 s, so only the run's watch can bring the occurrence back: the next
timer pass of another instance (this test's runtime) finds the lease ended and resumes it."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from shared.engine.records import RunStatus
from shared.model.job import HistoryStatus, JobState
from shared.names import CollectionRef
from shared.timefmt import to_iso
from tests.support.app_settings import app_settings
from tests.support.engine import make_runtime, make_settings, work_queue
from tests.support.http_target import HttpTarget

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
REF = CollectionRef.parse("crash")
LEASE_MARGIN_SECONDS = 1
TIMEOUT_SECONDS = 3


async def start_instance(tmp_path: Path, connection: str, name: str) -> asyncio.subprocess.Process:
    (tmp_path / "host.json").write_text((ROOT / "host.json").read_text())
    env = {
        **os.environ,
        **app_settings(
            connection,
            name,
            DISPATCH_SCHEDULE="0 0 0 1 1 *",  # this test runs the timer pass itself
            SCHEDULER_LEASE_MARGIN_SECONDS=str(LEASE_MARGIN_SECONDS),
        ),
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "devhost",
        "--project-dir",
        str(tmp_path),
        "--port",
        "0",
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    assert process.stdout is not None
    seen = ""
    while not re.search(r"API: http://localhost:\d+/api", seen):
        line = await asyncio.wait_for(process.stdout.readline(), timeout=30)
        assert line, "the instance exited early:\n" + seen
        seen += line.decode()
    return process


async def test_an_occurrence_held_by_a_killed_instance_resumes_within_lease_and_a_pass(
    tmp_path, storage_connection, unique_name
):
    target = await HttpTarget(hang=True).start()
    instance = await start_instance(tmp_path, storage_connection, unique_name)
    settings = make_settings(
        storage_connection, unique_name, lease_margin=timedelta(seconds=LEASE_MARGIN_SECONDS)
    )
    survivor = await make_runtime(settings)
    try:
        await survivor.jobs.put_collection(REF, {"properties": {"state": "Enabled"}})
        due = (datetime.now(UTC) + timedelta(seconds=2)).replace(microsecond=0)
        job = {
            "properties": {
                "startTime": to_iso(due),
                "action": {
                    "type": "Http",
                    "request": {"uri": f"{target.url}/work", "timeoutSeconds": TIMEOUT_SECONDS},
                    "retryPolicy": {"retryType": "None"},
                },
            }
        }
        await survivor.jobs.put_job(REF, "held", job)
        await target.wait_for(1)  # the instance took the occurrence and is calling
        instance.send_signal(signal.SIGKILL)
        await instance.wait()
        target.hang = False

        [run] = await survivor.store.runs_of(REF.key, "held")
        assert run.status is RunStatus.RUNNING and run.claimed_until is not None
        lease_end = run.claimed_until
        assert lease_end <= due + timedelta(seconds=TIMEOUT_SECONDS + LEASE_MARGIN_SECONDS + 1)
        wait = (lease_end - datetime.now(UTC)).total_seconds()
        await asyncio.sleep(max(0.0, wait) + 0.1)  # until the lease has ended, not a guess
        report = await survivor.dispatcher.dispatch_due()  # the next timer pass
        assert report.resumed == 1

        async def completed() -> bool:
            stored = await survivor.store.get_job(REF.key, "held")
            return stored is not None and stored.state is JobState.COMPLETED

        await work_queue(survivor, completed, timeout=15)
        first, second = target.requests
        assert first.headers["Idempotency-Key"] == second.headers["Idempotency-Key"]
        records, _ = await survivor.store.history(REF.key, "held", top=10)
        assert [r.properties.status for r in records] == [HistoryStatus.COMPLETED]
    finally:
        if instance.returncode is None:
            instance.kill()
            await instance.wait()
        await survivor.close()
        await target.stop()
