"""The CLI's tests drive `sched` against the real app: function_app.py (plus one Code handler)
in a devhost process on the session's Azurite, with a function key, an IoT Hub policy, a
WebJobs folder, and a device endpoint on 127.0.0.1 for broadcasts."""

from __future__ import annotations

import asyncio
import base64
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from devhost.azurite import Azurite
from scheduler_cli.main import cli
from tests.support.app_settings import app_settings
from tests.support.device_endpoint import DeviceEndpoint
from tests.support.webjobs import write_job

ROOT = Path(__file__).resolve().parents[2]
KEY = "cli-k3y"
IOT_KEY = base64.b64encode(b"c" * 32).decode()
IOT_CONNECTION = f"HostName=unused;SharedAccessKeyName=owner;SharedAccessKey={IOT_KEY}"
CHATTY = """\
import time
print("step one", flush=True)
time.sleep(1.5)
print("step two", flush=True)
"""
FAILING = "echo 'about to fail'\nexit 3\n"


@dataclass(frozen=True)
class App:
    url: str
    device_url: str  # the device endpoint's URI (add ?d=<id>)

    def env(self, **extra: str) -> dict[str, str]:
        """What a user exports; SCHED_CONFIG points at no file unless a test writes one."""
        return {
            "SCHED_URL": self.url,
            "SCHED_KEY": KEY,
            "SCHED_IOT_CONNECTION_STRING": IOT_CONNECTION,
            "SCHED_CONFIG": "/nonexistent/sched.yaml",
            "SCHED_PROFILE": "",
            "SCHED_OUTPUT": "",
            "SCHED_COLLECTION": "",
            "COLUMNS": "120",
            **extra,
        }


class Sched:
    """Runs `sched ARGS` in-process with the app's environment (Click's runner)."""

    def __init__(self, app: App) -> None:
        self.app = app
        self.runner = CliRunner()

    def __call__(self, *args: str, input: str | None = None, **env: str) -> Result:
        return self.runner.invoke(cli, list(args), env=self.app.env(**env), input=input)


@pytest.fixture(scope="module")
def device_endpoint() -> Iterator[DeviceEndpoint]:
    """The endpoint runs in a loop of its own thread: the CLI under test blocks the test's."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    endpoint = asyncio.run_coroutine_threadsafe(DeviceEndpoint().start(), loop).result(10)
    try:
        yield endpoint
    finally:
        asyncio.run_coroutine_threadsafe(endpoint.stop(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


@pytest.fixture(scope="module")
def app(
    azurite: Azurite, tmp_path_factory: pytest.TempPathFactory, device_endpoint: DeviceEndpoint
) -> Iterator[App]:
    """`python -m devhost` on a free port, stopped by its pid (SIGTERM, then SIGKILL)."""
    project = tmp_path_factory.mktemp("cli-app")
    shutil.copy(ROOT / "host.json", project / "host.json")
    webjobs = project / "webjobs"
    write_job(webjobs, "triggered", "chatty", "run.py", CHATTY)
    write_job(webjobs, "triggered", "failing", "run.sh", FAILING)
    prefix = "c" + uuid.uuid4().hex[:10]
    env = {
        **os.environ,
        **app_settings(
            azurite.connection_string,
            prefix,
            SCHEDULER_IOT_POLICIES=f"owner={IOT_KEY}:RegistryRead,RegistryWrite,ServiceConnect",
            SCHEDULER_WEBJOBS_ROOT=str(webjobs),
            DEVHOST_FUNCTION_KEY=KEY,
            DISPATCH_SCHEDULE="0 * * * * *",
        ),
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "devhost", "--app", "tests.cli.cli_app:app"]
        + ["--project-dir", str(project), "--port", "0"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: queue.Queue[str] = queue.Queue()
    output = process.stdout
    assert output is not None

    def read_output() -> None:  # also keeps the pipe drained while the app logs
        for line in output:
            lines.put(line)

    threading.Thread(target=read_output, daemon=True).start()
    try:
        seen: list[str] = []
        deadline = time.monotonic() + 30
        while not (found := re.search(r"API: http://localhost:(\d+)/api", "".join(seen))):
            if process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError("devhost did not start:\n" + "".join(seen))
            try:
                seen.append(lines.get(timeout=0.5))
            except queue.Empty:
                pass
        yield App(f"http://127.0.0.1:{found.group(1)}/api", device_endpoint.url)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture
def sched(app: App) -> Sched:
    return Sched(app)


@pytest.fixture
def collection(sched: Sched) -> str:
    """A fresh collection for the test."""
    name = "cli-" + uuid.uuid4().hex[:8]
    result = sched("collection", "create", name, "-o", "json")
    assert result.exit_code == 0, result.output
    return name
