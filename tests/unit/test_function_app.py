"""The app registers exactly its three functions, with the bindings the host needs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import function_app
from devhost.functions import _functions_of

ROOT = Path(__file__).resolve().parents[2]


def test_the_app_registers_the_api_the_timer_and_the_executor():
    # Indexed through devhost's cache: get_functions() may only run once per app object.
    functions = {f.get_function_name(): f for f in _functions_of(function_app.app)}
    assert set(functions) == {"http_app_func", "dispatch_due_jobs", "execute_occurrence"}
    bindings = {
        name: json.loads(f.get_function_json())["bindings"][0] for name, f in functions.items()
    }
    assert bindings["http_app_func"]["type"] == "httpTrigger"
    assert bindings["http_app_func"]["authLevel"].lower() == "function"
    assert bindings["dispatch_due_jobs"]["type"] == "timerTrigger"
    assert bindings["dispatch_due_jobs"]["schedule"] == "%DISPATCH_SCHEDULE%"
    assert bindings["execute_occurrence"]["type"] == "queueTrigger"
    assert bindings["execute_occurrence"]["queueName"] == "%SCHEDULER_EXECUTION_QUEUE%"
    assert bindings["execute_occurrence"]["connection"] == "AzureWebJobsStorage"


def test_importing_the_app_needs_no_settings_and_does_no_io():
    """The host indexes functions at import, before any setting may be read or storage used."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AzureWebJobs", "SCHEDULER"))}
    script = "import function_app; from shared import runtime; assert runtime._runtimes == {}"
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
