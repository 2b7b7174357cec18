"""The app registers exactly its functions, with the bindings and auth levels the host needs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from devhost.functions import _functions_of

ROOT = Path(__file__).resolve().parents[2]
STORAGE = {"AzureWebJobsStorage": "UseDevelopmentStorage=true"}


IOT_HUB = {"iot_hub_devices": "devices", "iot_hub_twins": "twins", "iot_hub_jobs": "jobs/v2"}


def app_bindings(monkeypatch: pytest.MonkeyPatch) -> dict[str, dict[str, Any]]:
    for name, value in STORAGE.items():
        monkeypatch.setenv(name, value)  # checked at import, if this is the first one
    import function_app

    # Indexed through devhost's cache: get_functions() may only run once per app object.
    functions = {f.get_function_name(): f for f in _functions_of(function_app.app)}
    return {name: json.loads(f.get_function_json())["bindings"][0] for name, f in functions.items()}


def test_the_app_registers_the_api_the_timer_and_the_executor(monkeypatch: pytest.MonkeyPatch):
    bindings = app_bindings(monkeypatch)
    assert set(bindings) == {
        "scheduler_api",
        "dispatch_due_jobs",
        "execute_attempt",
        "dispatch_slice",
        "run_device_work",
        "dashboard_page",
        *IOT_HUB,
    }
    assert bindings["scheduler_api"]["type"] == "httpTrigger"
    assert bindings["scheduler_api"]["authLevel"].lower() == "function"
    assert bindings["scheduler_api"]["route"].strip("/") == "{*route}"
    assert bindings["dispatch_due_jobs"]["type"] == "timerTrigger"
    assert bindings["dispatch_due_jobs"]["schedule"] == "%DISPATCH_SCHEDULE%"
    assert bindings["execute_attempt"]["type"] == "queueTrigger"
    assert bindings["execute_attempt"]["queueName"] == "%SCHEDULER_EXECUTION_QUEUE%"
    assert bindings["execute_attempt"]["connection"] == "AzureWebJobsStorage"
    assert bindings["run_device_work"]["queueName"] == "%SCHEDULER_DEVICE_WORK_QUEUE%"
    assert bindings["dispatch_slice"]["type"] == "queueTrigger"
    assert bindings["dispatch_slice"]["queueName"] == "%SCHEDULER_DISPATCH_QUEUE%"
    assert bindings["dispatch_slice"]["connection"] == "AzureWebJobsStorage"


def test_iot_hub_paths_are_anonymous_functions_that_the_host_matches_first(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The host tries routes in the order of function names (ignoring case), first match wins:
    each IoT Hub function must sort before the catch-all, or the catch-all asks for a key."""
    bindings = app_bindings(monkeypatch)
    for name, prefix in IOT_HUB.items():
        assert bindings[name]["type"] == "httpTrigger"
        assert bindings[name]["authLevel"].lower() == "anonymous"
        assert bindings[name]["route"] == f"{prefix}/{{*path}}"
        assert name.upper() < "scheduler_api".upper()


def test_the_dashboard_page_is_an_anonymous_get_function_that_the_host_matches_first(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The page and its assets hold no secret and a browser cannot send a key to open a page;
    the data it shows comes from the catch-all, with the key."""
    binding = app_bindings(monkeypatch)["dashboard_page"]
    assert binding["type"] == "httpTrigger"
    assert binding["authLevel"].lower() == "anonymous"
    assert binding["route"] == "dashboard/{*path}"
    assert [method.lower() for method in binding["methods"]] == ["get"]
    assert "dashboard_page".upper() < "scheduler_api".upper()


def import_app(settings: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Import the app in a new process, as the host does, with these app settings only."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AzureWebJobs", "SCHEDULER"))}
    script = "import function_app; from shared import runtime; assert runtime._runtimes == {}"
    return subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env={**env, **settings},
        capture_output=True,
        text=True,
        check=False,
    )


def test_importing_the_app_checks_the_settings_and_does_no_io():
    """The host indexes functions at import: storage is not used before a function runs."""
    result = import_app(STORAGE)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({}, "ConfigError: AzureWebJobsStorage: must be set"),
        (
            {**STORAGE, "SCHEDULER_LOOKAHEAD_SECONDS": "0"},
            "ConfigError: SCHEDULER_LOOKAHEAD_SECONDS: must be at least 1 (is 0)",
        ),
        (
            {**STORAGE, "SCHEDULER_IOT_POLICIES": "owner=not*base64:RegistryRead"},
            "ConfigError: SCHEDULER_IOT_POLICIES: policy 'owner': the key is not base64",
        ),
        (
            {**STORAGE, "SCHEDULER_ALLOWED_NETWORKS": "lopback"},
            "ConfigError: SCHEDULER_ALLOWED_NETWORKS: 'lopback' is neither a network name",
        ),
    ],
)
def test_a_bad_setting_stops_the_app_as_it_loads_naming_it(
    settings: dict[str, str], message: str
) -> None:
    result = import_app(settings)
    assert result.returncode != 0
    assert message in result.stderr
