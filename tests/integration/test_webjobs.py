"""WebJobs folders against Azurite with real child processes: discovery and the reserved
collection, runs on a schedule and on demand with arguments, exit codes, the shutdown file,
SIGTERM and SIGKILL, output kept in the attempt's blob."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from shared.clock import FixedClock
from shared.kinds.webjob import WebJobSettings
from shared.kinds.webjob.catalog import WEBJOBS_REF
from shared.model.job import HistoryStatus, JobState, OverlapPolicy
from shared.runtime import Runtime
from shared.storage.output import output_name_of_key
from tests.support.engine import work_queue
from tests.support.webjobs import STUBBORN, standard_root, write_job

pytestmark = pytest.mark.integration

COLLECTION = WEBJOBS_REF.key
Build = Callable[..., Awaitable[Runtime]]


async def webjob_runtime(runtimes: Build, root: Path, timeout: int = 30, **extra: Any) -> Runtime:
    options = WebJobSettings(root=root, timeout_seconds=timeout)
    return await runtimes(kind_settings={"WebJob": options}, **extra)


async def history_of(runtime: Runtime, job: str) -> list[Any]:
    records, _ = await runtime.store.history(COLLECTION, job, top=100)
    return list(records)


async def run_to_end(runtime: Runtime, job: str, rows: int = 1) -> list[Any]:
    async def enough() -> bool:
        return len(await history_of(runtime, job)) >= rows

    await work_queue(runtime, enough, timeout=60)
    return await history_of(runtime, job)


async def output_text(runtime: Runtime, record: Any) -> str:
    found = await runtime.store.outputs.read(output_name_of_key(COLLECTION, record.row_key))
    assert found is not None
    return found.data.decode()


async def test_start_up_keeps_one_job_per_folder_idempotently(runtimes: Build, tmp_path: Path):
    root = standard_root(tmp_path)
    runtime = await webjob_runtime(runtimes, root)
    jobs, _ = await runtime.jobs.list_jobs(WEBJOBS_REF, top=100, after=None)
    by_name = {job.name: job for job in jobs}
    assert set(by_name) == {
        "triggered-printer",
        "triggered-failer",
        "triggered-sleeper",
        "triggered-broken",
        "continuous-forever",
    }
    assert by_name["triggered-printer"].state is JobState.ENABLED
    recurrence = by_name["triggered-printer"].properties.recurrence
    assert recurrence is not None and recurrence.cron == "0 0 * * * *"
    assert by_name["triggered-failer"].state is JobState.DISABLED  # on demand only
    # is_singleton (Kudu's default) is the overlap policy Forbid
    assert by_name["triggered-printer"].properties.overlap is OverlapPolicy.FORBID
    broken = runtime.webjobs.find("triggered", "broken")
    assert broken is not None and broken.error is not None and "settings.job" in broken.error

    # A second instance starting changes nothing; a folder removed disables its job.
    generations = {job.name: job.generation for job in jobs}
    await webjob_runtime(runtimes, root)
    again, _ = await runtime.jobs.list_jobs(WEBJOBS_REF, top=100, after=None)
    assert {job.name: job.generation for job in again} == generations
    (root / "triggered" / "printer" / "run.py").unlink()
    (root / "triggered" / "printer" / "settings.job").unlink()
    (root / "triggered" / "printer").rmdir()
    await webjob_runtime(runtimes, root)
    printer = await runtime.store.get_job(COLLECTION, "triggered-printer")
    assert printer is not None and printer.state is JobState.DISABLED


async def test_a_missing_root_means_no_webjobs_and_no_collection(runtimes: Build, tmp_path: Path):
    runtime = await webjob_runtime(runtimes, tmp_path / "absent")
    assert runtime.webjobs.folders == []
    assert await runtime.store.get_collection(WEBJOBS_REF) is None


async def test_on_demand_run_passes_arguments_and_kudu_environment(runtimes: Build, tmp_path: Path):
    root = standard_root(tmp_path)
    runtime = await webjob_runtime(runtimes, root)
    await runtime.jobs.run_on_demand(
        WEBJOBS_REF, "triggered-printer", "--day 'two words'", "External - test"
    )
    [row] = await run_to_end(runtime, "triggered-printer")
    assert row.properties.status is HistoryStatus.COMPLETED, row.properties.message
    assert row.properties.message.endswith("WebJob Action - Success: exit code 0")
    assert row.trigger == "External - test"
    text = await output_text(runtime, row)
    assert "INFO args=--day two words" in text
    assert "WEBJOBS_NAME=printer" in text
    assert "WEBJOBS_TYPE=triggered" in text
    assert "WEBJOBS_COMMAND_ARGUMENTS=--day 'two words'" in text
    assert f"WEBJOBS_PATH={root / 'triggered' / 'printer'}" in text
    assert f"cwd={root / 'triggered' / 'printer'}" in text
    assert "WEBJOBS_RUN_ID=" in text and "WEBJOBS_SHUTDOWN_FILE=" in text
    assert "WEBJOBS_DATA_PATH=" in text
    assert "ERR to stderr" in text


async def test_scheduled_run_fires_on_its_ncrontab_second(runtimes: Build, tmp_path: Path):
    root = standard_root(tmp_path)
    top = datetime(2030, 1, 7, 9, 0, 0, tzinfo=UTC)
    clock = FixedClock(top - timedelta(minutes=30))
    runtime = await webjob_runtime(runtimes, root, clock=clock)
    job = await runtime.store.get_job(COLLECTION, "triggered-printer")
    assert job is not None and job.next_fire == top
    clock.set(top)
    assert (await runtime.dispatcher.dispatch_due()).dispatched == 1
    [row] = await run_to_end(runtime, "triggered-printer")
    assert row.properties.status is HistoryStatus.COMPLETED
    assert row.properties.expected_execution_time == top and not row.on_demand
    text = await output_text(runtime, row)
    assert "INFO args=\n" in text and "Arguments:" not in text


async def test_exit_code_1_is_a_failed_run(runtimes: Build, tmp_path: Path):
    runtime = await webjob_runtime(runtimes, standard_root(tmp_path))
    await runtime.jobs.run_on_demand(WEBJOBS_REF, "triggered-failer")
    [row] = await run_to_end(runtime, "triggered-failer")
    assert row.properties.status is HistoryStatus.FAILED
    assert row.properties.message.endswith("WebJob Action - Failed: Job failed due to exit code 1")
    assert "INFO about to fail" in await output_text(runtime, row)


async def test_timeout_writes_the_shutdown_file_and_the_script_ends_on_it(
    runtimes: Build, tmp_path: Path
):
    runtime = await webjob_runtime(runtimes, standard_root(tmp_path), timeout=1)
    await runtime.jobs.run_on_demand(WEBJOBS_REF, "triggered-sleeper")
    [row] = await run_to_end(runtime, "triggered-sleeper")
    assert "WebJob Action - Stopped: timed out after 1 s" in row.properties.message
    text = await output_text(runtime, row)
    assert "shutdown file seen" in text and "Killing" not in text


async def test_a_script_ignoring_the_shutdown_file_and_sigterm_is_killed(
    runtimes: Build, tmp_path: Path
):
    write_job(tmp_path, "triggered", "stubborn", "run.sh", STUBBORN, {"stopping_wait_time": 1})
    runtime = await webjob_runtime(runtimes, tmp_path, timeout=1)
    await runtime.jobs.run_on_demand(WEBJOBS_REF, "triggered-stubborn")
    [row] = await run_to_end(runtime, "triggered-stubborn")
    assert "WebJob Action - Stopped" in row.properties.message
    text = await output_text(runtime, row)
    assert "Killing the process" in text
    assert (
        row.properties.end_time is not None
        and (row.properties.end_time - row.properties.start_time).total_seconds() < 10
    )
