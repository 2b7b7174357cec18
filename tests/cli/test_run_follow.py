"""`sched job run --follow` and `sched logs NAME` while an attempt runs, against the real app:
the handler `cli-gated` logs a line and waits at the test's gate (tests/support/gate.py), so
the test sees the line printed before the attempt ends, then lets it end (README "Command
line")."""

from __future__ import annotations

import os
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import pytest

from tests.cli.conftest import ROOT, App, Sched
from tests.support.gate import Gate

pytestmark = pytest.mark.e2e


@dataclass
class Running:
    """`sched ...` in a process of its own, its stdout read line by line as it comes."""

    process: subprocess.Popen[str]
    lines: queue.Queue[str] = field(default_factory=queue.Queue)
    seen: list[str] = field(default_factory=list)
    reader: threading.Thread | None = None

    def wait_for_line(self, text: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while not any(text in line for line in self.seen):
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no line with {text!r} in {self.seen}")
            try:
                self.seen.append(self.lines.get(timeout=left))
            except queue.Empty:
                pass

    def finish(self, timeout: float = 60) -> tuple[int, str, str]:
        """Exit code, all of stdout, stderr."""
        try:
            code = self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise AssertionError(f"still running after {timeout} s; printed {self.seen}") from None
        assert self.process.stderr is not None and self.reader is not None
        stderr = self.process.stderr.read()
        self.reader.join(10)
        while not self.lines.empty():
            self.seen.append(self.lines.get())
        return code, "".join(self.seen), stderr

    def start_reading(self) -> None:
        stdout = self.process.stdout
        assert stdout is not None

        def read() -> None:
            for line in stdout:
                self.lines.put(line)

        self.reader = threading.Thread(target=read, daemon=True)
        self.reader.start()


@contextmanager
def sched_process(app: App, *args: str) -> Iterator[Running]:
    """Started by its own pid and stopped by it if the test leaves it running."""
    process = subprocess.Popen(
        [sys.executable, "-m", "scheduler_cli", *args],
        env={**os.environ, **app.env(), "PYTHONPATH": str(ROOT / "cli")},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    running = Running(process)
    running.start_reading()
    try:
        yield running
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


@pytest.fixture
def gate() -> Iterator[Gate]:
    with Gate() as opened:
        yield opened


def gated_job(sched: Sched, name: str, gate: Gate) -> None:
    """A code job whose only runs are run-now runs (its one time is far ahead), not retried
    (Azure Scheduler's default policy retries 4 times, 30 s apart)."""
    created = sched("job", "create", name, "--at", "2040-01-01T00:00:00Z", "--retry", "none",
                    "--handler", "cli-gated", "--arg", f"gate={gate.address}")  # fmt: skip
    assert created.exit_code == 0, created.output


def test_job_run_follow_prints_the_output_as_it_comes_and_exits_by_the_outcome(
    sched: Sched, app: App, collection: str, gate: Gate
):
    name = f"{collection}/gated"
    gated_job(sched, name, gate)

    with sched_process(app, "job", "run", name, "--follow") as run:
        run.wait_for_line("INFO waiting at the gate")  # printed while the attempt waits
        assert run.process.poll() is None
        gate.next_visitor().answer("go")
        code, stdout, stderr = run.finish()
    assert code == 0, (stdout, stderr)
    assert stdout.index("waiting at the gate") < stdout.index("INFO the gate answered go")
    assert "Completed" in stderr

    with sched_process(app, "job", "run", name, "--follow") as run:
        gate.next_visitor().answer("stop")
        code, stdout, stderr = run.finish()
    assert code == 1, (stdout, stderr)
    assert "RuntimeError: the gate answered 'stop'" in stdout
    assert "ended Failed" in stderr


def test_logs_without_a_run_follows_the_attempt_under_way(
    sched: Sched, app: App, collection: str, gate: Gate
):
    name = f"{collection}/gated"
    gated_job(sched, name, gate)
    started = sched("job", "run", name)
    assert started.exit_code == 0 and "requested" in started.stdout
    visitor = gate.next_visitor()  # the attempt is under way: no history row yet

    with sched_process(app, "logs", name) as logs:
        logs.wait_for_line("INFO waiting at the gate")
        assert logs.process.poll() is None  # still following
        visitor.answer("go")
        code, stdout, stderr = logs.finish()
    assert code == 0, (stdout, stderr)
    assert "INFO the gate answered go" in stdout

    ended = sched("logs", name)  # nothing running: the newest finished attempt
    assert ended.exit_code == 0, ended.output
    assert "INFO the gate answered go" in ended.stdout
