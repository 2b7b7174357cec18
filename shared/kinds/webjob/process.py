"""One run of a WebJob script as a child process: Kudu's environment, output streamed line by
line, and Kudu's way of stopping it (the shutdown file, then SIGTERM to its process group,
then SIGKILL after `stopping_wait_time`), so the children it started die with it."""

from __future__ import annotations

import asyncio
import os
import shlex
import signal
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from shared.kinds.webjob.folders import WebJobFolder, command_for

_DRAIN_SECONDS = 2.0
LineSink = Callable[[str, str], None]  # (level, text)


@dataclass(frozen=True)
class ProcessResult:
    exit_code: int | None  # None when it had to be killed
    stopped: bool  # ended by our stop (timeout or request), not by itself


def data_path(job_type: str, name: str) -> Path:
    """WEBJOBS_DATA_PATH: kept between runs on this instance (not shared between instances)."""
    path = Path(tempfile.gettempdir()) / "webjobs-data" / job_type / name
    path.mkdir(parents=True, exist_ok=True)
    return path


def webjob_environment(
    folder: WebJobFolder, run_id: str, arguments: str, shutdown_file: Path
) -> dict[str, str]:
    return {
        "WEBJOBS_NAME": folder.name,
        "WEBJOBS_TYPE": folder.type,
        "WEBJOBS_RUN_ID": run_id,
        "WEBJOBS_COMMAND_ARGUMENTS": arguments,
        "WEBJOBS_SHUTDOWN_FILE": str(shutdown_file),
        "WEBJOBS_PATH": str(folder.path),
        "WEBJOBS_DATA_PATH": str(data_path(folder.type, folder.name)),
    }


async def run_script(
    folder: WebJobFolder,
    *,
    run_id: str,
    arguments: str,
    sink: LineSink,
    stop: asyncio.Event,
    timeout: float,
    base_env: Mapping[str, str] | None = None,
) -> ProcessResult:
    """Run the folder's script in the folder until it exits, `stop` is set or `timeout` passes;
    stdout lines go to `sink` as INFO, stderr lines as ERR."""
    if folder.script is None:
        raise ValueError(f"WebJob {folder.name} has no script")
    command = command_for(folder.script)
    if command is None:
        raise ValueError(f"WebJob {folder.name}: {folder.error}")
    command += shlex.split(arguments) if arguments else []
    with tempfile.TemporaryDirectory(prefix="webjob-") as scratch:
        shutdown_file = Path(scratch) / "shutdown"
        env = {**(os.environ if base_env is None else base_env)}
        env.update(webjob_environment(folder, run_id, arguments, shutdown_file))
        env["PYTHONUNBUFFERED"] = "1"  # a Python script's prints arrive as it makes them
        process = await asyncio.create_subprocess_exec(
            *command,
            cwd=folder.path,
            env=env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,  # its own process group: a stop reaches its children
        )
        readers = [
            asyncio.create_task(_pump(process.stdout, "INFO", sink)),
            asyncio.create_task(_pump(process.stderr, "ERR", sink)),
        ]
        exited = asyncio.create_task(process.wait())
        stopping = asyncio.create_task(stop.wait())
        done, _ = await asyncio.wait(
            {exited, stopping}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
        )
        stopping.cancel()
        stopped = exited not in done
        if stopped:
            reason = "stop requested" if stop.is_set() else f"timed out after {timeout:g} s"
            sink("WARN", f"Stopping the process ({reason})")
            await _stop(process, exited, shutdown_file, folder.settings.stopping_wait_time, sink)
        code = await exited
        # A child that outlived the script may hold its pipes open: give the readers a moment,
        # then end the whole group (as Kudu ends the process tree) and stop reading.
        _, pending = await asyncio.wait(readers, timeout=_DRAIN_SECONDS)
        if pending:
            _signal_group(process.pid, signal.SIGKILL)
            for reader in pending:
                reader.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        return ProcessResult(None if stopped and code < 0 else code, stopped)


async def _stop(
    process: asyncio.subprocess.Process,
    exited: asyncio.Task[int],
    shutdown_file: Path,
    wait_seconds: int,
    sink: LineSink,
) -> None:
    """The shutdown file first (a script that watches it ends on its own), then SIGTERM to the
    group, then SIGKILL once `wait_seconds` have passed since the shutdown file."""
    shutdown_file.write_text("shutdown\n")
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait_seconds
    half = wait_seconds / 2
    done, _ = await asyncio.wait({exited}, timeout=half)
    if done:
        return
    _signal_group(process.pid, signal.SIGTERM)
    done, _ = await asyncio.wait({exited}, timeout=max(0.0, deadline - loop.time()))
    if done:
        return
    sink("WARN", f"Killing the process: still running {wait_seconds} s after the shutdown file")
    _signal_group(process.pid, signal.SIGKILL)
    await exited


def _signal_group(pid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        pass


async def _pump(stream: asyncio.StreamReader | None, level: str, sink: LineSink) -> None:
    if stream is None:
        return
    while True:
        try:
            line = await stream.readline()
        except ValueError:  # a line longer than the stream's limit: take what is there
            line = await stream.read(64 * 1024)
        if not line:
            return
        sink(level, line.decode("utf-8", errors="replace").rstrip("\r\n"))
