"""`sched` against the real app (devhost on Azurite): every noun, every output format, and the
error paths with their exit codes (README "Command line")."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.cli.conftest import KEY, App, Sched

pytestmark = pytest.mark.e2e


def ok(result: Any) -> Any:
    assert result.exit_code == 0, (result.exit_code, result.stdout, result.stderr)
    return result


def eventually(check: Callable[[], Any], timeout: float = 20) -> Any:
    """Polls a condition with a deadline (the app works in the background)."""
    deadline = time.monotonic() + timeout
    while not (value := check()):
        if time.monotonic() > deadline:
            raise TimeoutError("condition not reached")
        time.sleep(0.3)
    return value


# --- jobs --------------------------------------------------------------------------------------


def test_a_job_from_flags_maps_to_the_json_and_previews_in_words(sched: Sched, collection: str):
    created = ok(
        sched(
            "job", "create", f"{collection}/standup",
            "--weekdays", "mon,fri", "--time", "09:00", "--tz", "Europe/Berlin",
            "--at", "2030-01-04T09:00",
            "--http-post", "https://example.com/standup", "--header", "X-Team: core",
            "--retry", "fixed", "--retry-count", "3", "--retry-interval", "30s",
            "--error-http-post", "https://example.com/alert",
            "--overlap", "forbid", "-o", "json",
        )
    )  # fmt: skip
    properties = json.loads(created.stdout)["properties"]
    assert properties["recurrence"] == {
        "frequency": "Week",
        "interval": 1,
        "timeZone": "Europe/Berlin",
        "schedule": {"weekDays": ["Monday", "Friday"], "hours": [9], "minutes": [0]},
    }
    action = properties["action"]
    assert action["request"]["method"] == "POST"
    assert action["request"]["headers"] == {"X-Team": "core"}
    assert action["retryPolicy"]["retryInterval"] == "PT30S"
    assert action["retryPolicy"]["retryCount"] == 3
    assert action["errorAction"]["request"]["uri"] == "https://example.com/alert"
    assert properties["overlap"] == "Forbid"

    preview = ok(
        sched("job", "next", "standup", "-c", collection, "-n", "3",
              "--after", "2030-01-01T00:00:00Z", "-o", "json")
    )  # fmt: skip
    shown = json.loads(preview.stdout)
    # 2030-01-04 is a Friday; 09:00 in Berlin in winter is 08:00 UTC.
    assert shown["occurrences"] == [
        "2030-01-04T08:00:00Z",
        "2030-01-07T08:00:00Z",
        "2030-01-11T08:00:00Z",
    ]
    assert shown["schedule"] == (
        "every week on Monday and Friday at 09:00 (Europe/Berlin), from 2030-01-04T08:00:00Z"
    )

    table = ok(sched("job", "next", f"{collection}/standup", "-n", "2", "--after", "2030-01-01"))
    assert table.stdout.startswith("Schedule: every week on Monday and Friday at 09:00")
    assert "Fri 2030-01-04 09:00:00 CET" in table.stdout


def test_a_job_from_a_file_with_flags_on_top(sched: Sched, collection: str, tmp_path: Path):
    job_file = tmp_path / "job.yaml"
    job_file.write_text(
        yaml.safe_dump(
            {
                "startTime": "2030-01-01T00:00:00Z",
                "action": {
                    "type": "Http",
                    "request": {"uri": "https://example.com/", "method": "GET"},
                },
                "recurrence": {"frequency": "Day"},
            }
        )
    )
    ok(sched("job", "create", f"{collection}/filed", "--file", str(job_file), "--every", "15m"))

    shown = ok(
        sched("job", "show", f"{collection}/filed", "-o", "json",
              "--query", "properties.[recurrence.frequency, recurrence.interval, startTime]")
    )  # fmt: skip
    assert json.loads(shown.stdout) == ["Minute", 15, "2030-01-01T00:00:00Z"]

    action = {"type": "Http", "request": {"uri": "https://example.com/", "method": "GET"}}
    from_stdin = json.dumps({"properties": {"action": action, "startTime": "2030-01-01T09:00Z"}})
    ok(sched("job", "create", f"{collection}/piped", "-f", "-", input=from_stdin))
    listed = ok(sched("job", "list", collection, "-o", "json", "--query", "[].name"))
    assert sorted(json.loads(listed.stdout)) == [f"{collection}/filed", f"{collection}/piped"]


def test_enable_disable_run_and_delete(sched: Sched, collection: str):
    name = f"{collection}/greeter"
    ok(sched("job", "create", name, "--at", "2030-01-01T00:00:00Z", "--every", "1d",
             "--handler", "cli-greet", "--arg", "who=ops", "--disabled"))  # fmt: skip
    state = ["job", "show", name, "-o", "json", "--query", "properties.state"]
    assert json.loads(ok(sched(*state)).stdout) == "Disabled"
    ok(sched("job", "enable", name))
    assert json.loads(ok(sched(*state)).stdout) == "Enabled"

    assert "requested" in ok(sched("job", "run", name)).stdout

    def on_demand_row() -> Any:
        rows = json.loads(ok(sched("history", name, "-o", "json")).stdout)
        return rows if rows and rows[0]["properties"].get("onDemand") else None

    [row] = eventually(on_demand_row)
    assert row["properties"]["status"] == "Completed"
    output = ok(sched("logs", name))
    assert "INFO hello ops" in output.stdout
    assert "OUT printed by the handler" in output.stdout

    ok(sched("job", "disable", name))
    assert json.loads(ok(sched(*state)).stdout) == "Disabled"
    assert sched("job", "delete", name, input="n\n").exit_code == 1  # asked, refused
    ok(sched("job", "delete", name, "--yes"))
    gone = sched("job", "show", name)
    assert gone.exit_code == 3
    assert "HTTP 404" in gone.stderr


def test_history_follow_ends_when_the_job_does_and_logs_reads_the_output(
    sched: Sched, collection: str
):
    name = f"{collection}/once"
    # No startTime: it runs once, now; following ends when the job is Completed.
    ok(sched("job", "create", name, "--handler", "cli-greet", "--arg", "who=world"))
    followed = ok(sched("history", name, "--follow", "--interval", "0.3", "--timeout", "30"))
    lines = followed.stdout.strip().splitlines()
    assert len(lines) == 1 and "Completed" in lines[0] and "MainAction" in lines[0]
    run = lines[0].split()[3]

    as_json = ok(sched("history", name, "--follow", "-o", "json", "--timeout", "5"))
    [row] = [json.loads(line) for line in as_json.stdout.splitlines()]  # JSON lines
    assert row["name"].endswith(run)

    output = ok(sched("logs", name, run))
    assert "INFO hello world" in output.stdout
    assert '{"greeted": "world"}' in output.stdout


# --- WebJobs: logs followed while the run goes on ----------------------------------------------


def test_webjob_run_wait_follows_its_output_and_exits_by_its_status(sched: Sched):
    started = time.monotonic()
    waited = ok(sched("webjob", "run", "chatty", "--wait"))
    assert waited.stdout.index("step one") < waited.stdout.index("step two")
    assert time.monotonic() - started >= 1.5  # it waited for the run to end
    assert "Success" in waited.stderr

    failed = sched("webjob", "run", "failing", "--wait")
    assert failed.exit_code == 1
    assert "about to fail" in failed.stdout
    assert "ended Failed" in failed.stderr

    history = ok(sched("webjob", "history", "failing", "-o", "json", "--query", "[0].status"))
    assert json.loads(history.stdout) == "Failed"
    logs = ok(sched("webjob", "logs", "chatty"))
    assert "step two" in logs.stdout


# --- devices and broadcasts --------------------------------------------------------------------


def test_broadcast_wait_shows_progress_and_ends_with_the_job(sched: Sched, app: App):
    site = "s" + uuid.uuid4().hex[:8]
    for device in ("d1", "d2"):
        device_id = f"{site}-{device}"
        ok(sched("device", "create", device_id, "--endpoint", f"{app.device_url}?d={device_id}",
                 "--tag", f"site={site}"))  # fmt: skip
    listed = ok(sched("device", "query", f"SELECT * FROM devices WHERE tags.site = '{site}'",
                      "-o", "json", "--query", "length(@)"))  # fmt: skip
    assert json.loads(listed.stdout) == 2
    answer = ok(
        sched("device", "invoke", f"{site}-d1", "ping", "--payload", '{"n": 1}', "-o", "json")
    )
    assert json.loads(answer.stdout) == {"status": 201, "payload": {"echo": {"n": 1}}}

    done = ok(
        sched("broadcast", "create", f"b-{site}", "--method", "reboot", "--payload", '{"a": 1}',
              "-q", f"tags.site = '{site}'", "--wait", "--poll-interval", "0.3", "-o", "json")
    )  # fmt: skip
    job = json.loads(done.stdout)
    assert job["status"] == "completed"
    assert job["deviceJobStatistics"]["succeededCount"] == 2
    assert "2/2" in done.stderr  # the progress bar, on stderr
    records = ok(sched("broadcast", "devices", f"b-{site}", "-o", "json", "--query", "[].status"))
    assert json.loads(records.stdout) == ["completed", "completed"]


def test_broadcast_wait_exits_non_zero_when_it_is_aborted(sched: Sched, tmp_path: Path):
    site = "s" + uuid.uuid4().hex[:8]
    for device in ("d1", "d2", "d3"):  # no endpoint: every call fails (DeviceNotOnline)
        ok(sched("device", "create", f"{site}-{device}", "--tag", f"site={site}"))
    request = tmp_path / "broadcast.json"
    request.write_text(json.dumps({
        "abortConfig": {"criteriaList": [{"failureType": "ALL", "action": "CANCEL",
                                          "thresholdPercentage": 10,
                                          "minNumberOfExecutedThings": 1}]},
        "rollout": {"maximumPerMinute": 60},
    }))  # fmt: skip
    aborted = sched("broadcast", "create", f"b-{site}", "-f", str(request), "--method", "reboot",
                    "-q", f"tags.site = '{site}'", "--wait", "--poll-interval", "0.3")  # fmt: skip
    assert aborted.exit_code == 1, (aborted.stdout, aborted.stderr)
    assert f"broadcast b-{site} ended cancelled" in aborted.stderr


# --- output formats ----------------------------------------------------------------------------


def test_every_output_format_and_query(sched: Sched, collection: str):
    as_json = json.loads(ok(sched("collection", "show", collection, "-o", "json")).stdout)
    as_yaml = yaml.safe_load(ok(sched("collection", "show", collection, "-o", "yaml")).stdout)
    assert as_json == as_yaml and as_json["name"] == collection

    table = ok(sched("collection", "show", collection)).stdout.splitlines()
    assert table[0].split()[:2] == ["Name", "State"]
    assert table[1].split()[:2] == [collection, "Enabled"]

    queried = ok(sched("collection", "list", "--query", f"[?name=='{collection}'].name"))
    assert queried.stdout.strip() == collection  # a list of strings: one a line
    state = ok(sched("collection", "show", collection, "-o", "yaml", "--query", "properties.state"))
    assert state.stdout == "Enabled\n...\n"

    from_env = ok(sched("collection", "show", collection, SCHED_OUTPUT="json"))
    assert json.loads(from_env.stdout)["name"] == collection


def test_tables_fit_the_terminal(sched: Sched, collection: str):
    ok(sched("job", "create", f"{collection}/" + "x" * 60, "--at", "2030-01-01T00:00:00Z",
             "--weekdays", "mon,tue,wed,thu,fri,sat,sun", "--time", "09:00,09:30",
             "--http-get", "https://example.com/"))  # fmt: skip
    for width in (60, 100):
        listed = ok(sched("job", "list", collection, COLUMNS=str(width)))
        assert max(len(line) for line in listed.stdout.splitlines()) <= width
        assert listed.stdout.count("x") >= 60  # the name is folded onto lines, not cut


# --- configuration and errors ------------------------------------------------------------------


def test_a_bad_flag_exits_2_before_any_call(sched: Sched):
    result = sched("job", "list", "c", "--no-such-flag", SCHED_URL="http://127.0.0.1:1/api")
    assert result.exit_code == 2
    assert "No such option '--no-such-flag'" in result.stderr
    local = sched("job", "create", "c/j", "--every", "15x", "--http-get", "https://e.com/")
    assert local.exit_code == 2
    assert "--every '15x'" in local.stderr


def test_an_api_400_names_the_field_and_exits_4(sched: Sched, collection: str):
    result = sched("job", "create", f"{collection}/bad", "--every", "0m",
                   "--http-get", "https://example.com/")  # fmt: skip
    assert result.exit_code == 4
    assert "Error: BadRequest (HTTP 400) at properties.recurrence.interval:" in result.stderr


def test_unreachable_url_and_wrong_key(sched: Sched, app: App):
    down = sched("collection", "list", SCHED_URL="http://127.0.0.1:1/api")
    assert down.exit_code == 6
    assert "cannot reach http://127.0.0.1:1/api" in down.stderr

    refused = sched("collection", "list", SCHED_KEY="wrong")
    assert refused.exit_code == 5
    assert "Unauthorized (HTTP 401)" in refused.stderr
    assert "wrong" not in refused.stderr

    unsigned = sched("device", "list", SCHED_IOT_CONNECTION_STRING="")
    assert unsigned.exit_code == 2
    assert "shared access policy" in unsigned.stderr
    bad_policy = sched(
        "device", "list",
        SCHED_IOT_CONNECTION_STRING="SharedAccessKeyName=owner;SharedAccessKey=" + "A" * 44,
    )  # fmt: skip
    assert bad_policy.exit_code == 5
    assert "IotHubUnauthorizedAccess (HTTP 401)" in bad_policy.stderr


def test_profiles_from_the_profile_file(sched: Sched, app: App, tmp_path: Path, collection: str):
    config = tmp_path / "sched.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "default_profile": "broken",
                "profiles": {
                    "local": {"url": app.url, "key": KEY, "collection": collection},
                    "broken": {"url": "http://127.0.0.1:1/api"},
                },
            }
        )
    )
    profile_env = {"SCHED_CONFIG": str(config), "SCHED_URL": "", "SCHED_KEY": ""}
    assert sched("collection", "list", **profile_env).exit_code == 6  # the default profile
    ok(sched("--profile", "local", "job", "create", "p1", "--at", "2030-01-01T00:00:00Z",
             "--http-get", "https://example.com/", **profile_env))  # fmt: skip
    ok(sched("--profile", "local", "job", "show", "p1", **profile_env))  # collection from it
    by_env = ok(sched("job", "show", "p1", "-o", "json", SCHED_PROFILE="local", **profile_env))
    assert json.loads(by_env.stdout)["name"] == f"{collection}/p1"
    missing = sched("--profile", "nope", "collection", "list", **profile_env)
    assert missing.exit_code == 2
    assert "no profile 'nope'" in missing.stderr and "broken, local" in missing.stderr


def test_the_installed_command_runs_and_completes(app: App):
    env = {**os.environ, **app.env()}
    listed = subprocess.run(
        [sys.executable, "-m", "scheduler_cli", "collection", "list", "-o", "json"],
        env=env, capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert listed.returncode == 0, listed.stderr
    assert isinstance(json.loads(listed.stdout), list)
    completion = subprocess.run(
        [sys.executable, "-m", "scheduler_cli"],
        env={**env, "_SCHED_COMPLETE": "bash_source"}, capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert "_sched_completion" in completion.stdout
