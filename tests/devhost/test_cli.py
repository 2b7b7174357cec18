"""`python -m devhost` as a user runs it: prints the API URL, serves, stops cleanly on SIGTERM."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import sys
from pathlib import Path

import httpx
import pytest

from devhost.__main__ import main, parse_args

PROJECT_ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.integration
async def test_the_cli_serves_until_sigterm(tmp_path, storage_connection, unique_name):
    (tmp_path / "host.json").write_text(json.dumps({"version": "2.0"}))
    env = {
        **os.environ,
        "SAMPLE_SCHEDULE": "0 0 0 1 1 *",
        "SAMPLE_QUEUE": unique_name,
        "SampleStorage": storage_connection,
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "devhost",
        "--app",
        "tests.devhost.sample_app:app",
        "--project-dir",
        str(tmp_path),
        "--port",
        "0",
        cwd=PROJECT_ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    assert process.stdout is not None
    try:
        output: list[str] = []
        while not (found := re.search(r"API: http://localhost:(\d+)/api", "".join(output))):
            line = await asyncio.wait_for(process.stdout.readline(), timeout=20)
            assert line, "devhost exited early:\n" + "".join(output)
            output.append(line.decode())
        assert "function keys are not enforced" in "".join(output)

        async with httpx.AsyncClient() as client:
            response = await client.get(f"http://127.0.0.1:{found.group(1)}/api/hello")
        assert response.text == "hello from hello"

        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), timeout=20) == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


@pytest.mark.parametrize("key", ["", "   "])
def test_an_empty_key_is_refused_at_start_up(key, capsys):
    with pytest.raises(SystemExit) as stopped:
        main(["--key", key])

    assert stopped.value.code == 2
    error = capsys.readouterr().err
    assert "argument --key" in error
    assert "empty key would leave the API open" in error


def test_a_key_is_taken_as_given():
    assert parse_args(["--key", "k3y"]).key == "k3y"
    assert parse_args([]).key is None
