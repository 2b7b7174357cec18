"""`python -m devhost` as a process of its own, for end-to-end tests: the app module and the
settings the test names, a function key, its log in a file (nothing to drain, whatever loop the
test runs on), stopped gracefully or SIGKILLed by its own pid."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]
_API_LINE = re.compile(r"API: http://localhost:(\d+)/api")


@dataclass
class DevhostProcess:
    process: subprocess.Popen[bytes]
    api_url: str  # http://127.0.0.1:<port>/api
    key: str
    log: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def client(self) -> httpx.AsyncClient:
        """A client sending the function key, as a caller of the app in Azure would."""
        return httpx.AsyncClient(
            base_url=self.api_url, headers={"x-functions-key": self.key}, timeout=40
        )

    def kill(self) -> None:
        """SIGKILL: the process dies holding whatever it held (leases, messages)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        """SIGTERM (devhost stops gracefully), SIGKILL if it has not ended within 30 s."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()


def start_devhost(
    project_dir: Path,
    settings: Mapping[str, str],
    *,
    app: str = "function_app:app",
    key: str = "e2e-function-key",
    timeout: float = 60,
) -> DevhostProcess:
    """Start devhost on a free port and wait until it serves; the log is project_dir/devhost.log."""
    project_dir.mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / "host.json", project_dir / "host.json")
    log = project_dir / "devhost.log"
    command = [sys.executable, "-m", "devhost", "--app", app, "--project-dir", str(project_dir)]
    command += ["--port", "0", "--key", key]
    with log.open("wb") as sink:
        process = subprocess.Popen(
            command, cwd=ROOT, env={**os.environ, **settings}, stdout=sink, stderr=sink
        )
    deadline = time.monotonic() + timeout
    while True:
        match = _API_LINE.search(log.read_text(errors="replace"))
        if match:
            url = f"http://127.0.0.1:{match.group(1)}/api"
            return DevhostProcess(process, url, key, log)
        if process.poll() is not None or time.monotonic() > deadline:
            if process.poll() is None:
                process.kill()
                process.wait()
            raise AssertionError("devhost did not start:\n" + log.read_text(errors="replace"))
        time.sleep(0.05)  # the process writes its log; nothing to await across processes
