"""WebJobs folders end to end: devhost processes with SCHEDULER_WEBJOBS_ROOT at a temp folder,
driven through Kudu's routes with a function key. `.py` and `.sh` jobs on a 6-field schedule and
on demand with `?arguments=`, the routes' shapes and status codes, and a continuous job through
hand-overs, a crash restart and the SIGKILL of the process holding it."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from devhost.azurite import Azurite
from tests.e2e.code_jobs_support import host_settings, new_prefix, until
from tests.support.devhost_process import DevhostProcess, start_devhost
from tests.support.webjobs import PRINTER, write_job

pytestmark = pytest.mark.e2e

SH_PRINTER = """\
echo "args=$*"
echo "WEBJOBS_NAME=$WEBJOBS_NAME"
echo "WEBJOBS_COMMAND_ARGUMENTS=$WEBJOBS_COMMAND_ARGUMENTS"
"""

WAIT_FOR_FILE = """\
echo "waiting for $1"
while [ ! -f "$1" ]; do sleep 0.05; done
echo "released"
"""

# Crashes on its first start, then runs until its shutdown file (a hand-over) or until the
# devhost process that started it is gone (SIGKILLed: nobody else would end it).
CONTINUOUS = """\
echo "holder=$PPID"
if [ ! -f "$WEBJOBS_PATH/../crashed-once" ]; then
  touch "$WEBJOBS_PATH/../crashed-once"; echo "crashing"; exit 3
fi
while [ ! -f "$WEBJOBS_SHUTDOWN_FILE" ] && kill -0 "$PPID" 2>/dev/null; do sleep 0.1; done
echo "shutdown file seen"
"""

EVERY_2S = "*/2 * * * * *"
EVEN_SECONDS = {f"{second:02d}" for second in range(0, 60, 2)}


@pytest.fixture(scope="module")
def webjobs_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("webjobs")
    scheduled = {"schedule": EVERY_2S, "is_singleton": False}
    write_job(root, "triggered", "pyjob", "run.py", PRINTER, scheduled)
    write_job(root, "triggered", "shjob", "run.sh", SH_PRINTER, scheduled)
    write_job(root, "triggered", "printer", "run.py", PRINTER)
    write_job(root, "triggered", "waiter", "run.sh", WAIT_FOR_FILE)
    return root


@pytest.fixture(scope="module")
def app(
    azurite: Azurite, webjobs_root: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[DevhostProcess]:
    settings = host_settings(
        azurite.connection_string,
        new_prefix(),
        SCHEDULER_WEBJOBS_ROOT=str(webjobs_root),
        SCHEDULER_MIN_RECURRENCE_SECONDS="0",  # schedules every 2 seconds
    )
    process = start_devhost(tmp_path_factory.mktemp("webjobsapp"), settings)
    yield process
    process.stop()


async def run_of(api: httpx.AsyncClient, url: str, statuses: set[str]) -> dict[str, Any]:
    async def reached() -> dict[str, Any] | None:
        answer = await api.get(url)
        run: dict[str, Any] = answer.json() if answer.status_code == 200 else {}
        return run if run.get("status") in statuses else None

    return dict(await until(reached, timeout=30, every=0.1))


async def test_py_and_sh_jobs_run_on_their_schedule_and_on_demand_with_arguments(
    app: DevhostProcess,
):
    async with app.client() as api:
        for name in ("pyjob", "shjob"):

            async def scheduled(name: str = name) -> dict[str, Any] | None:
                runs = (await api.get(f"/triggeredwebjobs/{name}/history")).json()["runs"]
                done = [r for r in runs if r["status"] == "Success"]
                return done[0] if done else None

            run = await until(scheduled, timeout=20)
            assert run["trigger"] == f"Schedule - {EVERY_2S}"
            # On the schedule: each occurrence is due at an even second (when it starts is
            # the machine's: a loaded one may start it a second late).
            rows = await api.get(f"/jobCollections/webjobs/jobs/triggered-{name}/history")
            due = [row["properties"]["expectedExecutionTime"] for row in rows.json()["value"]]
            assert due and all(at[17:19] in EVEN_SECONDS for at in due), due
            text = (await api.get(run["output_url"])).text
            assert f"WEBJOBS_NAME={name}" in text

            answer = await api.post(
                f"/triggeredwebjobs/{name}/run",
                params={"arguments": "--day 'two words'"},
                headers={"User-Agent": "deploy-script/2.0"},
            )
            assert answer.status_code == 202, answer.text
            run = await run_of(api, answer.headers["Location"], {"Success", "Failed"})
            assert run["status"] == "Success" and run["trigger"] == "External - deploy-script/2.0"
            text = (await api.get(run["output_url"])).text
            assert "INFO args=--day two words" in text  # argv, split as a shell would
            assert "WEBJOBS_COMMAND_ARGUMENTS=--day 'two words'" in text
        for name in ("pyjob", "shjob"):  # the schedule stops here (until the next start-up)
            answer = await api.patch(
                f"/jobCollections/webjobs/jobs/triggered-{name}",
                json={"properties": {"state": "Disabled"}},
            )
            assert answer.status_code == 200, answer.text


async def test_kudu_triggered_routes_shapes_and_status_codes(
    app: DevhostProcess, webjobs_root: Path
):
    async with app.client() as api:
        listed = (await api.get("/webjobs")).json()
        assert {j["name"] for j in listed} >= {"pyjob", "shjob", "printer", "waiter"}
        triggered = (await api.get("/triggeredwebjobs")).json()
        assert {j["type"] for j in triggered} == {"triggered"}
        job = (await api.get("/triggeredwebjobs/printer")).json()
        for field in ("name", "run_command", "url", "history_url", "settings", "latest_run"):
            assert field in job
        assert job["run_command"] == "run.py" and job["latest_run"] is None
        assert (await api.get("/triggeredwebjobs/nosuch")).status_code == 404
        assert (await api.post("/triggeredwebjobs/nosuch/run")).status_code == 404

        locations = []
        for word in ("first", "second"):
            answer = await api.post("/triggeredwebjobs/printer/run", params={"arguments": word})
            assert answer.status_code == 202 and answer.content == b""
            locations.append(answer.headers["Location"])
            await run_of(api, locations[-1], {"Success"})
        history = await api.get("/triggeredwebjobs/printer/history")
        assert history.status_code == 200
        runs = history.json()["runs"]
        assert [r["url"] for r in runs] == locations[::-1], "newest first"
        assert runs[0]["start_time"] >= runs[1]["start_time"]
        again = await api.get(
            "/triggeredwebjobs/printer/history", headers={"If-None-Match": history.headers["ETag"]}
        )
        assert again.status_code == 304 and again.content == b""
        one = (await api.get(locations[0])).json()
        for field in ("id", "name", "status", "start_time", "end_time", "duration", "trigger"):
            assert field in one
        assert one["job_name"] == "printer" and one["output_url"] == one["error_url"]
        assert "args=first" in (await api.get(one["output_url"])).text
        assert (
            await api.get(locations[0].rsplit("/", 1)[0] + "/20300101T000000Z")
        ).status_code == 404

        release = webjobs_root / "release-waiter"
        answer = await api.post("/triggeredwebjobs/waiter/run", params={"arguments": str(release)})
        assert answer.status_code == 202
        running = await run_of(api, answer.headers["Location"], {"Running"})
        refused = await api.post("/triggeredwebjobs/waiter/run")
        assert refused.status_code == 409, "a singleton run is in progress"
        assert "already running" in refused.json()["error"]["message"]

        async def waiting() -> httpx.Response | None:  # its output, read during the run
            answer = await api.get(running["output_url"])
            return answer if b"waiting for" in answer.content else None

        partial = await until(waiting)
        assert partial.headers["X-Output-Ended"] == "false" and b"released" not in partial.content
        # Long-poll for what follows, then release the job: the answer comes with its next
        # bytes (not at the poll's 25 s limit, as it would if the job were released after it).
        following = asyncio.create_task(
            api.get(
                running["output_url"], params={"follow": "true", "offset": len(partial.content)}
            )
        )
        release.touch()
        followed = await following
        assert followed.status_code == 200 and followed.content
        done = await run_of(api, answer.headers["Location"], {"Success", "Failed"})
        assert done["status"] == "Success"
        text = (await api.get(done["output_url"])).text
        assert text.startswith(partial.text) and "INFO released" in text
        assert text[len(partial.text) :].startswith(followed.text), "follow gave what came next"


async def continuous(api: httpx.AsyncClient) -> dict[str, Any]:
    answer = await api.get("/continuouswebjobs/keeper")
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


async def holder_of(api: httpx.AsyncClient, log_url: str) -> int:
    """The pid of the devhost process running the script (its parent), once it printed it."""

    async def printed() -> int | None:
        match = re.search(r"holder=(\d+)", (await api.get(log_url)).text)
        return int(match.group(1)) if match else None

    return int(await until(printed, timeout=10))


async def test_a_continuous_job_survives_hand_overs_a_crash_and_a_killed_holder(
    azurite: Azurite, tmp_path: Path
):
    root = tmp_path / "webjobs"
    write_job(root, "continuous", "keeper", "run.sh", CONTINUOUS)
    settings = host_settings(
        azurite.connection_string,
        new_prefix(),
        SCHEDULER_WEBJOBS_ROOT=str(root),
        SCHEDULER_CONTINUOUS_SLICE_SECONDS="10",  # the shortest slice allowed
        SCHEDULER_CONTINUOUS_RESTART_DELAY_SECONDS="1",
        SCHEDULER_CONTINUOUS_LEASE_SECONDS="5",  # the shortest lease allowed: a quick failover
    )
    first, second = await asyncio.gather(
        asyncio.to_thread(start_devhost, tmp_path / "a", settings),
        asyncio.to_thread(start_devhost, tmp_path / "b", settings),
    )
    hosts = {first.pid: first, second.pid: second}
    try:
        async with first.client() as api:
            listed = (await api.get("/continuouswebjobs")).json()
            assert [j["name"] for j in listed] == ["keeper"]
            assert listed[0]["status"] == "Stopped" and listed[0]["type"] == "continuous"
            assert (await api.get("/continuouswebjobs/nosuch")).status_code == 404
            assert (await api.post("/continuouswebjobs/nosuch/start")).status_code == 404
            started = await api.post("/continuouswebjobs/keeper/start")
            assert started.status_code == 200 and started.content == b""

            runs: list[str] = []  # each start of the script is a run with its own log
            statuses: set[str] = set()

            async def runs_seen(count: int) -> bool:
                shown = await continuous(api)
                statuses.add(shown["status"])
                # The same run, whichever host answers (its base URL is in the link).
                log_url = str(shown.get("log_url") or "").split("/api", 1)[-1]
                if log_url and log_url not in runs:
                    runs.append(log_url)
                return len(runs) >= count

            await until(lambda: runs_seen(4), timeout=45, every=0.2)  # a crash, two hand-overs
            logs = [(await api.get(url)).text for url in runs]
            assert "crashing" in logs[0] and "Process went down with exit code 3" in logs[0]
            assert "PendingRestart" in statuses
            for log in logs[1:3]:
                assert "Handing over to the next invocation (time slice ended)" in log
                assert "shutdown file seen" in log

            victim = hosts.pop(await holder_of(api, runs[3]))  # SIGKILL the process holding it
            victim.kill()
        [survivor] = hosts.values()
        async with survivor.client() as api:
            # Its lease (5 s) runs out; the survivor's dispatch timer restarts the job.
            await until(lambda: runs_seen(5), timeout=60, every=0.5)

            async def running_again() -> dict[str, Any] | None:
                shown = await continuous(api)
                return shown if shown["status"] == "Running" else None

            await until(running_again, timeout=10)
            assert await holder_of(api, runs[4]) == survivor.pid
            stopped = await api.post("/continuouswebjobs/keeper/stop")
            assert stopped.status_code == 200

            async def is_stopped() -> bool:
                return bool((await continuous(api))["status"] == "Stopped")

            await until(is_stopped, timeout=15)
    finally:
        first.stop()
        second.stop()
